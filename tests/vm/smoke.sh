# smoke.sh is sourced by lane.sh: smoke runs dist/ctl.pex (installed as ctl) through the steps
# below in the guest that lane.sh's `guest` function reaches, with tests/vm/guest.sh (copied to
# /root/guest.sh) for the checks made inside the guest. It prints one line per step: PASS,
# FAIL or SKIP, with its time, the output's end under a FAIL and the check's notes under a
# PASS; it appends "STEP<tab>RESULT" to the file $results. It returns 1 if a step failed.
#
# A pex that does not start fails its first step; every later step is then a FAIL without
# being run, so a guest whose Python the pex does not support costs seconds, not timeouts.

image_ref=127.0.0.1:5000/test/busybox:latest
published_port=8080

# step runs "$@" on the host (most steps are `guest ...`) and reports it under LABEL. A
# command that exits 2 and says "skip: WHY" is a SKIP.
step() {
	local label=$1 t output code=0 result
	shift
	if [ "$pex_starts" = 0 ]; then
		printf '%s\t%s\n' "$label" FAIL >>"$results"
		echo "FAIL $label (not run: the pex does not start)"
		smoke_failed=1
		return
	fi
	t=$(date +%s.%N)
	output=$("$@" 2>&1) || code=$?
	if [ "$code" = 0 ]; then
		result=PASS
		echo "PASS $label ($(since "$t") s)"
		printf '%s\n' "$output" | sed -n 's/^note: /    /p'
	elif [ "$code" = 2 ] && grep -q '^skip: ' <<<"$output"; then
		result=SKIP
		echo "SKIP $label: $(sed -n 's/^skip: //p' <<<"$output")"
	else
		result=FAIL
		echo "FAIL $label ($(since "$t") s)"
		printf '%s\n' "$output" | tail -10 | sed 's/^/    /'
		smoke_failed=1
	fi
	printf '%s\t%s\n' "$label" "$result" >>"$results"
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
check() { guest bash /root/guest.sh "$@"; }

smoke() {
	smoke_failed=0
	pex_starts=1
	step "guest: cgroup v2" expect cgroup2fs stat -fc %T /sys/fs/cgroup
	step "guest: AppArmor on" expect Y cat /sys/module/apparmor/parameters/enabled
	step "ctl --version" guest ctl --version
	if ! grep -q $'^ctl --version\tPASS$' "$results"; then
		pex_starts=0
	fi
	step "pull" guest ctl pull -q "$image_ref"
	step "run --rm" expect hello ctl run --rm "$image_ref" echo hello
	step "run -d --memory --cpus --pids-limit" guest ctl run -d --name lim --memory 64m \
		--cpus 1.5 --pids-limit 50 "$image_ref" sleep 600
	step "exec" expect inside ctl exec lim echo inside
	step "limits, host side" check limits_host lim
	step "limits, inside" check limits_inside lim
	step "supervisor alone in its cgroup" check supervisor lim
	step "stats" check stats lim
	step "update" check update lim
	step "pause" guest ctl pause lim
	step "paused: frozen" check frozen lim 1
	step "resume" guest ctl resume lim
	step "resumed: thawed" check frozen lim 0
	step "stop" guest ctl stop -t 2 lim
	step "OOM: exit 137, OOMKilled" check oom "$image_ref"
	step "-p through CNI" check published "$image_ref" "$published_port"
	step "system check" guest ctl system check
	step "caller's cgroup killed" check escape "$image_ref"
	step "run --restart always" guest ctl run -d --name keep --restart always "$image_ref" sleep 600
	step "reboot" reboot_guest
	step "system boot" expect default/keep ctl system boot
	step "restarted after boot" expect running ctl inspect -f '{{.State.Status}}' keep
	step "system check after boot" guest ctl system check
	step "rm" guest ctl rm -f lim oom web esc keep
	step "no container left" expect "" ctl ps -aq
	step "no cgroup left" check cgroups_clean
	step "--runtime crun vs runc" check runtimes "$image_ref"
	if [ "${CTL_VM_PYTEST:-}" = 1 ]; then
		step "pytest: cgroup-sensitive tests" guest_pytest
	fi
	return "$smoke_failed"
}

# The integration tests that depend on cgroups: limits, pause, OOM, a supervisor outliving
# its starter's session or being killed, a container found by its cgroup.
guest_pytest_tests=(
	tests/integration/test_containers.py::test_memory_limit_is_in_the_cgroup
	tests/integration/test_runtime.py::test_pause_freezes_the_task
	tests/integration/test_runtime.py::test_oom_kill_is_recorded
	tests/integration/test_runtime.py::test_killing_the_spawners_session_leaves_the_task
	tests/integration/test_runtime.py::test_supervisor_killed_with_sigkill
	tests/integration/test_runtime.py::test_a_new_task_waits_for_the_last_supervisor
	tests/integration/test_faults_tasks.py::test_stop_after_a_lost_supervisor_still_stops
	tests/integration/test_faults_tasks.py::test_rm_f_kills_a_container_whose_runc_state_was_deleted
)

# guest_pytest runs guest_pytest_tests in the guest from this source tree, with the host
# venv's packages (the same Python 3.11 as Debian 12's, so its compiled python-prctl
# loads), the host's docker-registry and its static busybox, which the tests' images use.
guest_pytest() {
	local site
	site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
	if [ "$(guest "python3 -c 'import sys; print(sys.version_info[:2])'")" != "(3, 11)" ]; then
		echo "skip: the host's venv is for Python 3.11"
		return 2
	fi
	tar -C "$site" -c --exclude='mypy*' --exclude='*mypyc*' --exclude=pex --exclude=pip \
		--exclude=setuptools --exclude=ruff --exclude=__pycache__ . |
		guest 'rm -rf /root/site && mkdir /root/site && tar -C /root/site -x'
	tar -c --exclude=__pycache__ ctl tests pyproject.toml |
		guest 'rm -rf /root/src && mkdir /root/src && tar -C /root/src -x'
	tar -C / -c usr/bin/docker-registry bin/busybox | guest 'tar -C / -x'
	local output code=0
	output=$(guest "cd /root/src && PYTHONPATH=/root/site timeout 1200 python3 -m pytest" \
		"-p no:cacheprovider -q ${guest_pytest_tests[*]}" 2>&1) || code=$?
	printf '%s\n' "$output" | tail -15
	echo "note: $(tail -1 <<<"$output")"
	return "$code"
}
