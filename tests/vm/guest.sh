#!/usr/bin/env bash
# guest.sh holds the smoke's checks that run inside the guest (lane.sh copies it there): one
# check per call, which prints what it found wrong and exits 1, or prints notes and exits 0.
#
#   bash guest.sh CHECK [ARGS...]
#
# Containers are ctl's default namespace's, so their cgroups are /sys/fs/cgroup/ctl/default/<id>
# (cgroup v2) and their supervisors' /sys/fs/cgroup/ctl/sup-<id>.
set -euo pipefail

cgroup_root=/sys/fs/cgroup
ctl_cgroup=$cgroup_root/ctl

# want compares what a check found with what it wants.
want() {
	local what=$1 wanted=$2 got=$3
	if [ "$got" != "$wanted" ]; then
		echo "$what: got '$got', want '$wanted'"
		return 1
	fi
}
id_of() { ctl inspect -f '{{.Id}}' "$1"; }
status_of() { ctl inspect -f '{{.State.Status}}' "$1"; }
# wait_for waits up to SECONDS for COMMAND to succeed.
wait_for() {
	local seconds=$1
	shift
	local deadline=$((SECONDS + seconds))
	until "$@" >/dev/null 2>&1; do
		if [ "$SECONDS" -ge "$deadline" ]; then
			echo "not within $seconds s: $*"
			return 1
		fi
		sleep 0.2
	done
}
is_running() { [ "$(status_of "$1")" = running ]; }

# limits NAME: --memory 64m --cpus 1.5 --pids-limit 50, in the cgroup files of DIR (the
# container's cgroup seen from the host, or /sys/fs/cgroup inside the container).
limits_in() {
	local read=$1
	want memory.max 67108864 "$($read memory.max)"
	want cpu.max "150000 100000" "$($read cpu.max)"
	want pids.max 50 "$($read pids.max)"
}
host_read() { cat "$ctl_cgroup/default/$container_id/$1"; }
inside_read() { ctl exec "$container" cat "/sys/fs/cgroup/$1"; }

check_limits_host() {
	container=$1 container_id=$(id_of "$1")
	limits_in host_read
}

check_limits_inside() {
	container=$1
	# busybox's stat names no cgroup2 file system: its magic number, CGROUP2_SUPER_MAGIC.
	want "cgroup filesystem inside" 63677270 "$(ctl exec "$container" stat -fc %t /sys/fs/cgroup)"
	limits_in inside_read
}

# supervisor NAME: the supervisor is alone in its own cgroup, and the inner nodes ctl made
# (ctl/, ctl/default/) hold no process, as cgroup v2 requires of a node with controllers on.
check_supervisor() {
	local id procs
	id=$(id_of "$1")
	procs=$(cat "$ctl_cgroup/sup-$id/cgroup.procs")
	want "processes in ctl/sup-$id" 1 "$(echo "$procs" | wc -w)"
	want "processes in ctl/" "" "$(cat "$ctl_cgroup/cgroup.procs")"
	want "processes in ctl/default/" "" "$(cat "$ctl_cgroup/default/cgroup.procs")"
	want "the supervisor's cgroup" "0::/ctl/sup-$id" "$(cat "/proc/$procs/cgroup")"
}

# stats NAME: `stats` reads the cgroup v2 files: the memory limit, and the one process.
check_stats() {
	want "stats: memory limit and pids" "/ 64MiB|1" \
		"$(ctl stats --no-stream --format '{{.MemUsage}}|{{.PIDs}}' "$1" | sed 's/^[^/]*//')"
}

# update NAME: `update` changes the limits of the running container in its cgroup, and
# `stats` sees them; then it puts them back, for the checks after it.
check_update() {
	container=$1 container_id=$(id_of "$1")
	ctl update --memory 128m --memory-swap 256m --pids-limit 60 "$container" >/dev/null
	want "memory.max after update" 134217728 "$(host_read memory.max)"
	want "pids.max after update" 60 "$(host_read pids.max)"
	want "stats after update" "/ 128MiB" \
		"$(ctl stats --no-stream --format '{{.MemUsage}}' "$container" | sed 's/^[^/]*//')"
	ctl update --memory 64m --memory-swap 128m --pids-limit 50 "$container" >/dev/null
	limits_in host_read
}

