#!/usr/bin/env bash
# Builds the recorder for aarch64-unknown-linux-gnu on this Debian 12 machine, with Debian's
# cross gcc and the arm64 GStreamer -dev packages (multiarch). Idempotent. As root.
# Output: target/aarch64-unknown-linux-gnu/release/rdc-recorder
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  $sudo dpkg --add-architecture arm64
fi
pkgs=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross pkg-config
      libgstreamer1.0-dev:arm64 libgstreamer-plugins-base1.0-dev:arm64 libgstrtspserver-1.0-dev:arm64)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
fi
rustup target list --installed | grep -qx aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu

export PKG_CONFIG_ALLOW_CROSS=1
export PKG_CONFIG_LIBDIR=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
cargo build --locked --release --target aarch64-unknown-linux-gnu -p rdc-recorder
file target/aarch64-unknown-linux-gnu/release/rdc-recorder
