//! The harness: emulated cameras and units as processes, ffprobe, waiting for conditions.

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdc_storage::{Manifest, RealClocks, Store, StoreConfig, UnitKey};

pub(crate) fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An emulated camera process, killed on drop.
pub(crate) struct Camera {
    pub(crate) child: Child,
    pub(crate) port: u16,
    pub(crate) args: Vec<String>,
}

impl Camera {
    /// Sends the camera's process a signal: `-STOP` freezes it with its connections open (no
    /// data flows), `-CONT` lets it run on.
    pub(crate) fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(sig)
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} of the emulated camera failed");
    }

    pub(crate) fn start(args: &[&str]) -> Camera {
        Self::start_on(free_port(), args.iter().map(|s| s.to_string()).collect())
    }

    pub(crate) fn start_on(port: u16, args: Vec<String>) -> Camera {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rdc-fake-camera"))
            .arg("--port")
            .arg(port.to_string())
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("READY"), "camera did not start: {line:?}");
        Camera { child, port, args }
    }

    pub(crate) fn url(&self) -> String {
        format!("rtsp://127.0.0.1:{}/cam", self.port)
    }

    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub(crate) fn restart(&mut self) {
        self.kill();
        *self = Camera::start_on(self.port, self.args.clone());
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A unit: a directory with a configuration, an officer identity, and the recorder process.
pub(crate) struct Unit {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) identity: age::x25519::Identity,
    pub(crate) recorder: Option<Child>,
}

pub(crate) struct Cam<'a> {
    pub(crate) id: &'a str,
    pub(crate) url: String,
    pub(crate) extra: String,
}

impl Cam<'_> {
    /// Two cameras, "front" and "rear", at these URLs, with nothing more in their entries.
    pub(crate) fn front_and_rear(front: String, rear: String) -> [Cam<'static>; 2] {
        [
            Cam {
                id: "front",
                url: front,
                extra: String::new(),
            },
            Cam {
                id: "rear",
                url: rear,
                extra: String::new(),
            },
        ]
    }
}

impl Unit {
    pub(crate) fn new(cams: &[Cam<'_>]) -> Unit {
        Self::with(cams, None, "")
    }

    /// Waits until cameras have connected `n` times in all (each logs "camera connected").
    pub(crate) fn wait_connected(&self, n: usize) {
        wait_for("a camera connecting", Duration::from_secs(30), || {
            self.log().matches("camera connected").count() >= n
        });
    }

    /// A unit recording one camera, "front".
    pub(crate) fn single(url: String) -> Unit {
        Self::new(&[Cam {
            id: "front",
            url,
            extra: String::new(),
        }])
    }

    /// A unit whose footage goes to `recipient` (default: a fresh identity kept here), with
    /// `extra` appended to its configuration.
    pub(crate) fn with(cams: &[Cam<'_>], recipient: Option<&str>, extra: &str) -> Unit {
        let dir = tempfile::tempdir().unwrap();
        let identity = age::x25519::Identity::generate();
        let recipient = recipient
            .map(str::to_owned)
            .unwrap_or_else(|| identity.to_public().to_string());
        let mut toml = format!(
            r#"[unit]
id = "e2e"
operator = "Test Housing"
contact = "t@example.org"
purpose = "testing"
site = "loopback"
signing_key = "{d}/unit.key"

[storage]
path = "{d}/store"
max_bytes = "2 GiB"
segment_secs = 10
sync_interval = "1s"

[[recipient]]
name = "officer"
public_key = "{pk}"

[logging]
level = "info,rdc_recorder=debug"
"#,
            d = dir.path().display(),
            pk = recipient
        );
        for c in cams {
            toml.push_str(&format!(
                "\n[[camera]]\nid = \"{}\"\nurl = \"{}\"\n{}\n",
                c.id, c.url, c.extra
            ));
        }
        toml.push_str(extra);
        std::fs::write(dir.path().join("recorder.toml"), toml).unwrap();
        Unit {
            dir,
            identity,
            recorder: None,
        }
    }

    pub(crate) fn config(&self) -> PathBuf {
        self.dir.path().join("recorder.toml")
    }

    /// Adds `line` (`key = value`) to the configuration's [storage].
    pub(crate) fn set_storage(&self, line: &str) {
        let c = std::fs::read_to_string(self.config()).unwrap();
        let c = c.replacen("[storage]\n", &format!("[storage]\n{line}\n"), 1);
        std::fs::write(self.config(), c).unwrap();
    }

    /// Starts the recorder, logging to `recorder.log` at `RDC_E2E_LOG` (a `RUST_LOG` filter;
    /// `info,rdc_recorder=debug,rdc_recorder::camera=trace` logs every access unit).
    pub(crate) fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("recorder.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_rdc-recorder-under-test"))
            .args(["run", "--config"])
            .arg(self.config())
            .env(
                "RUST_LOG",
                std::env::var("RDC_E2E_LOG").unwrap_or_else(|_| "info,rdc_recorder=debug".into()),
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.recorder = Some(child);
    }

    /// SIGTERM, as systemd stops it; waits for a clean exit.
    pub(crate) fn stop(&mut self) {
        let mut c = self.recorder.take().unwrap();
        Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status()
            .unwrap();
        let t = Instant::now();
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "recorder exited with {status}; log:\n{}",
                    self.log()
                );
                return;
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "recorder did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL: as a power cut is to the process.
    pub(crate) fn kill(&mut self) {
        let mut c = self.recorder.take().unwrap();
        c.kill().unwrap();
        c.wait().unwrap();
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("recorder.log")).unwrap_or_default()
    }

