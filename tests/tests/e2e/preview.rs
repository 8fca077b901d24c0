//! Previews: the recorder keeps a keyframe of each camera every few seconds; `rdc preview`
//! fetches them over the uplink and draws a contact sheet with each tile's time and the gaps.

use std::io::Read as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rdc_format::time::rfc3339;
use rdc_format::ts;

use crate::harness::*;

const CASE: &str = "ASB/2026/0123";
const REASON: &str = "neighbour reports shouting on Tuesday evening";
const S: i64 = 1_000_000_000;

fn preview(
    s: &Scheme,
    who: &str,
    (from, to): (i64, i64),
    every: &str,
    out: &Path,
) -> std::process::Output {
    preview_of(s, who, "front", (from, to), every, out)
}

fn preview_of(
    s: &Scheme,
    who: &str,
    camera: &str,
    (from, to): (i64, i64),
    every: &str,
    out: &Path,
) -> std::process::Output {
    s.rdc_as(
        who,
        "preview",
        &[
            "--camera",
            camera,
            "--from",
            &rfc3339(from),
            "--to",
            &rfc3339(to),
            "--every",
            every,
            "--case",
            CASE,
            "--reason",
            REASON,
            "--identity",
            &s.path("officer.key"),
            "--out",
            &out.display().to_string(),
            "--json",
        ],
    )
}

fn wait_serving(s: &Scheme) {
    wait_for("the uplink", Duration::from_secs(30), || {
        s.rdc("status", &[]).status.success()
    });
}

fn officer_identity(s: &Scheme) -> Vec<Box<dyn age::Identity>> {
    age::IdentityFile::from_file(s.path("officer.key"))
        .unwrap()
        .into_identities()
        .unwrap()
}

fn decrypt(path: &Path, ids: &[Box<dyn age::Identity>]) -> Vec<u8> {
    let d = age::Decryptor::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut r = d.decrypt(ids.iter().map(|i| i.as_ref())).unwrap();
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    out
}

/// The RGB pixel at (x, y) of a PNG, read back with ffmpeg.
fn pixel(png: &Path, width: usize, (x, y): (usize, usize)) -> [u8; 3] {
    let o = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(png)
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .unwrap();
    let i = (y * width + x) * 3;
    [o.stdout[i], o.stdout[i + 1], o.stdout[i + 2]]
}

fn audit_lines(unit: &Unit, action: &str) -> Vec<String> {
    std::fs::read_to_string(unit.dir.path().join("store/logs/audit.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| l.contains(&format!("\"action\":\"{action}\"")))
        .map(str::to_owned)
        .collect()
}

