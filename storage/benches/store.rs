//! Store benchmarks (figures go in BENCHMARKS.md; nothing here is asserted).
//!
//! `cargo bench -p rdc-storage --bench store -- [write] [open] [SEGMENTS]`
//!
//! - write: store write throughput on one core against ring's raw ChaCha20-Poly1305 sealing the
//!   same bytes in 64 KiB chunks, and SHA-256 alone (the manifest hash), on tmpfs.
//! - open: open/recovery time and peak memory (VmHWM) of a process that opens a store holding
//!   SEGMENTS segments (default 201,600: 35 days x 4 cameras x 60 s).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdc_storage::{Budget, Frame, SimulatedClocks, Store, StoreConfig, UnitKey};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};

const BASE: i64 = 1_793_491_200_000_000_000;

fn cfg(root: &std::path::Path) -> StoreConfig {
    // An X25519 recipient; the bench never decrypts.
    let recipient = [9u8; 32];
    StoreConfig {
        retention_days: 35,
        budget: Budget::MaxBytes(1 << 50),
        index_cache_bytes: std::env::var("RDC_CACHE_MIB")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(2)
            << 20,
        ..StoreConfig::new(root.to_owned(), "bench", vec![recipient])
    }
}

fn cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn bench_write() {
    const TOTAL: usize = 512 << 20;
    // 4 Mbit/s at 25 fps: 20 kB frames, a keyframe a second, a sync a second.
    let frame: Vec<u8> = (0..20_000).map(|i| (i * 31 % 251) as u8).collect();
    let frames = TOTAL / frame.len();
    let bytes = frames * frame.len();

    // Raw: ring's ChaCha20-Poly1305 over the same bytes, 64 KiB chunks, one buffer.
    let key = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &[7u8; 32]).unwrap());
    let mut buf = vec![0u8; 64 * 1024];
    let chunks = bytes / buf.len();
    let t = cpu_time();
    for i in 0..chunks {
        buf.truncate(64 * 1024);
        let mut n = [0u8; 12];
        n[3..11].copy_from_slice(&(i as u64).to_be_bytes());
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key(n), Aad::empty(), &mut buf)
            .unwrap();
    }
    let raw = (chunks * 64 * 1024) as f64 / (cpu_time() - t).as_secs_f64();

    let t = cpu_time();
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for _ in 0..frames {
        ctx.update(&frame);
    }
    std::hint::black_box(ctx.finish());
    let sha = bytes as f64 / (cpu_time() - t).as_secs_f64();

    let dir = tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap();
    let clocks = Arc::new(SimulatedClocks::new(BASE));
    let (store, _) = Store::open(cfg(dir.path()), Arc::new(UnitKey::ephemeral()), clocks).unwrap();
    let mut w = store.writer("cam").unwrap();
    let t = cpu_time();
    let wall = Instant::now();
    for i in 0..frames as i64 {
        let ts = i * 40_000_000;
        w.push(&Frame {
            data: &frame,
            keyframe: i % 25 == 0,
            wall_ns: BASE + ts,
            mono_ns: ts as u64,
        })
        .unwrap();
    }
    w.close("bench").unwrap();
    let store_rate = bytes as f64 / (cpu_time() - t).as_secs_f64();
    let wall_s = wall.elapsed().as_secs_f64();
    let ideal = 1.0 / (1.0 / raw + 1.0 / sha);
    println!(
        "write: {} MiB in 20 kB frames, one core, tmpfs",
        bytes >> 20
    );
    println!(
        "  ring ChaCha20-Poly1305 raw     {:8.0} MiB/s",
        raw / 1048576.0
    );
    println!(
        "  ring SHA-256 alone             {:8.0} MiB/s",
        sha / 1048576.0
    );
    println!(
        "  seal + SHA-256 (ideal)         {:8.0} MiB/s",
        ideal / 1048576.0
    );
    println!(
        "  store (encrypt, hash, write)   {:8.0} MiB/s CPU  ({:.0} MiB/s wall)",
        store_rate / 1048576.0,
        bytes as f64 / wall_s / 1048576.0
    );
    println!(
        "  store / raw seal               {:8.1} %",
        store_rate / raw * 100.0
    );
    println!(
        "  store / (seal + SHA-256)       {:8.1} %",
        store_rate / ideal * 100.0
    );
}