    /// Opens the store (the recorder must not be running: sled allows one process).
    pub(crate) fn store(&self) -> Store {
        let cfg = rdc_config::Config::load(&self.config()).unwrap().config;
        let key = Arc::new(UnitKey::load_or_create(&cfg.unit.signing_key).unwrap());
        Store::open(StoreConfig::from_config(&cfg), key, Arc::new(RealClocks))
            .unwrap()
            .0
    }

    pub(crate) fn manifests(&self, store: &Store, camera: &str) -> Vec<Manifest> {
        store
            .manifests(camera, 0, u64::MAX)
            .unwrap()
            .into_iter()
            .map(|e| serde_json::from_value(e.body).unwrap())
            .collect()
    }

    /// Decrypts a segment with the `age` crate into a .ts file; returns its path.
    pub(crate) fn decrypt(&self, store: &Store, camera: &str, seq: u64) -> PathBuf {
        let src = store.segment_path(camera, seq).unwrap();
        let d = age::Decryptor::new(std::fs::File::open(&src).unwrap()).unwrap();
        let mut r = d
            .decrypt(std::iter::once(&self.identity as &dyn age::Identity))
            .unwrap();
        let mut plain = Vec::new();
        r.read_to_end(&mut plain).unwrap();
        let out = self.dir.path().join(format!("{camera}-{seq}.ts"));
        std::fs::write(&out, plain).unwrap();
        out
    }
}

