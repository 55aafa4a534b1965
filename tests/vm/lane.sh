#!/usr/bin/env bash
# lane.sh boots a Debian guest with cgroup v2 under qemu and runs a smoke of dist/ctl.pex in
# it: one line per step, PASS or FAIL, then the costs. It exits 1 if a step failed.
#
#   bash tests/vm/lane.sh [NAME]      (run it through scripts/vm.sh, which installs qemu)
#
# The first run boots the guest cold, waits for systemd to settle, and saves the running
# guest (a qemu migration to a file, with its disk overlay) next to the image; every run
# then restores that, which takes seconds where a cold boot under TCG takes a minute or two.
# Restored guests share one boot: a test of reboot behaviour must reboot inside the guest.
#
# The guest reaches nothing but what the lane forwards (qemu user networking with
# restrict=on): its ssh port on the host's 127.0.0.1, and through ssh -R the host's loopback
# registry at the guest's own 127.0.0.1:5000. One guest at a time, 2 vCPUs, 2 GiB. The image
# never changes: the guest writes to its own qcow2 overlay, removed on exit with everything
# else the lane started, on failure too.
set -euo pipefail
lane_script=$(realpath "$0")
cd "$(dirname "$lane_script")/../.."

name=${1:-debian12}
lane_start=$(date +%s.%N)
run=$(mktemp -d /tmp/ctl-vm-XXXXXX)
qemu_pid=""
registry_pid=""
stop_qemu() {
	if [ -S "$run/ssh.sock" ]; then
		ssh -o ControlPath="$run/ssh.sock" -O exit root@127.0.0.1 2>/dev/null || true
	fi
	if [ -n "$qemu_pid" ]; then
		kill "$qemu_pid" 2>/dev/null || true
		# qemu daemonized, so it is not our child: wait for it to be gone or a zombie.
		local tries=100
		while [ "$tries" -gt 0 ] && [ -n "$(ps -o stat= -p "$qemu_pid" | grep -v Z)" ]; do
			sleep 0.1
			tries=$((tries - 1))
		done
		kill -KILL "$qemu_pid" 2>/dev/null || true
		qemu_pid=""
	fi
}
cleanup() {
	stop_qemu
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
fail() {
	echo "lane.sh: FAIL $*" >&2
	exit 1
}

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
machine=(-smp 2 -m 2048 "${accel[@]}")
# A saved guest restores only into the same qemu with the same machine and devices, which
# this script sets.
saved_key=$( (qemu-system-x86_64 --version; echo "${machine[*]}"; cat "$lane_script") | sha256sum)
saved=$image/saved-${saved_key:0:12}

# start_qemu boots the guest on a new overlay over BACKING (qcow2 or raw), with qemu's
# further ARGS, and sets ssh_opts to reach it.
start_qemu() {
	local backing=$1 format=$2 ssh_port
	shift 2
	qemu-img create -q -f qcow2 -b "$backing" -F "$format" "$run/overlay.qcow2"
	ssh_port=$(free_port)
	qemu-system-x86_64 "${machine[@]}" \
		-kernel "$image/vmlinuz" -initrd "$image/initrd.img" \
		-append "root=/dev/vda rw console=ttyS0 net.ifnames=0" \
		-drive file="$run/overlay.qcow2",if=virtio,format=qcow2 \
		-netdev user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:"$ssh_port"-:22 \
		-device virtio-net-pci,netdev=net0 \
		-display none -serial file:"$run/console.log" \
		-monitor unix:"$run/monitor.sock",server=on,wait=off \
		-pidfile "$run/qemu.pid" -daemonize "$@"
	qemu_pid=$(cat "$run/qemu.pid")
	ssh_opts=(-i "$image/id_ed25519" -p "$ssh_port" -o StrictHostKeyChecking=no
		-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes
		-o ControlPath="$run/ssh.sock")
}
guest() { ssh "${ssh_opts[@]}" root@127.0.0.1 "$@"; }
wait_ssh() {
	local deadline=$((SECONDS + ${CTL_VM_BOOT_TIMEOUT:-300}))
	until guest -o ConnectTimeout=5 true 2>/dev/null; do
		if [ "$SECONDS" -ge "$deadline" ] || ! kill -0 "$qemu_pid" 2>/dev/null; then
			tail -20 "$run/console.log" >&2 || true
			fail "boot: no ssh within ${CTL_VM_BOOT_TIMEOUT:-300} s; the console's end is above"
		fi
		sleep 1
	done
}
# monitor sends one command to qemu's human monitor and prints what it answers.
monitor() {
	python3 - "$run/monitor.sock" "$1" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
time.sleep(0.3)
s.settimeout(0.5)
out = b""
try:
    while chunk := s.recv(65536):
        out += chunk
except TimeoutError:
    pass
print(out.decode(errors="replace"))
PY
}

boot_time=-
save_time=-
if [ ! -f "$saved/state.zst" ]; then
	t=$(date +%s.%N)
	start_qemu "$image/disk.raw" raw
	wait_ssh
	boot_time=$(since "$t")
	t=$(date +%s.%N)
	# Settled (or degraded): nothing left starting that would then run in every restore.
	guest timeout 180 systemctl is-system-running --wait >/dev/null || true
	guest sync
	# A save for another qemu or an older lane.sh would never be restored again.
	rm -rf "$image"/saved-*
	mkdir "$saved"
	monitor "migrate -d \"exec:zstd -q -T2 -o $saved/state.zst.tmp\"" >/dev/null
	deadline=$((SECONDS + 180))
	until monitor "info migrate" | grep -q "Migration status: completed"; do
		[ "$SECONDS" -lt "$deadline" ] || fail "save: the migration did not complete in 180 s"
		sleep 1
	done
	stop_qemu
	mv "$run/overlay.qcow2" "$saved/disk.qcow2"
	mv "$saved/state.zst.tmp" "$saved/state.zst"
	save_time=$(since "$t")
fi
t=$(date +%s.%N)
start_qemu "$saved/disk.qcow2" qcow2 -incoming "exec:zstd -dcq $saved/state.zst"
wait_ssh
# The restored clock is the saved one.
guest date -s "@$(date +%s)" >/dev/null
restore_time=$(since "$t")

until [ -s "$run/registry.port" ]; do
	if ! kill -0 "$registry_pid" 2>/dev/null; then
		cat "$run/registry.log" >&2
		fail "registry: it did not start; its log is above"
	fi
	sleep 0.5
done
registry_port=$(cat "$run/registry.port")
ssh "${ssh_opts[@]}" -fNM -o ControlPersist=yes -o ExitOnForwardFailure=yes \
	-R 127.0.0.1:5000:127.0.0.1:"$registry_port" root@127.0.0.1
scp -q "${ssh_opts[@]/#-p/-P}" dist/ctl.pex root@127.0.0.1:/usr/local/bin/ctl

t=$(date +%s.%N)
source tests/vm/smoke.sh
smoke && smoke_status=0 || smoke_status=$?
smoke_time=$(since "$t")
echo "lane.sh: $name: image ${build_time} s, cold boot ${boot_time} s, save ${save_time} s," \
	"restore ${restore_time} s, smoke ${smoke_time} s, lane $(since "$lane_start") s"
exit "$smoke_status"
