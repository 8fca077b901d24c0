//! Store tests on real files: round trip through the `age` crate, power cuts (a child process
//! SIGKILLed at random points), 35 days of retention on a simulated clock, tampering, index
//! loss, holds.

use std::io::{BufRead as _, Read as _};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng as _;

use super::*;
use crate::clock::DAY_NS;

/// Who holds footage: a manager.
const MANAGER: rdc_format::Actor = rdc_format::Actor::Person(rdc_format::Role::Manager);

/// 2026-11-01T00:00:00Z.
const BASE: i64 = 1_793_491_200_000_000_000;
const FRAME_NS: i64 = 40_000_000;

struct Fixture {
    dir: tempfile::TempDir,
    clocks: Arc<SimulatedClocks>,
    key: Arc<UnitKey>,
    identity: age::x25519::Identity,
    cfg: StoreConfig,
}

fn recipient_of(id: &age::x25519::Identity) -> [u8; 32] {
    rdc_config::Recipient::parse_key(&id.to_public().to_string()).unwrap()
}

fn fast_tempdir() -> tempfile::TempDir {
    // tmpfs where there is one: fsync is a no-op there, and these tests are about logic, not
    // disks (the crash test uses the real disk).
    tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap()
}

impl Fixture {
    fn new() -> Self {
        Self::in_dir(fast_tempdir())
    }

    fn in_dir(dir: tempfile::TempDir) -> Self {
        let identity = age::x25519::Identity::generate();
        let cfg = StoreConfig {
            budget: Budget::MaxBytes(1 << 40),
            segment_ns: 10_000_000_000,
            index_cache_bytes: 1 << 20,
            ..StoreConfig::new(
                dir.path().join("store"),
                "unit-test",
                vec![recipient_of(&identity)],
            )
        };
        Fixture {
            dir,
            clocks: Arc::new(SimulatedClocks::new(BASE)),
            key: Arc::new(UnitKey::ephemeral()),
            identity,
            cfg,
        }
    }

    fn open(&self) -> (Store, OpenReport) {
        Store::open(self.cfg.clone(), self.key.clone(), self.clocks.clone()).unwrap()
    }

    fn decrypt(&self, path: &Path) -> Vec<u8> {
        decrypt_with(&self.identity, path)
    }
}

fn decrypt_with(identity: &age::x25519::Identity, path: &Path) -> Vec<u8> {
    let f = std::fs::File::open(path).unwrap();
    let d = age::Decryptor::new(f)
        .unwrap_or_else(|e| panic!("{}: not an age file: {e}", path.display()));
    let mut r = d
        .decrypt(std::iter::once(identity as &dyn age::Identity))
        .unwrap();
    let mut out = Vec::new();
    r.read_to_end(&mut out)
        .unwrap_or_else(|e| panic!("{}: payload does not authenticate: {e}", path.display()));
    out
}

/// Deterministic frame content for the frame at `wall_ns`: its size varies, so chunk boundaries
/// fall everywhere.
fn frame_bytes(wall_ns: i64) -> Vec<u8> {
    let k = (wall_ns / FRAME_NS) as u64;
    let len = 300 + (k.wrapping_mul(2_654_435_761) % 9000) as usize;
    (0..len).map(|i| (k as usize * 31 + i * 7) as u8).collect()
}

/// The plaintext of `frames` consecutive frames from `start_ns`.
fn expected(start_ns: i64, frames: u64) -> Vec<u8> {
    (0..frames as i64)
        .flat_map(|i| frame_bytes(start_ns + i * FRAME_NS))
        .collect()
}

/// Pushes `n` frames at 25 fps from the clocks' current time, a keyframe every `gop` frames.
fn push_frames(w: &mut SegmentWriter, clocks: &SimulatedClocks, n: u64, gop: u64) -> Vec<Manifest> {
    let mut closed = Vec::new();
    for i in 0..n {
        let wall = clocks.wall_ns();
        let data = frame_bytes(wall);
        let p = w
            .push(&Frame {
                data: &data,
                keyframe: i % gop == 0,
                wall_ns: wall,
                mono_ns: clocks.mono_ns(),
            })
            .unwrap();
        closed.extend(p.closed);
        clocks.advance(Duration::from_nanos(FRAME_NS as u64));
    }
    closed
}

