//! The store's answers to the hardening findings (issue 8): power cut before a segment's first
//! sync, sequence reuse after a cut log, a deleted manifest log, read-only inspection, and the
//! signing key.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::*;

fn manifests_of(store: &Store, camera: &str) -> Vec<Manifest> {
    store
        .manifests(camera, 0, u64::MAX)
        .unwrap()
        .into_iter()
        .map(|e| serde_json::from_value(e.body).unwrap())
        .collect()
}

fn log_lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_log(p: &Path, lines: &[String]) {
    std::fs::write(
        p,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
}

/// Every file under `root` with its contents: what "nothing was written" is checked against.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// A store holding segments of "front", left as a power cut leaves it: segment 0 cut at a
/// keyframe, segment 1 open.
fn cut_in_second_segment(fx: &Fixture) -> (u64, PathBuf) {
    let (store, _) = fx.open();
    let mut w = store.writer("front").unwrap();
    let closed = push_frames(&mut w, &fx.clocks, 260, 25);
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].ended, Ended::Cut);
    let (seq, _, _) = w.current().unwrap();
    drop(w); // as a crash: the open segment is left as it is on disk
    drop(store);
    let dir = fx.cfg.root.join("segments/front");
    let partial = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "partial"))
        .unwrap();
    (seq, partial)
}

#[test]
fn a_power_cut_before_the_first_sync_is_in_the_signed_record_and_the_destruction_log() {
    let fx = Fixture::new();
    let (seq, partial) = cut_in_second_segment(&fx);
    // As if the power failed before the segment's first sync: no tail record.
    std::fs::remove_file(partial.with_extension("tail")).unwrap();
    let bytes = std::fs::metadata(&partial).unwrap().len();
    let (store, report) = fx.open();
    assert_eq!(report.discarded.len(), 1, "{report:?}");
    // The discarded bytes are in the destruction log, with the cause.
    let d = store.destructions().unwrap();
    let (_, gone) = d
        .iter()
        .find(|(_, d)| d.segment.seq == seq)
        .expect("the discarded segment is in the destruction log");
    assert_eq!(gone.segment.bytes, bytes);
    assert!(
        gone.why
            .contains("power failed before the segment's first sync")
    );
    // The gap is in the signed record: the previous segment is followed by a lost one.
    let ms = manifests_of(&store, "front");
    assert_eq!(ms.len(), 2);
    assert_eq!(ms[0].ended, Ended::Cut);
    assert!(matches!(&ms[1].ended, Ended::Lost { cause } if cause.contains("power failed")));
    assert_eq!(ms[1].seq, seq);
    assert!(!partial.exists());
    assert!(
        store.verify(true).unwrap().is_empty(),
        "{:?}",
        store.verify(true)
    );
    // Recording goes on with the next number, and the lost one is not listed as footage.
    let mut w = store.writer("front").unwrap();
    let closed = push_frames(&mut w, &fx.clocks, 30, 25);
    let next = w.close("stop").unwrap().unwrap();
    assert!(closed.is_empty());
    assert_eq!(next.seq, seq + 1);
    let listed: Vec<u64> = store
        .list("front", 0, i64::MAX)
        .unwrap()
        .iter()
        .map(|e| e.segment.seq)
        .collect();
    assert_eq!(listed, vec![0, seq + 1]);
    assert!(store.verify(true).unwrap().is_empty());
}

#[test]
fn a_new_segment_is_durable_from_its_first_frame() {
    let fx = Fixture::new();
    let (store, _) = fx.open();
    let mut w = store.writer("front").unwrap();
    // 10 s of footage, then the keyframe that opens segment 1, then the power fails 40 ms in:
    // well inside the first sync interval.
    push_frames(&mut w, &fx.clocks, 251, 25);
    let (seq, frames, _) = w.current().unwrap();
    assert_eq!((seq, frames), (1, 1));
    drop(w);
    drop(store);
    let (store, report) = fx.open();
    assert!(report.discarded.is_empty(), "{report:?}");
    assert_eq!(report.recovered.len(), 1);
    assert_eq!(report.recovered[0].frames, 1, "the keyframe was durable");
    assert_eq!(report.recovered[0].ended, Ended::PowerLoss);
    let plain = fx.decrypt(&store.segment_path("front", 1).unwrap());
    assert_eq!(plain, expected(report.recovered[0].start_ns, 1));
}

