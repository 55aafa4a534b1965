#!/usr/bin/env bash
# vm.sh runs the VM lane (tests/vm/lane.sh): dist/ctl.pex smoked in Debian guests with
# cgroup v2, under qemu, one guest at a time. It installs what the host lacks first (qemu,
# debootstrap, ssh, e2fsprogs), and builds the pex if there is none.
#
#   bash scripts/vm.sh [NAME...]      (debian12, the default; debian13; all: both)
#
# Each guest image is built once and cached under /var/cache/ctl-vm/.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for need in qemu-system-x86_64:qemu-system-x86 qemu-img:qemu-utils debootstrap:debootstrap \
	ssh:openssh-client mkfs.ext4:e2fsprogs zstd:zstd; do
	command -v "${need%%:*}" >/dev/null || missing+=("${need#*:}")
done
if [ "${#missing[@]}" != 0 ]; then
	echo "vm.sh: installing ${missing[*]}"
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
if [ ! -f dist/ctl.pex ]; then
	bash scripts/build_pex.sh
fi
names=("$@")
if [ "${names[*]}" = all ]; then
	names=(debian12 debian13)
fi
exec bash tests/vm/lane.sh "${names[@]}"
