#!/usr/bin/env bash
# build-image.sh builds a Debian guest image for the VM lane from Debian packages only, and
# caches it: the cache directory's name ends in a hash of this recipe, so a second call with
# the same recipe reuses it, and a changed recipe builds a new one next to the old.
#
#   bash tests/vm/build-image.sh [NAME]      (NAME: debian12, the default, or debian13)
#
# It prints the image directory, which holds vmlinuz, initrd.img, disk.raw (ext4, made with
# mkfs.ext4 -d: no loop device, no mount) and id_ed25519, the key root logs in with.
set -euo pipefail

name=${1:-debian12}
case "$name" in
debian12) suite=bookworm ;;
debian13) suite=trixie ;;
*)
	echo "build-image.sh: unknown guest $name" >&2
	exit 2
	;;
esac
mirror=${CTL_VM_MIRROR:-http://deb.debian.org/debian}
# Everything that decides the image's content is hashed: this script, the guest and the mirror.
key=$( (cat "$0"; echo "$name $suite $mirror") | sha256sum | cut -c1-12)
image=/var/cache/ctl-vm/$name-$key
if [ -f "$image/done" ]; then
	echo "$image"
	exit 0
fi

work=$(mktemp -d /var/cache/ctl-vm/.build-XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/root
# runc, the CNI plugins and iptables are what ctl needs on a server, crun what --runtime crun
# runs; apparmor is what a server's kernel package would bring through its Recommends (both
# kernels enable AppArmor by default, with no kernel parameter).
packages=systemd-sysv,udev,dbus,iproute2,openssh-server,ca-certificates,procps,kmod
packages+=,initramfs-tools,zstd,python3,runc,crun,containernetworking-plugins,iptables,apparmor
echo "build-image.sh: debootstrap $suite into $root" >&2
debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >&2

# A small initramfs: the guest boots from virtio, so it needs only these modules.
cat >"$root/etc/initramfs-tools/conf.d/ctl-vm" <<'CONF'
MODULES=list
COMPRESS=zstd
CONF
printf '%s\n' virtio_pci virtio_blk virtio_net ext4 crc32c >>"$root/etc/initramfs-tools/modules"
chroot "$root" env DEBIAN_FRONTEND=noninteractive \
	apt-get install -y --no-install-recommends linux-image-amd64 >&2

echo "ctl-vm" >"$root/etc/hostname"
echo "/dev/vda / ext4 defaults 0 1" >"$root/etc/fstab"
# qemu's user network: the guest is 10.0.2.15, and with restrict=on nothing answers beyond it.
# systemd-networkd, not ifupdown: ifupdown's boot waits for udev to settle (40 s of a 100 s
# boot under TCG), and the smoke reboots the guest.
cat >"$root/etc/systemd/network/10-eth0.network" <<'CONF'
[Match]
Name=eth0

[Network]
Address=10.0.2.15/24
CONF
chroot "$root" systemctl enable systemd-networkd >&2
mkdir -p "$root/root/.ssh"
ssh-keygen -q -t ed25519 -N "" -C ctl-vm -f "$work/id_ed25519"
install -m 0600 "$work/id_ed25519.pub" "$root/root/.ssh/authorized_keys"
echo "UseDNS no" >"$root/etc/ssh/sshd_config.d/ctl-vm.conf"
chroot "$root" apt-get clean

kernel=$(ls "$root"/boot/vmlinuz-* | sort -V | tail -1)
cp "$kernel" "$work/vmlinuz"
cp "$root/boot/initrd.img-${kernel##*/vmlinuz-}" "$work/initrd.img"
mkfs.ext4 -q -L ctl-vm -d "$root" "$work/disk.raw" 4G >&2
rm -rf "$root"
touch "$work/done"
mv "$work" "$image"
trap - EXIT
echo "$image"
