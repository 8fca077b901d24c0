//! `rdc-bench-stick`: writing footage onto a memory stick (issue 29). A unit's store holds
//! `--gb` of footage; the real recorder takes it over and records `--cameras` emulated 1080p
//! cameras at 4 Mbit/s throughout. For each target file system, each run: an officer's request
//! is prepared on it, `rdc-recorder stick` writes the footage (timed), then `cp -r` of the same
//! segment files to the same file system and `sync` (timed), alternating which goes first. While
//! the job writes, the recorder's live status is read every second: frames dropped and the
//! longest a frame waited between arriving and being written (`write_lag_ms`), against the
//! same measured for 10 s before.
//!
//! Targets: a FAT32 file system in an image file mounted through FUSE by the package's
//! `rdc-stick-mount` (fusefat: this kernel has no vfat), and a folder on the machine's own disk
//! (a kernel file system). The page cache is dropped before each copy when this runs as root.
//!
//! ```text
//! cargo run --release -p rdc-tests --bin rdc-bench-stick -- --gb 2 --runs 2
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use rdc_tests::rig::{Busy, UplinkRig, officer_identity};

const MOUNT_HELPER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../systemd/rdc-stick-mount");

#[derive(Parser)]
struct Args {
    /// Footage written to the stick, GB.
    #[arg(long, default_value_t = 2.0)]
    gb: f64,
    #[arg(long, default_value_t = 2)]
    runs: usize,
    /// Emulated cameras the recorder records meanwhile.
    #[arg(long, default_value_t = 2)]
    cameras: usize,
    /// Targets: fat32-fuse, exfat-fuse, disk.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "fat32-fuse,exfat-fuse,disk"
    )]
    targets: Vec<String>,
}

