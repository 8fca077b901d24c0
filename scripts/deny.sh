#!/usr/bin/env bash
# cargo deny: licences, duplicate versions, sources and RustSec advisories of every crate the
# workspace builds (deny.toml says what is allowed, and each exception why).
#
# The advisory database is fetched when github.com answers. Where it does not (this project's
# CI), .ci/advisory-db is used: the advisories of every crate in Cargo.lock, as of the date in
# its SNAPSHOT, which the run prints. `scripts/deny.sh --refresh DIR` remakes that snapshot
# from DIR, a clone of rustsec/advisory-db.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
snap=.ci/advisory-db
# Where cargo-deny looks for the database of its default URL.
db="${CARGO_HOME:-$HOME/.cargo}/advisory-dbs/advisory-db-3157b0e258782691"

if [ "${1:-}" = --refresh ]; then
  src=${2:?usage: scripts/deny.sh --refresh PATH-TO-A-CLONE-OF-advisory-db}
  rm -rf "$snap/crates"
  mkdir -p "$snap/crates"
  for c in $(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.lock | sort -u); do
    if [ -d "$src/crates/$c" ]; then cp -r "$src/crates/$c" "$snap/crates/"; fi
  done
  sha=$(git -C "$src" log -1 --format=%H)
  date=$(git -C "$src" log -1 --format=%cI)
  sed -i "s/^source: .*/source: $sha/; s/^date: .*/date: $date/" "$snap/SNAPSHOT"
  echo "snapshot of $date: $(find "$snap/crates" -type f | wc -l) advisories"
  exit 0
fi

command -v cargo-deny >/dev/null || { echo "cargo-deny is missing: run scripts/install-deps.sh"; exit 1; }
# cargo-deny reads the crate graph offline: every crate must be on disk.
cargo fetch --locked --quiet
snap_date=$(sed -n 's/^date: //p' "$snap/SNAPSHOT")
db_date() { git -C "$db" log -1 --format=%cI 2>/dev/null; }
if ! timeout 90 cargo deny fetch db >/dev/null 2>&1 || [ ! -d "$db/.git" ]; then
  # Not fetched: the snapshot, unless a copy at least as new is already here.
  if [ ! -d "$db/.git" ] || [ "$(date -d "$(db_date)" +%s)" -lt "$(date -d "$snap_date" +%s)" ]; then
    rm -rf "$db"
    mkdir -p "$db"
    cp -r "$snap/crates" "$db/"
    git -C "$db" init -q
    git -C "$db" add -A
    # cargo-deny reads the database's age from its last commit: the snapshot's date.
    GIT_AUTHOR_DATE=$snap_date GIT_COMMITTER_DATE=$snap_date \
      git -C "$db" -c user.name=rdc -c user.email=rdc@localhost commit -qm "RustSec snapshot $snap_date"
  fi
fi
echo "deny: RustSec advisories as of $(db_date) ($(git -C "$db" log -1 --format=%s))"
cargo deny --offline --locked check