#[test]
fn round_trip_through_the_age_crate() {
    let fx = Fixture::new();
    let (store, _) = fx.open();
    let mut w = store.writer("front").unwrap();
    w.set_clock(ClockState {
        synchronized: true,
        max_error_us: Some(1500),
    });
    let mut closed = push_frames(&mut w, &fx.clocks, 25 * 35, 25);
    closed.extend(w.close("test ends").unwrap());
    assert_eq!(closed.len(), 4, "10 s segments cut at 1 s GOPs over 35 s");
    let listed = store
        .list("front", BASE, BASE + 60 * 1_000_000_000)
        .unwrap();
    assert_eq!(listed.len(), 4);
    for (m, e) in closed.iter().zip(&listed) {
        assert_eq!(
            (m.seq, m.start_ns, m.end_ns, m.ciphertext_len),
            (
                e.segment.seq,
                e.segment.start_ns,
                e.segment.end_ns,
                e.segment.bytes
            )
        );
        let plain = fx.decrypt(&store.segment_path("front", m.seq).unwrap());
        assert_eq!(plain.len() as u64, m.plaintext_len);
        assert_eq!(
            plain,
            expected(m.start_ns, m.frames),
            "segment {} bytes differ",
            m.seq
        );
        assert!(m.clock.synchronized && m.clock_synced_throughout);
        assert_eq!(m.keyframes, m.frames.div_ceil(25));
    }
    // Segments are contiguous: each ends where the next begins, and the last ended for its cause.
    for pair in closed.windows(2) {
        assert_eq!(pair[0].end_ns, pair[1].start_ns);
        assert_eq!(pair[0].ended, Ended::Cut);
    }
    assert_eq!(
        closed[3].ended,
        Ended::Stopped {
            cause: "test ends".into()
        }
    );
    assert_eq!(closed.iter().map(|m| m.frames).sum::<u64>(), 25 * 35);
    assert!(
        store.verify(true).unwrap().is_empty(),
        "{:?}",
        store.verify(true)
    );
    // Private whatever the umask: segments and logs 0600, directories 0700.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&store.segment_path("front", 0).unwrap()), 0o600);
    assert_eq!(mode(&fx.cfg.root.join("logs/audit.jsonl")), 0o600);
    assert_eq!(mode(&fx.cfg.root.join("logs/manifests/front.jsonl")), 0o600);
    assert_eq!(mode(&fx.cfg.root.join("segments/front")), 0o700);
    // Resumable reads: any offset gives the file's bytes from there.
    let path = store.segment_path("front", 1).unwrap();
    let whole = std::fs::read(&path).unwrap();
    let r = store.open_segment("front", 1).unwrap();
    let mut buf = vec![0u8; 100_000];
    let n = r.read_at(12_345, &mut buf).unwrap();
    assert_eq!(&buf[..n], &whole[12_345..12_345 + n]);
    // The stock `age` tool decrypts a segment too, where it is installed.
    if let Ok(out) = std::process::Command::new("age").arg("--version").output()
        && out.status.success()
    {
        let idf = fx.dir.path().join("id.txt");
        use age::secrecy::ExposeSecret as _;
        std::fs::write(&idf, fx.identity.to_string().expose_secret()).unwrap();
        let out = std::process::Command::new("age")
            .arg("-d")
            .arg("-i")
            .arg(&idf)
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "age -d failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, fx.decrypt(&path));
    }
}

#[test]
fn segments_start_only_at_keyframes() {
    let fx = Fixture::new();
    let (store, _) = fx.open();
    let mut w = store.writer("front").unwrap();
    // Three frames before the first keyframe are dropped, not written headless.
    for _ in 0..3 {
        let wall = fx.clocks.wall_ns();
        let p = w
            .push(&Frame {
                data: b"delta",
                keyframe: false,
                wall_ns: wall,
                mono_ns: fx.clocks.mono_ns(),
            })
            .unwrap();
        assert!(p.dropped);
        fx.clocks.advance(Duration::from_nanos(FRAME_NS as u64));
    }
    // A 4 s GOP: segments run past 10 s to the next keyframe (12 s).
    let mut closed = push_frames(&mut w, &fx.clocks, 25 * 30, 100);
    closed.extend(w.close("stop").unwrap());
    assert_eq!(w.dropped_before_keyframe, 3);
    for m in &closed[..closed.len() - 1] {
        assert_eq!(
            m.duration_ns(),
            12_000_000_000,
            "segment {} cut at the first keyframe after 10 s",
            m.seq
        );
        assert_eq!(m.frames % 100, 0);
    }
}

#[test]
fn unsynced_tail_lost_synced_kept_when_writer_dies() {
    let fx = Fixture::new();
    let (store, _) = fx.open();
    let mut w = store.writer("front").unwrap();
    // 2.6 s of frames: syncs at 1 s and 2 s; 0.6 s after that never synced.
    push_frames(&mut w, &fx.clocks, 65, 25);
    let (seq, _, _) = w.current().unwrap();
    drop(w); // as a crash: the segment is left open, not closed
    drop(store);
    let (store, report) = fx.open();
    assert_eq!(report.recovered.len(), 1);
    let m = &report.recovered[0];
    assert_eq!(m.seq, seq);
    assert_eq!(m.ended, Ended::PowerLoss);
    // The sync at 2 s happened after frame 50 (the frame at t+2.0 s).
    assert_eq!(m.frames, 51);
    assert_eq!(
        m.end_ns,
        BASE + 50 * FRAME_NS,
        "ends at its last synced frame"
    );
    let plain = fx.decrypt(&store.segment_path("front", seq).unwrap());
    assert_eq!(plain, expected(BASE, 51));
    assert!(store.verify(true).unwrap().is_empty());
    // Recording goes on with the next sequence number.
    let mut w = store.writer("front").unwrap();
    let closed = push_frames(&mut w, &fx.clocks, 30, 25);
    assert!(closed.is_empty());
    assert_eq!(w.close("x").unwrap().unwrap().seq, seq + 1);
}

