#!/usr/bin/env bash
# lane.sh boots Debian guests with cgroup v2 under qemu, one after another, and runs a smoke
# of dist/ctl.pex in each (tests/vm/smoke.sh): one line per step, PASS, FAIL or SKIP, then the
# costs, and at the end a table of every step on every guest. It exits 1 if a step failed.
#
#   bash tests/vm/lane.sh [NAME...]      (debian12, the default, and debian13; run it through
#                                         scripts/vm.sh, which installs qemu)
#
# The first run of a guest boots it cold, waits for systemd to settle, and saves the running
# guest (a qemu migration to a file, with its disk overlay) next to the image; every run
# then restores that, which takes seconds where a cold boot under TCG takes a minute or two.
# Restored guests share one boot: the smoke's reboot step reboots inside the guest.
#
# The guest reaches nothing but what the lane forwards (qemu user networking with
# restrict=on): its ssh port on the host's 127.0.0.1, and through ssh -R the host's loopback
# registry at the guest's own 127.0.0.1:5000. One guest at a time, 2 vCPUs, 2 GiB. The image
# never changes: the guest writes to its own qcow2 overlay, removed on exit with everything
# else the lane started, on failure too.
#
# CTL_VM_PEX names another pex to smoke; CTL_VM_PYTEST=1 also runs the cgroup-sensitive
# integration tests in the guests that have the host's Python (smoke.sh's guest_pytest).
set -euo pipefail
lane_script=$(realpath "$0")
cd "$(dirname "$lane_script")/../.."

names=("$@")
if [ "${#names[@]}" = 0 ]; then
	names=(debian12)
fi
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
	rm -f "$run/overlay.qcow2"
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
	return 1
}

# The registry starts while the first guest is built or boots; its standard input is a pipe
# the lane holds, so it also stops if the lane dies without running its trap.
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