fn five_segments(fx: &Fixture) -> Vec<Manifest> {
    let (store, _) = fx.open();
    let mut w = store.writer("front").unwrap();
    let mut ms = push_frames(&mut w, &fx.clocks, 1200, 25);
    ms.extend(w.close("stop").unwrap());
    assert_eq!(ms.len(), 5);
    ms
}

#[test]
fn segment_numbers_are_never_reused_after_the_log_is_cut() {
    let fx = Fixture::new();
    let ms = five_segments(&fx);
    let log = fx.cfg.root.join("logs/manifests/front.jsonl");
    let dir = fx.cfg.root.join("segments/front");
    let before = snapshot(&dir);
    // An insider removes the two newest manifests.
    let mut lines = log_lines(&log);
    lines.truncate(3);
    write_log(&log, &lines);
    let (store, _) = fx.open();
    let mut w = store.writer("front").unwrap();
    push_frames(&mut w, &fx.clocks, 30, 25);
    let next = w.close("stop").unwrap().unwrap();
    assert_eq!(next.seq, 5, "a number past every number seen");
    // The unaccounted files are neither renumbered nor overwritten.
    for (p, bytes) in &before {
        assert_eq!(&std::fs::read(p).unwrap(), bytes, "{} changed", p.display());
    }
    let listed: Vec<u64> = store
        .list("front", 0, i64::MAX)
        .unwrap()
        .iter()
        .map(|e| e.segment.seq)
        .collect();
    assert_eq!(listed, vec![0, 1, 2, 5], "no number twice");
    let problems = store.verify(false).unwrap().join("\n");
    for m in &ms[3..] {
        assert!(
            problems.contains(&format!("{}: segment file that no manifest", m.file)),
            "{problems}"
        );
    }
}

#[test]
fn segment_numbers_are_never_reused_after_the_log_is_reordered() {
    let fx = Fixture::new();
    five_segments(&fx);
    let log = fx.cfg.root.join("logs/manifests/front.jsonl");
    let mut lines = log_lines(&log);
    lines.swap(3, 4);
    write_log(&log, &lines);
    let (store, _) = fx.open();
    let mut w = store.writer("front").unwrap();
    push_frames(&mut w, &fx.clocks, 30, 25);
    assert_eq!(w.close("stop").unwrap().unwrap().seq, 5);
    let problems = store.verify(false).unwrap().join("\n");
    assert!(problems.contains("out of order"), "{problems}");
}

#[test]
fn verify_names_a_camera_whose_manifest_log_was_deleted() {
    let mut fx = Fixture::new();
    fx.cfg.cameras = vec!["front".into(), "rear".into(), "side".into()];
    {
        let (store, _) = fx.open();
        for cam in ["front", "rear"] {
            let mut w = store.writer(cam).unwrap();
            push_frames(&mut w, &fx.clocks, 600, 25);
            w.close("stop").unwrap();
        }
        store.destroy("rear", 0, "test", "test").unwrap();
    }
    std::fs::remove_file(fx.cfg.root.join("logs/manifests/rear.jsonl")).unwrap();
    let (store, _) = Store::open_read_only(fx.cfg.clone(), fx.clocks.clone()).unwrap();
    let problems = store.verify(true).unwrap().join("\n");
    assert!(
        problems.contains("camera rear: its manifest log logs/manifests/rear.jsonl is missing")
            && problems.contains("segment files on disk")
            && problems.contains("the destruction log"),
        "{problems}"
    );
    assert!(
        !problems.contains("camera side"),
        "a configured camera that never recorded is fine: {problems}"
    );
    drop(store);
    // Its files gone too: the destruction log and the recorder's configuration still know it.
    std::fs::remove_dir_all(fx.cfg.root.join("segments/rear")).unwrap();
    let (store, _) = fx.open();
    let problems = store.verify(true).unwrap().join("\n");
    assert!(
        problems.contains("camera rear: its manifest log"),
        "{problems}"
    );
}