impl Drop for Unit {
    fn drop(&mut self) {
        if let Some(mut c) = self.recorder.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub(crate) fn ffprobe(args: &[&str], file: &Path) -> serde_json::Value {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-of", "json"])
        .args(args)
        .arg(file)
        .output()
        .expect("ffprobe (scripts/install-deps.sh installs ffmpeg)");
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

/// What a player sees in a segment: stream types, codec, first frame type, frames decoded,
/// and decoder errors.
#[derive(Debug)]
pub(crate) struct Probe {
    pub(crate) streams: Vec<String>,
    pub(crate) codec: String,
    pub(crate) first_frame: String,
    pub(crate) frames: u64,
    /// Everything `ffmpeg -v error` says decoding it (nothing, for a good segment).
    pub(crate) decode_errors: Vec<String>,
    /// The video packets' decode times, in 90 kHz ticks, in file order.
    pub(crate) dts: Vec<i64>,
}

impl Probe {
    /// Asserts what a player and a court's expert check of a segment's timing: decode times
    /// strictly increasing, each step the camera's frame interval (`frame_ms`) within 1 ms, and
    /// `ffmpeg -v error` silent.
    pub(crate) fn assert_exact_timing(&self, what: &str, frame_ms: f64) {
        assert!(
            self.decode_errors.is_empty(),
            "{what}: ffmpeg -v error reports: {:?}",
            self.decode_errors
        );
        assert!(self.dts.len() > 1, "{what}: no packets: {self:?}");
        for (i, w) in self.dts.windows(2).enumerate() {
            let step_ms = (w[1] - w[0]) as f64 / 90.0;
            assert!(
                (step_ms - frame_ms).abs() <= 1.0,
                "{what}: packet {}: decode time steps {step_ms:.2} ms, the camera sends a frame every {frame_ms} ms",
                i + 1
            );
        }
    }
}

pub(crate) fn probe(ts: &Path) -> Probe {
    let s = ffprobe(
        &[
            "-count_frames",
            "-show_entries",
            "stream=codec_type,codec_name,nb_read_frames",
        ],
        ts,
    );
    let streams: Vec<serde_json::Value> = s["streams"].as_array().cloned().unwrap_or_default();
    let f = ffprobe(
        &[
            "-select_streams",
            "v",
            "-show_entries",
            "frame=pict_type",
            "-read_intervals",
            "%+#1",
        ],
        ts,
    );
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(ts)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    let decode_errors = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(str::to_owned)
        .collect();
    let packets = ffprobe(&["-select_streams", "v", "-show_entries", "packet=dts"], ts);
    let dts = packets["packets"]
        .as_array()
        .map(|ps| ps.iter().filter_map(|p| p["dts"].as_i64()).collect())
        .unwrap_or_default();
    let video = streams.iter().find(|s| s["codec_type"] == "video");
    Probe {
        streams: streams
            .iter()
            .map(|s| s["codec_type"].as_str().unwrap_or("?").to_owned())
            .collect(),
        codec: video
            .and_then(|v| v["codec_name"].as_str())
            .unwrap_or("")
            .to_owned(),
        first_frame: f["frames"][0]["pict_type"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
        frames: video
            .and_then(|v| v["nb_read_frames"].as_str())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        decode_errors,
        dts,
    }
}

pub(crate) fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub(crate) fn segment_files(unit: &Unit, camera: &str) -> usize {
    std::fs::read_dir(unit.dir.path().join("store/segments").join(camera))
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".age"))
                .count()
        })
        .unwrap_or(0)
}

/// Whether `camera` has footage that began at or after `since_ns` with several frames on disk:
/// a finished segment, or the one being written once it holds a full 64 KiB chunk (its file
/// grows a chunk at a time, after the age header).
pub(crate) fn recording_since(unit: &Unit, camera: &str, since_ns: i64) -> bool {
    let dir = unit.dir.path().join("store/segments").join(camera);
    let Ok(rd) = std::fs::read_dir(dir) else {
        return false;
    };
    rd.flatten().any(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some((stem, ext)) = name.rsplit_once('.') else {
            return false;
        };
        let start = stem
            .split_once('-')
            .and_then(|(_, t)| t.parse::<i64>().ok())
            .unwrap_or(i64::MIN);
        let big = e.metadata().is_ok_and(|m| m.len() > 65_552);
        start >= since_ns && (ext == "age" || (ext == "partial" && big))
    })
}

/// The bytes on disk of the segment `camera` is writing (0 between segments).
pub(crate) fn segment_partial_bytes(unit: &Unit, camera: &str) -> u64 {
    std::fs::read_dir(unit.dir.path().join("store/segments").join(camera))
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
                .filter_map(|e| e.metadata().ok().map(|m| m.len()))
                .sum()
        })
        .unwrap_or(0)
}

/// Waits until `camera` has footage `secs` after `since_ns`: the recorder wrote to one of its
/// segment files at or after then (the files grow a chunk at a time as footage arrives). The
/// recorder's own progress, not a fixed sleep.
pub(crate) fn wait_footage(unit: &Unit, camera: &str, since_ns: i64, secs: u64) {
    let want = since_ns + secs as i64 * 1_000_000_000;
    let dir = unit.dir.path().join("store/segments").join(camera);
    wait_for(
        &format!("{camera}'s footage {secs} s on"),
        Duration::from_secs(secs + 60),
        || {
            std::fs::read_dir(&dir).is_ok_and(|rd| {
                rd.flatten().any(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    (name.ends_with(".partial") || name.ends_with(".age"))
                        && e.metadata().and_then(|m| m.modified()).is_ok_and(|t| {
                            t.duration_since(std::time::UNIX_EPOCH)
                                .is_ok_and(|d| d.as_nanos() as i64 >= want)
                        })
                })
            })
        },
    );
}

