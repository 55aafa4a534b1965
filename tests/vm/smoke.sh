# smoke.sh is sourced by lane.sh: smoke runs dist/ctl.pex (installed as ctl) through the steps
# below in the guest that lane.sh's `guest` function reaches, and prints one line per step:
# PASS or FAIL, with its time, and the output's end under a FAIL. It returns 1 if one failed.

image_ref=127.0.0.1:5000/test/busybox:latest

# step runs "$@" on the host (most steps are `guest ...`) and reports it under LABEL.
step() {
	local label=$1 t output
	shift
	t=$(date +%s.%N)
	if output=$("$@" 2>&1); then
		echo "PASS $label ($(since "$t") s)"
	else
		echo "FAIL $label ($(since "$t") s)"
		printf '%s\n' "$output" | tail -5 | sed 's/^/    /'
		smoke_failed=1
	fi
}

# expect runs a guest command and checks that its output is exactly WANT.
expect() {
	local want=$1 got
	shift
	got=$(guest "$@") || return
	if [ "$got" != "$want" ]; then
		echo "got '$got', want '$want'"
		return 1
	fi
}

smoke() {
	smoke_failed=0
	step "ctl --version" guest ctl --version
	step "cgroup v2" expect cgroup2fs stat -fc %T /sys/fs/cgroup
	step "pull" guest ctl pull "$image_ref"
	step "run --rm" expect hello ctl run --rm "$image_ref" echo hello
	step "run -d --memory 64m" guest ctl run -d --name smoke --memory 64m "$image_ref" sleep 600
	step "exec" expect inside ctl exec smoke echo inside
	# The container's cgroup, seen from the guest that runs it: ctl puts it at
	# /ctl/<namespace>/<id>, and smoke is the only container.
	step "memory.max on the host side" expect 67108864 cat '/sys/fs/cgroup/ctl/default/*/memory.max'
	step "system check" guest ctl system check
	step "stop" guest ctl stop smoke
	step "rm" guest ctl rm smoke
	step "no container left" expect "" ctl ps -aq
	return "$smoke_failed"
}