#[test]
fn read_only_commands_never_write() {
    let fx = Fixture::new();
    let key_path = fx.dir.path().join("unit.key");
    let key = Arc::new(load_unit_key(&fx.cfg.root, &key_path).unwrap());
    {
        let (store, _) = Store::open(fx.cfg.clone(), key.clone(), fx.clocks.clone()).unwrap();
        let mut w = store.writer("front").unwrap();
        push_frames(&mut w, &fx.clocks, 300, 25); // segment 1 left open, as by a power cut
    }
    // A torn last line in the audit log, as a power cut mid-append leaves it.
    let audit = fx.cfg.root.join("logs/audit.jsonl");
    std::fs::write(&audit, b"{\"seq\":0,\"time").unwrap();
    std::fs::remove_file(&key_path).unwrap();
    let before = snapshot(&fx.cfg.root);
    let (store, report) = Store::open_read_only(fx.cfg.clone(), fx.clocks.clone()).unwrap();
    assert_eq!(report.open_segments.len(), 1, "{report:?}");
    assert!(store.status().is_ok());
    assert_eq!(store.list("front", 0, i64::MAX).unwrap().len(), 1);
    let problems = store.verify(true).unwrap();
    assert!(
        problems.iter().any(|p| p.contains("audit.jsonl line 1")),
        "{problems:?}"
    );
    assert!(matches!(
        store.audit(&AuditRecord::default()),
        Err(Error::ReadOnly)
    ));
    drop(store);
    assert_eq!(
        snapshot(&fx.cfg.root),
        before,
        "a read-only open changed the store"
    );
    assert!(!key_path.exists(), "no key was created");
    // And it does not need the recorder stopped: it opens beside a running store.
    let key2 = Arc::new(UnitKey::ephemeral());
    std::fs::remove_file(fx.cfg.root.join("unit-public-key")).unwrap();
    let (_running, _) = Store::open(fx.cfg.clone(), key2, fx.clocks.clone()).unwrap();
    assert!(Store::open_read_only(fx.cfg.clone(), fx.clocks.clone()).is_ok());
}

