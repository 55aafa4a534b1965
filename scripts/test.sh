#!/usr/bin/env bash
# test.sh runs every check CI runs: ruff, ruff format, mypy, then the whole pytest suite with
# subprocess tests going through the built dist/ctl.pex. It installs what is missing first
# (scripts/setup.sh --deps-only) so that it also works on a fresh machine.
#
#   bash scripts/test.sh [--vm | --no-vm] [PYTEST ARGS...]
#
# After the suite it runs the VM lane (scripts/vm.sh) on the Debian 12 guest: the pex smoked
# on cgroup v2 under qemu, then the cgroup-sensitive integration tests in the guest
# (CTL_VM_PYTEST, on unless set to 0), as CI does (6 to 8 minutes on a fresh machine, which
# builds the guest; about 4 once the guest is cached). --vm runs it on every guest (Debian
# 12 and 13), --no-vm not at all.
#
# Tests marked slow (soaks, throughput) run only when asked for, with CTL_SOAK=1 or --soak
# (tests/conftest.py's option); a -m among the arguments replaces the default selection.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh --deps-only
export CTL_TEST_BINARY=$PWD/dist/ctl.pex

# Every check runs even after one fails, so one CI run reports them all; pytest goes last
# so that its summary is the closing line.
failed=()
check() {
	echo "test.sh: $*"
	"$@" || failed+=("$*")
}
check bash scripts/build_pex.sh
check .venv/bin/ruff check ctl tests
check .venv/bin/ruff format --check ctl tests
check .venv/bin/mypy

vm_guests=(debian12)
pytest_args=()
for arg in "$@"; do
	case "$arg" in
	--vm) vm_guests=(all) ;;
	--no-vm) vm_guests=() ;;
	*) pytest_args+=("$arg") ;;
	esac
done

selection=(-m "not slow")
if [ "${CTL_SOAK:-}" = 1 ]; then
	selection=()
fi
for arg in "${pytest_args[@]}"; do
	if [ "$arg" = --soak ]; then
		selection=()
	fi
done

status=0
# The last -m wins: the caller's, if any, comes after the default.
.venv/bin/python -m pytest -p no:cacheprovider "${selection[@]}" "${pytest_args[@]}" </dev/null || status=$?
if [ "$status" = 5 ]; then
	echo "test.sh: FAIL: pytest ran no tests" >&2
	exit 1
fi
if [ "${#vm_guests[@]}" != 0 ]; then
	CTL_VM_PYTEST=${CTL_VM_PYTEST:-1} check bash scripts/vm.sh "${vm_guests[@]}"
fi
if [ "${#failed[@]}" != 0 ]; then
	printf 'test.sh: FAIL: %s\n' "${failed[@]}" >&2
	exit 1
fi
exit "$status"