# start_qemu boots the guest of image directory $image on a new overlay over BACKING (qcow2
# or raw), with qemu's further ARGS, and sets ssh_opts to reach it.
start_qemu() {
	local backing=$1 format=$2 ssh_port
	shift 2
	qemu-img create -q -f qcow2 -b "$backing" -F "$format" "$run/overlay.qcow2"
	ssh_port=$(free_port)
	qemu-system-x86_64 "${machine[@]}" \
		-kernel "$image/vmlinuz" -initrd "$image/initrd.img" \
		-append "root=/dev/vda rw console=ttyS0 net.ifnames=0 quiet" \
		-drive file="$run/overlay.qcow2",if=virtio,format=qcow2 \
		-netdev user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:"$ssh_port"-:22 \
		-device virtio-net-pci,netdev=net0 \
		-display none -serial file:"$run/console.log" \
		-monitor unix:"$run/monitor.sock",server=on,wait=off \
		-pidfile "$run/qemu.pid" -daemonize "$@"
	qemu_pid=$(cat "$run/qemu.pid")
	ssh_opts=(-i "$image/id_ed25519" -p "$ssh_port" -o StrictHostKeyChecking=no
		-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes
		-o ControlPath="$run/ssh.sock" -o ServerAliveInterval=5 -o ServerAliveCountMax=3)
}
# guest runs a command in the guest; none runs longer than 5 minutes, so no step hangs.
guest() { timeout 300 ssh "${ssh_opts[@]}" root@127.0.0.1 "$@"; }
wait_ssh() {
	local deadline=$((SECONDS + ${CTL_VM_BOOT_TIMEOUT:-300}))
	until guest -o ConnectTimeout=5 true 2>/dev/null; do
		if [ "$SECONDS" -ge "$deadline" ] || ! kill -0 "$qemu_pid" 2>/dev/null; then
			tail -20 "$run/console.log" >&2 || true
			fail "boot: no ssh within ${CTL_VM_BOOT_TIMEOUT:-300} s; the console's end is above"
			return 1
		fi
		sleep 1
	done
}
# connect opens the ssh control master every later command goes through, with the host's
# registry forwarded to the guest's 127.0.0.1:5000. The master keeps no standard stream of the
# caller's open: a step's $(...) would wait for it to end.
connect() {
	ssh "${ssh_opts[@]}" -fNM -o ControlPersist=yes -o ExitOnForwardFailure=yes \
		-R 127.0.0.1:5000:127.0.0.1:"$registry_port" root@127.0.0.1 \
		</dev/null >/dev/null 2>"$run/connect.log" || {
		cat "$run/connect.log"
		return 1
	}
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
# save_guest waits for the cold-booted guest to settle and saves it to $saved.
save_guest() {
	# Settled (or degraded): nothing left starting that would then run in every restore.
	guest timeout 180 systemctl is-system-running --wait >/dev/null || true
	guest sync
	# A save for another qemu or an older recipe would never be restored again.
	rm -rf "$image"/saved-*
	mkdir "$saved"
	monitor "migrate -d \"exec:zstd -q -T2 -o $saved/state.zst.tmp\"" >/dev/null
	local deadline=$((SECONDS + 180))
	until monitor "info migrate" | grep -q "Migration status: completed"; do
		[ "$SECONDS" -lt "$deadline" ] || fail "save: the migration did not complete in 180 s" || return
		sleep 1
	done
	stop_qemu_keeping_overlay
	mv "$saved/state.zst.tmp" "$saved/state.zst"
}
stop_qemu_keeping_overlay() {
	mv "$run/overlay.qcow2" "$run/saved-overlay.qcow2"
	stop_qemu
	mv "$run/saved-overlay.qcow2" "$saved/disk.qcow2"
}
# reboot_guest reboots the guest as a power cut would (a new boot id, containers gone without
# a stop), after a sync, and reconnects: the smoke's step before `ctl system boot`. Not
# `systemctl reboot`: systemd knows nothing of the containers' processes (they are in ctl's
# cgroups, not in a unit), so its shutdown waits 90 s for them before it kills them.
reboot_guest() {
	local before t
	t=$(date +%s.%N)
	before=$(guest cat /proc/sys/kernel/random/boot_id)
	# In the background, a second on: ssh returns before the guest is gone, not 15 s later.
	guest 'sync; echo 1 >/proc/sys/kernel/sysrq; (sleep 1; echo b >/proc/sysrq-trigger) >/dev/null 2>&1 &'
	sleep 1.5
	ssh -o ControlPath="$run/ssh.sock" -O exit root@127.0.0.1 2>/dev/null || true
	local deadline=$((SECONDS + ${CTL_VM_BOOT_TIMEOUT:-300}))
	until [ "$(guest -o ConnectTimeout=5 cat /proc/sys/kernel/random/boot_id 2>/dev/null)" != "$before" ] &&
		guest -o ConnectTimeout=5 true 2>/dev/null; do
		if [ "$SECONDS" -ge "$deadline" ]; then
			tail -20 "$run/console.log"
			echo "no ssh after the reboot within ${CTL_VM_BOOT_TIMEOUT:-300} s"
			return 1
		fi
		sleep 1
	done
	connect || return
	echo "note: the reboot took $(since "$t") s"
}

source tests/vm/smoke.sh
printf '%s\n' "${names[@]}" >"$run/guests"

# lane_guest builds (or finds) guest NAME's image, boots or restores it, and smokes the pex.
lane_guest() {
	name=$1
	results=$run/results-$name
	: >"$results"
	local t build_time boot_time=- save_time=- restore_time smoke_time guest_start
	guest_start=$(date +%s.%N)
	t=$(date +%s.%N)
	image=$(bash tests/vm/build-image.sh "$name") || return
	build_time=$(since "$t")
	# A saved guest restores only into the same qemu with the same machine and devices.
	local key
	key=$( (qemu-system-x86_64 --version; echo "${machine[*]}"; declare -f start_qemu save_guest) | sha256sum)
	saved=$image/saved-${key:0:12}
	if [ ! -f "$saved/state.zst" ]; then
		t=$(date +%s.%N)
		start_qemu "$image/disk.raw" raw
		wait_ssh || return
		boot_time=$(since "$t")
		t=$(date +%s.%N)
		save_guest || return
		save_time=$(since "$t")
	fi
	t=$(date +%s.%N)
	start_qemu "$saved/disk.qcow2" qcow2 -incoming "exec:zstd -dcq $saved/state.zst"
	wait_ssh || return
	# The restored clock is the saved one.
	guest date -s "@$(date +%s)" >/dev/null
	restore_time=$(since "$t")

	until [ -s "$run/registry.port" ]; do
		if ! kill -0 "$registry_pid" 2>/dev/null; then
			cat "$run/registry.log" >&2
			fail "registry: it did not start; its log is above"
			return 1
		fi
		sleep 0.5
	done
	registry_port=$(cat "$run/registry.port")
	connect || return
	scp -q "${ssh_opts[@]/#-p/-P}" "${CTL_VM_PEX:-dist/ctl.pex}" root@127.0.0.1:/usr/local/bin/ctl
	scp -q "${ssh_opts[@]/#-p/-P}" tests/vm/guest.sh root@127.0.0.1:/root/guest.sh

	echo "lane.sh: $name: $(guest 'uname -r; python3 --version; runc --version | head -1' | paste -sd' ')"
	t=$(date +%s.%N)
	local status=0
	smoke || status=$?
	smoke_time=$(since "$t")
	stop_qemu
	echo "lane.sh: $name: image ${build_time} s, cold boot ${boot_time} s, save ${save_time} s," \
		"restore ${restore_time} s, smoke ${smoke_time} s, guest $(since "$guest_start") s"
	return "$status"
}

lane_status=0
for name in "${names[@]}"; do
	lane_guest "$name" || lane_status=1
	stop_qemu
done

# The table: a row per step (in the order the first guest ran them), a column per guest; a
# guest that stopped before the smoke ends has no line for the steps it never reached.
echo
python3 - "$run" <<'PY'
import sys
from pathlib import Path

run = Path(sys.argv[1])
guests = (run / "guests").read_text().split()
results = {}
steps: list[str] = []
for name in guests:
    path = run / f"results-{name}"
    lines = path.read_text().splitlines() if path.exists() else []
    for line in lines:
        step, _, result = line.partition("\t")
        results[name, step] = result
        if step not in steps:
            steps.append(step)
width = max([len(s) for s in steps] + [4])
print(f"| {'step':<{width}} | " + " | ".join(guests) + " |")
print(f"|{'-' * (width + 2)}|" + "|".join("-" * (len(g) + 2) for g in guests) + "|")
for step in steps:
    cells = " | ".join(f"{results.get((g, step), '-'):<{len(g)}}" for g in guests)
    print(f"| {step:<{width}} | {cells} |")
PY
echo "lane.sh: ${names[*]}: lane $(since "$lane_start") s"
exit "$lane_status"
