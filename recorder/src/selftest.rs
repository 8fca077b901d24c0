//! `rdc-recorder selftest`: the field engineer's check before a unit goes into service and at
//! every visit (R16): one pass/fail line each, readable from a ladder.
//!
//! Each camera is asked for its stream for a few seconds (as the recorder does, on the same
//! RTSP client) and measured: codec, size, frame rate, bitrate, keyframe spacing. The disk is
//! measured against that bitrate: the days it really holds against `retention_days`. Then the
//! clock's sync state, the uplink (listening, its certificate's life), the configuration
//! (which refuses sample keys, factory passwords and readable secrets) and the service's
//! hardening as systemd scores it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdc_config::{Budget, Config};

use crate::ingest::{CameraSpec, Event, Session};

/// One check's outcome: the line `rdc/1` carries too.
pub use rdc_uplink::protocol::CheckLine as Line;

/// What to check beyond the configuration file.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long each camera is watched.
    pub watch: Duration,
    /// The installed systemd unit to score (default: where the package installs it).
    pub unit_file: Option<PathBuf>,
    /// Inside the daemon: measure the cameras it is recording, not new sessions.
    pub live: Option<Vec<(String, Arc<crate::camera::CameraState>)>>,
}

/// What a camera's stream looked like.
#[derive(Debug, Clone, Default)]
struct Measured {
    codec: Option<crate::tsmux::Codec>,
    size: Option<(u32, u32)>,
    frames: u64,
    bytes: u64,
    keyframes: u64,
    /// Seconds since the newest keyframe, when one came.
    last_keyframe_ago: Option<f64>,
    secs: f64,
}

/// Runs every check.
pub fn run(config: &Path, opts: &Options) -> Vec<Line> {
    let cfg = match Config::load(config) {
        Ok(l) => {
            let c = l.config;
            let mut detail = format!(
                "{}: valid; unit {}, {} camera(s), {} recipient(s)",
                config.display(),
                c.unit.id,
                c.cameras.len(),
                c.recipients.len()
            );
            for w in &l.warnings {
                detail.push_str(&format!("; warning: {w}"));
            }
            vec![(Line::new("configuration", true, detail), c)]
        }
        Err(e) => {
            // One problem a line, under the check's own.
            let detail = match &e {
                rdc_config::ConfigError::Invalid {
                    source_name,
                    problems,
                } => format!(
                    "{source_name} has {} problem{}:\n{}",
                    problems.len(),
                    if problems.len() == 1 { "" } else { "s" },
                    problems
                        .iter()
                        .map(|p| format!("      - {p}"))
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
                e => e.to_string(),
            };
            return vec![Line::new("configuration", false, detail)];
        }
    };
    let (first, cfg) = cfg.into_iter().next().expect("one");
    let mut lines = vec![first];
    let measured = match &opts.live {
        Some(states) => measure_live(states, opts.watch),
        None => watch_cameras(&cfg, opts.watch),
    };
    let mut bits_per_sec = 0.0;
    let mut all_measured = true;
    for (id, m) in &measured {
        match m {
            Ok(m) => {
                let (line, bps) = camera_line(id, m);
                if line.pass {
                    bits_per_sec += bps;
                } else {
                    all_measured = false;
                }
                lines.push(line);
            }
            Err(cause) => {
                all_measured = false;
                lines.push(Line::new(format!("camera {id}"), false, cause.clone()));
            }
        }
    }
    lines.push(disk_line(&cfg, bits_per_sec, all_measured));
    lines.push(clock_line());
    lines.extend(uplink_lines(&cfg));
    lines.push(hardening_line(opts.unit_file.as_deref()));
    lines
}

fn watch_cameras(cfg: &Config, watch: Duration) -> Vec<(String, Result<Measured, String>)> {
    let handles: Vec<_> = cfg
        .cameras
        .iter()
        .map(|c| {
            let id = c.id.to_string();
            let spec = c
                .password
                .as_ref()
                .map(|p| p.read())
                .transpose()
                .map(|password| CameraSpec {
                    id: id.clone(),
                    url: c.url.clone(),
                    transport: c.transport,
                    username: c.username.clone(),
                    password,
                })
                .map_err(|e| format!("cannot read the camera's password: {e}"));
            std::thread::spawn(move || (id, spec.and_then(|s| watch_camera(&s, watch))))
        })
        .collect();
    handles
        .into_iter()
        .map(|h| {
            h.join()
                .unwrap_or_else(|_| ("?".into(), Err("the check panicked".into())))
        })
        .collect()
}

/// Watches one camera's stream for `watch` once it starts (at most `watch` + 10 s in all).
fn watch_camera(spec: &CameraSpec, watch: Duration) -> Result<Measured, String> {
    let (tx, rx) = std::sync::mpsc::sync_channel(256);
    let session = Session::start(spec, tx, Arc::new(rdc_storage::RealClocks))?;
    let give_up = Instant::now() + watch + Duration::from_secs(10);
    let mut m = Measured::default();
    let mut started: Option<Instant> = None;
    let mut last_key: Option<Instant> = None;
    let result = loop {
        if started.is_some_and(|s| s.elapsed() >= watch) {
            break Ok(());
        }
        if Instant::now() >= give_up {
            break Err(if started.is_some() {
                "the camera set up its stream but sent no video".to_owned()
            } else {
                format!(
                    "no stream from the camera within {} s",
                    (watch + Duration::from_secs(10)).as_secs()
                )
            });
        }
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(Event::Started { codec, size, .. }) => {
                m.codec = Some(codec);
                m.size = size;
            }
            Ok(Event::Frame(f)) => {
                let now = Instant::now();
                started.get_or_insert(now);
                m.frames += 1;
                m.bytes += f.data.len() as u64;
                if f.keyframe {
                    m.keyframes += 1;
                    last_key = Some(now);
                }
            }
            Ok(Event::Gap { cause }) => break Err(cause),
            Ok(Event::Stop) => break Err("stopped".into()),
            Err(_) => {
                if let Some(cause) = session.poll(Duration::ZERO) {
                    break Err(cause);
                }
            }
        }
    };
    m.secs = started.map_or(0.0, |s| s.elapsed().as_secs_f64());
    m.last_keyframe_ago = last_key.map(|k| k.elapsed().as_secs_f64());
    session.stop();
    result.map(|()| m)
}

