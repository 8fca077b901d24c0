#!/usr/bin/env bash
# Builds the `rdc` Debian package (both binaries, the systemd unit, sysusers and tmpfiles
# entries) for amd64 and arm64 with cargo-deb. Idempotent; as root on Debian 12.
# Output: target/debian/rdc_<version>-1_amd64.deb, target/debian/rdc_<version>-1_arm64.deb
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh >/dev/null
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
# dpkg-dev for dpkg-shlibdeps-free builds is not needed: Depends are written out in
# recorder/Cargo.toml ([package.metadata.deb]).
cargo deb --version >/dev/null 2>&1 || cargo install --locked cargo-deb --version 3.8.0

mkdir -p target/debian
cargo build --locked --release -p rdc-recorder -p rdc-cli
# Shell completions and man pages, made by the binaries from their own command lines (the same
# for both architectures); the package installs them where bash, zsh, fish and man look.
gen=target/generated
rm -rf "$gen"; mkdir -p "$gen/man" "$gen/completions"
for b in rdc rdc-recorder; do
  target/release/$b man "$gen/man" >/dev/null
  target/release/$b completions bash >"$gen/completions/$b.bash"
  target/release/$b completions zsh >"$gen/completions/_$b"
  target/release/$b completions fish >"$gen/completions/$b.fish"
done
gzip -9n "$gen"/man/*.1
cargo deb --locked -p rdc-recorder --no-build --strip --output target/debian/

scripts/build-aarch64.sh >/dev/null
# Stripped with the cross toolchain's strip (cargo-deb would run the host's).
for b in rdc-recorder rdc; do
  aarch64-linux-gnu-strip target/aarch64-unknown-linux-gnu/release/$b
done
cargo deb --locked -p rdc-recorder --no-build --no-strip --target aarch64-unknown-linux-gnu \
  --output target/debian/
ls -l target/debian/*.deb