#[test]
fn a_missing_or_foreign_key_stops_the_start_and_rotation_is_deliberate() {
    let fx = Fixture::new();
    let key_path = fx.dir.path().join("unit.key");
    let key = Arc::new(load_unit_key(&fx.cfg.root, &key_path).unwrap());
    let original = key.public_hex();
    {
        let (store, _) = Store::open(fx.cfg.clone(), key, fx.clocks.clone()).unwrap();
        let mut w = store.writer("front").unwrap();
        push_frames(&mut w, &fx.clocks, 300, 25);
        w.close("stop").unwrap();
    }
    // The key file is lost: the start is refused, naming the key and the way out.
    let saved = std::fs::read(&key_path).unwrap();
    std::fs::remove_file(&key_path).unwrap();
    let e = load_unit_key(&fx.cfg.root, &key_path).unwrap_err();
    assert!(matches!(e, Error::KeyMissing { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains(&original) && msg.contains("rotate-key"),
        "{msg}"
    );
    assert!(!key_path.exists(), "no key was created in its place");
    // Another unit's key: refused too, by the loader and by the store.
    let other = UnitKey::ephemeral();
    assert!(matches!(
        Store::open(fx.cfg.clone(), Arc::new(other), fx.clocks.clone()),
        Err(Error::KeyMismatch { .. })
    ));
    std::fs::write(&key_path, &saved).unwrap();
    assert_eq!(
        load_unit_key(&fx.cfg.root, &key_path).unwrap().public_hex(),
        original
    );
    // A deliberate rotation: logged, and everything signed before still verifies.
    let (old, new) = rotate_key(
        fx.cfg.clone(),
        &key_path,
        "key file lost when the SD card failed",
        fx.clocks.clone(),
    )
    .unwrap();
    assert_eq!(old.as_deref(), Some(original.as_str()));
    assert_ne!(new, original);
    let key = Arc::new(load_unit_key(&fx.cfg.root, &key_path).unwrap());
    assert_eq!(key.public_hex(), new);
    let (store, _) = Store::open(fx.cfg.clone(), key, fx.clocks.clone()).unwrap();
    let mut w = store.writer("front").unwrap();
    push_frames(&mut w, &fx.clocks, 300, 25);
    w.close("stop").unwrap();
    assert!(
        store.verify(true).unwrap().is_empty(),
        "{:?}",
        store.verify(true)
    );
    let audit = store.audit_entries(0).unwrap();
    assert!(audit.iter().any(|(_, a)| a.action == "signing_key_rotated"
        && a.detail.as_deref().is_some_and(|d| d.contains(&original))));
}

/// Writes one keyframe a camera every 15 simulated minutes for `hours`, running retention
/// every hour. Returns every segment made.
fn record_hours(store: &Store, w: &mut SegmentWriter, fx: &Fixture, hours: u64) -> Vec<Manifest> {
    let mut made = Vec::new();
    for step in 0..hours * 4 {
        let (wall, mono) = (fx.clocks.wall_ns(), fx.clocks.mono_ns());
        let p = w
            .push(&Frame {
                data: &[7u8; 2000],
                keyframe: true,
                wall_ns: wall,
                mono_ns: mono,
            })
            .unwrap();
        made.extend(p.closed);
        if step % 4 == 3 {
            store.enforce_retention().unwrap();
        }
        fx.clocks.advance(Duration::from_secs(900));
    }
    made
}

fn hourly(fx: &mut Fixture) {
    fx.cfg.retention_days = 28;
    fx.cfg.segment_ns = 3_600_000_000_000;
}

#[test]
fn a_clock_29_days_ahead_deletes_nothing_young() {
    let mut fx = Fixture::new();
    hourly(&mut fx);
    let (store, _) = fx.open();
    let mut w = store.writer("front").unwrap();
    w.set_clock(ClockState {
        synchronized: true,
        max_error_us: Some(100),
    });
    record_hours(&store, &mut w, &fx, 5);
    // The unit restarts with its clock 29 days ahead, unsynchronised.
    w.close("restart").unwrap();
    drop(w);
    drop(store);
    fx.clocks.set_synchronized(false);
    fx.clocks.reboot(Duration::from_secs(60));
    fx.clocks.step_wall(29 * DAY_NS);
    let (store, _) = fx.open();
    let mut w = store.writer("front").unwrap();
    w.set_clock(ClockState::UNKNOWN);
    record_hours(&store, &mut w, &fx, 3);
    let r = store.enforce_retention().unwrap();
    assert_eq!(r.expired, 0, "footage minutes old was deleted as expired");
    assert!(store.destructions().unwrap().is_empty());
    assert!(store.list("front", 0, i64::MAX).unwrap().len() >= 7);
}

#[test]
fn an_unsynchronised_unit_that_runs_36_days_deletes_by_age() {
    let mut fx = Fixture::new();
    hourly(&mut fx);
    // Never synchronised, and its wall clock a year behind.
    fx.clocks.set_synchronized(false);
    fx.clocks.step_wall(-365 * DAY_NS);
    let mut made = Vec::new();
    for half in 0..2 {
        // A restart halfway: the monotonic clock starts again, the running clock carries on.
        if half == 1 {
            fx.clocks.reboot(Duration::ZERO);
        }
        let (store, _) = fx.open();
        let mut w = store.writer("front").unwrap();
        made.extend(record_hours(&store, &mut w, &fx, 18 * 24));
        if half == 1 {
            let now = fx.clocks.wall_ns();
            let limit = 28 * DAY_NS;
            let kept: Vec<_> = store.list("front", i64::MIN, i64::MAX).unwrap();
            // Kept: nothing older than 28 days (ages here are exact: no power-off time).
            for e in &kept {
                assert!(
                    now - e.segment.start_ns <= limit + 3_600_000_000_000,
                    "{e:?} kept too long"
                );
            }
            // Deleted: each older than 28 days when deleted, the clock named.
            let gone = store.destructions().unwrap();
            assert!(gone.len() >= 7 * 24, "{} deleted", gone.len());
            for (entry, d) in &gone {
                assert!(
                    entry.time_ns - d.segment.start_ns > limit,
                    "segment {} deleted at age {} days",
                    d.segment.seq,
                    (entry.time_ns - d.segment.start_ns) as f64 / DAY_NS as f64
                );
                let clock = d.clock.as_deref().unwrap_or("");
                assert!(
                    clock.contains("running clock") && clock.contains("not synchronised now"),
                    "{clock}"
                );
            }
            // The boundary: footage a little younger than 28 days is all there.
            let young = made
                .iter()
                .filter(|m| now - m.start_ns < limit - 3_600_000_000_000)
                .count();
            assert!(
                kept.len() >= young,
                "{} kept, {young} younger than 28 days",
                kept.len()
            );
        }
        w.close("restart").unwrap();
    }
}

#[test]
fn a_synchronised_unit_records_the_wall_clock_in_its_deletions() {
    let mut fx = Fixture::new();
    hourly(&mut fx);
    let (store, _) = fx.open();
    let mut w = store.writer("front").unwrap();
    w.set_clock(ClockState {
        synchronized: true,
        max_error_us: Some(100),
    });
    record_hours(&store, &mut w, &fx, 30 * 24);
    let gone = store.destructions().unwrap();
    assert!(!gone.is_empty());
    for (_, d) in gone {
        assert!(
            d.clock
                .as_deref()
                .is_some_and(|c| c.contains("by the wall clock, synchronised")),
            "{d:?}"
        );
    }
}

/// A tmpfs of `size`, mounted for one test and unmounted after it.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let ok = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "rdc-small-disk",
            ])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "this test mounts a small tmpfs to fill: run it as root (as .ci/run does)"
        );
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Pushes `secs` of 25 fps frames of 20 kB (500 kB/s), a keyframe a second, running retention
/// every simulated minute as the daemon does. Returns (frames refused by the disk, segments made).
fn record_secs(
    store: &Store,
    w: &mut SegmentWriter,
    fx: &Fixture,
    secs: u64,
) -> (u64, Vec<Manifest>) {
    let (mut failed, mut made) = (0, Vec::new());
    for i in 0..secs * 25 {
        let wall = fx.clocks.wall_ns();
        let mut data = frame_bytes(wall);
        data.resize(20_000, (i % 251) as u8);
        let p = w
            .push(&Frame {
                data: &data,
                keyframe: i % 25 == 0,
                wall_ns: wall,
                mono_ns: fx.clocks.mono_ns(),
            })
            .expect("a full disk must not stop the writer");
        failed += u64::from(p.failed.is_some());
        made.extend(p.closed);
        if i % (25 * 60) == 25 * 60 - 1 {
            store.enforce_retention().unwrap();
        }
        fx.clocks.advance(Duration::from_nanos(FRAME_NS as u64));
    }
    (failed, made)
}

