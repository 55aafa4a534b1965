#!/usr/bin/env bash
# setup.sh makes a fresh Debian 12 machine (as root) ready for ctl: system packages, podman
# configuration, the dev venv .venv, dist/ctl.pex, and then the main job end to end
# (scripts/demo.sh). Running it again is quick: each step skips what is already done.
#
#   bash scripts/setup.sh              everything, ending in PASS
#   bash scripts/setup.sh --deps-only  packages, podman configuration and .venv only
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
	runc docker-registry busybox-static containernetworking-plugins libcap-dev skopeo
	containerd podman catatonit crun python3-venv python3-dev gcc openssl zstd iptables iproute2 hyperfine curl
	apache2-utils debootstrap
	aardvark-dns
)
CONTAINERS_CONF=/etc/containers/containers.conf
VENV=.venv
REQUIREMENTS=requirements/dev.txt

say() { echo "setup.sh: $*"; }
die() {
	echo "setup.sh: $*" >&2
	exit 1
}

deps_only=0
for arg in "$@"; do
	case $arg in
	--deps-only) deps_only=1 ;;
	*) die "unknown argument '$arg' (usage: setup.sh [--deps-only])" ;;
	esac
done
[ "$(id -u)" = 0 ] || die "run as root: ctl manages containers, mounts and cgroups"

install_packages() {
	local missing=() pkg
	for pkg in "${APT_PACKAGES[@]}"; do
		dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null | grep -q '^ii' || missing+=("$pkg")
	done
	if [ "${#missing[@]}" = 0 ]; then
		say "system packages present"
		return
	fi
	say "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q </dev/null
	apt-get install -y -q "${missing[@]}" </dev/null
}

# conf_ensure adds LINE to [SECTION] of FILE unless KEY is already set there by someone.
conf_ensure() {
	local file=$1 section=$2 key=$3 line=$4 header
	grep -Eq "^[[:space:]]*${key}[[:space:]]*=" "$file" && return 0
	header="^\\[$section\\][[:space:]]*(#.*)?$"
	if grep -Eq "$header" "$file"; then
		awk -v header="$header" -v line="$line" \
			'{ print } !done && $0 ~ header { print line; done = 1 }' "$file" >"$file.tmp"
	else
		{
			cat "$file"
			[ -s "$file" ] && echo
			printf '[%s]\n%s\n' "$section" "$line"
		} >"$file.tmp"
	fi
	mv "$file.tmp" "$file"
	say "$file: set $key"
}

configure_podman() {
	mkdir -p "$(dirname "$CONTAINERS_CONF")"
	[ -e "$CONTAINERS_CONF" ] || : >"$CONTAINERS_CONF"
	# podman asks for nofile=1048576 by default, above the hard limit of machines like this one
	# (20000), and its containers then fail to start.
	conf_ensure "$CONTAINERS_CONF" containers default_ulimits \
		'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]'
	# PID 1 is not systemd on such machines; the cgroupfs manager does not need it.
	conf_ensure "$CONTAINERS_CONF" engine cgroup_manager 'cgroup_manager = "cgroupfs"'
	# podman prefers crun where it is installed (ctl's --runtime test needs it), and crun
	# refuses hybrid cgroup hosts such as this one.
	conf_ensure "$CONTAINERS_CONF" engine runtime 'runtime = "runc"'
}

create_venv() {
	local want stamp="$VENV/.requirements.sha256"
	if ! grep -qx 'home = /usr/bin' "$VENV/pyvenv.cfg" 2>/dev/null; then
		# Debian 12's python3.11, as on the servers: the pex's cp311 python-prctl is built with it.
		rm -rf "$VENV"
		/usr/bin/python3 -m venv "$VENV"
	fi
	want=$(sha256sum <"$REQUIREMENTS")
	if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
		say "$VENV is up to date"
		return
	fi
	say "installing $REQUIREMENTS into $VENV"
	"$VENV/bin/pip" install -q --disable-pip-version-check --no-input --require-hashes \
		-r "$REQUIREMENTS" </dev/null
	echo "$want" >"$stamp.tmp"
	mv "$stamp.tmp" "$stamp"
}

install_packages
configure_podman
create_venv
[ "$deps_only" = 1 ] && exit 0

bash scripts/build_pex.sh
bash scripts/demo.sh