/// The child process of `power_cut_at_random_moments`: writes segments until killed, printing
/// what it made durable. Not a test of its own (ignored): the parent runs it with `--ignored`.
#[test]
#[ignore = "the child process of power_cut_at_random_moments, which runs it"]
fn crash_child() {
    let root = std::env::var("RDC_CRASH_CHILD_ROOT")
        .expect("run by power_cut_at_random_moments, which sets RDC_CRASH_CHILD_ROOT");
    let recipient = std::env::var("RDC_CRASH_CHILD_RECIPIENT").unwrap();
    let cfg = StoreConfig {
        budget: Budget::MaxBytes(1 << 40),
        segment_ns: 2_000_000_000,
        index_cache_bytes: 1 << 20,
        ..StoreConfig::new(
            root.into(),
            "unit-crash",
            vec![rdc_config::Recipient::parse_key(&recipient).unwrap()],
        )
    };
    let key = Arc::new(UnitKey::load_or_create(&cfg.root.join("../unit.key")).unwrap());
    // Continue the timeline after whatever the store already holds.
    let probe = Arc::new(SimulatedClocks::new(BASE));
    let (store, _) = Store::open(cfg.clone(), key.clone(), probe).unwrap();
    let start = store
        .status()
        .unwrap()
        .newest_ns
        .map_or(BASE, |n| (n / FRAME_NS + 50) * FRAME_NS);
    drop(store);
    let clocks = Arc::new(SimulatedClocks::new(start));
    let (store, _) = Store::open(cfg, key, clocks.clone()).unwrap();
    let mut w = store.writer("cam").unwrap();
    println!("OPENED");
    // Bounded, in case the parent dies without killing it.
    for i in 0..200_000u64 {
        let wall = clocks.wall_ns();
        let data = frame_bytes(wall);
        let p = w
            .push(&Frame {
                data: &data,
                keyframe: i % 25 == 0,
                wall_ns: wall,
                mono_ns: clocks.mono_ns(),
            })
            .unwrap();
        if let Some(m) = p.closed {
            println!("CLOSED {} {}", m.seq, m.frames);
        }
        if p.synced {
            let (seq, frames, _) = w.current().unwrap();
            println!("SYNC {seq} {frames}");
        }
        clocks.advance(Duration::from_nanos(FRAME_NS as u64));
    }
}

