//! End to end: the emulated camera over real RTSP on loopback, the recorder as a process, real
//! files, real age. Segments are checked as an officer would: decrypted with an independent age
//! implementation and probed with ffprobe/ffmpeg.

use std::io::{BufRead as _, BufReader, Read as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdc_storage::{Ended, Manifest, RealClocks, Store, StoreConfig, UnitKey};

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An emulated camera process, killed on drop.
struct Camera {
    child: Child,
    port: u16,
    args: Vec<String>,
}

impl Camera {
    fn start(args: &[&str]) -> Camera {
        Self::start_on(free_port(), args.iter().map(|s| s.to_string()).collect())
    }

    fn start_on(port: u16, args: Vec<String>) -> Camera {
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

    fn url(&self) -> String {
        format!("rtsp://127.0.0.1:{}/cam", self.port)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn restart(&mut self) {
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
struct Unit {
    dir: tempfile::TempDir,
    identity: age::x25519::Identity,
    recorder: Option<Child>,
}

struct Cam<'a> {
    id: &'a str,
    url: String,
    extra: String,
}

impl Unit {
    fn new(cams: &[Cam<'_>]) -> Unit {
        Self::with(cams, None, "")
    }

    /// Waits until cameras have connected `n` times in all (each logs "camera connected").
    fn wait_connected(&self, n: usize) {
        wait_for("a camera connecting", Duration::from_secs(30), || {
            self.log().matches("camera connected").count() >= n
        });
    }

    /// A unit recording one camera, "front".
    fn single(url: String) -> Unit {
        Self::new(&[Cam {
            id: "front",
            url,
            extra: String::new(),
        }])
    }

    /// A unit whose footage goes to `recipient` (default: a fresh identity kept here), with
    /// `extra` appended to its configuration.
    fn with(cams: &[Cam<'_>], recipient: Option<&str>, extra: &str) -> Unit {
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

    fn config(&self) -> PathBuf {
        self.dir.path().join("recorder.toml")
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("recorder.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_rdc-recorder-under-test"))
            .args(["run", "--config"])
            .arg(self.config())
            .env("RUST_LOG", "info,rdc_recorder=debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.recorder = Some(child);
    }

    /// SIGTERM, as systemd stops it; waits for a clean exit.
    fn stop(&mut self) {
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
    fn kill(&mut self) {
        let mut c = self.recorder.take().unwrap();
        c.kill().unwrap();
        c.wait().unwrap();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("recorder.log")).unwrap_or_default()
    }

    /// Opens the store (the recorder must not be running: sled allows one process).
    fn store(&self) -> Store {
        let cfg = rdc_config::Config::load(&self.config()).unwrap().config;
        let key = Arc::new(UnitKey::load_or_create(&cfg.unit.signing_key).unwrap());
        Store::open(StoreConfig::from_config(&cfg), key, Arc::new(RealClocks))
            .unwrap()
            .0
    }

    fn manifests(&self, store: &Store, camera: &str) -> Vec<Manifest> {
        store
            .manifests(camera, 0, u64::MAX)
            .unwrap()
            .into_iter()
            .map(|e| serde_json::from_value(e.body).unwrap())
            .collect()
    }

    /// Decrypts a segment with the `age` crate into a .ts file; returns its path.
    fn decrypt(&self, store: &Store, camera: &str, seq: u64) -> PathBuf {
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

fn ffprobe(args: &[&str], file: &Path) -> serde_json::Value {
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
struct Probe {
    streams: Vec<String>,
    codec: String,
    first_frame: String,
    frames: u64,
    decode_errors: Vec<String>,
}

fn probe(ts: &Path) -> Probe {
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
        // The null muxer's own timestamp complaints (camera frames sharing a timestamp) are not
        // decoding errors.
        .filter(|l| !l.contains("Application provided") && !l.contains("Last message repeated"))
        .map(str::to_owned)
        .collect();
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
    }
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn segment_files(unit: &Unit, camera: &str) -> usize {
    std::fs::read_dir(unit.dir.path().join("store/segments").join(camera))
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".age"))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn three_cameras_for_a_minute() {
    let plain = Camera::start(&[]);
    let with_audio = Camera::start(&["--audio"]);
    let bframes = Camera::start(&["--bframes", "2", "--gop", "50"]);
    let mut unit = Unit::new(&[
        Cam {
            id: "front",
            url: plain.url(),
            extra: String::new(),
        },
        Cam {
            id: "door",
            url: with_audio.url(),
            extra: String::new(),
        },
        Cam {
            id: "yard",
            url: bframes.url(),
            extra: String::new(),
        },
    ]);
    let started = now_ns();
    unit.start();
    std::thread::sleep(Duration::from_secs(60));
    let stopped = now_ns();
    unit.stop();
    let store = unit.store();
    for cam in ["front", "door", "yard"] {
        let ms = unit.manifests(&store, cam);
        assert!(
            ms.len() >= 5,
            "{cam}: {} segments in a minute of 10 s segments",
            ms.len()
        );
        // Recording started within a few seconds (connect and the first keyframe, 2 s GOP at
        // most) and ran to the stop.
        assert!(
            ms[0].start_ns - started < 5_000_000_000,
            "{cam}: first segment started {} ms after the recorder",
            (ms[0].start_ns - started) / 1_000_000
        );
        assert!(
            stopped - ms.last().unwrap().end_ns < 2_000_000_000,
            "{cam}: recording ended early"
        );
        // No gap between segments: each ends where the next begins.
        for w in ms.windows(2) {
            assert_eq!(
                w[0].ended,
                Ended::Cut,
                "{cam}: unexpected gap after segment {}: {:?}",
                w[0].seq,
                w[0].ended
            );
            assert_eq!(
                w[0].end_ns, w[1].start_ns,
                "{cam}: segments {} and {} do not meet",
                w[0].seq, w[1].seq
            );
        }
        assert_eq!(
            ms.last().unwrap().ended,
            Ended::Stopped {
                cause: "the recorder stopped".into()
            }
        );
        let covered: i64 = ms.iter().map(|m| m.duration_ns()).sum();
        assert!(
            covered > 54_000_000_000,
            "{cam}: only {} s covered",
            covered / 1_000_000_000
        );
        for m in &ms {
            let ts = unit.decrypt(&store, cam, m.seq);
            let p = probe(&ts);
            assert_eq!(
                p.streams,
                vec!["video"],
                "{cam}/{}: exactly one video stream, no audio: {p:?}",
                m.seq
            );
            assert_eq!(p.codec, "h264");
            assert_eq!(
                p.first_frame, "I",
                "{cam}/{}: does not play from its first frame: {p:?}",
                m.seq
            );
            assert!(
                p.decode_errors.is_empty(),
                "{cam}/{}: decoder errors: {:?}",
                m.seq,
                p.decode_errors
            );
            assert!(
                p.frames + 2 >= m.frames,
                "{cam}/{}: {} frames decoded of {}",
                m.seq,
                p.frames,
                m.frames
            );
        }
    }
    assert!(
        unit.log().contains("audio is never recorded"),
        "the audio track was not refused"
    );
    assert!(store.verify(true).unwrap().is_empty());
}

#[test]
fn camera_killed_and_restarted_gap_recorded_recording_resumes() {
    let mut cam = Camera::start(&[]);
    let other = Camera::start(&[]);
    let mut unit = Unit::new(&[
        Cam {
            id: "front",
            url: cam.url(),
            extra: String::new(),
        },
        Cam {
            id: "rear",
            url: other.url(),
            extra: String::new(),
        },
    ]);
    unit.start();
    unit.wait_connected(2);
    std::thread::sleep(Duration::from_secs(5));
    cam.kill();
    let killed = now_ns();
    std::thread::sleep(Duration::from_secs(8));
    cam.restart();
    let back = now_ns();
    std::thread::sleep(Duration::from_secs(12));
    unit.stop();
    let store = unit.store();
    let ms = unit.manifests(&store, "front");
    let gap = ms
        .iter()
        .position(|m| matches!(m.ended, Ended::Stopped { .. }) && m.end_ns < back)
        .expect("a segment ends at the outage");
    let Ended::Stopped { cause } = &ms[gap].ended else {
        unreachable!()
    };
    assert!(!cause.is_empty());
    assert!(
        (ms[gap].end_ns - killed).abs() < 3_000_000_000,
        "gap recorded at the outage ({cause})"
    );
    let resumed = &ms[gap + 1];
    assert!(resumed.start_ns > ms[gap].end_ns);
    assert!(
        resumed.start_ns - back < 5_000_000_000,
        "recording resumed {} ms after the camera came back",
        (resumed.start_ns - back) / 1_000_000
    );
    let p = probe(&unit.decrypt(&store, "front", resumed.seq));
    assert_eq!(p.first_frame, "I");
    // The other camera did not notice: it recorded throughout, without a gap.
    let rear = unit.manifests(&store, "rear");
    assert!(
        rear.len() >= 2 && rear.last().unwrap().end_ns - rear[0].start_ns > 20_000_000_000,
        "rear recorded {} segments",
        rear.len()
    );
    for w in rear.windows(2) {
        assert_eq!(
            w[0].end_ns, w[1].start_ns,
            "rear: a gap while front was down"
        );
    }
}

#[test]
fn a_stalled_camera_is_noticed_and_recording_resumes() {
    let cam = Camera::start(&[]);
    let mut unit = Unit::single(cam.url());
    unit.start();
    unit.wait_connected(1);
    std::thread::sleep(Duration::from_secs(4));
    // Freeze the camera: its connection stays open but no data flows.
    Command::new("kill")
        .arg("-STOP")
        .arg(cam.child.id().to_string())
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_secs(9));
    Command::new("kill")
        .arg("-CONT")
        .arg(cam.child.id().to_string())
        .status()
        .unwrap();
    let back = now_ns();
    unit.wait_connected(2);
    std::thread::sleep(Duration::from_secs(3));
    unit.stop();
    let store = unit.store();
    let ms = unit.manifests(&store, "front");
    let stalled = ms
        .iter()
        .position(|m| matches!(&m.ended, Ended::Stopped { cause } if cause.contains("stalled")))
        .expect("the stall is recorded as the gap's cause");
    assert!(
        ms[stalled + 1].start_ns - back < 8_000_000_000,
        "recording resumed {} ms after the camera recovered",
        (ms[stalled + 1].start_ns - back) / 1_000_000
    );
}

#[test]
fn recorder_killed_nothing_synced_lost() {
    let cam = Camera::start(&[]);
    let mut unit = Unit::single(cam.url());
    unit.start();
    wait_for("a first segment", Duration::from_secs(40), || {
        segment_files(&unit, "front") >= 1
    });
    std::thread::sleep(Duration::from_secs(4));
    unit.kill();
    let killed = now_ns();
    // Restarted, the recorder recovers the cut segment and records on.
    unit.start();
    unit.wait_connected(2);
    std::thread::sleep(Duration::from_secs(4));
    unit.stop();
    let store = unit.store();
    let ms = unit.manifests(&store, "front");
    let cut = ms
        .iter()
        .find(|m| m.ended == Ended::PowerLoss)
        .expect("the segment open at the kill is recovered");
    // Synced every second: at most about a second (plus the queue) is lost.
    assert!(
        killed - cut.end_ns < 2_500_000_000,
        "recovered segment ends {} ms before the kill",
        (killed - cut.end_ns) / 1_000_000
    );
    let p = probe(&unit.decrypt(&store, "front", cut.seq));
    assert_eq!(p.first_frame, "I");
    assert!(p.decode_errors.is_empty(), "{:?}", p.decode_errors);
    assert!(
        p.frames + 2 >= cut.frames,
        "{} decoded of {}",
        p.frames,
        cut.frames
    );
    assert!(
        ms.last().unwrap().start_ns > killed,
        "recording went on after the restart"
    );
    assert!(unit.log().contains("recovered"), "the recovery is logged");
    assert!(store.verify(true).unwrap().is_empty());
}

#[test]
fn h265_camera_is_recorded() {
    let cam = Camera::start(&["--codec", "h265"]);
    let mut unit = Unit::single(cam.url());
    unit.start();
    wait_for("a segment", Duration::from_secs(40), || {
        segment_files(&unit, "front") >= 1
    });
    unit.stop();
    let store = unit.store();
    let ms = unit.manifests(&store, "front");
    let p = probe(&unit.decrypt(&store, "front", ms[0].seq));
    assert_eq!(p.codec, "hevc", "{p:?}");
    assert_eq!(p.first_frame, "I");
    assert!(p.decode_errors.is_empty(), "{:?}", p.decode_errors);
}

#[test]
fn credentials_over_udp_and_a_wrong_password() {
    let cam = Camera::start(&["--credentials", "recorder:s3cret-pw"]);
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.pw");
    let bad = dir.path().join("bad.pw");
    for (p, v) in [(&good, "s3cret-pw\n"), (&bad, "guess\n")] {
        std::fs::write(p, v).unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let extra = |p: &Path, transport: &str| {
        format!(
            "transport = \"{transport}\"\nusername = \"recorder\"\npassword_file = \"{}\"",
            p.display()
        )
    };
    let mut unit = Unit::new(&[
        Cam {
            id: "good",
            url: cam.url(),
            extra: extra(&good, "udp"),
        },
        Cam {
            id: "bad",
            url: cam.url(),
            extra: extra(&bad, "tcp"),
        },
    ]);
    unit.start();
    wait_for("a segment over UDP", Duration::from_secs(40), || {
        segment_files(&unit, "good") >= 1
    });
    wait_for("the refusal", Duration::from_secs(20), || {
        unit.log().contains("refused the credentials")
    });
    unit.stop();
    assert_eq!(segment_files(&unit, "bad"), 0);
    let log = unit.log();
    assert!(
        !log.contains("s3cret-pw"),
        "the password appears in the log"
    );
    let store = unit.store();
    let p = probe(&unit.decrypt(&store, "good", 0));
    assert_eq!(p.first_frame, "I");
}

#[test]
fn a_camera_sending_another_codec_is_refused_clearly() {
    let cam = Camera::start(&["--mjpeg"]);
    let mut unit = Unit::single(cam.url());
    unit.start();
    wait_for("the refusal", Duration::from_secs(30), || {
        unit.log().contains("only H.264 and H.265 are recorded")
    });
    unit.stop();
    assert_eq!(segment_files(&unit, "front"), 0);
}

#[test]
fn cameras_sending_garbage_do_not_disturb_the_others() {
    let corrupt = Camera::start(&["--corrupt", "0.0005"]);
    let clean = Camera::start(&[]);
    // Something on the camera's address answering RTSP with random bytes.
    let junk = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let junk_port = junk.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for conn in junk.incoming().take(50) {
            let Ok(mut c) = conn else { continue };
            let mut bytes = vec![0u8; 4096];
            for b in &mut bytes {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            let _ = std::io::Write::write_all(&mut c, &bytes);
        }
    });
    let mut unit = Unit::new(&[
        Cam {
            id: "corrupt",
            url: corrupt.url(),
            extra: String::new(),
        },
        Cam {
            id: "junk",
            url: format!("rtsp://127.0.0.1:{junk_port}/cam"),
            extra: String::new(),
        },
        Cam {
            id: "clean",
            url: clean.url(),
            extra: String::new(),
        },
    ]);
    unit.start();
    std::thread::sleep(Duration::from_secs(25));
    unit.stop(); // a clean exit: nothing crashed
    let log = unit.log();
    assert!(!log.contains("panicked"), "{log}");
    assert!(
        log.contains("camera=junk cause=the camera's answer is not valid RTSP"),
        "the junk camera's failure is logged, and says what to check"
    );
    let store = unit.store();
    let ms = unit.manifests(&store, "clean");
    assert!(ms.len() >= 2, "the clean camera recorded");
    for w in ms.windows(2) {
        assert_eq!(
            w[0].end_ns, w[1].start_ns,
            "clean: a gap while the others misbehaved"
        );
    }
    assert!(unit.manifests(&store, "junk").is_empty());
    assert!(store.verify(true).unwrap().is_empty());
}

fn rdc(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rdc-under-test"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn officer_fetches_footage_with_rdc_over_quic() {
    let keys = tempfile::tempdir().unwrap();
    let k = |p: &str| keys.path().join(p).display().to_string();
    assert!(
        rdc(&["keys", "ca", "--scheme", "Test Housing", "--dir", &k("ca")])
            .status
            .success()
    );
    assert!(
        rdc(&[
            "keys",
            "unit",
            "--ca-dir",
            &k("ca"),
            "--id",
            "e2e",
            "--dir",
            &k("unit")
        ])
        .status
        .success()
    );
    let user = rdc(&[
        "keys",
        "user",
        "--ca-dir",
        &k("ca"),
        "--name",
        "j.smith",
        "--dir",
        &k("users"),
    ]);
    assert!(user.status.success());
    let user_toml = String::from_utf8(user.stdout).unwrap();
    let id = rdc(&["keys", "identity", "--out", &k("officer.key")]);
    let officer_public = String::from_utf8(id.stdout).unwrap().trim().to_owned();
    assert!(officer_public.starts_with("age1"));
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let uplink = format!(
        "\n[uplink]\nlisten = \"127.0.0.1:{port}\"\ncert = \"{}\"\nkey_file = \"{}\"\nca = \"{}\"\n{}",
        k("unit/e2e.crt"),
        k("unit/e2e.key"),
        k("ca/ca.crt"),
        user_toml.replace("name = \"j.smith\"", "name = \"J. Smith\"")
    );
    let cam = Camera::start(&["--audio"]);
    let mut unit = Unit::with(
        &[Cam {
            id: "front",
            url: cam.url(),
            extra: String::new(),
        }],
        Some(&officer_public),
        &uplink,
    );
    unit.start();
    // A minute of footage: six closed 10 s segments.
    wait_for("a minute of footage", Duration::from_secs(100), || {
        segment_files(&unit, "front") >= 7
    });
    let units = keys.path().join("units.toml");
    std::fs::write(
        &units,
        format!(
            "[unit.e2e]\naddress = \"127.0.0.1:{port}\"\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
            k("ca/ca.crt"),
            k("users/j.smith.crt"),
            k("users/j.smith.key")
        ),
    )
    .unwrap();
    let out = keys.path().join("footage");
    let units_s = units.display().to_string();
    let out_s = out.display().to_string();
    let fetch = rdc(&[
        "fetch",
        "--unit",
        "e2e",
        "--units",
        &units_s,
        "--camera",
        "front",
        "--from",
        "now-10m",
        "--to",
        "now",
        "--case",
        "ASB/2026/7",
        "--reason",
        "damage to the front door",
        "--identity",
        &k("officer.key"),
        "--out",
        &out_s,
    ]);
    assert!(
        fetch.status.success(),
        "rdc fetch failed: {}",
        String::from_utf8_lossy(&fetch.stderr)
    );
    // The engineer's view over the uplink: the camera recording now, and the clock's state.
    let status = rdc(&["status", "--unit", "e2e", "--units", &units_s]);
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["live"]["cameras"][0]["camera"], "front");
    assert_eq!(
        status["live"]["cameras"][0]["recording"], true,
        "{status:#}"
    );
    assert!(status["live"]["clock"]["synchronized"].is_boolean());
    assert!(status["store"]["segments"].as_u64().unwrap() >= 2);
    // Without a case reference: refused, exit 1, and it says what is missing.
    let refused = rdc(&[
        "list", "--unit", "e2e", "--units", &units_s, "--camera", "front", "--case", "",
        "--reason", "x",
    ]);
    assert_eq!(
        refused.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("case reference"));
    // Revoking the officer's certificate gives a CRL the unit's configuration accepts.
    let revoke = rdc(&[
        "keys",
        "revoke",
        "--ca-dir",
        &k("ca"),
        "--crl",
        &k("scheme.crl"),
        &k("users/j.smith.crt"),
    ]);
    assert!(
        revoke.status.success(),
        "{}",
        String::from_utf8_lossy(&revoke.stderr)
    );
    assert!(
        std::fs::read_to_string(k("scheme.crl"))
            .unwrap()
            .starts_with("-----BEGIN X509 CRL-----")
    );
    let with_crl = std::fs::read_to_string(unit.config()).unwrap().replace(
        "\n[uplink]\n",
        &format!("\n[uplink]\ncrl = \"{}\"\n", k("scheme.crl")),
    );
    std::fs::write(keys.path().join("with-crl.toml"), with_crl).unwrap();
    let check = Command::new(env!("CARGO_BIN_EXE_rdc-recorder-under-test"))
        .arg("check-config")
        .arg(keys.path().join("with-crl.toml"))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    // Holds are for managers: the officer is told so.
    let holds = rdc(&["holds", "--unit", "e2e", "--units", &units_s, "list"]);
    assert_eq!(holds.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&holds.stderr).contains("ask a manager"),
        "{}",
        String::from_utf8_lossy(&holds.stderr)
    );
    unit.stop();
    let store = unit.store();
    let ms = unit.manifests(&store, "front");
    let fetched: Vec<String> = std::fs::read_dir(out.join("front"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let officer_id = age::IdentityFile::from_file(k("officer.key"))
        .unwrap()
        .into_identities()
        .unwrap();
    let (mut checked, mut covered_ns) = (0, 0);
    for m in &ms {
        if !fetched.contains(&m.file) {
            continue; // finished after the fetch
        }
        let on_unit = std::fs::read(store.segment_path("front", m.seq).unwrap()).unwrap();
        assert_eq!(
            std::fs::read(out.join("front").join(&m.file)).unwrap(),
            on_unit,
            "segment {} differs",
            m.seq
        );
        // The officer's footage is exactly what the unit recorded, decrypted.
        let mut recorded = Vec::new();
        age::Decryptor::new(&on_unit[..])
            .unwrap()
            .decrypt(officer_id.iter().map(|i| i.as_ref() as &dyn age::Identity))
            .unwrap()
            .read_to_end(&mut recorded)
            .unwrap();
        let ts = out.join("front").join(m.file.replace(".age", ".ts"));
        assert!(
            std::fs::read(&ts).unwrap() == recorded,
            "segment {}: the decrypted footage differs from the recording",
            m.seq
        );
        let p = probe(&ts);
        assert_eq!(p.streams, vec!["video"]);
        assert_eq!(p.first_frame, "I");
        checked += 1;
        covered_ns += m.end_ns - m.start_ns;
    }
    assert!(checked >= 6, "only {checked} segments fetched");
    assert!(
        covered_ns >= 58_000_000_000,
        "the fetched footage covers {} ms, not a minute",
        covered_ns / 1_000_000
    );
    let audit = store.audit_entries(0).unwrap();
    let fetches: Vec<_> = audit
        .iter()
        .filter(|(_, a)| a.action == "fetch" && a.outcome == "granted")
        .collect();
    assert!(fetches.len() >= checked);
    assert!(
        fetches
            .iter()
            .all(|(_, a)| a.case_ref.as_deref() == Some("ASB/2026/7")
                && a.who.starts_with("J. Smith"))
    );
    assert!(
        audit
            .iter()
            .any(|(_, a)| a.action == "list" && a.outcome.contains("case reference"))
    );
}

fn wait_child(c: &mut Child, limit: Duration) -> std::process::ExitStatus {
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
fn cut_link_mid_fetch(
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

#[test]
fn fetch_survives_a_cut_link_and_resumes() {
    let rig = rdc_tests::rig::UplinkRig::new(400); // two 20 s segments, 16 MB
    let footage = rig.footage_bytes();
    let link = rdc_tests::relay::Link {
        rate_bps: 20_000_000,
        delay: Duration::from_millis(20),
        loss: 0.0,
    };

    // 1. The link drops everything for 10 s in the middle of a fetch.
    let relay = rdc_tests::relay::Relay::start(rig.server_addr, link).unwrap();
    let out = rig.dir.path().join("out1");
    let child = rig
        .fetch_cmd(
            Path::new(env!("CARGO_BIN_EXE_rdc-under-test")),
            &rig.units_file(relay.addr),
            &out,
        )
        .spawn()
        .unwrap();
    cut_link_mid_fetch(child, &relay.stats, footage, Duration::from_secs(10));
    rig.assert_fetched(&out);
    let overhead = relay.bytes() as f64 / footage as f64 - 1.0;
    eprintln!(
        "outage: {} bytes on the wire for {footage} of footage (+{:.1} %)",
        relay.bytes(),
        overhead * 100.0
    );
    assert!(
        overhead < 0.05,
        "{:.1} % more bytes on the wire than footage",
        overhead * 100.0
    );

    // 2. rdc itself is killed mid-fetch (laptop lid closed); run again, it resumes.
    let relay = rdc_tests::relay::Relay::start(rig.server_addr, link).unwrap();
    let units = rig.units_file(relay.addr);
    let out = rig.dir.path().join("out2");
    let mut child = rig
        .fetch_cmd(
            Path::new(env!("CARGO_BIN_EXE_rdc-under-test")),
            &units,
            &out,
        )
        .spawn()
        .unwrap();
    wait_for("half the footage", Duration::from_secs(60), || {
        relay
            .stats
            .bytes_down
            .load(std::sync::atomic::Ordering::SeqCst)
            > footage / 2
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let mut child = rig
        .fetch_cmd(
            Path::new(env!("CARGO_BIN_EXE_rdc-under-test")),
            &units,
            &out,
        )
        .spawn()
        .unwrap();
    assert!(wait_child(&mut child, Duration::from_secs(120)).success());
    rig.assert_fetched(&out);
    let overhead = relay.bytes() as f64 / footage as f64 - 1.0;
    eprintln!(
        "resume: {} bytes on the wire for {footage} of footage (+{:.1} %)",
        relay.bytes(),
        overhead * 100.0
    );
    // What was in flight when the process died (at most the 3 MB connection window) is lost and
    // sent again; everything already written to the .part file is not.
    let window = 3_000_000.0;
    assert!(
        relay.bytes() as f64 <= footage as f64 * 1.05 + window,
        "{:.1} % more bytes on the wire than footage over both runs",
        overhead * 100.0
    );
    drop(rig.rt);
}

/// An officer on another network (a network namespace of its own) fetches over a packet-level
/// 4G link (10 Mbit/s, 60 ms RTT, 1 % random loss each way) that also goes dead for 5 s: every
/// IP packet crosses the emulated link, as on a real carrier.
#[test]
fn fetch_over_a_lossy_4g_link_from_another_network() {
    if let Err(e) = rdc_tests::tunlink::TunLink::check() {
        panic!("this test needs root and the tun driver (run it as root, as .ci/run does): {e:#}");
    }
    let rig = rdc_tests::rig::UplinkRig::new(200); // 8 MB
    let footage = rig.footage_bytes();
    let net = rdc_tests::tunlink::TunLink::start(rdc_tests::relay::Link {
        rate_bps: 10_000_000,
        delay: Duration::from_millis(30),
        loss: 0.01,
    })
    .unwrap();
    let units = rig.units_file(std::net::SocketAddr::from((
        net.unit_ip,
        rig.server_addr.port(),
    )));
    let out = rig.dir.path().join("out");
    let mut c = net.command(env!("CARGO_BIN_EXE_rdc-under-test"));
    rdc_tests::rig::UplinkRig::fetch_args(&mut c, &units, &out);
    cut_link_mid_fetch(
        c.spawn().unwrap(),
        &net.stats,
        footage,
        Duration::from_secs(5),
    );
    rig.assert_fetched(&out);
    let dropped = net.stats.dropped.load(std::sync::atomic::Ordering::SeqCst);
    assert!(dropped > 50, "the link lost only {dropped} packets");
    // Every IP byte either end put on the air, headers, ACKs and the lost packets included.
    let ratio = net.bytes() as f64 / footage as f64;
    eprintln!(
        "lossy packet link: {ratio:.3} IP bytes on the air per byte of footage, {dropped} packets lost"
    );
    // IP, UDP and QUIC headers (~4 %), the officer's ACKs (~2 %), the 1 % lost and sent again,
    // and the probes of the outage: nothing fetched twice.
    assert!(ratio < 1.10, "{ratio:.3} IP bytes per byte of footage");
    drop(rig.rt);
}

/// An auditor reads the unit's audit log with `rdc audit`: every entry checked, and a later
/// reading notices that entries were cut from the end of the log on the unit.
#[test]
fn an_auditor_notices_a_truncated_audit_log() {
    let rig = rdc_tests::rig::UplinkRig::new(25);
    let state = tempfile::tempdir().unwrap();
    let officer_units = rig.units_file(rig.server_addr);
    let auditor_units = rig.units_file_for("auditor", rig.server_addr);
    let rdc_bin = Path::new(env!("CARGO_BIN_EXE_rdc-under-test"));
    let fetch = |n: usize| {
        let o = rig
            .fetch_cmd(
                rdc_bin,
                &officer_units,
                &rig.dir.path().join(format!("out{n}")),
            )
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    let audit = || {
        Command::new(rdc_bin)
            .args(["audit", "--unit", "relay-unit", "--units"])
            .arg(&auditor_units)
            .env("XDG_STATE_HOME", state.path())
            .output()
            .unwrap()
    };
    fetch(1);
    let first = audit();
    let err = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{err}");
    assert!(err.contains("first reading"), "{err}");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&first.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines.iter().any(|e| e["body"]["action"] == "fetch"
            && e["body"]["case_ref"] == "ASB/9"
            && e["body"]["who"].as_str().unwrap().starts_with("J. Smith")),
        "the officer's fetch is not in the audit log: {lines:?}"
    );
    assert!(
        err.contains(&format!("{} audit entries checked", lines.len())),
        "{err}"
    );

    // More activity; the next reading continues from the entry seen before.
    fetch(2);
    let second = audit();
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{err}");
    assert!(err.contains("continuing from entry"), "{err}");

    // Someone with the unit in hand cuts the newest entries from its audit log.
    let log = rig.dir.path().join("store/logs/audit.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    let kept: Vec<&str> = text.lines().collect();
    let kept = &kept[..kept.len() - 4];
    std::fs::write(&log, kept.join("\n") + "\n").unwrap();
    let third = audit();
    let err = String::from_utf8_lossy(&third.stderr);
    assert_eq!(third.status.code(), Some(1), "{err}");
    assert!(
        err.contains("check failed") && (err.contains("missing") || err.contains("removed")),
        "{err}"
    );
    drop(rig.rt);
}