/// Builds the fixture: run in a process of its own, which leaves its open segments as a crash
/// would and exits, releasing the store's lock.
fn build_fixture(root: &std::path::Path, segments: u64) {
    {
        let _ = std::fs::remove_dir_all(root);
        std::fs::create_dir_all(root).unwrap();
        let key = UnitKey::load_or_create(&root.join("unit.key")).unwrap();
        let clocks = Arc::new(SimulatedClocks::new(BASE));
        let (store, _) = Store::open(cfg(&root.join("store")), Arc::new(key), clocks).unwrap();
        let t = Instant::now();
        let cams = ["c1", "c2", "c3", "c4"];
        let mut ws: Vec<_> = cams.iter().map(|c| store.writer(c).unwrap()).collect();
        let per_cam = segments / cams.len() as u64;
        for i in 0..=per_cam as i64 {
            let ts = i * 60_000_000_000;
            for w in &mut ws {
                w.push(&Frame {
                    data: &[0x47; 188],
                    keyframe: true,
                    wall_ns: BASE + ts,
                    mono_ns: ts as u64,
                })
                .unwrap();
            }
            if i % 10_000 == 0 {
                eprintln!(
                    "  fixture: {} segments ({:.0} s)",
                    i * cams.len() as i64,
                    t.elapsed().as_secs_f64()
                );
            }
        }
        // The last segment of each camera stays open: the open below recovers it.
        std::mem::forget(ws);
        store.flush().unwrap();
        drop(store);
        std::fs::write(root.join("ready"), "").unwrap();
    }
    // Exit without destructors: the open segments stay as a power cut leaves them.
    std::process::exit(0);
}

fn bench_open(segments: u64) {
    let root = std::env::temp_dir().join(format!("rdc-bench-open-{segments}"));
    if !root.join("ready").exists() {
        let ok = std::process::Command::new(std::env::current_exe().unwrap())
            .arg("fixture-child")
            .arg(&root)
            .arg(segments.to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "building the fixture failed");
    }
    // Measure in a fresh process so peak memory is the open's alone.
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .arg("open-child")
        .arg(&root)
        .output()
        .unwrap();
    print!("{}", String::from_utf8_lossy(&out.stdout));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
}

fn open_child(root: &std::path::Path) {
    let key = UnitKey::load_or_create(&root.join("unit.key")).unwrap();
    let clocks = Arc::new(SimulatedClocks::new(BASE + 35 * 86_400_000_000_000));
    let before = vm_hwm_kib();
    let t = Instant::now();
    let (store, report) = Store::open(cfg(&root.join("store")), Arc::new(key), clocks).unwrap();
    let open_s = t.elapsed().as_secs_f64();
    let segs: usize = store
        .cameras()
        .unwrap()
        .iter()
        .map(|c| store.list(c, i64::MIN, i64::MAX).unwrap().len())
        .sum();
    println!(
        "open: {segs} segments indexed, {} recovered, {} replayed",
        report.recovered.len(),
        report.replayed
    );
    println!("  open + recovery time           {open_s:8.3} s");
    for (step, secs) in &report.timings {
        println!("    {step:<28} {secs:8.3} s");
    }
    println!(
        "  peak memory (VmHWM)            {:8.1} MiB (process before open: {:.1} MiB)",
        vm_hwm_kib() as f64 / 1024.0,
        before as f64 / 1024.0
    );
    // What an engineer's `store status|list|verify` costs: a read-only open beside the running
    // store, its index rebuilt in memory from the logs.
    let t = Instant::now();
    let (ro, _) = Store::open_read_only(
        cfg(&root.join("store")),
        Arc::new(SimulatedClocks::new(BASE)),
    )
    .unwrap();
    let ro_s = t.elapsed().as_secs_f64();
    let listed: usize = ro
        .cameras()
        .unwrap()
        .iter()
        .map(|c| ro.list(c, i64::MIN, i64::MAX).unwrap().len())
        .sum();
    println!("  read-only open (index in memory) {ro_s:8.3} s, {listed} segments listed");
    println!(
        "  peak memory after it (VmHWM)   {:8.1} MiB",
        vm_hwm_kib() as f64 / 1024.0
    );
    // Put the fixture back as it was for the next run: an open segment per camera again.
    std::mem::forget(store);
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().map(String::as_str) == Some("fixture-child") {
        return build_fixture(std::path::Path::new(&args[1]), args[2].parse().unwrap());
    }
    if args.first().map(String::as_str) == Some("open-child") {
        return open_child(std::path::Path::new(&args[1]));
    }
    let all = !args.iter().any(|a| a == "write" || a == "open");
    let segments = args.iter().find_map(|a| a.parse().ok()).unwrap_or(201_600);
    if all || args.iter().any(|a| a == "write") {
        bench_write();
    }
    if all || args.iter().any(|a| a == "open") {
        bench_open(segments);
    }
}
