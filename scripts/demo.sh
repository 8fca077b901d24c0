#!/usr/bin/env bash
# The main job on a built-in default: two emulated cameras (H.264 with an audio track, and
# H.265) recorded by rdc-recorder into an encrypted store; while it records, an officer lists
# and fetches the footage with `rdc` over the unit's QUIC uplink (verified against the unit's
# signed manifests, decrypted on the officer's side); then the unit's own checks, and the stock
# `age` tool decrypting a segment.
#
# RDC_DEMO_SECS (default 40) sets how long it records; RDC_DEMO_DIR where it works.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"

echo "== building"
cargo build --locked -q -p rdc-recorder -p rdc-cli -p rdc-tests --bins
bin=target/debug
secs=${RDC_DEMO_SECS:-40}
demo=${RDC_DEMO_DIR:-$(mktemp -d /tmp/rdc-demo.XXXXXX)}
mkdir -p "$demo"
rm -rf "$demo/store" "$demo"/*.ts

pick_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
p1=$(pick_port); p2=$(pick_port); up=$(pick_port)

echo "== the scheme's keys (rdc keys): a CA, the unit's certificate, an officer's certificate and age identity"
rm -rf "$demo/keys"; mkdir -p "$demo/keys"
$bin/rdc keys ca --scheme "Demo Housing Association" --dir "$demo/keys/ca" >/dev/null
$bin/rdc keys unit --ca-dir "$demo/keys/ca" --id demo-unit --dir "$demo/keys/unit" >/dev/null
user_toml=$($bin/rdc keys user --ca-dir "$demo/keys/ca" --name j.smith --role officer --dir "$demo/keys/users")
officer=$($bin/rdc keys identity --out "$demo/keys/officer.key")
echo "   officer's age recipient: $officer"
cat > "$demo/recorder.toml" <<TOML
[unit]
id = "demo-unit"
operator = "Demo Housing Association"
contact = "cctv@northtown-homes.example"
purpose = "Demonstration of the rdc recorder"
site = "loopback"
signing_key = "$demo/unit-signing-key.p8"

[storage]
path = "$demo/store"
max_bytes = "1 GiB"
retention_days = 28
segment_secs = 10
# A preview every 2 s (10 s on a real unit), for the contact sheet below.
preview_interval = "2s"

[[camera]]
id = "front"
url = "rtsp://127.0.0.1:$p1/cam"

[[camera]]
id = "rear"
url = "rtsp://127.0.0.1:$p2/cam"

[[recipient]]
name = "case support officer"
public_key = "$officer"

[uplink]
listen = "127.0.0.1:$up"
cert = "$demo/keys/unit/demo-unit.crt"
key_file = "$demo/keys/unit/demo-unit.key"
ca = "$demo/keys/ca/ca.crt"
$user_toml
TOML
cat > "$demo/units.toml" <<TOML
[unit.demo-unit]
address = "127.0.0.1:$up"
ca = "$demo/keys/ca/ca.crt"
cert = "$demo/keys/users/j.smith.crt"
key = "$demo/keys/users/j.smith.key"
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
echo; echo "== as the officer, over the uplink while the unit records: status, list, fetch"
$bin/rdc status --unit demo-unit --units "$demo/units.toml"
$bin/rdc list --unit demo-unit --units "$demo/units.toml" --camera front --from now-10m \
  --case "ASB/2026/0042" --reason "reported damage to the front door"
$bin/rdc fetch --unit demo-unit --units "$demo/units.toml" --camera front --from now-10m \
  --case "ASB/2026/0042" --reason "reported damage to the front door" \
  --identity "$demo/keys/officer.key" --out "$demo/fetched"
for ts in "$demo"/fetched/front/*.ts; do
  info=$(ffprobe -v error -count_frames -show_entries stream=codec_type,codec_name,width,height,nb_read_frames -of compact=p=0:nk=1 "$ts" | sort -u | tr '\n' ' ')
  echo "   $(basename "$ts"): $info"
done
echo "   (one video stream each, no audio; play one with: ffplay $(ls "$demo"/fetched/front/*.ts | head -1))"

echo; echo "== an evidence bundle of the rear camera (rdc export), checked offline (rdc verify, sha256sum -c)"
rm -rf "$demo/export"
$bin/rdc export --unit demo-unit --units "$demo/units.toml" --camera rear --from now-25s --to now-5s \
  --case "ASB/2026/0042" --reason "reported damage to the front door: for the police" \
  --identity "$demo/keys/officer.key" --out "$demo/export"
$bin/rdc verify "$demo/export" --ca "$demo/keys/ca/ca.crt" --identity "$demo/keys/officer.key" | sed 's/^/   /'
(cd "$demo/export" && sha256sum --quiet -c SHA256SUMS && echo "   sha256sum -c SHA256SUMS: all files OK")
echo "   working copy: $(ffprobe -v error -show_entries stream=codec_type,codec_name:format=duration -of compact=p=0:nk=1 "$demo/export/working-copy.mp4" | tr '\n' ' ')"

kill -TERM "$rec"; wait "$rec" || true
echo "== recorder stopped (SIGTERM closes every segment)"

echo; echo "== on the unit: status, segments, verification, and the audit log of the officer's requests"
$bin/rdc-recorder store -c "$demo/recorder.toml" status
$bin/rdc-recorder store -c "$demo/recorder.toml" list
$bin/rdc-recorder store -c "$demo/recorder.toml" verify --deep
grep -o '"action":"[a-z_]*"[^}]*"case_ref":"[^"]*"[^}]*"outcome":"[^"]*"' "$demo/store/logs/audit.jsonl" | head -4 | sed 's/^/   audit: /'

echo; echo "== previews: the recorder kept a keyframe of each camera every 2 s; restarted (it serves its store),"
echo "   the officer draws a contact sheet of the front camera's (rdc preview) to find the moment to fetch"
$bin/rdc-recorder run --config "$demo/recorder.toml" >> "$demo/recorder.log" 2>&1 &
rec=$!; pids+=($rec)
for _ in $(seq 50); do $bin/rdc status --unit demo-unit --units "$demo/units.toml" >/dev/null 2>&1 && break; sleep 0.2; done
$bin/rdc preview --unit demo-unit --units "$demo/units.toml" --camera front --from now-2m --to now \
  --every 4s --case "ASB/2026/0042" --reason "when was the front door damaged?" \
  --identity "$demo/keys/officer.key" --out "$demo/front-sheet.png" | sed 's/^/   /'
echo "   $(file -b "$demo/front-sheet.png" 2>/dev/null || ls -l "$demo/front-sheet.png")"
kill -TERM "$rec"; wait "$rec" || true

echo; echo "== the stock age tool decrypts a segment too"
seg=$(ls "$demo/store/segments/rear/"*.age | tail -1)
age -d -i "$demo/keys/officer.key" "$seg" > "$demo/rear.ts"
echo "   $(basename "$seg") -> $demo/rear.ts: $(ffprobe -v error -show_entries stream=codec_name -of csv=p=0 "$demo/rear.ts" | head -1)"
echo; echo "demo done: $demo"
