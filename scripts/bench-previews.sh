#!/usr/bin/env bash
# Benchmark (issue 14): the recorder's extra CPU for keeping previews. rdc-recorder records 4
# streams of 1080p H.264 at about 4 Mbit/s (a keyframe every 2 s) from one emulated camera,
# alternately with preview_interval = "off" and "10s", $RUNS times each, $SECS s a run after a
# 5 s warm-up. CPU is the time every thread of the process ran (/proc/PID/task/*/schedstat).
# Usage: scripts/bench-previews.sh [SECS] [RUNS]   (release build; figures go in BENCHMARKS.md)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
. "$(dirname "$0")/bench-common.sh"
SECS=${1:-30}
RUNS=${2:-3}
N=4
cargo build --locked --release -q -p rdc-recorder -p rdc-tests --bins
bin=target/release
work=$(mktemp -d /tmp/rdc-bench-previews.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url="rtsp://127.0.0.1:$port/cam"
age-keygen -o "$work/id" 2>/dev/null
pub=$(age-keygen -y "$work/id")
cam=
trap 'kill $cam 2>/dev/null; pkill -P $$ 2>/dev/null || true; rm -rf "$work"' EXIT
cpu_ns() { cat /proc/$1/task/*/schedstat | awk '{s += $1} END {printf "%d", s}'; }

printf "%-4s %-9s %14s %14s %16s\n" run previews "cpu_%/stream" "previews_kept" "preview_share"
for r in $(seq 1 "$RUNS"); do
  for mode in off 10s; do
    rm -rf "$work/store"
    bench_config "$N" "$mode"
    # A camera of its own each run (gst-rtsp-server 1.22 can abort when a shared media's
    # clients all leave and others come).
    $bin/rdc-fake-camera --port "$port" --width 1920 --height 1080 --kbps 4000 --gop 50 > "$work/cam.log" 2>&1 &
    cam=$!
    sleep 1
    $bin/rdc-recorder run -c "$work/rec.toml" 2> "$work/rec.log" &
    rec=$!
    sleep 5
    c0=$(cpu_ns $rec); sleep "$SECS"; c1=$(cpu_ns $rec)
    kill -0 $cam 2>/dev/null || { echo "the emulated camera died"; tail "$work/cam.log"; exit 1; }
    kill -TERM $rec; wait $rec || true
    kill $cam; wait $cam 2>/dev/null || true
    kept=$(find "$work/store/segments" -path '*.preview/*.age' 2>/dev/null | wc -l || true)
    pb=$(du -scb "$work"/store/segments/*.preview 2>/dev/null | tail -1 | cut -f1 || true)
    fb=$(du -sb "$work/store/segments" | cut -f1)
    awk -v c=$((c1 - c0)) -v n=$N -v s=$SECS -v r=$r -v m=$mode -v k=$kept -v pb=${pb:-0} -v fb=$fb 'BEGIN {
      printf "%-4d %-9s %14.3f %14s %15.2f%%\n", r, m, 100*c/1e9/n/s, k " segs", (fb > pb ? 100*pb/(fb-pb) : 0) }'
  done
done
exit 0