#[test]
fn power_cut_at_random_moments() {
    // The real disk, not tmpfs: fdatasync must mean something here.
    let fx = Fixture::in_dir(tempfile::tempdir().unwrap());
    let recipient = fx.identity.to_public().to_string();
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::thread_rng();
    let mut kills = 0;
    let (mut recovered_total, mut discarded_total) = (0, 0);
    for round in 0..20 {
        let mut child = std::process::Command::new(&exe)
            .args([
                "--exact",
                "tests::crash_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("RDC_CRASH_CHILD_ROOT", &fx.cfg.root)
            .env("RDC_CRASH_CHILD_RECIPIENT", &recipient)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Wait until it is writing, then let it run for a random while.
        // The harness prints "test tests::crash_child ... " before the child's own output.
        let opened = rx.iter().any(|l| l.ends_with("OPENED"));
        assert!(opened, "round {round}: child did not start");
        std::thread::sleep(Duration::from_millis(rng.gen_range(5..250)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        reader.join().unwrap();
        // What the child said was durable.
        let mut last_sync: Option<(u64, u64)> = None;
        let mut closed = Vec::new();
        for l in rx.try_iter() {
            let parts: Vec<&str> = l.split_whitespace().collect();
            match parts.as_slice() {
                [.., "SYNC", seq, frames] => {
                    last_sync = Some((seq.parse().unwrap(), frames.parse().unwrap()))
                }
                [.., "CLOSED", seq, frames] => {
                    closed.push((seq.parse::<u64>().unwrap(), frames.parse::<u64>().unwrap()))
                }
                _ => {}
            }
        }
        let mut cfg = fx.cfg.clone();
        cfg.unit_id = "unit-crash".into();
        cfg.segment_ns = 2_000_000_000;
        let key = Arc::new(UnitKey::load_or_create(&fx.cfg.root.join("../unit.key")).unwrap());
        let (store, report) = Store::open(cfg, key, fx.clocks.clone()).unwrap();
        recovered_total += report.recovered.len();
        discarded_total += report.discarded.len();
        // At most the one segment open at the kill (none if it fell between a commit and the
        // next segment's creation).
        assert!(
            report.recovered.len() + report.discarded.len() <= 1,
            "round {round}: {report:?}"
        );
        assert!(
            report.missing_files.is_empty() && report.unaccounted_files.is_empty(),
            "round {round}: {report:?}"
        );
        let manifests: Vec<Manifest> = store
            .manifests("cam", 0, u64::MAX)
            .unwrap()
            .into_iter()
            .map(|e| serde_json::from_value(e.body).unwrap())
            .collect();
        // Every closed segment the child reported is there, whole.
        for (seq, frames) in &closed {
            let m = manifests
                .iter()
                .find(|m| m.seq == *seq)
                .unwrap_or_else(|| panic!("round {round}: closed segment {seq} lost"));
            assert_eq!(m.frames, *frames);
        }
        // The segment open at the kill keeps at least what its last reported sync made durable.
        if let Some((seq, frames)) = last_sync
            && !closed.iter().any(|(s, _)| *s == seq)
        {
            let m = manifests
                .iter()
                .find(|m| m.seq == seq)
                .unwrap_or_else(|| panic!("round {round}: synced segment {seq} lost"));
            assert!(
                m.frames >= frames,
                "round {round}: segment {seq} has {} frames, {frames} were synced",
                m.frames
            );
        }
        // Sequence numbers are contiguous and the index agrees with the manifests.
        for (i, m) in manifests.iter().enumerate() {
            assert_eq!(
                m.seq, i as u64,
                "round {round}: manifest sequence has a hole"
            );
        }
        let listed = store.list("cam", 0, i64::MAX).unwrap();
        let kept: Vec<&Manifest> = manifests
            .iter()
            .filter(|m| !matches!(m.ended, Ended::Lost { .. }))
            .collect();
        assert_eq!(
            listed.len(),
            kept.len(),
            "round {round}: index disagrees with the manifests"
        );
        // A segment with nothing durable is accounted for: lost in its signed manifest, its
        // bytes in the destruction log.
        let destroyed = store.destructions().unwrap();
        for d in &report.discarded {
            let stem = d.rsplit('/').next().unwrap();
            assert!(
                destroyed
                    .iter()
                    .any(|(_, x)| x.segment.file == format!("{stem}.partial")
                        && x.why.contains("power failed")),
                "round {round}: discarded {d} not in the destruction log"
            );
            let seq: u64 = stem.split('-').next().unwrap().parse().unwrap();
            assert!(
                manifests
                    .iter()
                    .any(|m| m.seq == seq && matches!(m.ended, Ended::Lost { .. })),
                "round {round}: discarded {d} not in the signed record"
            );
        }
        // The newest segments decrypt to exactly the frames their manifests describe, with the
        // right times.
        for m in kept.iter().rev().take(3) {
            let plain = fx.decrypt(&store.segment_path("cam", m.seq).unwrap());
            assert_eq!(
                plain,
                expected(m.start_ns, m.frames),
                "round {round}: segment {} content",
                m.seq
            );
            let last_frame = m.start_ns + (m.frames as i64 - 1) * FRAME_NS;
            match m.ended {
                Ended::Cut => assert_eq!(m.end_ns, last_frame + FRAME_NS),
                Ended::PowerLoss => assert_eq!(m.end_ns, last_frame),
                Ended::Stopped { .. } => panic!("nobody stopped the child"),
                Ended::Lost { .. } => unreachable!("filtered out"),
            }
        }
        let problems = store.verify(false).unwrap();
        assert!(problems.is_empty(), "round {round}: {problems:?}");
    }
    assert_eq!(kills, 20);
    // A segment is durable from its first frame, so a kill finds something to recover unless
    // it lands between creating a segment's file and that first sync. The child starts a
    // segment every few milliseconds (simulated time), so here that happens now and then; each
    // such discard was checked above to be in the destruction log and the signed record.
    // (`hardening::a_new_segment_is_durable_from_its_first_frame` checks the first-frame sync.)
    assert!(recovered_total + discarded_total <= 20);
    assert!(
        recovered_total >= 5,
        "only {recovered_total} of 20 kills landed after a sync: the test is not exercising recovery"
    );
}

mod hardening;

#[test]
fn wall_clock_step_neither_reorders_nor_corrupts() {
    let fx = Fixture::new();
    let (store, _) = fx.open();
    let mut w = store.writer("front").unwrap();
    let mut closed = push_frames(&mut w, &fx.clocks, 100, 25);
    fx.clocks.step_wall(-3_600_000_000_000); // NTP steps the clock back an hour
    closed.extend(push_frames(&mut w, &fx.clocks, 400, 25));
    closed.extend(w.close("stop").unwrap());
    let seqs: Vec<u64> = closed.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (0..closed.len() as u64).collect::<Vec<_>>());
    assert_eq!(
        closed[0].wall_steps, 1,
        "the step is recorded in the segment it happened in"
    );
    for m in &closed {
        let plain = fx.decrypt(&store.segment_path("front", m.seq).unwrap());
        assert_eq!(plain.len() as u64, m.plaintext_len);
    }
    assert!(store.verify(true).unwrap().is_empty());
}

#[test]
fn a_second_process_is_refused_and_the_index_left_alone() {
    let fx = Fixture::new();
    let (store, _) = fx.open();
    let mut w = store.writer("front").unwrap();
    push_frames(&mut w, &fx.clocks, 300, 25);
    w.close("stop").unwrap();
    match Store::open(fx.cfg.clone(), fx.key.clone(), fx.clocks.clone()) {
        Err(Error::Busy(p)) => assert_eq!(p, fx.cfg.root),
        other => panic!("expected Busy, got {other:?}"),
    }
    // The running store is untouched.
    assert_eq!(store.list("front", 0, i64::MAX).unwrap().len(), 2);
    assert!(fx.cfg.root.join("index").exists());
}

#[test]
fn index_lost_or_corrupt_is_rebuilt() {
    let fx = Fixture::new();
    let listing = {
        let (store, _) = fx.open();
        for cam in ["a", "b"] {
            let mut w = store.writer(cam).unwrap();
            push_frames(&mut w, &fx.clocks, 600, 25);
            w.close("stop").unwrap();
        }
        store.destroy("a", 0, "test", "test").unwrap();
        (
            store.list("a", 0, i64::MAX).unwrap(),
            store.list("b", 0, i64::MAX).unwrap(),
        )
    };
    let index = fx.cfg.root.join("index");
    // Missing.
    std::fs::remove_dir_all(&index).unwrap();
    {
        let (store, report) = fx.open();
        assert!(report.replayed > 0);
        assert_eq!(
            (
                store.list("a", 0, i64::MAX).unwrap(),
                store.list("b", 0, i64::MAX).unwrap()
            ),
            listing
        );
    }
    // Corrupt: every file in it overwritten with garbage.
    for f in walk(&index) {
        std::fs::write(&f, vec![0xAB; 4096]).unwrap();
    }
    let (store, report) = fx.open();
    assert!(
        report.index_rebuilt.is_some() || report.replayed > 0,
        "{report:?}"
    );
    assert_eq!(
        (
            store.list("a", 0, i64::MAX).unwrap(),
            store.list("b", 0, i64::MAX).unwrap()
        ),
        listing
    );
    assert!(store.verify(true).unwrap().is_empty());
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn tampering_is_named() {
    let fx = Fixture::new();
    let (store, _) = fx.open();
    let mut w = store.writer("front").unwrap();
    push_frames(&mut w, &fx.clocks, 25 * 50, 25);
    w.close("stop").unwrap();
    for (i, who) in ["j.smith", "a.jones", "j.smith"].iter().enumerate() {
        store
            .audit(&AuditRecord {
                who: (*who).into(),
                role: rdc_format::Actor::Person(rdc_format::Role::Officer),
                action: "fetch".into(),
                seq: Some(i as u64),
                outcome: rdc_format::Outcome::Granted,
                ..Default::default()
            })
            .unwrap();
    }
    assert!(store.verify(true).unwrap().is_empty());
    // A flipped byte in segment 1.
    let p1 = store.segment_path("front", 1).unwrap();
    let mut b = std::fs::read(&p1).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 1;
    std::fs::write(&p1, b).unwrap();
    // Segment 3 removed.
    let p3 = store.segment_path("front", 3).unwrap();
    std::fs::remove_file(&p3).unwrap();
    // Audit entry 1 edited to hide who looked.
    let audit = fx.cfg.root.join("logs/audit.jsonl");
    let text = std::fs::read_to_string(&audit).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines[1] = lines[1].replace("a.jones", "nobody");
    std::fs::write(&audit, lines.join("\n") + "\n").unwrap();

    let problems = store.verify(true).unwrap();
    let has = |needle: &str| problems.iter().any(|p| p.contains(needle));
    assert!(
        has(&format!(
            "{}: segment 1 does not match",
            p1.file_name().unwrap().to_string_lossy()
        )),
        "{problems:#?}"
    );
    assert!(
        has(&format!(
            "{}: segment 3 is missing",
            p3.file_name().unwrap().to_string_lossy()
        )),
        "{problems:#?}"
    );
    assert!(
        has("audit.jsonl line 2: entry 1 was edited"),
        "{problems:#?}"
    );
    assert_eq!(problems.len(), 3, "{problems:#?}");
}

#[test]
fn holds_are_recorded_capped_and_lapse() {
    let mut fx = Fixture::new();
    fx.cfg.budget = Budget::MaxBytes(4 << 20);
    let (store, _) = fx.open();
    let mut w = store.writer("front").unwrap();
    push_frames(&mut w, &fx.clocks, 25 * 60, 25);
    w.close("stop").unwrap();
    let now = fx.clocks.wall_ns();
    let req = |from, to, case: &str| HoldRequest {
        cameras: vec!["front".into()],
        from_ns: from,
        to_ns: to,
        case_ref: case.into(),
        reason: "assault on the doorstep".into(),
        who: "m.manager".into(),
        review_ns: now + 30 * DAY_NS,
    };
    // No case reference: refused.
    assert!(matches!(
        store.create_hold(req(BASE, BASE + 10, ""), MANAGER),
        Err(Error::HoldRefused(_))
    ));
    // A minute of footage (about 7 MB) is over half the 4 MiB budget: refused, and says why.
    match store.create_hold(req(BASE, now, "C/1"), MANAGER) {
        Err(Error::HoldRefused(m)) => assert!(m.contains("cap"), "{m}"),
        other => panic!("{other:?}"),
    }
    let h = store
        .create_hold(req(BASE, BASE + 5_000_000_000, "C/2"), MANAGER)
        .unwrap();
    assert_eq!(store.holds().unwrap(), vec![h.clone()]);
    // Survives a reopen.
    drop(w);
    drop(store);
    let (store, _) = fx.open();
    assert_eq!(store.holds().unwrap().len(), 1);
    // Past its review date it lapses, and that is logged.
    fx.clocks.advance(Duration::from_secs(31 * 86_400));
    let entries = store.audit_entries(0).unwrap().len();
    assert!(store.holds().unwrap().is_empty());
    // Looking at the holds writes nothing; the retention run logs the lapse.
    assert_eq!(store.audit_entries(0).unwrap().len(), entries);
    assert_eq!(store.enforce_retention().unwrap().lapsed_holds.len(), 1);
    let audit = store.audit_entries(0).unwrap();
    assert!(
        audit
            .iter()
            .any(|(_, a)| a.action == "hold_created" && a.case_ref.as_deref() == Some("C/2"))
    );
    assert!(
        audit
            .iter()
            .any(|(_, a)| a.action == "hold_lapsed" && a.case_ref.as_deref() == Some("C/2"))
    );
    assert!(matches!(
        store.release_hold(h.id, ("m", MANAGER), "done"),
        Err(Error::NoSuchHold(_))
    ));
    assert!(store.verify(false).unwrap().is_empty());
}

#[test]
fn retention_over_35_days_with_4_cameras() {
    let mut fx = Fixture::new();
    fx.cfg.retention_days = 28;
    fx.cfg.segment_ns = 3_600_000_000_000; // hourly segments keep the file count small
    let (store, _) = fx.open();
    let cams = ["c1", "c2", "c3", "c4"];
    let mut writers: Vec<_> = cams.iter().map(|c| store.writer(c).unwrap()).collect();
    let mut hold = None;
    let mut all_made = std::collections::BTreeSet::new();
    // One frame a camera every 15 simulated minutes, a keyframe each.
    let steps = 35 * 24 * 4;
    for step in 0..steps {
        let wall = fx.clocks.wall_ns();
        let mono = fx.clocks.mono_ns();
        for w in &mut writers {
            let data = vec![step as u8; 4000];
            if let Some(m) = w
                .push(&Frame {
                    data: &data,
                    keyframe: true,
                    wall_ns: wall,
                    mono_ns: mono,
                })
                .unwrap()
                .closed
            {
                all_made.insert((m.camera.clone(), m.seq));
            }
        }
        if step == 3 * 24 * 4 {
            hold = Some(
                store
                    .create_hold(
                        HoldRequest {
                            cameras: vec!["c1".into()],
                            from_ns: BASE + DAY_NS,
                            to_ns: BASE + 2 * DAY_NS,
                            case_ref: "POL/123".into(),
                            reason: "criminal damage".into(),
                            who: "m.manager".into(),
                            review_ns: BASE + 90 * DAY_NS,
                        },
                        MANAGER,
                    )
                    .unwrap(),
            );
        }
        if step % 4 == 3 {
            store.enforce_retention().unwrap(); // hourly here; the daemon runs it every minute
            let now = fx.clocks.wall_ns();
            let cutoff = now - 28 * DAY_NS;
            for c in cams {
                for e in store.list(c, 0, cutoff).unwrap() {
                    let held = hold.as_ref().is_some_and(|h: &Hold| {
                        h.covers(&e.segment.camera, e.segment.start_ns, e.segment.end_ns, now)
                    });
                    assert!(
                        e.segment.start_ns >= cutoff || held,
                        "day {}: {}/{} older than retention survives",
                        step / 96,
                        c,
                        e.segment.seq
                    );
                }
            }
        }
        fx.clocks.advance(Duration::from_secs(900));
    }
    let now = fx.clocks.wall_ns();
    // The boundary both ways: nothing was deleted while younger than 28 days, and every hour of
    // the last 28 days is still there on every camera (the open segment aside).
    for (entry, d) in store.destructions().unwrap() {
        assert!(
            entry.time_ns - d.segment.start_ns > 28 * DAY_NS,
            "{}/{} deleted at {:.2} days old",
            d.segment.camera,
            d.segment.seq,
            (entry.time_ns - d.segment.start_ns) as f64 / DAY_NS as f64
        );
    }
    for c in cams {
        let kept = store.list(c, now - 28 * DAY_NS, i64::MAX).unwrap();
        assert!(
            kept.len() >= 28 * 24 - 1,
            "{c}: {} of the last 28 days' hours kept",
            kept.len()
        );
    }
    // Held footage survived: the whole of day 1 on c1, and only on c1.
    let held = store.list("c1", BASE + DAY_NS, BASE + 2 * DAY_NS).unwrap();
    assert_eq!(held.len(), 24, "{held:?}");
    assert!(
        store
            .list("c2", BASE + DAY_NS, BASE + 2 * DAY_NS)
            .unwrap()
            .is_empty()
    );
    // Every segment made is either still there or in the destruction log, never both.
    let destroyed: std::collections::BTreeSet<(String, u64)> = store
        .destructions()
        .unwrap()
        .into_iter()
        .map(|(_, d)| (d.segment.camera, d.segment.seq))
        .collect();
    let present: std::collections::BTreeSet<(String, u64)> = cams
        .iter()
        .flat_map(|c| store.list(c, 0, i64::MAX).unwrap())
        .map(|e| (e.segment.camera, e.segment.seq))
        .collect();
    assert!(destroyed.is_disjoint(&present));
    assert_eq!(
        destroyed
            .union(&present)
            .cloned()
            .collect::<std::collections::BTreeSet<_>>(),
        all_made
    );
    assert!(
        destroyed.len() > 4 * 24 * 6,
        "about a week of 4 cameras deleted, got {}",
        destroyed.len()
    );
    for (_, d) in store.destructions().unwrap() {
        assert!(
            d.why.contains("retention period of 28 days")
                && d.authority.contains("storage.retention_days = 28"),
            "{d:?}"
        );
    }
    assert!(store.verify(false).unwrap().is_empty());

    // A smaller disk: the budget now holds about 10 days. The oldest go first, held stays, and
    // the store says how many days it really holds.
    let status = store.status().unwrap();
    let per_day = status.total_bytes as f64 / 28.0;
    drop(writers);
    drop(store);
    fx.cfg.budget = Budget::MaxBytes((per_day * 10.0) as u64);
    let (store, _) = fx.open();
    let r = store.enforce_retention().unwrap();
    assert!(r.over_budget > 0);
    let s = store.status().unwrap();
    assert!(
        s.total_bytes <= s.budget_bytes,
        "{} > {}",
        s.total_bytes,
        s.budget_bytes
    );
    assert_eq!(
        store
            .list("c1", BASE + DAY_NS, BASE + 2 * DAY_NS)
            .unwrap()
            .len(),
        24,
        "held footage survives the budget too"
    );
    let cap = s.capacity_days.unwrap();
    assert!((8.0..10.5).contains(&cap), "capacity {cap} days");
    assert!(s.effective_retention_days() < 28.0);
    let oldest_unheld = cams
        .iter()
        .flat_map(|c| store.list(c, 0, i64::MAX).unwrap())
        .filter(|e| e.segment.start_ns > BASE + 2 * DAY_NS)
        .map(|e| e.segment.start_ns)
        .min()
        .unwrap();
    assert!(now - oldest_unheld < 11 * DAY_NS);
}

/// A camera's preview track: one keyframe in each slot of the interval, in its own signed,
/// encrypted segments, grouped under the camera in the status, verified like footage, deleted
/// by retention with the footage and kept by the camera's hold.
#[test]
fn previews_keep_one_keyframe_a_slot_under_the_same_rules() {
    let mut fx = Fixture::new();
    fx.cfg.preview_interval_ns = Some(10_000_000_000);
    fx.cfg.retention_days = 1;
    let (store, _) = fx.open();
    let mut w = store.writer("front").unwrap();
    let mut p = store.preview_writer("front").unwrap().expect("previews on");
    assert_eq!(p.track(), "front.preview");
    // Another track of the same name cannot be opened while this one is.
    assert!(store.writer("front.preview").is_err());
    // The clock starts on a slot boundary; 30 simulated minutes, a keyframe every 3 s.
    let mut kept = Vec::new();
    for i in 0..(30 * 60 * 25) {
        let (wall, mono) = (fx.clocks.wall_ns(), fx.clocks.mono_ns());
        let data = frame_bytes(wall);
        let f = Frame {
            data: &data,
            keyframe: i % 75 == 0,
            wall_ns: wall,
            mono_ns: mono,
        };
        w.push(&f).unwrap();
        if p.wants(f.keyframe, wall, mono) {
            p.push(&f).unwrap();
            kept.push(wall);
        }
        fx.clocks.advance(Duration::from_nanos(FRAME_NS as u64));
    }
    p.close("test").unwrap();
    w.close("test").unwrap();
    // 180 slots of 10 s, the first keyframe in each (keyframes at 0, 3, 6, 9, 12 s ... so a
    // slot's first is 0-2 s into it).
    assert_eq!(kept.len(), 180);
    for (k, t) in kept.iter().enumerate() {
        let into = t - (BASE + k as i64 * 10_000_000_000);
        assert!(
            (0..3_000_000_000).contains(&into),
            "preview {k} {into} ns into its slot"
        );
    }
    // Three 10-minute preview segments, decrypting to exactly the kept keyframes.
    let segs = store.list("front.preview", 0, i64::MAX).unwrap();
    assert_eq!(segs.len(), 3, "{segs:#?}");
    let mut plain = Vec::new();
    for e in &segs {
        plain.extend(fx.decrypt(&store.segment_path("front.preview", e.segment.seq).unwrap()));
    }
    let want: Vec<u8> = kept.iter().flat_map(|t| frame_bytes(*t)).collect();
    assert_eq!(plain, want);
    let m = store.manifests("front.preview", 0, u64::MAX).unwrap();
    assert_eq!(m.len(), 3);
    assert_eq!(m[0].body["camera"], "front.preview");
    assert_eq!(m[0].body["frames"], 60);
    // The status shows one camera, with its previews.
    let st = store.status().unwrap();
    assert_eq!(st.cameras.len(), 1, "{:#?}", st.cameras);
    let pv = st.cameras[0]
        .previews
        .clone()
        .expect("previews in the status");
    assert_eq!(pv.segments, 3);
    let footage: u64 = st.cameras[0].bytes;
    assert!(pv.bytes * 10 < footage, "{} of {footage}", pv.bytes);
    assert_eq!(store.verify(true).unwrap(), Vec::<String>::new());
    // A hold on the camera keeps its previews; retention deletes the rest with the footage.
    store
        .create_hold(
            HoldRequest {
                cameras: vec!["front".into()],
                from_ns: BASE,
                to_ns: BASE + 60_000_000_000,
                case_ref: "POL/9".into(),
                reason: "the first minute".into(),
                who: "m.manager".into(),
                review_ns: BASE + 30 * DAY_NS,
            },
            MANAGER,
        )
        .unwrap();
    fx.clocks.advance(Duration::from_secs(2 * 86_400));
    store.enforce_retention().unwrap();
    let left = store.list("front.preview", 0, i64::MAX).unwrap();
    assert_eq!(
        left.len(),
        1,
        "the held first preview segment only: {left:#?}"
    );
    assert_eq!(left[0].segment.seq, segs[0].segment.seq);
    assert_eq!(store.verify(true).unwrap(), Vec::<String>::new());
    // Reopened (the index rebuilt from the logs), the track is still there and still valid.
    drop((w, p, store));
    std::fs::remove_dir_all(fx.cfg.root.join("index")).unwrap();
    let (store, _) = fx.open();
    assert_eq!(store.list("front.preview", 0, i64::MAX).unwrap().len(), 1);
    assert!(store.writer("front.previews").is_err());
    assert!(store.writer("../front").is_err());
}

#[test]
fn track_names_follow_the_id_rule() {
    for s in [
        "front",
        "a",
        "cam_2",
        "-x",
        "Front",
        "",
        "a b",
        &"x".repeat(33),
    ] {
        assert_eq!(
            rdc_format::track::is_camera_id(s),
            rdc_config::Id::parse(s).is_ok(),
            "{s:?}"
        );
    }
}

/// A segment whose frames' times went back (a writer handed times that collapsed, as a camera
/// whose timestamps jumped back once made the recorder do) is named by verify: its signed range
/// is not positive.
#[test]
fn verify_names_a_segment_whose_frame_times_went_back() {
    let fx = Fixture::new();
    let (store, _) = fx.open();
    let mut w = store.writer("front").unwrap();
    let start = fx.clocks.wall_ns();
    let mono = fx.clocks.mono_ns();
    for i in 0..50i64 {
        // 2 s of frames, each dated 40 ms before the previous.
        let data = frame_bytes(start + i * FRAME_NS);
        w.push(&Frame {
            data: &data,
            keyframe: i % 25 == 0,
            wall_ns: start - i * FRAME_NS,
            mono_ns: mono,
        })
        .unwrap();
    }
    let closed = w.close("test ends").unwrap();
    let m = closed.unwrap();
    let problems = store.verify(true).unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p.contains(&format!("segment {} of 50 frames", m.seq))
                && p.contains("did not increase")),
        "{problems:?}"
    );
}

/// Retention that cannot read the index to the end says so, with what it did (item 8 of issue
/// 24: it used to log the error and report success): the oldest segment, read before the
/// damage, is deleted and logged; the run then fails naming the index, so the daemon logs it.
#[test]
fn retention_that_cannot_read_the_index_fails_and_says_what_it_did() {
    let mut fx = Fixture::new();
    {
        let (store, _) = fx.open();
        let mut w = store.writer("front").unwrap();
        push_frames(&mut w, &fx.clocks, 25 * 45, 25);
        w.close("test ends").unwrap();
    }
    // A budget of about two segments: retention must delete the older ones.
    let (store, _) = fx.open();
    let per = store.status().unwrap().total_bytes / 5;
    drop(store);
    fx.cfg.budget = Budget::MaxBytes(per * 2);
    let (store, _) = fx.open();
    store.corrupt_index_for_test("front", 1);
    let err = store.enforce_retention().unwrap_err().to_string();
    assert!(
        err.contains("retention read it only in part") && err.contains("1 segment(s)"),
        "{err}"
    );
    let gone = store.destructions().unwrap();
    assert_eq!(gone.len(), 1, "{gone:?}");
    assert_eq!(gone[0].1.segment.seq, 0);
}

/// The digest of a file's pieces, computed here from the file as `rdc` would from what it was
/// served.
fn pieces_digest(bytes: &[u8], m: &Manifest) -> String {
    use rdc_format::stills::{CHUNK_CT, header_len, leaf, leaves_digest};
    let h = header_len(m).unwrap() as usize;
    let mut leaves = vec![leaf(&bytes[..h])];
    leaves.extend(bytes[h..].chunks(CHUNK_CT as usize).map(leaf));
    leaves_digest(&leaves)
}

#[test]
fn a_segment_signs_its_pieces_and_where_its_keyframes_are() {
    let fx = Fixture::new();
    let (store, _) = fx.open();
    let mut w = store.writer("front").unwrap();
    // 8 s at 25 fps, a keyframe every 2 s.
    push_frames(&mut w, &fx.clocks, 200, 50);
    let m = w.close("stop").unwrap().unwrap();
    let path = store.segment_path("front", m.seq).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(
        m.chunks_sha256.as_deref(),
        Some(&*pieces_digest(&bytes, &m))
    );
    let ix = m
        .index
        .as_ref()
        .expect("a footage segment has a frame index");
    // Each keyframe where its bytes start in the plaintext, at its time.
    let plain = fx.decrypt(&path);
    let starts: Vec<[u64; 2]> = (0..4u64)
        .map(|k| {
            let t = BASE + (k * 50) as i64 * FRAME_NS;
            let off = expected(BASE, k * 50).len() as u64;
            assert!(plain[off as usize..].starts_with(&frame_bytes(t)));
            [off, (k * 50) * FRAME_NS as u64]
        })
        .collect();
    assert_eq!(ix.keyframes, starts);
    assert_eq!(
        ix.chunk_ms.len() as u64,
        rdc_format::stills::chunk_count(m.plaintext_len)
    );
    // A still at 5.5 s is served from the keyframe at 4 s.
    let run = rdc_format::stills::plan(&m, BASE + 5_500_000_000).unwrap();
    assert_eq!(run.keyframe_ns, 4_000_000_000);
    let (_, end) = run.plaintext_range(m.plaintext_len);
    assert!(end >= expected(BASE, (5_700 / 40) + 1).len() as u64);

    // A segment closed by a power cut: its pieces are hashed from the file at recovery; it has
    // no index (the unit cannot read where its frames are), so a still costs all of it.
    drop(w);
    let mut w = store.writer("front").unwrap();
    push_frames(&mut w, &fx.clocks, 65, 25);
    drop(w);
    drop(store);
    let (store, report) = fx.open();
    let m = &report.recovered[0];
    let bytes = std::fs::read(store.segment_path("front", m.seq).unwrap()).unwrap();
    assert_eq!(m.chunks_sha256.as_deref(), Some(&*pieces_digest(&bytes, m)));
    assert!(m.index.is_none());
    assert!(rdc_format::stills::plan(m, m.start_ns).unwrap().whole);
}
