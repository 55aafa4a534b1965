#!/usr/bin/env bash
# lane.sh boots a Debian guest with cgroup v2 under qemu and runs a smoke of dist/ctl.pex in
# it: one line per step, PASS or FAIL, then the costs. It exits 1 if a step failed.
#
#   bash tests/vm/lane.sh [NAME]      (run it through scripts/vm.sh, which installs qemu)
#
# The guest reaches nothing but what the lane forwards (qemu user networking with
# restrict=on): its ssh port on the host's 127.0.0.1, and through ssh -R the host's loopback
# registry at the guest's own 127.0.0.1:5000. One guest at a time, 2 vCPUs, 2 GiB. The image
# never changes: the guest writes to its own qcow2 overlay, removed on exit with everything
# else the lane started, on failure too.
set -euo pipefail
cd "$(dirname "$0")/../.."

name=${1:-debian12}
lane_start=$(date +%s.%N)
run=$(mktemp -d /tmp/ctl-vm-XXXXXX)
qemu_pid=""
registry_pid=""
cleanup() {
	if [ -S "$run/ssh.sock" ]; then
		ssh -o ControlPath="$run/ssh.sock" -O exit root@127.0.0.1 2>/dev/null || true
	fi
	if [ -n "$qemu_pid" ]; then
		kill "$qemu_pid" 2>/dev/null || true
	fi
	if [ -n "$registry_pid" ]; then
		kill "$registry_pid" 2>/dev/null || true
		wait "$registry_pid" 2>/dev/null || true
	fi
	rm -rf "$run"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

since() { awk -v start="$1" -v now="$(date +%s.%N)" 'BEGIN { printf "%.1f", now - start }'; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

t=$(date +%s.%N)
image=$(bash tests/vm/build-image.sh "$name")
build_time=$(since "$t")

# The registry starts while the guest boots; its standard input is a pipe the lane holds, so
# it also stops if the lane dies without running its trap.
mkfifo "$run/registry.in"
mkdir "$run/registry"
.venv/bin/python -m tests.vm.registry "$run/registry" <"$run/registry.in" >"$run/registry.port" 2>"$run/registry.log" &
registry_pid=$!
exec 3>"$run/registry.in"

accel=(-accel tcg,thread=multi -cpu max)
# This kind of machine has /dev/kvm from kvm_pvm, which Debian's kernels cannot use (see
# research/vm.md): KVM only where the hardware modules serve it.
if [ -w /dev/kvm ] && { [ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]; }; then
	accel=(-accel kvm -cpu host)
fi
ssh_port=$(free_port)
qemu-img create -q -f qcow2 -b "$image/disk.raw" -F raw "$run/overlay.qcow2"
t=$(date +%s.%N)
qemu-system-x86_64 "${accel[@]}" -smp 2 -m 2048 \
	-kernel "$image/vmlinuz" -initrd "$image/initrd.img" \
	-append "root=/dev/vda rw console=ttyS0 net.ifnames=0" \
	-drive file="$run/overlay.qcow2",if=virtio,format=qcow2 \
	-netdev user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:"$ssh_port"-:22 \
	-device virtio-net-pci,netdev=net0 \
	-display none -serial file:"$run/console.log" \
	-pidfile "$run/qemu.pid" -daemonize
qemu_pid=$(cat "$run/qemu.pid")

ssh_opts=(-i "$image/id_ed25519" -p "$ssh_port" -o StrictHostKeyChecking=no
	-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes
	-o ControlPath="$run/ssh.sock")
deadline=$((SECONDS + ${CTL_VM_BOOT_TIMEOUT:-300}))
until ssh "${ssh_opts[@]}" -o ConnectTimeout=5 root@127.0.0.1 true 2>/dev/null; do
	if [ "$SECONDS" -ge "$deadline" ] || ! kill -0 "$qemu_pid" 2>/dev/null; then
		echo "lane.sh: FAIL boot: no ssh within ${CTL_VM_BOOT_TIMEOUT:-300} s; the console's end:" >&2
		tail -20 "$run/console.log" >&2 || true
		exit 1
	fi
	sleep 2
done
boot_time=$(since "$t")

until [ -s "$run/registry.port" ]; do
	if ! kill -0 "$registry_pid" 2>/dev/null; then
		echo "lane.sh: FAIL registry:" >&2
		cat "$run/registry.log" >&2
		exit 1
	fi
	sleep 0.5
done
registry_port=$(cat "$run/registry.port")
ssh "${ssh_opts[@]}" -fNM -o ControlPersist=yes -o ExitOnForwardFailure=yes \
	-R 127.0.0.1:5000:127.0.0.1:"$registry_port" root@127.0.0.1
guest() { ssh "${ssh_opts[@]}" root@127.0.0.1 "$@"; }
scp -q -i "$image/id_ed25519" -P "$ssh_port" -o StrictHostKeyChecking=no \
	-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ControlPath="$run/ssh.sock" \
	dist/ctl.pex root@127.0.0.1:/usr/local/bin/ctl

t=$(date +%s.%N)
source tests/vm/smoke.sh
smoke && smoke_status=0 || smoke_status=$?
smoke_time=$(since "$t")
echo "lane.sh: $name: image ${build_time} s, boot ${boot_time} s, smoke ${smoke_time} s, lane $(since "$lane_start") s"
exit "$smoke_status"
