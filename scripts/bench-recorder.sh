#!/usr/bin/env bash
# Benchmark: CPU time and peak memory per stream of rdc-recorder, side by side with
#   ffmpeg -rtsp_transport tcp -i URL -c copy -an -f segment ...
# recording the same streams: 1, 4 and 16 streams of 1080p H.264 at about 4 Mbit/s.
#
# One emulated camera encodes once (a shared gst-rtsp-server media) and serves every client,
# so 16 streams fit on a small machine. Each side records for $SECS s after a 5 s warm-up;
# CPU is the time every thread of the process ran over the measured window (the scheduler's own
# count, /proc/PID/task/*/schedstat, in ns: finer than the 10 ms ticks of utime+stime), memory is
# peak RSS (VmHWM).
# Usage: scripts/bench-recorder.sh [SECS] [STREAMS...]   (default 30 s; 1 4 16 streams)
#   (release build; figures go in BENCHMARKS.md)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
. "$(dirname "$0")/bench-common.sh"
SECS=${1:-30}
shift || true
COUNTS=("$@")
[ ${#COUNTS[@]} -gt 0 ] || COUNTS=(1 4 16)
cargo build --locked --release -q -p rdc-recorder -p rdc-tests --bins
bin=target/release
work=$(mktemp -d /tmp/rdc-bench.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url="rtsp://127.0.0.1:$port/cam"
age-keygen -o "$work/id" 2>/dev/null
pub=$(age-keygen -y "$work/id")

$bin/rdc-fake-camera --port "$port" --width 1920 --height 1080 --kbps 4000 --gop 50 > "$work/cam.log" 2>&1 &
cam=$!
trap 'kill $cam 2>/dev/null; pkill -P $$ 2>/dev/null || true' EXIT
sleep 1

cpu_ticks() { # pid... -> ns run by all their threads
  local t=0; for p in "$@"; do t=$((t + $(cat /proc/$p/task/*/schedstat | awk '{s += $1} END {printf "%d", s}'))); done; echo $t; }
hwm_kib() { local t=0; for p in "$@"; do t=$((t + $(awk '/VmHWM/ {print $2}' "/proc/$p/status"))); done; echo $t; }
hz=1000000000
camera_alive() { kill -0 $cam 2>/dev/null || { echo "the emulated camera died:"; tail -20 "$work/cam.log"; exit 1; }; }

printf "%-8s %-8s %12s %12s %14s %14s\n" tool streams "cpu_s/stream" "cpu_%/stream" "peak_MiB" "MiB/stream"
for n in "${COUNTS[@]}"; do
  # rdc-recorder: one process, n cameras.
  rm -rf "$work/store"
  bench_config "$n"
  $bin/rdc-recorder run -c "$work/rec.toml" 2> "$work/rec-$n.log" &
  rec=$!
  sleep 5
  c0=$(cpu_ticks $rec); sleep "$SECS"; c1=$(cpu_ticks $rec); mem=$(hwm_kib $rec)
  camera_alive
  kill -TERM $rec; wait $rec || true
  bytes=$(du -sb "$work/store/segments" | cut -f1)
  awk -v c=$((c1 - c0)) -v hz=$hz -v n=$n -v s=$SECS -v m=$mem -v b=$bytes 'BEGIN {
    printf "%-8s %-8d %12.3f %12.2f %14.1f %14.2f   (%.1f Mbit/s recorded per stream)\n", "rdc", n, c/hz/n, 100*c/hz/n/s, m/1024, m/1024/n, b*8/(s+5)/n/1e6 }'

  # ffmpeg: one process per stream, as it is used.
  rm -rf "$work/ff"; mkdir -p "$work/ff"
  pids=()
  for i in $(seq 1 "$n"); do
    mkdir -p "$work/ff/$i"
    ffmpeg -nostdin -loglevel error -rtsp_transport tcp -i "$url" -c copy -an -f segment -segment_time 60 -reset_timestamps 1 "$work/ff/$i/seg%05d.ts" &
    pids+=($!)
  done
  sleep 5
  c0=$(cpu_ticks "${pids[@]}"); sleep "$SECS"; c1=$(cpu_ticks "${pids[@]}"); mem=$(hwm_kib "${pids[@]}")
  camera_alive
  kill -INT "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true
  sleep 2
  bytes=$(du -sb "$work/ff" | cut -f1)
  awk -v c=$((c1 - c0)) -v hz=$hz -v n=$n -v s=$SECS -v m=$mem -v b=$bytes 'BEGIN {
    printf "%-8s %-8d %12.3f %12.2f %14.1f %14.2f   (%.1f Mbit/s recorded per stream)\n", "ffmpeg", n, c/hz/n, 100*c/hz/n/s, m/1024, m/1024/n, b*8/(s+5)/n/1e6 }'
done
echo "camera encoder CPU (not counted above): $(( $(cpu_ticks $cam) / hz )) s"
rm -rf "$work"
