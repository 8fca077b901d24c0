#!/usr/bin/env bash
# Installs what rdc needs to build, test and run its demo on Debian 12, idempotently.
# Run as root (or with sudo available). Safe to run again: it installs only what is missing.
set -euo pipefail

pkgs=(
  pkg-config build-essential
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstrtspserver-1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools gstreamer1.0-x
  age ffmpeg
  chromium chromium-driver
  iproute2 systemd coreutils
  wireguard-go wireguard-tools nftables conntrack
  dosfstools exfatprogs fusefat exfat-fuse util-linux
  man-db bash-completion
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "install-deps: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
fi

# The packet-level 4G link of the tests and the link benchmark uses TUN devices.
if [ ! -c /dev/net/tun ] && [ "$(id -u)" = 0 ]; then
  modprobe tun 2>/dev/null || true
  if [ ! -c /dev/net/tun ]; then
    mkdir -p /dev/net && mknod -m 0600 /dev/net/tun c 10 200 2>/dev/null || true
  fi
  [ -c /dev/net/tun ] || echo "install-deps: no /dev/net/tun: the packet-level link test will fail" >&2
fi

if ! command -v cargo >/dev/null 2>&1; then
  [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
fi
command -v cargo >/dev/null 2>&1 || { echo "install-deps: no Rust toolchain (cargo): install rustup first" >&2; exit 1; }
for c in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
done
# The oldest Rust the workspace declares (rust-version): CI checks that it still builds.
rv=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' "$(dirname "$0")/../Cargo.toml")
if [ -n "$rv" ] && ! rustup toolchain list | grep -q "^$rv"; then
  rustup toolchain install "$rv" --profile minimal
fi
# cargo-deny checks the dependency graph (scripts/deny.sh); a pinned version, built once.
deny_version=0.20.2
if ! cargo deny --version 2>/dev/null | grep -q " $deny_version$"; then
  cargo install --locked "cargo-deny@$deny_version"
fi
