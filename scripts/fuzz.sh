#!/usr/bin/env bash
# Runs every fuzz target (fuzz/) for SECS seconds each (default 60) with cargo-fuzz on nightly.
# Installs the nightly toolchain and cargo-fuzz if missing. Not part of CI: fuzzing is open-ended;
# the same parsers have property tests that CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null 2>&1 || cargo +nightly install cargo-fuzz --locked
for t in $(cargo +nightly fuzz list); do
  echo "== $t ($secs s)"
  cargo +nightly fuzz run "$t" -- -max_total_time="$secs" -rss_limit_mb=2048 2>&1 | grep -E "^(Done|#[0-9]+ +DONE)|ERROR|panicked|SUMMARY" || true
done
