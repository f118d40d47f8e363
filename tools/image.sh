#!/usr/bin/env bash
# Builds the container image mke-audit-tap:latest (and :VERSION) from this tree with the local
# dockerd (DOCKER_HOST is honoured); no registry and no base image are needed.
#   tools/image.sh [--no-build] [--save FILE.tar]
#     --no-build  use the binaries already in build/ (tools/build.sh otherwise)
#     --save      also write the image to FILE.tar, for `docker load` on other manager nodes
set -euo pipefail
cd "$(dirname "$0")/.."
build=1
save=""
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) build=0 ;;
    --save) save="$2"; shift ;;
    *) echo "image.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ "$build" = 1 ] && bash tools/build.sh >&2
for b in build/mke-audit-tap build/mke-audit-tap-sslcal; do
  [ -x "$b" ] || { echo "image.sh: $b is missing (run tools/build.sh)" >&2; exit 1; }
done
version=$(sed -n 's/^project(mke-audit-tap VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)

ctx=build/image
rm -rf "$ctx"
mkdir -p "$ctx/rootfs/usr/local/bin" "$ctx/rootfs/etc/mke-audit-tap" "$ctx/rootfs/tmp"
chmod 1777 "$ctx/rootfs/tmp"
cp deploy/Dockerfile "$ctx/"
# Debug information stays out of the image (the build keeps it for gdb and perf).
for b in mke-audit-tap mke-audit-tap-sslcal; do
  objcopy --strip-debug "build/$b" "$ctx/rootfs/usr/local/bin/$b"
done
# The Swarm service's task (deploy/swarm-launcher.sh) runs with a shell, cat and the docker CLI
# (Debian's, as on the build machine); the auditor itself needs none of them.
mkdir -p "$ctx/rootfs/bin" "$ctx/rootfs/usr/bin" "$ctx/rootfs/usr/local/share/mke-audit-tap"
cp /bin/dash "$ctx/rootfs/bin/sh"
cp /bin/cat "$ctx/rootfs/bin/cat"
cp /usr/bin/docker "$ctx/rootfs/usr/bin/docker"
cp deploy/swarm-launcher.sh "$ctx/rootfs/usr/local/share/mke-audit-tap/"
# Every shared library these programs load, at the path the loader looks for it.
for lib in $(for f in build/mke-audit-tap build/mke-audit-tap-sslcal /bin/dash /bin/cat \
                 /usr/bin/docker; do ldd "$f"; done |
             awk '/=> \// {print $3} /^\t\/lib/ {print $1}' | sort -u); do
  mkdir -p "$ctx/rootfs$(dirname "$lib")"
  cp -L "$lib" "$ctx/rootfs$lib"
done
# The calibration helper drops to nobody; mount the host's /etc/passwd and /etc/group over
# these to name local-socket callers by their host accounts.
printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n' \
  > "$ctx/rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$ctx/rootfs/etc/group"
# A config that only says where the level comes from; deployments mount their own.
cat > "$ctx/rootfs/etc/mke-audit-tap/config.toml" <<'TOML'
# Mount your configuration over this file (see deploy/config.toml).
[audit_log_configuration]
level = ""
TOML
if ! out=$(docker build -q -t "mke-audit-tap:latest" -t "mke-audit-tap:$version" "$ctx" 2>&1); then
  echo "image.sh: docker build failed:" >&2
  echo "$out" >&2
  exit 1
fi
echo "image.sh: built mke-audit-tap:latest and mke-audit-tap:$version" \
  "($(docker image inspect -f '{{.Size}}' mke-audit-tap:latest) bytes)"
if [ -n "$save" ]; then
  docker save -o "$save" "mke-audit-tap:latest" "mke-audit-tap:$version"
  echo "image.sh: saved to $save (docker load -i $save on each manager node)"
fi
