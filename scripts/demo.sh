#!/usr/bin/env bash
# The main job on a built-in default: two emulated cameras (H.264 with an audio track, and
# H.265) recorded by rdc-recorder into an encrypted store; then the footage is listed and
# verified on the unit, and decrypted with the stock `age` tool as an officer would.
#
# RDC_DEMO_SECS (default 40) sets how long it records; RDC_DEMO_DIR where it works.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"

echo "== building"
cargo build --locked -q -p rdc-recorder -p rdc-tests --bins
bin=target/debug
secs=${RDC_DEMO_SECS:-40}
demo=${RDC_DEMO_DIR:-$(mktemp -d /tmp/rdc-demo.XXXXXX)}
mkdir -p "$demo"
rm -rf "$demo/store" "$demo"/*.ts

pick_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
p1=$(pick_port); p2=$(pick_port)

[ -f "$demo/officer.key" ] || age-keygen -o "$demo/officer.key" 2>/dev/null
officer=$(age-keygen -y "$demo/officer.key")
cat > "$demo/recorder.toml" <<TOML
[unit]
id = "demo-unit"
operator = "Demo Housing Association"
contact = "cctv@example.org"
purpose = "Demonstration of the rdc recorder"
site = "loopback"
signing_key = "$demo/unit-signing-key.p8"

[storage]
path = "$demo/store"
max_bytes = "1 GiB"
retention_days = 28
segment_secs = 10

[[camera]]
id = "front"
url = "rtsp://127.0.0.1:$p1/cam"

[[camera]]
id = "rear"
url = "rtsp://127.0.0.1:$p2/cam"

[[recipient]]
name = "case support officer"
public_key = "$officer"
TOML

echo "== checking the configuration"
$bin/rdc-recorder check-config "$demo/recorder.toml" >/dev/null

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
echo "== starting two emulated cameras: front (H.264 + an audio track), rear (H.265)"
$bin/rdc-fake-camera --port "$p1" --audio > "$demo/camera-front.log" 2>&1 & pids+=($!)
$bin/rdc-fake-camera --port "$p2" --codec h265 > "$demo/camera-rear.log" 2>&1 & pids+=($!)
sleep 1

echo "== recording for $secs s (log: $demo/recorder.log)"
$bin/rdc-recorder run --config "$demo/recorder.toml" > "$demo/recorder.log" 2>&1 &
rec=$!; pids+=($rec)
for ((t = 0; t < secs; t += 10)); do
  sleep 10
  n=$(find "$demo/store/segments" -name '*.age' 2>/dev/null | wc -l)
  echo "   ${t}s..$((t + 10))s: $n finished segments"
done
kill -TERM "$rec"; wait "$rec" || true
echo "== recorder stopped (SIGTERM closes every segment)"

echo; echo "== on the unit: status, segments, verification (no footage is readable here)"
$bin/rdc-recorder store -c "$demo/recorder.toml" status
$bin/rdc-recorder store -c "$demo/recorder.toml" list
$bin/rdc-recorder store -c "$demo/recorder.toml" verify --deep

echo; echo "== as the officer: decrypt the newest segment of each camera with the stock age tool"
for cam in front rear; do
  seg=$(ls "$demo/store/segments/$cam/"*.age | tail -1)
  age -d -i "$demo/officer.key" "$seg" > "$demo/$cam.ts"
  info=$(ffprobe -v error -count_frames -show_entries stream=codec_type,codec_name,width,height,nb_read_frames -of compact=p=0:nk=1 "$demo/$cam.ts" | sort -u | tr '\n' ' ')
  echo "   $cam: $(basename "$seg") -> $demo/$cam.ts: $info"
done
echo "   (each segment holds one video stream and no audio; play one with: ffplay $demo/front.ts)"
echo; echo "demo done: $demo"
