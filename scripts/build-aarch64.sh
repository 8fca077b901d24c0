#!/usr/bin/env bash
# Builds the workspace (the recorder, the emulated camera) for aarch64-unknown-linux-gnu on this Debian 12 machine, with Debian's
# cross gcc and the arm64 GStreamer libraries unpacked into a private sysroot
# (target/sysroot-arm64). Nothing arm64 is installed on the host: Debian 12's GStreamer -dev
# packages are not co-installable across architectures, and installing the arm64 ones would
# remove the host's own. Idempotent; as root (or with sudo).
# Output: target/aarch64-unknown-linux-gnu/release/rdc-recorder and rdc (other packages: pass
# cargo's -p arguments, e.g. `--workspace`).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"

for p in gcc-aarch64-linux-gnu libc6-dev-arm64-cross pkg-config file; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ -n "${need[*]:-}" ]; then
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${need[@]}"
fi
rustup target list --installed | grep -qx aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu

sysroot=$PWD/target/sysroot-arm64
if [ ! -f "$sysroot/.complete" ]; then
  # Package lists for arm64 only (adds no package to the host).
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    $sudo dpkg --add-architecture arm64
  fi
  $sudo apt-get update -qq
  roots=(libgstreamer1.0-dev:arm64 libgstreamer-plugins-base1.0-dev:arm64 libgstrtspserver-1.0-dev:arm64)
  debs=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
           --no-replaces --no-enhances "${roots[@]}" | grep -E '^[a-z0-9].*:arm64$' | sort -u)
  dl=$(mktemp -d)
  (cd "$dl" && apt-get download $debs >/dev/null)
  rm -rf "$sysroot"; mkdir -p "$sysroot"
  for d in "$dl"/*.deb; do dpkg-deb -x "$d" "$sysroot"; done
  rm -rf "$dl"
  # Absolute symlinks inside the sysroot point at the host: make them relative to it.
  find "$sysroot" -type l -lname '/*' | while read -r l; do
    ln -sfn "$sysroot$(readlink "$l")" "$l"
  done
  touch "$sysroot/.complete"
fi

# glibc's linker scripts (libc.so, libm.so, ...) name their libraries by absolute path: point
# them into the sysroot too, or the linker looks for them on the host. Idempotent.
grep -lsI "GNU ld script" "$sysroot"/usr/lib/aarch64-linux-gnu/*.so 2>/dev/null | while read -r f; do
  sed -i -E "s#([ (])(/usr)?/lib/aarch64-linux-gnu/#\1$sysroot\2/lib/aarch64-linux-gnu/#g; s#([ (])/lib/ld-linux-aarch64#\1$sysroot/lib/ld-linux-aarch64#g" "$f"
done

lib=$sysroot/usr/lib/aarch64-linux-gnu
export PKG_CONFIG_ALLOW_CROSS=1
export PKG_CONFIG_SYSROOT_DIR=$sysroot
export PKG_CONFIG_LIBDIR=$lib/pkgconfig:$sysroot/usr/share/pkgconfig
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C link-arg=-Wl,-rpath-link,$lib -C link-arg=-Wl,-rpath-link,$sysroot/lib/aarch64-linux-gnu"
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
# What is shipped (the recorder and rdc) unless other cargo arguments are given.
if [ $# -eq 0 ]; then set -- -p rdc-recorder -p rdc-cli; fi
cargo build --locked --release --target aarch64-unknown-linux-gnu --bins "$@"
file target/aarch64-unknown-linux-gnu/release/rdc-recorder target/aarch64-unknown-linux-gnu/release/rdc
