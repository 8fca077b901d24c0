# Sourced by the recorder benchmarks: the unit configuration they run rdc-recorder with.

# bench_config CAMERAS [PREVIEW_INTERVAL]: writes $work/rec.toml, recording CAMERAS cameras
# of $url into $work/store, encrypted to $pub (previews every PREVIEW_INTERVAL if given).
bench_config() {
  local n=$1 preview=${2:-}
  {
    cat <<TOML
[unit]
id = "bench"
operator = "bench"
contact = "bench"
purpose = "bench"
site = "bench"
signing_key = "$work/unit.key"
[storage]
path = "$work/store"
max_bytes = "64 GiB"
segment_secs = 60
${preview:+preview_interval = \"$preview\"}
[[recipient]]
name = "bench"
public_key = "$pub"
[logging]
level = "warn"
TOML
    for i in $(seq 1 "$n"); do printf '[[camera]]\nid = "c%d"\nurl = "%s"\n' "$i" "$url"; done
  } > "$work/rec.toml"
}
