#!/usr/bin/env bash
# demo.sh runs ctl's main job end to end against a real registry, with dist/ctl.pex:
# a private docker-registry on loopback, a busybox image that podman builds and pushes
# there, then ctl pull, images, image inspect, save (checked by skopeo) and load.
# Everything lives in a temporary directory that is removed at the end; prints PASS.
#
#   bash scripts/demo.sh        (after scripts/setup.sh has built dist/ctl.pex)
set -euo pipefail
cd "$(dirname "$0")/.."

CTL_PEX=$PWD/dist/ctl.pex
tmp=$(mktemp -d)
registry_pid=

cleanup() {
	if [ -n "$registry_pid" ]; then
		kill "$registry_pid" 2>/dev/null || true
		wait "$registry_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

step() { echo "demo.sh: $*"; }
die() {
	echo "demo.sh: FAIL: $*" >&2
	exit 1
}
ctl() {
	echo "+ ctl $*" >&2
	"$CTL_PEX" --root "$tmp/ctl" "$@"
}

[ -x "$CTL_PEX" ] || die "no $CTL_PEX: run 'bash scripts/build_pex.sh' first"

# A free loopback port: bind port 0 and let the kernel pick.
port=$(/usr/bin/python3 -c \
	'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
registry=127.0.0.1:$port
ref=$registry/demo/busybox:latest

cat >"$tmp/registry.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $tmp/registry
http:
  addr: $registry
EOF
step "starting docker-registry on $registry"
docker-registry serve "$tmp/registry.yml" >"$tmp/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 100); do
	curl -sf "http://$registry/v2/" >/dev/null && break
	kill -0 "$registry_pid" 2>/dev/null || break
	sleep 0.1
done
curl -sf "http://$registry/v2/" >/dev/null ||
	die "docker-registry did not answer on $registry:"$'\n'"$(tail -n 20 "$tmp/registry.log")"

# podman, not our own test helpers, makes and pushes the image: the demo then also shows
# that ctl reads what another tool wrote. Its storage is private to this run.
step "building and pushing $ref with podman"
mkdir -p "$tmp/rootfs/bin"
cp /bin/busybox "$tmp/rootfs/bin/busybox"
for applet in sh ls cat echo true; do
	ln -s busybox "$tmp/rootfs/bin/$applet"
done
tar -C "$tmp/rootfs" -cf "$tmp/rootfs.tar" .
podman=(podman --root "$tmp/podman/root" --runroot "$tmp/podman/run" --storage-driver vfs
	--cgroup-manager cgroupfs --events-backend file)
"${podman[@]}" import --quiet --change 'CMD ["/bin/sh"]' "$tmp/rootfs.tar" demo/busybox:latest \
	>/dev/null </dev/null
"${podman[@]}" push --quiet --tls-verify=false --format oci demo/busybox:latest "$ref" </dev/null

# SPEC section 6: a 127.0.0.1 registry is tried over plain HTTP without --insecure.
ctl pull "$registry/demo/busybox"
ctl images | tee "$tmp/images.txt"
grep -q "demo/busybox" "$tmp/images.txt" || die "ctl images does not list demo/busybox"
ctl image inspect "$ref" >"$tmp/inspect.json"
/usr/bin/python3 -c 'import json, sys; assert len(json.load(open(sys.argv[1]))) == 1' \
	"$tmp/inspect.json" 2>/dev/null ||
	die "ctl image inspect did not print a JSON array of one image: $(head -c 300 "$tmp/inspect.json")"
echo "  (inspect: $(stat -c %s "$tmp/inspect.json") bytes of JSON)"
ctl save -o "$tmp/busybox.tar" "$ref"
step "skopeo reads the saved archive"
skopeo inspect --raw "oci-archive:$tmp/busybox.tar" >/dev/null || die "skopeo cannot read ctl save"
ctl rmi "$ref"
ctl load -i "$tmp/busybox.tar"
ctl images | tee "$tmp/images.txt"
grep -q "demo/busybox" "$tmp/images.txt" || die "ctl load did not bring demo/busybox back"

# Containers: a foreground exit code, then a detached container through its lifecycle.
set +e
ctl run --rm "$ref" sh -c 'echo hello from a container; exit 3'
code=$?
set -e
[ "$code" = 3 ] || die "ctl run --rm ... exit 3 exited $code"
id=$(ctl run -d --name demo "$ref" sh -c 'while true; do echo tick; sleep 0.2; done')
[ ${#id} = 64 ] || die "ctl run -d printed '$id', not a container id"
ctl ps | grep -q demo || die "ctl ps does not list the demo container"
ctl pause demo
ctl ps | grep -q Paused || die "ctl ps does not show the demo container paused"
ctl resume demo
[ "$(ctl exec demo echo inside)" = inside ] || die "ctl exec did not run in the container"
sleep 0.5
ctl logs --tail 1 demo | grep -q tick || die "ctl logs shows no output of the demo container"
ctl stop -t 2 demo
ctl rm demo
ctl ps -a | grep -q demo && die "ctl rm left the demo container"

step "PASS: pull, images, image inspect, save, load, run, ps, pause, resume, exec, logs, stop, rm against $registry"
