#!/usr/bin/env bash
# build_wheels.sh fills the wheelhouse that scripts/build_pex.sh builds dist/ctl.pex from: the
# locked pure-Python wheels, and python-prctl (sdist only on PyPI) compiled once for each
# CPython the pex supports. Everything is kept under /var/cache/ctl-build, so only the first
# run on a machine takes long (about 2 minutes, most of it the Debian 13 chroot).
#
#   bash scripts/build_wheels.sh                 fill the wheelhouse (a no-op when it is full)
#   bash scripts/build_wheels.sh --python 3.12   print the python3.12 it compiles with
#
# Where each CPython comes from (no python.org or GitHub here, only PyPI, npm and Debian):
#   3.11  Debian 12's /usr/bin/python3.11 (python3-dev), through the dev venv's pip;
#   3.12  Debian has none in any suite, and npm's portable-python packages download their
#         builds from GitHub when installed; this machine kind's pyenv build (3.12.x, with its
#         headers) is the one there is: CTL_PYTHON312 names another;
#   3.13  Debian 13's python3.13 and python3.13-dev in a debootstrap chroot, the interpreter
#         Debian 13 servers run (tests/integration/test_pex.py runs the pex in it too).
# Needs root, debootstrap, gcc and libcap-dev (scripts/setup.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_CACHE=${CTL_BUILD_CACHE:-/var/cache/ctl-build}
WHEELHOUSE=$BUILD_CACHE/wheelhouse
SDISTS=$BUILD_CACHE/sdists
TRIXIE=$BUILD_CACHE/trixie
MIRROR=http://deb.debian.org/debian
TRIXIE_PACKAGES=python3.13-dev,python3-pip,python3-setuptools,gcc,libc6-dev,libcap-dev
LOCK=pex.lock.json
PYTHON=.venv/bin/python
# A constant, so that a wheel's bytes do not depend on when it was built; -g0 keeps the build
# directory (random) out of the extension's debug info.
export SOURCE_DATE_EPOCH=315532800 CFLAGS=-g0

die() {
	echo "build_wheels.sh: $*" >&2
	exit 1
}

# has_headers PYTHON succeeds if PYTHON runs and has the Python.h extensions compile against.
has_headers() {
	"$1" -c 'import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
		2>/dev/null
}

python312() {
	local candidate
	for candidate in ${CTL_PYTHON312:-} "${PYENV_ROOT:-/root/.pyenv}"/versions/3.12*/bin/python3.12 \
		"$(command -v python3.12 || :)"; do
		[ -x "$candidate" ] && has_headers "$candidate" && {
			echo "$candidate"
			return
		}
	done
	die "no CPython 3.12 with its headers: set CTL_PYTHON312 to one (see the comment at the top)"
}

ensure_trixie() {
	[ -e "$TRIXIE/usr/include/python3.13/Python.h" ] && [ -e "$TRIXIE/usr/include/sys/capability.h" ] &&
		return
	command -v debootstrap >/dev/null || die "no debootstrap: run 'bash scripts/setup.sh --deps-only'"
	echo "build_wheels.sh: debootstrap Debian 13 (trixie) with python3.13 into $TRIXIE" >&2
	rm -rf "$TRIXIE.tmp"
	debootstrap --variant=minbase --include="$TRIXIE_PACKAGES" trixie "$TRIXIE.tmp" "$MIRROR" \
		>"$BUILD_CACHE/debootstrap.log" 2>&1 ||
		die "debootstrap failed; see $BUILD_CACHE/debootstrap.log"
	rm -rf "$TRIXIE"
	mv "$TRIXIE.tmp" "$TRIXIE"
}