fn main() -> anyhow::Result<ExitCode> {
    if let Some(code) = rdc_tests::rig::as_tool() {
        return Ok(code);
    }
    let a = Args::parse();
    let exe = std::env::current_exe()?;
    let frames = (a.gb * 1e9 / 40_000.0) as u64;
    eprintln!("writing {frames} frames of footage into the store ...");
    let rig = UplinkRig::new(frames);
    let segments: Vec<PathBuf> = rig
        .store
        .list("front", 0, i64::MAX)?
        .iter()
        .map(|e| rig.store.segment_path("front", e.segment.seq))
        .collect::<Result<_, _>>()?;
    let bytes: u64 = segments
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum();
    let id_dir = tempfile::tempdir()?;
    let recipient = officer_identity(&exe, &id_dir.path().join("officer-age.key"))?;
    let camera = exe.with_file_name("rdc-fake-camera");
    let unit = rig.into_recording_unit(&Busy::hd(&exe, &camera, a.cameras, &recipient))?;
    let d = unit.dir.path().to_owned();
    let units = rdc_tests::rig::units_file_in(
        &d,
        "officer",
        std::net::SocketAddr::from(([127, 0, 0, 1], unit.port)),
    );
    let status = Status {
        exe: exe.clone(),
        units: units.clone(),
    };
    // The key binding is written once the uplink is up.
    let t = Instant::now();
    while !d.join("store/unit-key-binding.json").exists() {
        if t.elapsed() > Duration::from_secs(30) {
            bail!("the recorder did not bind its keys");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let baseline = status.watch_for(Duration::from_secs(10))?;
    let dropping = root_can_drop_caches();
    println!(
        "{:.2} GB of footage in {} segments; the recorder records {} emulated 1080p cameras at 4 Mbit/s meanwhile; page cache dropped before each copy: {}",
        bytes as f64 / 1e9,
        segments.len(),
        a.cameras,
        if dropping { "yes" } else { "no (not root)" }
    );
    println!(
        "before: frames dropped {}, longest write wait {} ms",
        baseline.dropped, baseline.lag_ms
    );
    println!(
        "{:<12} {:>4} {:>9} {:>8} {:>7} {:>12} {:>9} {:>8} {:>9}",
        "target",
        "run",
        "job MB/s",
        "cp MB/s",
        "job/cp",
        "cp-behind",
        "job/cp-b",
        "dropped",
        "max wait"
    );
    let work =
        tempfile::tempdir_in(std::env::var_os("TMPDIR").unwrap_or_else(|| "/var/tmp".into()))?;
    for target in &a.targets {
        for run in 0..a.runs {
            let job = || -> anyhow::Result<(f64, Watched)> {
                let stick = Target::make(target, work.path(), bytes)?;
                prepare(&exe, &stick.dir, &units)?;
                drop_caches(dropping);
                let before = status.read()?;
                let watching = status.start();
                let t = Instant::now();
                let o = Command::new(&exe)
                    .args(["recorder", "stick", "--config"])
                    .arg(d.join("recorder.toml"))
                    .arg(&stick.dir)
                    .stderr(if std::env::var_os("RDC_BENCH_PROGRESS").is_some() {
                        Stdio::inherit()
                    } else {
                        Stdio::null()
                    })
                    .output()?;
                let secs = t.elapsed().as_secs_f64();
                let mut w = watching.stop()?;
                w.dropped = w.dropped.saturating_sub(before.dropped);
                if !o.status.success() {
                    bail!("the stick job: {}", String::from_utf8_lossy(&o.stdout));
                }
                Ok((secs, w))
            };
            let cp =
                |behind| copy_with_cp((target, work.path(), bytes), &segments, dropping, behind);
            let ((job_s, w), cp_s, behind_s) = if run % 2 == 0 {
                let j = job()?;
                (j, cp(false)?, cp(true)?)
            } else {
                let (c, b) = (cp(true)?, cp(false)?);
                (job()?, b, c)
            };
            println!(
                "{:<12} {:>4} {:>9.1} {:>8.1} {:>7.2} {:>12.1} {:>9.2} {:>8} {:>6} ms",
                target,
                run + 1,
                bytes as f64 / job_s / 1e6,
                bytes as f64 / cp_s / 1e6,
                cp_s / job_s,
                bytes as f64 / behind_s / 1e6,
                behind_s / job_s,
                w.dropped,
                w.lag_ms
            );
        }
    }
    drop(unit);
    Ok(ExitCode::SUCCESS)
}

/// Writes the officer's request for a day of camera front onto the stick at `dir`.
fn prepare(exe: &Path, dir: &Path, units: &Path) -> anyhow::Result<()> {
    let request = Command::new(exe)
        .args(["rdc", "stick", "prepare"])
        .arg(dir)
        .args(["--unit", "relay-unit", "--units"])
        .arg(units)
        .args([
            "--camera",
            "front",
            "--from",
            "now-1d",
            "--to",
            "now",
            "--case",
            "BENCH/1",
            "--reason",
            "benchmark",
        ])
        .output()?;
    if !request.status.success() {
        bail!("prepare: {}", String::from_utf8_lossy(&request.stderr));
    }
    Ok(())
}

/// Copies the segments onto a fresh `target` with cp (`behind`: at the idle I/O class and
/// lowest CPU priority, as the stick job runs) and syncs: the seconds it took.
fn copy_with_cp(
    (target, work, bytes): (&str, &Path, u64),
    segments: &[PathBuf],
    dropping: bool,
    behind: bool,
) -> anyhow::Result<f64> {
    let stick = Target::make(target, work, bytes)?;
    drop_caches(dropping);
    let to = stick.dir.join(if behind { "cp-behind" } else { "cp" });
    std::fs::create_dir_all(&to)?;
    let t = Instant::now();
    let mut c = if behind {
        let mut c = Command::new("nice");
        c.args(["-n", "19", "ionice", "-c", "3", "cp"]);
        c
    } else {
        Command::new("cp")
    };
    let ok = c.args(segments).arg(&to).status()?.success()
        && Command::new("sync").arg("-f").arg(&to).status()?.success();
    if !ok {
        bail!("cp to {}", to.display());
    }
    Ok(t.elapsed().as_secs_f64())
}

/// A target file system, mounted while it lives.
struct Target {
    dir: PathBuf,
    /// The image file of a mounted target.
    image: Option<PathBuf>,
}

impl Target {
    fn make(kind: &str, work: &Path, bytes: u64) -> anyhow::Result<Target> {
        let n = std::fs::read_dir(work)?.count();
        match kind {
            "fat32-fuse" | "exfat-fuse" => {
                let img = work.join(format!("stick{n}.img"));
                let f = std::fs::File::create(&img)?;
                // Room for one copy, with some to spare.
                f.set_len(bytes + (512 << 20))?;
                drop(f);
                let mut mkfs = if kind == "fat32-fuse" {
                    let mut c = Command::new("mkfs.vfat");
                    c.args(["-F", "32"]);
                    c
                } else {
                    Command::new("mkfs.exfat")
                };
                let o = mkfs
                    .arg(&img)
                    .output()
                    .context("mkfs (dosfstools, exfatprogs)")?;
                if !o.status.success() {
                    bail!("mkfs: {}", String::from_utf8_lossy(&o.stderr));
                }
                let dir = work.join(format!("stick{n}.mnt"));
                let o = Command::new(MOUNT_HELPER)
                    .arg("mount")
                    .arg(&img)
                    .arg(&dir)
                    .env("RDC_STICK_USER", "root")
                    .output()?;
                if !o.status.success() {
                    bail!("rdc-stick-mount: {}", String::from_utf8_lossy(&o.stderr));
                }
                Ok(Target {
                    dir,
                    image: Some(img),
                })
            }
            "disk" => {
                let dir = work.join(format!("disk{n}"));
                std::fs::create_dir_all(&dir)?;
                Ok(Target { dir, image: None })
            }
            k => bail!("unknown target {k}: fat32-fuse, exfat-fuse or disk"),
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(img) = &self.image {
            let _ = Command::new(MOUNT_HELPER)
                .arg("unmount")
                .arg(&self.dir)
                .status();
            let _ = std::fs::remove_file(img);
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn root_can_drop_caches() -> bool {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/proc/sys/vm/drop_caches")
        .is_ok()
}

fn drop_caches(can: bool) {
    if can {
        let _ = Command::new("sync").status();
        let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
    }
}

/// Reads the recorder's live status with `rdc status` every second.
struct Status {
    exe: PathBuf,
    units: PathBuf,
}

#[derive(Debug, Default, Clone, Copy)]
struct Watched {
    /// Frames dropped, summed over the cameras, since the recorder started.
    dropped: u64,
    /// The longest write wait any status reported.
    lag_ms: u64,
}

struct Watching {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<anyhow::Result<Watched>>>,
    thread: std::thread::JoinHandle<()>,
}

impl Watching {
    fn stop(self) -> anyhow::Result<Watched> {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.thread.join();
        let mut g = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::replace(&mut *g, Ok(Watched::default()))
    }
}

impl Status {
    fn read(&self) -> anyhow::Result<Watched> {
        let o = Command::new(&self.exe)
            .args(["rdc", "status", "--json", "--unit", "relay-unit", "--units"])
            .arg(&self.units)
            .output()?;
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)
            .with_context(|| format!("rdc status: {}", String::from_utf8_lossy(&o.stderr)))?;
        let mut w = Watched::default();
        for c in v["live"]["cameras"].as_array().into_iter().flatten() {
            w.dropped += c["dropped_frames"].as_u64().unwrap_or(0);
            w.lag_ms = w.lag_ms.max(c["write_lag_ms"].as_u64().unwrap_or(0));
        }
        Ok(w)
    }

    fn start(&self) -> Watching {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Ok(Watched::default())));
        let (exe, units) = (self.exe.clone(), self.units.clone());
        let (s, r) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            let me = Status { exe, units };
            loop {
                let last = s.load(Ordering::SeqCst);
                let got = me.read();
                let mut g = r.lock().unwrap_or_else(|p| p.into_inner());
                *g = match (std::mem::replace(&mut *g, Ok(Watched::default())), got) {
                    (Ok(a), Ok(b)) => Ok(Watched {
                        dropped: a.dropped.max(b.dropped),
                        lag_ms: a.lag_ms.max(b.lag_ms),
                    }),
                    (Err(e), _) | (_, Err(e)) => Err(e),
                };
                drop(g);
                if last {
                    return;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        });
        Watching { stop, seen, thread }
    }

    fn watch_for(&self, d: Duration) -> anyhow::Result<Watched> {
        let w = self.start();
        std::thread::sleep(d);
        w.stop()
    }
}
