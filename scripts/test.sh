#!/usr/bin/env bash
# Installs what is missing, then runs every check CI runs: formatting, clippy, the declared
# rust-version, the docs, the dependency graph (scripts/deny.sh), all tests, then the packages (scripts/test-packages.sh: both .deb
# built, the amd64 one installed on a clean Debian 12 chroot, the arm64 binaries under qemu).
# Ends with the line summing every test binary: "tests: N passed, M failed" (and, after it,
# "packages: ok").
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
# A run builds each crate once: incremental caches would only take disk (a run that ran out of
# space failed as a compile error). Say so up front when the disk is short.
export CARGO_INCREMENTAL=0
free_gb=$(df -Pk . | awk 'NR == 2 { print int($4 / 1048576) }')
if [ "${free_gb:-0}" -lt 20 ]; then
  echo "test: only ${free_gb} GB free here; a clean run needs about 20 GB (debug, release and arm64 builds)" >&2
fi
cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings
# The declared rust-version still builds, and the docs build without a warning.
rv=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
cargo "+$rv" check --locked --workspace --all-targets
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps --workspace
# Licences, advisories, duplicate versions and sources, each exception explained in deny.toml.
scripts/deny.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --locked --workspace 2>&1 | tee "$log" || status=$?
summary=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log")
[ "$status" = 0 ] || { echo "$summary"; exit "$status"; }
scripts/test-packages.sh
echo "$summary"