/// The daemon's own cameras, measured over `watch` from its counters.
fn measure_live(
    states: &[(String, Arc<crate::camera::CameraState>)],
    watch: Duration,
) -> Vec<(String, Result<Measured, String>)> {
    use std::sync::atomic::Ordering::Relaxed;
    let snap = |s: &crate::camera::CameraState| {
        (
            s.frames.load(Relaxed),
            s.bytes.load(Relaxed),
            s.keyframes.load(Relaxed),
        )
    };
    let before: Vec<_> = states.iter().map(|(_, s)| snap(s)).collect();
    let t = Instant::now();
    std::thread::sleep(watch);
    let secs = t.elapsed().as_secs_f64();
    let now_wall = rdc_storage::Clocks::wall_ns(&rdc_storage::RealClocks);
    states
        .iter()
        .zip(before)
        .map(|((id, s), b)| {
            let a = snap(s);
            let stream = *s.stream.lock().unwrap_or_else(|p| p.into_inner());
            let r = if !s.recording.load(Relaxed) && a.0 == b.0 {
                Err(s
                    .last_cause
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone()
                    .map_or(
                        "not recording: no stream from the camera yet".to_owned(),
                        |c| format!("not recording: {c}"),
                    ))
            } else {
                Ok(Measured {
                    codec: stream.map(|x| x.0),
                    size: stream.and_then(|x| x.1),
                    frames: a.0 - b.0,
                    bytes: a.1 - b.1,
                    keyframes: a.2 - b.2,
                    last_keyframe_ago: s
                        .last_keyframe
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .as_ref()
                        .map(|k| (now_wall - k.2) as f64 / 1e9),
                    secs,
                })
            };
            (id.clone(), r)
        })
        .collect()
}