check_frozen() {
	local id
	id=$(id_of "$1")
	want "frozen in cgroup.events" "frozen $2" "$(grep '^frozen ' "$ctl_cgroup/default/$id/cgroup.events")"
}

# oom: a container limited to 32 MiB that allocates without end is killed by the kernel. Not
# 8 MiB: on Debian 13 (kernel 6.12, runc 1.1.15) runc's own init is OOM-killed under 8 MiB
# before the command starts (ctl then exits 125 with runc's "container init was OOM-killed").
check_oom() {
	local code=0
	ctl run --name oom --memory 32m "$1" sh -c 'x=0123456789; while :; do x=$x$x; done' || code=$?
	want "exit code" 137 "$code"
	want .State.OOMKilled true "$(ctl inspect -f '{{.State.OOMKilled}}' oom)"
	want .State.ExitCode 137 "$(ctl inspect -f '{{.State.ExitCode}}' oom)"
}

# published IMAGE PORT: busybox httpd in a container, reached from the guest through the
# port CNI's portmap publishes.
check_published() {
	ctl run -d --name web -p "$2:80" "$1" \
		sh -c 'mkdir /www && echo smoke-web >/www/index.html && exec httpd -f -p 80 -h /www' >/dev/null
	local url=http://127.0.0.1:$2/
	fetch() { python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode().strip())' "$url"; }
	wait_for 30 fetch
	want "GET $url" smoke-web "$(fetch)"
	# 3 (NET_ADDR_SET): something, udev here, changed the MAC the veth was made with (1,
	# NET_ADDR_RANDOM), after the bridge plugin recorded it; system check must not mind.
	local veth
	for veth in /sys/class/net/veth*; do
		echo "note: ${veth##*/}: addr_assign_type $(cat "$veth/addr_assign_type")"
	done
}

# escape IMAGE: a systemd service runs `ctl run -d`; killing every process of the service's
# cgroup (systemctl kill, as `systemctl stop` would) leaves the container running.
check_escape() {
	local unit=ctl-smoke-caller
	systemd-run --quiet --unit "$unit" sh -c "ctl run -d --name esc $1 sleep 600; exec sleep 600"
	wait_for 60 is_running esc
	systemctl kill --signal=KILL "$unit.service"
	wait_for 10 sh -c "! systemctl is-active --quiet $unit.service"
	sleep 1
	want "esc after its caller's cgroup was killed" running "$(status_of esc)"
	systemctl reset-failed "$unit.service" 2>/dev/null || true
}

# cgroups_clean: after every container is removed, no cgroup of a container or a
# supervisor is left under ctl/.
check_cgroups_clean() {
	local left
	left=$(find "$ctl_cgroup" -mindepth 1 -type d ! -path "$ctl_cgroup/default" 2>/dev/null || true)
	want "cgroups left under $ctl_cgroup" "" "$left"
}

# runtimes IMAGE: `run --rm` with crun against runc, the median of 5 runs each.
check_runtimes() {
	if ! ctl run --help | grep -q -- --runtime; then
		echo "skip: this ctl has no --runtime flag"
		return 2
	fi
	local runtime times
	for runtime in runc crun; do
		want "run --rm --runtime $runtime" hi "$(ctl run --rm --runtime "$runtime" "$1" echo hi)"
		times=()
		for _ in 1 2 3 4 5; do
			local start=$EPOCHREALTIME
			ctl run --rm --runtime "$runtime" "$1" true
			times+=("$(python3 -c "print(f'{$EPOCHREALTIME - $start:.3f}')")")
		done
		echo "note: run --rm --runtime $runtime: median $(printf '%s\n' "${times[@]}" | sort -n | sed -n 3p) s of ${times[*]}"
	done
}

"check_$1" "${@:2}"