/// An hour of recording (written faster than real time into the unit's store, as the recorder
/// writes it) with a 30 s camera outage, previews every 10 s: the sheet has 360 tiles, each
/// picture at its tile's time, the outage's tiles empty with its cause; the engineer is refused
/// and audited; the previews decrypt with the age crate to the keyframes the sheet shows.
#[test]
fn an_hour_of_previews_is_a_sheet_of_360_with_the_gap_and_the_engineer_is_refused() {
    let s = Scheme::new();
    s.add_user("eng", "engineer");
    // The camera is not there: the recorder serves the hour already in its store.
    let RecordedHour {
        mut unit,
        start,
        outage,
        recorded: rec,
    } = recorded_hour(&s, 300);
    assert_eq!(rec.previews, 357, "{rec:?}");
    unit.start();
    wait_serving(&s);
    let dir = tempfile::tempdir().unwrap();
    let sheet = dir.path().join("tuesday.png");
    let o = preview(&s, "j.smith", (start, start + 3600 * S), "10s", &sheet);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let tiles = j["tiles"].as_array().unwrap();
    assert_eq!(tiles.len(), 360);
    let mut shown = 0;
    for (k, t) in tiles.iter().enumerate() {
        let at = start + k as i64 * 10 * S;
        assert_eq!(t["start_ns"], at, "tile {k}");
        if (120..=122).contains(&k) {
            assert!(t["picture_ns"].is_null(), "tile {k} in the outage: {t}");
            let why = t["gap"].as_str().unwrap();
            assert!(
                why.contains("recording stopped: the camera closed the connection"),
                "tile {k}: {why}"
            );
        } else {
            let p = t["picture_ns"]
                .as_i64()
                .unwrap_or_else(|| panic!("tile {k} has no picture: {t}"));
            assert!(
                (p - at).abs() < 1_000_000,
                "tile {k}: picture {} ms off",
                (p - at) / 1_000_000
            );
            shown += 1;
        }
    }
    assert_eq!(shown, 357);
    let gaps = j["gaps"].as_array().unwrap();
    assert_eq!(gaps.len(), 1, "{gaps:#?}");
    assert!(gaps[0]["from_ns"].as_i64().unwrap() <= outage.0);
    assert!(gaps[0]["to_ns"].as_i64().unwrap() >= outage.1);
    // The sheet: ten tiles across; an outage tile drawn as a gap, a picture tile not.
    let p = ffprobe(&["-show_streams"], &sheet);
    let (w, h) = (
        j["width"].as_u64().unwrap() as usize,
        j["height"].as_u64().unwrap(),
    );
    assert_eq!(p["streams"][0]["codec_name"], "png");
    assert_eq!(p["streams"][0]["width"], w as u64);
    assert_eq!(p["streams"][0]["height"], h);
    assert_eq!(w, 10 * (256 + 8));
    let cell_h = (h as usize - 40) / 36;
    let centre = |k: usize| ((k % 10) * 264 + 4 + 128, 40 + (k / 10) * cell_h + 4 + 10);
    assert_eq!(
        pixel(&sheet, w, centre(121)),
        [0x50, 0x18, 0x18],
        "the gap tile"
    );
    assert_ne!(
        pixel(&sheet, w, centre(0)),
        [0x50, 0x18, 0x18],
        "a picture tile"
    );
    // Bytes: the previews are a few percent of the footage.
    let fetched = j["bytes"].as_u64().unwrap();
    assert!(
        fetched < rec.footage_bytes / 5,
        "{fetched} of {}",
        rec.footage_bytes
    );

    // A range with no previews: refused, saying what the unit has.
    let o = preview(
        &s,
        "j.smith",
        (start - 7200 * S, start - 3600 * S),
        "10s",
        &dir.path().join("none.png"),
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no previews of front") && err.contains("previews from"),
        "{err}"
    );

    // The engineer is refused, and the refusal audited; the officer's requests audited as
    // viewing previews, with the case.
    let o = preview(
        &s,
        "eng",
        (start, start + 3600 * S),
        "10s",
        &dir.path().join("eng.png"),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("case support officer or manager"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!dir.path().join("eng.png").exists());
    let lists = audit_lines(&unit, "list_previews");
    assert!(
        lists
            .iter()
            .any(|l| l.contains("\"role\":\"engineer\"") && l.contains("refused")),
        "{lists:#?}"
    );
    assert!(
        lists.iter().any(|l| l.contains("\"outcome\":\"granted\"")
            && l.contains(CASE)
            && l.contains("\"purpose\":\"view\"")),
        "{lists:#?}"
    );
    let fetches = audit_lines(&unit, "fetch_preview");
    assert_eq!(
        fetches.iter().filter(|l| l.contains("granted")).count(),
        j["segments"].as_u64().unwrap() as usize,
        "{fetches:#?}"
    );
    // Drawn again from what was fetched: nothing crosses the link twice.
    let before = audit_lines(&unit, "fetch_preview").len();
    let o = preview(&s, "j.smith", (start, start + 3600 * S), "1m", &sheet);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j2: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j2["tiles"].as_array().unwrap().len(), 60);
    assert_eq!(audit_lines(&unit, "fetch_preview").len(), before);

    // On the unit: the preview segments decrypt with the age crate to keyframes only, as many
    // as the sheet shows, and the store verifies.
    unit.stop();
    let store = unit.store();
    let ids = officer_identity(&s);
    let mut keyframes = 0;
    for e in store.list("front.preview", 0, i64::MAX).unwrap() {
        let plain = decrypt(
            &store.segment_path("front.preview", e.segment.seq).unwrap(),
            &ids,
        );
        let v = ts::read_video(&plain).unwrap();
        assert!(
            v.units.iter().all(|u| u.keyframe),
            "segment {}",
            e.segment.seq
        );
        keyframes += v.units.len();
    }
    assert_eq!(keyframes, 357);
    assert_eq!(store.verify(true).unwrap(), Vec::<String>::new());
}