fn camera_line(id: &str, m: &Measured) -> (Line, f64) {
    let check = format!("camera {id}");
    let secs = m.secs.max(0.001);
    let bps = m.bytes as f64 * 8.0 / secs;
    let fps = m.frames as f64 / secs;
    let codec = match m.codec {
        Some(crate::tsmux::Codec::H264) => "H.264",
        Some(crate::tsmux::Codec::H265) => "H.265",
        None => "?",
    };
    let size = m
        .size
        .map_or("size unknown".to_owned(), |(w, h)| format!("{w}x{h}"));
    let gop = match m.keyframes {
        0 => String::new(),
        1 => "one keyframe seen".to_owned(),
        n => format!("a keyframe every {:.1} s", secs / n as f64),
    };
    let last = m
        .last_keyframe_ago
        .map(|a| format!("last {a:.1} s ago"))
        .unwrap_or_default();
    let detail = format!(
        "{codec} {size}, {fps:.1} fps, {:.2} Mbit/s, {gop}, {last}",
        bps / 1e6
    );
    if m.frames == 0 {
        return (
            Line::new(
                check,
                false,
                format!(
                    "{detail}: no frame in {secs:.0} s; check the camera is streaming (its power, cable and RTSP settings)"
                ),
            ),
            0.0,
        );
    }
    if m.keyframes == 0 {
        return (
            Line::new(
                check,
                false,
                format!(
                    "{detail}: no keyframe in {secs:.0} s, so nothing could be recorded; set the camera's keyframe (I-frame) interval to 1-4 s"
                ),
            ),
            0.0,
        );
    }
    (Line::new(check, true, detail), bps)
}

/// Bytes the file system at (or above) `p` has in all and free: `statvfs`.
fn fs_space(p: &Path) -> Option<(u64, u64)> {
    let mut dir = p.to_path_buf();
    while !dir.exists() {
        dir = dir.parent()?.to_path_buf();
    }
    let st = rustix::fs::statvfs(&dir).ok()?;
    let f = st.f_frsize;
    Some((st.f_blocks * f, st.f_bavail * f))
}

fn gib(b: f64) -> String {
    format!("{:.1} GiB", b / (1u64 << 30) as f64)
}

fn disk_line(cfg: &Config, bits_per_sec: f64, all_measured: bool) -> Line {
    let s = &cfg.storage;
    let Some((size, free)) = fs_space(&s.path) else {
        return Line::new(
            "disk",
            false,
            format!("cannot read the file system of {}", s.path.display()),
        );
    };
    let store = rdc_storage::bytes_under(&s.path);
    let usable = match s.budget {
        Budget::MaxBytes(n) => n.min(free + store),
        Budget::ReserveFree(r) => (free + store).saturating_sub(r),
    } as f64;
    let head = format!(
        "{}: {} file system, {} free, the store may use {}",
        s.path.display(),
        gib(size as f64),
        gib(free as f64),
        gib(usable)
    );
    if bits_per_sec <= 0.0 {
        return Line::new(
            "disk",
            false,
            format!("{head}; the days it holds cannot be measured: no camera is streaming"),
        );
    }
    let per_day = bits_per_sec / 8.0 * 86_400.0;
    let days = usable / per_day;
    let want = f64::from(s.retention_days);
    let detail = format!(
        "{head}; at the measured {:.2} Mbit/s ({} a day) it holds {days:.1} days, retention_days is {}{}",
        bits_per_sec / 1e6,
        gib(per_day),
        s.retention_days,
        if all_measured {
            ""
        } else {
            " (cameras not streaming are not counted)"
        }
    );
    if days >= want {
        Line::new("disk", true, detail)
    } else {
        Line::new(
            "disk",
            false,
            format!(
                "{detail}: too small, the oldest footage would go after {days:.1} days; {} days need {}: raise storage.max_bytes or fit a bigger disk, or lower the cameras' bitrate",
                s.retention_days,
                gib(per_day * want)
            ),
        )
    }
}

/// For tests on machines whose clock is synchronised: `RDC_SIMULATE_UNSYNCED_CLOCK=1` makes
/// the clock check fail as an unsynchronised clock would. It can only make the check fail.
fn clock_line() -> Line {
    let simulated = std::env::var_os("RDC_SIMULATE_UNSYNCED_CLOCK").is_some_and(|v| v == "1");
    let s = crate::clockstate::read();
    if s.synchronized && !simulated {
        Line::new(
            "clock",
            true,
            format!(
                "synchronised (NTP), estimated error {} ms",
                s.max_error_us.unwrap_or(0) / 1000
            ),
        )
    } else {
        Line::new(
            "clock",
            false,
            format!(
                "NOT synchronised{}: footage times cannot be relied on in court; check the unit's NTP (timedatectl; systemd-timesyncd or chrony) and that its 4G link is up",
                if simulated { " (simulated)" } else { "" }
            ),
        )
    }
}