/// Seconds of footage in `[from, to)` among the camera's segments.
fn covered(store: &Store, camera: &str, from: i64, to: i64) -> f64 {
    store
        .list(camera, from, to)
        .unwrap()
        .iter()
        .map(|e| (e.segment.end_ns.min(to) - e.segment.start_ns.max(from)).max(0) as f64 / 1e9)
        .sum()
}

#[test]
fn a_budget_larger_than_the_disk_and_a_disk_filled_by_others_never_stop_recording() {
    let disk = SmallDisk::mount("24m");
    let mut fx = Fixture::new();
    fx.cfg.root = disk.path().join("store");
    fx.cfg.budget = Budget::MaxBytes(1 << 40); // far more than the disk
    fx.cfg.segment_ns = 2_000_000_000;
    let (store, _) = fx.open();
    assert!(
        store.budget_bytes().unwrap() < 24 << 20,
        "the disk bounds the budget"
    );
    let mut w = store.writer("front").unwrap();
    // 150 s at 500 kB/s is three times the disk.
    let (failed, _) = record_secs(&store, &mut w, &fx, 150);
    assert_eq!(failed, 0, "the budget kept the disk from filling");
    // The disk holds about 40 s: the newest 30 s are all there (the open segment aside).
    let t = fx.clocks.wall_ns();
    let got = covered(&store, "front", t - 30_000_000_000, t);
    assert!(got > 27.0, "{got:.1} s of the newest 30 s");
    // Something else fills the rest of the disk.
    let mut filler = std::fs::File::create(disk.path().join("filler")).unwrap();
    let block = vec![0u8; 1 << 16];
    while std::io::Write::write_all(&mut filler, &block).is_ok() {}
    drop(filler);
    let (failed, _) = record_secs(&store, &mut w, &fx, 60);
    // The filler left nothing free: a write mid-segment met ENOSPC. That segment was closed at
    // its last sync with the cause, and the gap until the next keyframe is in the record.
    assert!(
        failed >= 1,
        "the disk never refused a write: the failure path was not exercised"
    );
    assert!(
        failed <= 50,
        "{failed} frames refused: more than two seconds lost"
    );
    let ms = manifests_of(&store, "front");
    assert!(
        ms.iter().any(|m| matches!(&m.ended, Ended::Stopped { cause } if cause.contains("disk failed or was full"))),
        "no segment closed for the full disk"
    );
    assert!(
        ms.iter().any(
            |m| matches!(&m.ended, Ended::Lost { cause } if cause.starts_with("not recorded"))
        ),
        "the gap is not in the signed record"
    );
    let to = fx.clocks.wall_ns();
    let got = covered(&store, "front", to - 30_000_000_000, to);
    assert!(got > 27.0, "only {got:.1} s of the newest 30 s recorded");
    w.close("stop").unwrap();
    // No empty or stray files; every deletion logged with its cause; the store verifies.
    for e in std::fs::read_dir(fx.cfg.root.join("segments/front"))
        .unwrap()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        assert!(name.ends_with(".age"), "{name} left behind");
        assert!(e.metadata().unwrap().len() > 0, "{name} is empty");
    }
    let gone = store.destructions().unwrap();
    // Every signed segment is accounted for: its file is on disk, or the destruction log
    // records its deletion, or it is a gap record that says it never held footage (no file,
    // no frames) and that the destruction log agrees nothing was deleted.
    let destroyed: std::collections::HashSet<u64> = gone
        .iter()
        .filter(|(_, d)| d.segment.camera == "front")
        .map(|(_, d)| d.segment.seq)
        .collect();
    let dir = fx.cfg.root.join("segments/front");
    let mut gap_records = 0;
    for m in &ms {
        let on_disk = !m.file.is_empty() && dir.join(&m.file).exists();
        let logged = destroyed.contains(&m.seq);
        match &m.ended {
            Ended::Lost { cause } if cause.starts_with("not recorded") => {
                gap_records += 1;
                assert!(
                    m.file.is_empty() && m.frames == 0 && m.ciphertext_len == 0 && !logged,
                    "gap record {}: {m:?}",
                    m.seq
                );
            }
            Ended::Lost { .. } => assert!(logged, "lost segment {} unlogged", m.seq),
            _ => assert!(
                on_disk != logged,
                "segment {}: on disk {on_disk}, deletion logged {logged}",
                m.seq
            ),
        }
    }
    assert!(gap_records >= 1);
    assert!(gone.iter().any(|(_, d)| d.why.contains("over its budget")));
    assert!(
        gone.iter()
            .any(|(_, d)| d.why.contains("disk was nearly full")),
        "the filler was made room for"
    );
    let problems = store.verify(true).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    drop(w);
    drop(store);
    let (_store, report) = fx.open();
    assert!(
        report.unaccounted_files.is_empty() && report.missing_files.is_empty(),
        "{report:?}"
    );
}