/// [`recording_since`] the beginning: the camera's footage is on disk, several frames of it.
pub(crate) fn recording(unit: &Unit, camera: &str) -> bool {
    recording_since(unit, camera, i64::MIN)
}

/// Whether to skip a test that takes minutes: with `RDC_QUICK=1` a developer runs the rest in a
/// few minutes; CI (scripts/test.sh) never sets it, so every test runs there. Says so when it
/// skips, so a quick run is never mistaken for a whole one.
pub(crate) fn skip_long(test: &str) -> bool {
    let quick = std::env::var_os("RDC_QUICK").is_some_and(|v| !v.is_empty() && v != "0");
    if quick {
        eprintln!("{test}: skipped (RDC_QUICK is set; it runs in CI)");
    }
    quick
}

pub(crate) fn rdc(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rdc-under-test"))
        .args(args)
        .output()
        .unwrap()
}

pub(crate) fn wait_child(c: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let t = Instant::now();
    loop {
        if let Some(s) = c.try_wait().unwrap() {
            return s;
        }
        if t.elapsed() > limit {
            let _ = c.kill();
            panic!("rdc fetch did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Once a third of the footage has crossed the link behind `stats`, cuts it for `outage`, then
/// waits for the `rdc fetch` in `child` and asserts it succeeded.
pub(crate) fn cut_link_mid_fetch(
    mut child: Child,
    stats: &rdc_tests::relay::Stats,
    footage: u64,
    outage: Duration,
) {
    use std::sync::atomic::Ordering::SeqCst;
    wait_for("a third of the footage", Duration::from_secs(60), || {
        stats.bytes_down.load(SeqCst) > footage / 3
    });
    stats.set_down(true);
    std::thread::sleep(outage);
    stats.set_down(false);
    let status = wait_child(&mut child, Duration::from_secs(120));
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(
        status.success(),
        "rdc fetch failed across a {outage:?} outage: {err}"
    );
}

/// A scheme's keys made with `rdc keys` (a CA, the unit's certificate, an officer "j.smith"
/// and their age identity) and a unit "e2e" recording `cams` to the officer, its uplink on
/// loopback; the officer's units file names it.
pub(crate) struct Scheme {
    pub(crate) keys: tempfile::TempDir,
    pub(crate) officer_public: String,
    pub(crate) port: u16,
}

impl Scheme {
    pub(crate) fn new() -> Scheme {
        let keys = tempfile::tempdir().unwrap();
        let k = |p: &str| keys.path().join(p).display().to_string();
        let ok = |o: std::process::Output| {
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            String::from_utf8(o.stdout).unwrap()
        };
        ok(rdc(&[
            "keys",
            "ca",
            "--scheme",
            "Test Housing",
            "--dir",
            &k("ca"),
        ]));
        ok(rdc(&[
            "keys",
            "unit",
            "--ca-dir",
            &k("ca"),
            "--id",
            "e2e",
            "--dir",
            &k("unit"),
        ]));
        let user = ok(rdc(&[
            "keys",
            "user",
            "--ca-dir",
            &k("ca"),
            "--name",
            "j.smith",
            "--dir",
            &k("users"),
        ]));
        std::fs::write(keys.path().join("user.toml"), user).unwrap();
        let officer_public = ok(rdc(&["keys", "identity", "--out", &k("officer.key")]))
            .trim()
            .to_owned();
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::fs::write(
            keys.path().join("units.toml"),
            format!(
                "[unit.e2e]\naddress = \"127.0.0.1:{port}\"\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
                k("ca/ca.crt"),
                k("users/j.smith.crt"),
                k("users/j.smith.key")
            ),
        )
        .unwrap();
        Scheme {
            keys,
            officer_public,
            port,
        }
    }

    /// A path in the keys folder, as a string for a command line.
    pub(crate) fn path(&self, p: &str) -> String {
        self.keys.path().join(p).display().to_string()
    }

    /// The unit, recording `cams` to the officer, its uplink serving them.
    pub(crate) fn unit(&self, cams: &[Cam<'_>]) -> Unit {
        let user = std::fs::read_to_string(self.keys.path().join("user.toml")).unwrap();
        let uplink = format!(
            "\n[uplink]\nlisten = \"127.0.0.1:{}\"\ncert = \"{}\"\nkey_file = \"{}\"\nca = \"{}\"\n{user}",
            self.port,
            self.path("unit/e2e.crt"),
            self.path("unit/e2e.key"),
            self.path("ca/ca.crt"),
        );
        Unit::with(cams, Some(&self.officer_public), &uplink)
    }

    /// `rdc <cmd> --unit e2e --units <units file> <args>`.
    pub(crate) fn rdc(&self, cmd: &str, args: &[&str]) -> std::process::Output {
        self.rdc_as("j.smith", cmd, args)
    }

    /// `rdc` as the person `who` (j.smith, or one made by [`Scheme::add_user`]).
    pub(crate) fn rdc_as(&self, who: &str, cmd: &str, args: &[&str]) -> std::process::Output {
        let units = if who == "j.smith" {
            self.path("units.toml")
        } else {
            self.path(&format!("units-{who}.toml"))
        };
        let mut all = vec![cmd, "--unit", "e2e", "--units", &units];
        all.extend_from_slice(args);
        rdc(&all)
    }

    /// Another person with `role`, listed in the units made from now on; [`Scheme::rdc_as`]
    /// runs `rdc` as them.
    pub(crate) fn add_user(&self, name: &str, role: &str) {
        let o = rdc(&[
            "keys",
            "user",
            "--ca-dir",
            &self.path("ca"),
            "--name",
            name,
            "--role",
            role,
            "--dir",
            &self.path("users"),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let mut users = std::fs::read_to_string(self.keys.path().join("user.toml")).unwrap();
        users.push_str(&String::from_utf8_lossy(&o.stdout));
        std::fs::write(self.keys.path().join("user.toml"), users).unwrap();
        std::fs::write(
            self.keys.path().join(format!("units-{name}.toml")),
            std::fs::read_to_string(self.keys.path().join("units.toml"))
                .unwrap()
                .replace("j.smith", name),
        )
        .unwrap();
    }
}

/// The manifests the running unit has signed for `camera`, read from its log file (the store
/// itself is the recorder's while it runs).
pub(crate) fn manifests_in_log(unit: &Unit, camera: &str) -> Vec<Manifest> {
    let p = unit
        .dir
        .path()
        .join(format!("store/logs/manifests/{camera}.jsonl"));
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|e| serde_json::from_value(e["body"].clone()).ok())
        .collect()
}

/// A unit of `s` with camera "front" not there (its URL answers nothing): it serves an hour
/// already in its store, written as the recorder writes it (320x180 at 5 fps, `kbps`, previews
/// every 10 s), from `start` (two hours ago, on a minute), with a 30 s outage 20 minutes in
/// ("the camera closed the connection"). Not yet started.
pub(crate) struct RecordedHour {
    pub(crate) unit: Unit,
    pub(crate) start: i64,
    pub(crate) outage: (i64, i64),
    pub(crate) recorded: rdc_tests::footage::Recorded,
}

pub(crate) fn recorded_hour(s: &Scheme, kbps: u32) -> RecordedHour {
    recorded_hour_of(
        s,
        kbps,
        "videotestsrc num-buffers=50 pattern=ball ! video/x-raw,width=320,height=180,framerate=5/1",
    )
}

/// [`recorded_hour`] of another 10 s clip (`source`: 50 frames of 320x180 at 5 fps).
pub(crate) fn recorded_hour_of(s: &Scheme, kbps: u32, source: &str) -> RecordedHour {
    const S: i64 = 1_000_000_000;
    let unit = s.unit(&[Cam {
        id: "front",
        url: format!("rtsp://127.0.0.1:{}/cam", free_port()),
        extra: String::new(),
    }]);
    let store = unit.store();
    let clip = rdc_tests::footage::encode_h264(source, 50, 5, kbps, 5).unwrap();
    let start = (now_ns() - 2 * 3600 * S) / (60 * S) * (60 * S);
    let outage = (start + 20 * 60 * S, start + (20 * 60 + 30) * S);
    let recorded = rdc_tests::footage::record(
        &store,
        "front",
        &clip,
        (start, 3600 * S as u64),
        &[outage],
        "the camera closed the connection",
    )
    .unwrap();
    RecordedHour {
        unit,
        start,
        outage,
        recorded,
    }
}