fn uplink_lines(cfg: &Config) -> Vec<Line> {
    let Some(u) = &cfg.uplink else {
        return vec![Line::new(
            "uplink",
            false,
            "no [uplink] in the configuration: officers cannot reach this unit",
        )];
    };
    let listening = if u.listen.port() == 0 {
        Line::new(
            "uplink listening",
            false,
            format!(
                "uplink.listen {} has port 0, so the port changes at every start: set a fixed one officers can reach",
                u.listen
            ),
        )
    } else {
        listen_line(u.listen)
    };
    let cert = match std::fs::read_to_string(&u.cert)
        .ok()
        .and_then(|pem| rdc_uplink::tls::cert_der(&pem))
    {
        None => Line::new(
            "uplink certificate",
            false,
            format!("{} is not a readable certificate", u.cert.display()),
        ),
        Some(der) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            match rdc_uplink::pki::not_after(&der) {
                None => Line::new("uplink certificate", false, "its validity cannot be read"),
                Some(end) => {
                    let days = (end - now) as f64 / 86_400.0;
                    let name = rdc_uplink::pki::common_name(&der).unwrap_or_default();
                    let detail = format!(
                        "{name}, valid until {} ({days:.0} days)",
                        rdc_storage::clock::rfc3339(end * 1_000_000_000)
                    );
                    if days > 30.0 {
                        Line::new("uplink certificate", true, detail)
                    } else {
                        Line::new(
                            "uplink certificate",
                            false,
                            format!(
                                "{detail}: renew it now (rdc keys unit, on the scheme's machine), before officers are locked out"
                            ),
                        )
                    }
                }
            }
        }
    };
    let mut lines = vec![listening, cert];
    if let Some(v) = &u.vpn {
        lines.extend(crate::tunnel::lines(&crate::tunnel::read(&v.interface)));
    }
    lines
}

fn listen_line(listen: std::net::SocketAddr) -> Line {
    match std::net::UdpSocket::bind(listen) {
        // Someone holds the port; when the recorder runs, it is the recorder.
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Line::new(
            "uplink listening",
            true,
            format!("UDP {} is open (QUIC)", listen),
        ),
        Err(e) => Line::new(
            "uplink listening",
            false,
            format!("cannot check UDP {}: {e}", listen),
        ),
        Ok(_) => Line::new(
            "uplink listening",
            false,
            format!(
                "nothing listens on UDP {}: is the recorder running? (systemctl status rdc-recorder)",
                listen
            ),
        ),
    }
}

/// Where the package installs the unit file, and where an administrator overrides it.
const UNIT_FILES: [&str; 3] = [
    "/etc/systemd/system/rdc-recorder.service",
    "/lib/systemd/system/rdc-recorder.service",
    "/usr/lib/systemd/system/rdc-recorder.service",
];

fn hardening_line(unit_file: Option<&Path>) -> Line {
    let file = unit_file
        .map(Path::to_path_buf)
        .or_else(|| UNIT_FILES.iter().map(PathBuf::from).find(|p| p.exists()));
    let Some(file) = file else {
        return Line::new(
            "service hardening",
            false,
            "rdc-recorder.service is not installed (install the package)",
        );
    };
    let out = std::process::Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&file)
        .output();
    let text = match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout).into_owned(),
        Err(e) => {
            return Line::new(
                "service hardening",
                false,
                format!("cannot run systemd-analyze: {e}"),
            );
        }
    };
    let score = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok());
    match score {
        Some(s) if s <= 2.0 => Line::new(
            "service hardening",
            true,
            format!(
                "systemd exposure {s:.1} (at most 2.0) for {}",
                file.display()
            ),
        ),
        Some(s) => Line::new(
            "service hardening",
            false,
            format!(
                "systemd exposure {s:.1} for {}, over 2.0: a drop-in weakens the shipped unit (systemctl cat rdc-recorder)",
                file.display()
            ),
        ),
        None => Line::new(
            "service hardening",
            false,
            format!("systemd-analyze gave no score for {}", file.display()),
        ),
    }
}

/// Prints the lines for a person (or, with `json`, for tools); returns whether all passed.
pub fn print(lines: &[Line], json: bool) -> bool {
    print!("{}", Line::render(lines, json));
    lines.iter().all(|l| l.pass)
}