#[test]
fn a_garbled_log_line_neither_stops_the_store_nor_hides_from_verify() {
    let fx = Fixture::new();
    {
        let (store, _) = fx.open();
        for i in 0..5 {
            store
                .audit(&AuditRecord {
                    who: format!("w{i}"),
                    ..Default::default()
                })
                .unwrap();
        }
    }
    // A failing disk turns part of entry 2 into bytes that are not even UTF-8.
    let p = fx.cfg.root.join("logs/audit.jsonl");
    let mut bytes = std::fs::read(&p).unwrap();
    let line3 = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(1)
        .unwrap()
        .0
        + 5;
    bytes[line3] = 0xff;
    bytes[line3 + 1] = 0xfe;
    std::fs::write(&p, &bytes).unwrap();
    let (store, _) = fx.open();
    store.audit(&AuditRecord::default()).unwrap();
    let problems = store.verify(false).unwrap();
    assert!(
        problems
            .iter()
            .any(|m| m.contains("audit.jsonl line 3: not a log entry")),
        "{problems:?}"
    );
    let (ro, _) = Store::open_read_only(fx.cfg.clone(), fx.clocks.clone()).unwrap();
    assert_eq!(
        ro.audit_entries(0).unwrap().len(),
        5,
        "the readable entries are all read"
    );
}