# build_wheel VERSION SDIST OUT compiles SDIST into a wheel in OUT for CPython VERSION.
build_wheel() {
	local version=$1 sdist=$2 out=$3 python setuptools
	case $version in
	3.13)
		ensure_trixie
		rm -rf "$TRIXIE/tmp/wheel"
		mkdir -p "$TRIXIE/tmp/wheel/out"
		cp "$sdist" "$TRIXIE/tmp/wheel/"
		# Offline, with Debian's setuptools: the chroot has no resolver configured.
		chroot "$TRIXIE" env -i PATH=/usr/bin:/bin SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH" \
			CFLAGS="$CFLAGS" python3.13 -m pip wheel -q --disable-pip-version-check --no-index \
			--no-deps --use-pep517 --no-build-isolation -w /tmp/wheel/out \
			"/tmp/wheel/$(basename "$sdist")"
		mv "$TRIXIE"/tmp/wheel/out/*.whl "$out/"
		rm -rf "$TRIXIE/tmp/wheel"
		;;
	3.11 | 3.12)
		python=$PYTHON
		[ "$version" = 3.12 ] && python=$(python312)
		# The same setuptools that builds ctl itself (pyproject.toml's build-system).
		setuptools=$(grep -o 'setuptools==[0-9.]*' pyproject.toml)
		echo "$setuptools" >"$out/constraints.txt"
		PIP_CONSTRAINT=$out/constraints.txt "$python" -m pip wheel -q --disable-pip-version-check \
			--no-input --no-deps --use-pep517 -w "$out" "$sdist"
		rm "$out/constraints.txt"
		;;
	*) die "no recipe for CPython $version" ;;
	esac
}

fill() {
	local tmp line name norm version sdist python_version nodot oldest
	reqs=$(mktemp -d)
	trap 'rm -rf "$reqs"' EXIT
	oldest=$("$PYTHON" scripts/pex_build.py pythons | tr ' ' '\n' | tail -1)
	"$PYTHON" scripts/pex_build.py requirements "$LOCK" "$reqs"
	mkdir -p "$WHEELHOUSE" "$SDISTS"
	if ! "$PYTHON" scripts/pex_build.py verify "$LOCK" "$WHEELHOUSE" 2>/dev/null; then
		echo "build_wheels.sh: downloading the locked pure wheels into $WHEELHOUSE" >&2
		"$PYTHON" -m pip download -q --disable-pip-version-check --no-input --no-deps \
			--only-binary=:all: --platform any --implementation py --python-version "$oldest" \
			--require-hashes -r "$reqs/pure.txt" -d "$WHEELHOUSE"
		"$PYTHON" scripts/pex_build.py verify "$LOCK" "$WHEELHOUSE"
	fi
	while read -r line; do
		name=${line%%==*}
		version=${line#*==}
		version=${version%% *}
		norm=$(echo "$name" | tr -- '-.' '__')
		sdist=""
		for python_version in $("$PYTHON" scripts/pex_build.py pythons); do
			nodot=${python_version/./}
			compgen -G "$WHEELHOUSE/$norm-$version-cp$nodot-cp$nodot-linux_*.whl" >/dev/null && continue
			if [ -z "$sdist" ]; then
				echo "$line" >"$reqs/one.txt"
				"$PYTHON" -m pip download -q --disable-pip-version-check --no-input --no-deps \
					--no-binary=:all: --require-hashes -r "$reqs/one.txt" -d "$SDISTS"
				sdist=$(compgen -G "$SDISTS/$name-$version.*" || compgen -G "$SDISTS/$norm-$version.*") ||
					die "pip downloaded no sdist of $name $version into $SDISTS"
			fi
			echo "build_wheels.sh: compiling $name $version for CPython $python_version" >&2
			tmp=$(mktemp -d "$WHEELHOUSE/.build.XXXXXX")
			build_wheel "$python_version" "$sdist" "$tmp"
			mv "$tmp"/*.whl "$WHEELHOUSE/"
			rmdir "$tmp"
		done
	done <"$reqs/sdists.txt"
}

case ${1:-} in
"") fill ;;
--python)
	case ${2:-} in
	3.12) python312 ;;
	*) die "--python takes 3.12 (3.11 is /usr/bin/python3.11, 3.13 is in $TRIXIE)" ;;
	esac
	;;
*) die "unknown argument '$1' (usage: build_wheels.sh [--python 3.12])" ;;
esac
