//! A unit's uplink served in-process over a generated store, and the officer's files for
//! `rdc`: shared by the end-to-end tests and the link benchmark.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use rdc_storage::{RealClocks, Store, StoreConfig, UnitKey};

/// The units file of `who` ("officer" or "auditor") in a rig's folder `dir` (also after
/// [`UplinkRig::into_dir`]), reaching the unit at `addr`.
pub fn units_file_in(dir: &Path, who: &str, addr: std::net::SocketAddr) -> PathBuf {
    let p = |s: &str| dir.join(s).display().to_string();
    let f = dir.join(format!("units-{who}-{}.toml", addr.port()));
    std::fs::write(
        &f,
        format!(
            "[unit.relay-unit]\naddress = \"{addr}\"\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
            p("ca.crt"),
            p(&format!("{who}.crt")),
            p(&format!("{who}.key"))
        ),
    )
    .unwrap();
    f
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// A unit's uplink served in-process over a store of `frames` 40 kB frames, and an officer's
/// files for `rdc`, reaching it through `relay`.
#[allow(missing_debug_implementations)]
pub struct UplinkRig {
    pub dir: tempfile::TempDir,
    pub store: Store,
    pub rt: tokio::runtime::Runtime,
    /// The server on loopback; it listens on every address of this namespace, at this port.
    pub server_addr: std::net::SocketAddr,
}

impl UplinkRig {
    pub fn new(frames: u64) -> UplinkRig {
        use rdc_uplink::pki::{self, Kind};
        let dir = tempfile::tempdir().unwrap();
        let p = |s: &str| dir.path().join(s);
        let ca = pki::new_ca("Test", 365).unwrap();
        let unit = pki::issue(&ca, "relay-unit", Kind::Unit, 365).unwrap();
        let officer = pki::issue(&ca, "j.smith", Kind::User, 365).unwrap();
        std::fs::write(p("ca.crt"), &ca.cert).unwrap();
        std::fs::write(p("officer.crt"), &officer.cert).unwrap();
        std::fs::write(p("officer.key"), &officer.key).unwrap();
        let auditor = pki::issue(&ca, "a.auditor", Kind::User, 365).unwrap();
        std::fs::write(p("auditor.crt"), &auditor.cert).unwrap();
        std::fs::write(p("auditor.key"), &auditor.key).unwrap();
        let cfg = StoreConfig {
            budget: rdc_storage::Budget::MaxBytes(1 << 34),
            segment_ns: 20_000_000_000,
            index_cache_bytes: 1 << 20,
            ..StoreConfig::new(p("store"), "relay-unit", vec![[9u8; 32]])
        };
        // Kept in a file, so a real recorder can take the store over (`into_dir`).
        let key = UnitKey::load_or_create(&p("unit-signing.key")).unwrap();
        std::fs::write(p("unit.crt"), &unit.cert).unwrap();
        std::fs::write(p("unit.key"), &unit.key).unwrap();
        std::fs::set_permissions(
            p("unit.key"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        let (store, _) = Store::open(cfg, Arc::new(key), Arc::new(RealClocks)).unwrap();
        let mut w = store.writer("front").unwrap();
        let base = now_ns() - 3_600_000_000_000;
        let mut x = 1u64;
        for i in 0..frames {
            // Incompressible, like video.
            let data: Vec<u8> = (0..40_000)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            w.push(&rdc_storage::Frame {
                data: &data,
                keyframe: i % 25 == 0,
                wall_ns: base + i as i64 * 40_000_000,
                mono_ns: i * 40_000_000,
            })
            .unwrap();
        }
        w.close("test").unwrap();
        drop(w);
        let fp = rdc_uplink::pki::fingerprint(
            &rdc_uplink::tls::Identity::from_pem(&officer.cert, &officer.key)
                .unwrap()
                .chain[0],
        );
        let users = vec![
            rdc_config::User {
                name: "J. Smith".into(),
                role: rdc_config::Role::Officer,
                fingerprint: Some(fp),
                common_name: None,
            },
            rdc_config::User {
                name: "A. Auditor".into(),
                role: rdc_config::Role::Auditor,
                fingerprint: None,
                common_name: Some("a.auditor".into()),
            },
        ];
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server_cfg = rdc_uplink::tls::server_config(
            &rdc_uplink::tls::Identity::from_pem(&unit.cert, &unit.key).unwrap(),
            &ca.cert,
            None,
        )
        .unwrap();
        let server_addr = rt.block_on(async {
            let s = rdc_uplink::server::Server::bind(
                "0.0.0.0:0".parse().unwrap(),
                server_cfg,
                users,
                store.clone(),
            )
            .unwrap();
            let a = std::net::SocketAddr::from(([127, 0, 0, 1], s.local_addr().unwrap().port()));
            tokio::spawn(s.serve());
            a
        });
        UplinkRig {
            dir,
            store,
            rt,
            server_addr,
        }
    }

    /// Stops serving and closes the store, so that a recorder process can open it: the folder
    /// with the store (`store/`), the unit's keys (`unit-signing.key`, `unit.crt`, `unit.key`),
    /// the CA and the officer's files.
    pub fn into_dir(self) -> tempfile::TempDir {
        self.rt.shutdown_timeout(std::time::Duration::from_secs(5));
        drop(self.store);
        self.dir
    }

    /// The officer's units file, reaching the unit at `addr`.
    pub fn units_file(&self, addr: std::net::SocketAddr) -> PathBuf {
        self.units_file_for("officer", addr)
    }

    /// The units file of `who` ("officer" or "auditor"), reaching the unit at `addr`.
    pub fn units_file_for(&self, who: &str, addr: std::net::SocketAddr) -> PathBuf {
        units_file_in(self.dir.path(), who, addr)
    }

    pub fn fetch_cmd(&self, rdc_bin: &Path, units: &Path, out: &Path) -> Command {
        let mut c = Command::new(rdc_bin);
        Self::fetch_args(&mut c, units, out);
        c
    }

    /// The arguments of `rdc fetch` for the whole store through `units`, into `out`.
    pub fn fetch_args(c: &mut Command, units: &Path, out: &Path) {
        c.args(["fetch", "--unit", "relay-unit", "--units"])
            .arg(units)
            .args([
                "--camera",
                "front",
                "--from",
                "now-2h",
                "--to",
                "now",
                "--case",
                "ASB/9",
                "--reason",
                "link test",
                "--out",
            ])
            .arg(out)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
    }

    pub fn footage_bytes(&self) -> u64 {
        self.store
            .list("front", 0, i64::MAX)
            .unwrap()
            .iter()
            .map(|e| e.segment.bytes)
            .sum()
    }

    pub fn assert_fetched(&self, out: &Path) {
        for e in self.store.list("front", 0, i64::MAX).unwrap() {
            let got = std::fs::read(out.join("front").join(&e.segment.file)).unwrap_or_default();
            assert!(
                got == std::fs::read(self.store.segment_path("front", e.segment.seq).unwrap())
                    .unwrap(),
                "segment {} differs",
                e.segment.seq
            );
        }
    }
}

/// The rig's store served by a real `rdc-recorder run` that records emulated cameras at the
/// same time, as a unit in the field is busy while an officer fetches: for the link benchmark
/// and the lossy-link test. The recorder and the camera are stopped on drop.
#[allow(missing_debug_implementations)]
pub struct RecordingUnit {
    pub dir: tempfile::TempDir,
    /// The uplink's UDP port (on every address of this namespace).
    pub port: u16,
    recorder: std::process::Child,
    camera: std::process::Child,
}

/// What [`UplinkRig::into_recording_unit`] runs.
#[derive(Debug)]
pub struct Busy<'a> {
    /// `rdc-recorder` (or a binary that runs it), and the arguments before `run`'s own.
    pub recorder: (&'a Path, &'a [&'a str]),
    /// `rdc-fake-camera`.
    pub camera: &'a Path,
    /// Arguments for the camera: size, bitrate, GOP.
    pub camera_args: &'a [&'a str],
    /// How many cameras record it (one encoded stream, served to each).
    pub cameras: usize,
    /// The age recipient the footage is encrypted to.
    pub recipient: &'a str,
}

impl UplinkRig {
    /// Stops serving in-process and hands the store to a real recorder that records
    /// `busy.cameras` emulated cameras while it serves the officer (`officer.crt`).
    pub fn into_recording_unit(self, busy: &Busy<'_>) -> anyhow::Result<RecordingUnit> {
        use anyhow::{Context as _, bail};
        let fp = rdc_uplink::pki::fingerprint_text(
            &rdc_uplink::tls::Identity::from_files(
                &self.dir.path().join("officer.crt"),
                &self.dir.path().join("officer.key"),
            )?
            .chain[0],
        );
        let dir = self.into_dir();
        let d = dir.path();
        let cam_port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut camera = Command::new(busy.camera)
            .args(["--port", &cam_port.to_string()])
            .args(busy.camera_args)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(d.join("camera.log"))?)
            .spawn()
            .context("the emulated camera (build with --bins)")?;
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(camera.stdout.take().context("camera stdout")?),
            &mut line,
        )?;
        if !line.starts_with("READY") {
            bail!("the emulated camera did not start: {line:?}");
        }
        let port = std::net::UdpSocket::bind("0.0.0.0:0")?.local_addr()?.port();
        let mut toml = format!(
            r#"[unit]
id = "relay-unit"
operator = "test"
contact = "test@example.org"
purpose = "testing"
site = "loopback"
signing_key = "{d}/unit-signing.key"
[storage]
path = "{d}/store"
max_bytes = "16 GiB"
segment_secs = 20
[[recipient]]
name = "officer"
public_key = "{pk}"
[uplink]
listen = "0.0.0.0:{port}"
cert = "{d}/unit.crt"
key_file = "{d}/unit.key"
ca = "{d}/ca.crt"
[[uplink.user]]
name = "J. Smith"
role = "officer"
fingerprint = "{fp}"
[logging]
level = "info"
"#,
            d = d.display(),
            pk = busy.recipient
        );
        for i in 0..busy.cameras {
            toml.push_str(&format!(
                "[[camera]]\nid = \"c{i}\"\nurl = \"rtsp://127.0.0.1:{cam_port}/cam\"\n"
            ));
        }
        std::fs::write(d.join("recorder.toml"), toml)?;
        let log = std::fs::File::create(d.join("recorder.log"))?;
        let mut recorder = Command::new(busy.recorder.0)
            .args(busy.recorder.1)
            .args(["run", "--config"])
            .arg(d.join("recorder.toml"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        let t = std::time::Instant::now();
        let log = || std::fs::read_to_string(d.join("recorder.log")).unwrap_or_default();
        while log().matches("camera connected").count() < busy.cameras {
            if t.elapsed() > std::time::Duration::from_secs(30) || recorder.try_wait()?.is_some() {
                let _ = recorder.kill();
                // Cameras refused one after another: the emulated camera itself may have died.
                let cam = match camera.try_wait()? {
                    Some(status) => format!("the emulated camera exited ({status})"),
                    None => "the emulated camera was still running".to_owned(),
                };
                let _ = camera.kill();
                let cam_log = std::fs::read_to_string(d.join("camera.log")).unwrap_or_default();
                bail!(
                    "the recorder did not start its cameras; {cam}; its log:\n{cam_log}\nthe recorder's log:\n{}",
                    log()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        Ok(RecordingUnit {
            dir,
            port,
            recorder,
            camera,
        })
    }
}

impl RecordingUnit {
    /// How many segments the recorder has finished of its own cameras since it started.
    pub fn recorded_segments(&self) -> usize {
        let seg = self.dir.path().join("store/segments");
        std::fs::read_dir(seg)
            .map(|rd| {
                rd.flatten()
                    .filter(|d| d.file_name() != "front")
                    .filter_map(|d| std::fs::read_dir(d.path()).ok())
                    .flat_map(|r| r.flatten())
                    .filter(|f| f.file_name().to_string_lossy().ends_with(".age"))
                    .count()
            })
            .unwrap_or(0)
    }
}

impl Drop for RecordingUnit {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.recorder.id().to_string()])
            .status();
        let t = std::time::Instant::now();
        while self.recorder.try_wait().ok().flatten().is_none()
            && t.elapsed() < std::time::Duration::from_secs(10)
        {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = self.recorder.kill();
        let _ = self.recorder.wait();
        let _ = self.camera.kill();
        let _ = self.camera.wait();
    }
}

/// A bench binary that is also `rdc` and `rdc-recorder` (run as `BENCH rdc ARGS` and
/// `BENCH recorder ARGS`, so one build serves every namespace): the tool's exit code when the
/// first argument asks for one.
pub fn as_tool() -> Option<std::process::ExitCode> {
    match std::env::args().nth(1).as_deref() {
        Some("rdc") => Some(rdc_cli::main_from(std::env::args_os().skip(1))),
        Some("recorder") => Some(rdc_recorder::cli::main_from(std::env::args_os().skip(1))),
        _ => None,
    }
}

/// An emulated 4G link, as the benchmarks take it.
#[derive(Debug, Clone, clap::Args)]
pub struct LinkArgs {
    /// Link rate, Mbit/s each way.
    #[arg(long, default_value_t = 10.0)]
    pub mbit: f64,
    /// Round-trip time the link adds, ms.
    #[arg(long, default_value_t = 60.0)]
    pub rtt_ms: f64,
    /// Random loss each way, percent.
    #[arg(long, default_value_t = 1.0)]
    pub loss_pct: f64,
}

/// The officer's age identity, made as an officer makes it (`rdc keys identity`, run by
/// `tool`, a bench binary that is also `rdc`) into `path`: its recipient.
pub fn officer_identity(tool: &Path, path: &Path) -> anyhow::Result<String> {
    let made = Command::new(tool)
        .args(["rdc", "keys", "identity", "--out"])
        .arg(path)
        .output()?;
    anyhow::ensure!(
        made.status.success(),
        "rdc keys identity: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    Ok(String::from_utf8(made.stdout)?.trim().to_owned())
}

impl<'a> Busy<'a> {
    /// `cameras` emulated 1080p cameras at 4 Mbit/s, a keyframe every 2 s, recorded by the
    /// recorder that `tool` (a bench binary) runs, encrypted to `recipient`.
    pub fn hd(tool: &'a Path, camera: &'a Path, cameras: usize, recipient: &'a str) -> Busy<'a> {
        Busy {
            recorder: (tool, &["recorder"]),
            camera,
            camera_args: &[
                "--width", "1920", "--height", "1080", "--kbps", "4000", "--gop", "50",
            ],
            cameras,
            recipient,
        }
    }
}

/// The scheme's users of a bench unit: the officer J. Smith, by the fingerprint of `officer`.
pub fn officer_users(officer: &rdc_uplink::pki::Pem) -> anyhow::Result<Vec<rdc_config::User>> {
    let fp = rdc_uplink::pki::fingerprint(
        &rdc_uplink::tls::Identity::from_pem(&officer.cert, &officer.key)?.chain[0],
    );
    Ok(vec![rdc_config::User {
        name: "J. Smith".into(),
        role: rdc_config::Role::Officer,
        fingerprint: Some(fp),
        common_name: None,
    }])
}

/// A bench unit's store in `dir`, encrypted to `recipient`, as `tune` sets it; and now (ns).
pub fn bench_store(
    dir: &Path,
    recipient: [u8; 32],
    tune: impl FnOnce(StoreConfig) -> StoreConfig,
) -> anyhow::Result<(Store, i64)> {
    let cfg = tune(StoreConfig::new(
        dir.join("store"),
        "bench",
        vec![recipient],
    ));
    let key = Arc::new(UnitKey::load_or_create(&dir.join("unit-signing.key"))?);
    let (store, _) = Store::open(cfg, key, Arc::new(RealClocks))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as i64;
    Ok((store, now))
}

/// Serves `store` as unit `unit` of the scheme `ca` to `users` on loopback, on `rt`: the
/// address.
pub fn serve_store(
    rt: &tokio::runtime::Runtime,
    (unit, ca): (&rdc_uplink::pki::Pem, &str),
    users: Vec<rdc_config::User>,
    store: Store,
) -> anyhow::Result<std::net::SocketAddr> {
    let server_cfg = rdc_uplink::tls::server_config(
        &rdc_uplink::tls::Identity::from_pem(&unit.cert, &unit.key)?,
        ca,
        None,
    )?;
    rt.block_on(async {
        let s = rdc_uplink::server::Server::bind("127.0.0.1:0".parse()?, server_cfg, users, store)?;
        let addr = s.local_addr()?;
        tokio::spawn(s.serve());
        anyhow::Ok(addr)
    })
}