/// The recorder keeping previews of a live camera (1 s apart) across a camera outage: each
/// preview is the very keyframe in the footage (no decoding, no re-encoding), the sheet shows
/// them and the outage as a gap.
#[test]
fn a_live_camera_previews_are_its_own_keyframes_and_its_outage_a_gap() {
    let s = Scheme::new();
    let mut cam = Camera::start(&["--gop", "12"]);
    let rear = Camera::start(&["--codec", "h265", "--gop", "12"]);
    let mut unit = s.unit(&Cam::front_and_rear(cam.url(), rear.url()));
    unit.set_storage("preview_interval = \"1s\"");
    unit.start();
    unit.wait_connected(2);
    let t0 = now_ns();
    // Eight seconds of front (eight previews), then an outage the recorder notices, then six
    // seconds more.
    wait_footage(&unit, "front", t0, 8);
    cam.kill();
    wait_for("the outage noticed", Duration::from_secs(30), || {
        unit.log().contains("camera session ended")
    });
    // The outage lasts 5 s (a duration, not a wait: several 1 s tiles fall inside it).
    std::thread::sleep(Duration::from_secs(5));
    cam.restart();
    unit.wait_connected(3);
    let back = now_ns();
    wait_footage(&unit, "front", back, 6);
    // A stop closes the preview segment (60 previews, or the recorder stopping); the restarted
    // unit serves it.
    unit.stop();
    let t1 = now_ns();
    unit.start();
    wait_serving(&s);
    let dir = tempfile::tempdir().unwrap();
    let sheet = dir.path().join("live.png");
    let o = preview(&s, "j.smith", (t0, t1), "1s", &sheet);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let tiles = j["tiles"].as_array().unwrap();
    let shown: Vec<i64> = tiles
        .iter()
        .filter_map(|t| t["picture_ns"].as_i64())
        .collect();
    assert!(shown.len() >= 6, "{} pictures: {tiles:#?}", shown.len());
    assert!(
        tiles.iter().any(|t| t["gap"]
            .as_str()
            .is_some_and(|g| g.starts_with("recording stopped"))),
        "no outage tile: {tiles:#?}"
    );
    assert!(ffprobe(&["-show_streams"], &sheet)["streams"][0]["width"].as_u64() > Some(0));
    // An H.265 camera's previews decode too.
    let o = preview_of(
        &s,
        "j.smith",
        "rear",
        (t0, t0 + 15 * S),
        "3s",
        &dir.path().join("rear.png"),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rear_tiles = r["tiles"].as_array().unwrap();
    // (A camera encoding in software on a loaded machine may stall for a tile; most have one.)
    let with_picture = rear_tiles
        .iter()
        .filter(|t| t["picture_ns"].is_i64())
        .count();
    assert!(with_picture >= 3, "{rear_tiles:#?}");
    assert!(rear_tiles[0]["picture_ns"].is_i64() || rear_tiles[0]["gap"].is_string());
    let png = dir.path().join("rear.png");
    let w = r["width"].as_u64().unwrap() as usize;
    let k = rear_tiles
        .iter()
        .position(|t| t["picture_ns"].is_i64())
        .unwrap();
    assert_ne!(
        pixel(&png, w, (k * 264 + 4 + 128, 40 + 4 + 72)),
        [0x50, 0x18, 0x18]
    );
    // Every preview is one of the footage's keyframes, byte for byte, at the same time.
    unit.stop();
    let store = unit.store();
    let ids = officer_identity(&s);
    let mut footage = std::collections::HashMap::new();
    for e in store.list("front", 0, i64::MAX).unwrap() {
        let plain = decrypt(&store.segment_path("front", e.segment.seq).unwrap(), &ids);
        for u in ts::read_video(&plain)
            .unwrap()
            .units
            .into_iter()
            .filter(|u| u.keyframe)
        {
            footage.insert(u.data.clone(), u.pts);
        }
    }
    let mut previews = 0;
    for e in store.list("front.preview", 0, i64::MAX).unwrap() {
        let plain = decrypt(
            &store.segment_path("front.preview", e.segment.seq).unwrap(),
            &ids,
        );
        for u in ts::read_video(&plain).unwrap().units {
            assert_eq!(
                footage.get(&u.data),
                Some(&u.pts),
                "a preview not in the footage"
            );
            previews += 1;
        }
    }
    assert!(
        previews >= shown.len(),
        "{previews} previews, {} shown",
        shown.len()
    );
    assert_eq!(store.verify(true).unwrap(), Vec::<String>::new());
}

/// While the unit records, with its preview segments far from full (60 previews): the newest
/// previews are served at once, within one preview interval of asking (here 1 s; the test
/// allows 3 s for a loaded machine's late frames), not when the segment closes a minute later.
/// And a camera whose keyframes are 5 s apart, drawn at 2 s tiles: the tiles between its
/// keyframes say footage was recorded, not NO FOOTAGE.
#[test]
fn the_newest_previews_are_served_while_recording_and_a_tile_without_a_keyframe_is_not_a_gap() {
    let s = Scheme::new();
    let front = Camera::start(&["--gop", "12"]);
    let rear = Camera::start(&["--gop", "125"]);
    let mut unit = s.unit(&Cam::front_and_rear(front.url(), rear.url()));
    unit.set_storage("preview_interval = \"1s\"");
    unit.start();
    unit.wait_connected(2);
    wait_serving(&s);
    let t0 = now_ns();
    // Twelve seconds of both cameras' footage after t0.
    wait_footage(&unit, "front", t0, 12);
    wait_footage(&unit, "rear", t0, 12);
    let dir = tempfile::tempdir().unwrap();
    let asked = now_ns();
    let o = preview(
        &s,
        "j.smith",
        (t0, asked),
        "1s",
        &dir.path().join("now.png"),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let newest = j["tiles"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["picture_ns"].as_i64())
        .max()
        .expect("no preview served while recording");
    assert!(
        asked - newest <= 3 * S,
        "the newest preview served is {:.1} s older than the request",
        (asked - newest) as f64 / 1e9
    );
    // The rear camera at 2 s tiles: most tiles fall between its keyframes.
    let sheet = dir.path().join("rear.png");
    let o = preview_of(&s, "j.smith", "rear", (t0, asked), "2s", &sheet);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let tiles = r["tiles"].as_array().unwrap();
    let w = r["width"].as_u64().unwrap() as usize;
    let columns = w / 264;
    let between = tiles
        .iter()
        .position(|t| {
            t["gap"]
                .as_str()
                .is_some_and(|g| g.starts_with("no keyframe"))
        })
        .unwrap_or_else(|| panic!("no tile between keyframes: {tiles:#?}"));
    let at = (
        (between % columns) * 264 + 4 + 128,
        40 + (between / columns) * (144 + 2 * 18 + 8) + 4 + 72,
    );
    assert_ne!(
        pixel(&sheet, w, at),
        [0x50, 0x18, 0x18],
        "a tile with footage is drawn as a gap"
    );
    unit.stop();
}