/// Logging people's requests never costs footage: the audit log has its allowance set aside,
/// so the budget stays where it was as it grows within it; once it fills it, the store says so
/// (the uplink then refuses requests rather than log them).
#[test]
fn logs_growing_within_their_allowance_leave_the_footage_budget_alone() {
    let disk = SmallDisk::mount("24m");
    let mut fx = Fixture::new();
    fx.cfg.root = disk.path().join("store");
    fx.cfg.budget = Budget::MaxBytes(1 << 40);
    let (store, _) = fx.open();
    let (used0, allowance) = store.log_space().unwrap();
    assert_eq!(allowance, 2 << 20, "a fiftieth of 24 MiB, at least 2 MiB");
    let b0 = store.budget_bytes().unwrap();
    let entry = |i: u64| AuditRecord {
        who: "J. Smith (sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef)"
            .into(),
        role: rdc_format::Actor::Person(rdc_format::Role::Officer),
        action: "fetch".into(),
        camera: Some("front".into()),
        seq: Some(i),
        case_ref: Some("ASB/2026/0042".into()),
        reason: Some("a script fetching in a loop".into()),
        outcome: rdc_format::Outcome::Granted,
        bytes: Some(1_250_000),
        ..Default::default()
    };
    let mut i = 0;
    while store.log_space().unwrap().0 < used0 + (3 << 19) {
        store.audit(&entry(i)).unwrap();
        i += 1;
    }
    let b1 = store.budget_bytes().unwrap();
    assert!(
        b0.abs_diff(b1) < 64 << 10,
        "{i} audit entries moved the footage budget from {b0} to {b1}"
    );
    // Past the allowance, the store says the log space is full.
    while store.log_space().unwrap().0 < allowance {
        store.audit(&entry(i)).unwrap();
        i += 1;
    }
    let (used, allowance) = store.log_space().unwrap();
    assert!(used >= allowance);
}
