#!/bin/sh
# Starts the prebuilt uv-nox-cache binary without node, for Forgejo's `runs.using: sh`
# (forgejo/action.yml): `launch.sh restore` / `launch.sh save`. POSIX sh only, so it runs in
# slim images (python:3.12-slim, alpine). The target triple folders are those of dist/launch.js.
set -eu

dist="$(dirname "$0")/../dist"

case "$(uname -m)" in
  x86_64 | amd64) arch=x86_64 ;;
  aarch64 | arm64) arch=aarch64 ;;
  *) arch="" ;;
esac

# musl when its loader is present (Alpine), else glibc.
libc=gnu
for loader in /lib/ld-musl-*; do
  [ -e "$loader" ] && libc=musl
done

triple="$arch-unknown-linux-$libc"
bin="${UV_NOX_CACHE_BINARY:-$dist/$triple/uv-nox-cache}" # the override is for tests only
if [ "$(uname -s)" != Linux ] || [ -z "$arch" ] || [ ! -x "$bin" ]; then
  echo "::error::uv-nox-cache: no prebuilt binary for $(uname -s)/$(uname -m) ($libc): dist/$triple/uv-nox-cache is missing from this copy of the action. Fix: run the job on Linux x86_64 or aarch64 with a released tag (@vX.Y.Z), or use the node action (OWNER/uv-nox-cache) in an image with node (it can build from source when Rust is installed)."
  exit 1
fi
# The runner's `sh -c` (this script's parent, kept alive by `|| exit $?` in action.yml) still
# holds the inputs with a hyphen in their names that dash and busybox sh drop; the binary reads
# them back from there (src/sh_entry.rs).
UV_NOX_CACHE_SH_PARENT=$PPID exec "$bin" "$@"
