//! The field engineer's tools: `rdc-recorder init` and `rdc keys sign-unit` (the unit's keys
//! made on the unit), and `rdc-recorder selftest`, its lines passing and failing for what a
//! person on a ladder must see.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

use crate::harness::*;

/// `rdc-recorder selftest` on `config`, the shipped unit file scored, the clock's failure
/// simulated (this machine's may or may not be synchronised): exit code and JSON checks.
fn selftest(config: &Path) -> (i32, Vec<serde_json::Value>, String) {
    let unit_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd/rdc-recorder.service");
    let o = Command::new(env!("CARGO_BIN_EXE_rdc-recorder-under-test"))
        .args(["selftest", "--seconds", "3", "--json", "--config"])
        .arg(config)
        .arg("--unit-file")
        .arg(&unit_file)
        .env("RDC_SIMULATE_UNSYNCED_CLOCK", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let v: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{e}: {text}{}", String::from_utf8_lossy(&o.stderr)));
    (
        o.status.code().unwrap_or(-1),
        v["checks"].as_array().unwrap().clone(),
        text,
    )
}

/// A camera's credentials for its configuration section: `password` in a file of mode 600 in
/// the scheme's folder (named after `name`).
fn credentials(s: &Scheme, name: &str, user: &str, password: &str) -> String {
    let pw = s.keys.path().join(format!("{name}.pw"));
    std::fs::write(&pw, format!("{password}\n")).unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    format!(
        "username = \"{user}\"\npassword_file = \"{}\"",
        pw.display()
    )
}

fn line<'a>(checks: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    checks
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no check {name:?} in {checks:#?}"))
}

fn assert_line(checks: &[serde_json::Value], name: &str, pass: bool, says: &str) {
    let l = line(checks, name);
    assert_eq!(l["pass"], pass, "{name}: {l:#}");
    assert!(
        l["detail"].as_str().unwrap().contains(says),
        "{name} does not say {says:?}: {l:#}"
    );
}

/// `rdc-recorder init --id ID [extra] --dir DIR`, as on the unit.
fn init(id: &str, dir: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rdc-recorder-under-test"))
        .args(["init", "--id", id])
        .args(extra)
        .arg("--dir")
        .arg(dir)
        .output()
        .unwrap()
}

#[test]
fn a_unit_made_with_init_and_sign_unit_serves_and_selftest_says_what_holds() {
    let s = Scheme::new();
    // On the unit: its keys and a request; on the scheme's machine: the certificate.
    let state = s.keys.path().join("state");
    let made = init("e2e", &state, &[]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    assert!(
        String::from_utf8_lossy(&made.stdout).starts_with("-----BEGIN CERTIFICATE REQUEST-----")
    );
    for f in ["unit-signing-key.p8", "uplink.key"] {
        let mode = std::fs::metadata(state.join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    let key_before = std::fs::read(state.join("uplink.key")).unwrap();
    let signed = rdc(&[
        "keys",
        "sign-unit",
        "--ca-dir",
        &s.path("ca"),
        "--csr",
        &state.join("uplink.csr").display().to_string(),
        "--dir",
        &s.path("unit"),
    ]);
    assert!(
        signed.status.success(),
        "{}",
        String::from_utf8_lossy(&signed.stderr)
    );
    // Run again: the keys are kept, a new request made for the same key.
    let again = init("e2e", &state, &[]);
    assert!(again.status.success());
    assert_eq!(std::fs::read(state.join("uplink.key")).unwrap(), key_before);
    // Another id on this unit's keys: refused, nothing changed; with --rename, taken and
    // recorded. (On a copy: the unit below is e2e.)
    let copy = s.keys.path().join("state-copy");
    std::fs::create_dir_all(&copy).unwrap();
    for e in std::fs::read_dir(&state).unwrap().flatten() {
        std::fs::copy(e.path(), copy.join(e.file_name())).unwrap();
    }
    // A folder made before init wrote unit-id: the request names the unit.
    std::fs::remove_file(copy.join("unit-id")).unwrap();
    let csr_before = std::fs::read(copy.join("uplink.csr")).unwrap();
    let other = init("unit-0002", &copy, &[]);
    let err = String::from_utf8_lossy(&other.stderr);
    assert!(!other.status.success(), "{err}");
    assert!(
        err.contains("holds the keys of unit e2e, not unit-0002") && err.contains("--rename"),
        "{err}"
    );
    assert!(
        other.stdout.is_empty(),
        "a request was printed for unit-0002"
    );
    assert_eq!(std::fs::read(copy.join("uplink.csr")).unwrap(), csr_before);
    let renamed = init("unit-0002", &copy, &["--rename"]);
    assert!(
        renamed.status.success(),
        "{}",
        String::from_utf8_lossy(&renamed.stderr)
    );
    assert_eq!(
        rdc_uplink::pki::request_unit(&String::from_utf8_lossy(&renamed.stdout)).unwrap(),
        "unit-0002"
    );
    let log = std::fs::read_to_string(copy.join("renames.log")).unwrap();
    assert!(log.contains("renamed unit e2e to unit-0002"), "{log}");
    // Renamed, the folder now refuses e2e unless renamed back.
    let back = init("e2e", &copy, &[]);
    assert!(!back.status.success());
    // The unit's [uplink] uses the key init made (Scheme::unit reads unit/e2e.key).
    std::fs::copy(state.join("uplink.key"), s.keys.path().join("unit/e2e.key")).unwrap();

    let cam = Camera::start(&["--credentials", "recorder:k7-Lw9q!x"]);
    let mut unit = s.unit(&[Cam {
        id: "front",
        url: cam.url(),
        extra: credentials(&s, "front", "recorder", "k7-Lw9q!x"),
    }]);
    unit.start();
    unit.wait_connected(1);
    // The officer reaches the unit whose certificate came from the request.
    let st = s.rdc("status", &[]);
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );

    let (code, checks, text) = selftest(&unit.config());
    assert_eq!(code, 1, "a failing check exits 1: {text}");
    assert_line(&checks, "configuration", true, "valid");
    assert_line(&checks, "camera front", true, "H.264 640x360");
    assert_line(&checks, "camera front", true, "fps");
    assert_line(&checks, "uplink listening", true, "is open");
    assert_line(&checks, "uplink certificate", true, "e2e, valid until");
    assert_line(&checks, "service hardening", true, "systemd exposure 1.");
    assert_line(&checks, "clock", false, "NOT synchronised (simulated)");
    // 2 GiB of budget at the camera's ~1 Mbit/s is hours, not the default 31 days.
    assert_line(&checks, "disk", false, "too small");
    assert_line(&checks, "disk", false, "retention_days is 31");
    unit.stop();
    // Without its recorder, nothing listens.
    let (_, checks, _) = selftest(&unit.config());
    assert_line(&checks, "uplink listening", false, "nothing listens");
    // The same as lines for a person.
    let o = Command::new(env!("CARGO_BIN_EXE_rdc-recorder-under-test"))
        .args(["selftest", "--seconds", "1", "--config"])
        .arg(unit.config())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.lines().any(|l| l.starts_with("PASS  camera front")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("FAIL  uplink listening")),
        "{text}"
    );
    assert!(text.contains("checks FAILED"), "{text}");
}

#[test]
fn selftest_names_an_unreachable_camera_wrong_credentials_an_expiring_certificate_and_sample_credentials()
 {
    let s = Scheme::new();
    // A unit certificate with 10 days left (in place of the one Scheme made).
    for f in ["unit/e2e.key", "unit/e2e.crt"] {
        std::fs::remove_file(s.keys.path().join(f)).unwrap();
    }
    let short = rdc(&[
        "keys",
        "unit",
        "--ca-dir",
        &s.path("ca"),
        "--id",
        "e2e",
        "--dir",
        &s.path("unit"),
        "--days",
        "10",
    ]);
    assert!(
        short.status.success(),
        "{}",
        String::from_utf8_lossy(&short.stderr)
    );
    let cam = Camera::start(&["--credentials", "recorder:k7-Lw9q!x"]);
    let dead = format!("rtsp://127.0.0.1:{}/cam", free_port());
    let unit = s.unit(&[
        Cam {
            id: "dead",
            url: dead,
            extra: String::new(),
        },
        Cam {
            id: "locked",
            url: cam.url(),
            extra: credentials(&s, "locked", "recorder", "not-the-password"),
        },
    ]);
    let (code, checks, _) = selftest(&unit.config());
    assert_eq!(code, 1);
    assert_line(
        &checks,
        "camera dead",
        false,
        "cannot connect to the camera",
    );
    assert_line(&checks, "camera locked", false, "refused the credentials");
    assert_line(&checks, "uplink certificate", false, "renew it now");
    assert_line(&checks, "disk", false, "no camera is streaming");

    // The camera's factory password: the configuration is refused, saying which.
    let unit = s.unit(&[Cam {
        id: "front",
        url: cam.url(),
        extra: credentials(&s, "factory", "admin", "12345"),
    }]);
    let (code, checks, _) = selftest(&unit.config());
    assert_eq!(code, 1);
    assert_line(&checks, "configuration", false, "factory-default password");
    // And the daemon will not start with it.
    let run = Command::new(env!("CARGO_BIN_EXE_rdc-recorder-under-test"))
        .args(["run", "--config"])
        .arg(unit.config())
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&run.stderr).contains("factory-default"));
    // Nor with the example configuration's sample recipients.
    let sample = std::fs::read_to_string(unit.config())
        .unwrap()
        .replace(&s.officer_public, rdc_config::SAMPLE_RECIPIENTS[0]);
    let p = s.keys.path().join("sample.toml");
    std::fs::write(&p, sample).unwrap();
    let check = Command::new(env!("CARGO_BIN_EXE_rdc-recorder-under-test"))
        .arg("check-config")
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&check.stderr).contains("sample key"),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    // init refuses it too, and makes nothing.
    let state = s.keys.path().join("state");
    let refused = init("e2e", &state, &["--config", &p.display().to_string()]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("sample key") && err.contains("nothing was created"),
        "{err}"
    );
    assert!(!state.join("unit-signing-key.p8").exists());
}

/// The shipped unit: `systemd-analyze verify` passes (with the binary where the unit expects
/// it: here the one built for the tests) and `systemd-analyze security` rates it 2.0 or lower.
#[test]
fn the_shipped_systemd_unit_verifies_and_is_hardened() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd/rdc-recorder.service");
    let text = std::fs::read_to_string(&shipped).unwrap();
    assert!(text.contains("ExecStart=/usr/bin/rdc-recorder run"));
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("rdc-recorder.service");
    std::fs::write(
        &unit,
        text.replace(
            "/usr/bin/rdc-recorder",
            env!("CARGO_BIN_EXE_rdc-recorder-under-test"),
        ),
    )
    .unwrap();
    let v = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    assert!(
        v.status.success() && v.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&v.stderr)
    );
    let sec = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&shipped)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&sec.stdout);
    let score: f64 = out
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no score in {out}"));
    assert!(score <= 2.0, "exposure {score}");
}

/// Commissioning: the engineer sees a still of each camera (H.264 and H.265) until the unit is
/// marked in service, then none; the officer never through this; every request audited; a
/// mark made on the unit is audited when the recorder sees it. And the remote selftest.
#[test]
fn commissioning_stills_until_in_service_then_none_and_the_remote_selftest() {
    let s = Scheme::new();
    s.add_user("eng", "engineer");
    let eng_rdc = |args: &[&str]| s.rdc_as("eng", args[0], &args[1..]);
    let front = Camera::start(&[]);
    let rear = Camera::start(&["--codec", "h265"]);
    let mut unit = s.unit(&Cam::front_and_rear(front.url(), rear.url()));
    unit.start();
    unit.wait_connected(2);
    // Each camera's first keyframes have reached the recorder.
    wait_for(
        "both cameras recording",
        std::time::Duration::from_secs(30),
        || recording(&unit, "front") && recording(&unit, "rear"),
    );
    let stills = s.keys.path().join("stills");
    let o = eng_rdc(&["commission", "--out", &stills.display().to_string()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for cam in ["front", "rear"] {
        let p = ffprobe(&["-show_streams"], &stills.join(format!("{cam}.png")));
        assert_eq!(p["streams"][0]["codec_name"], "png", "{cam}: {p:#}");
        assert_eq!(p["streams"][0]["width"], 640, "{cam}");
        assert_eq!(p["streams"][0]["height"], 360, "{cam}");
    }
    // A camera the unit does not have: named, with the ones it has; no folder made.
    let nowhere = s.keys.path().join("stills-frnt");
    let o = eng_rdc(&[
        "commission",
        "--camera",
        "frnt",
        "--out",
        &nowhere.display().to_string(),
    ]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{e}");
    assert!(
        e.contains("has no camera frnt; its cameras: front, rear"),
        "{e}"
    );
    assert!(!nowhere.exists());
    // The officer gets no still (their footage goes through fetch, with a case and reason).
    let o = s.rdc("commission", &["--out", &stills.display().to_string()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("field engineer or manager"));
    // The remote selftest: the unit measures its own cameras.
    let o = eng_rdc(&["selftest"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("PASS  camera front") && l.contains("H.264 640x360")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("PASS  camera rear") && l.contains("H.265")),
        "{text}"
    );
    // A pass is a camera delivering frames: each at about the 25 fps it sends, never 0.
    for cam in ["front", "rear"] {
        let line = text
            .lines()
            .find(|l| l.contains(&format!("camera {cam}")))
            .unwrap();
        let fps: f64 = line
            .split(" fps")
            .next()
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no fps in {line:?}"));
        assert!((20.0..=30.0).contains(&fps), "{cam}: {line}");
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("PASS  uplink listening")),
        "{text}"
    );
    assert_eq!(
        o.status.code(),
        Some(1),
        "the disk check fails (2 GiB): {text}"
    );
    // Activity (bytes per minute): the officer's chart, with a case and reason; the engineer
    // is refused; both audited. (It counts finished segments.)
    wait_for(
        "a segment of each camera",
        std::time::Duration::from_secs(30),
        || {
            ["front", "rear"]
                .iter()
                .all(|c| !manifests_in_log(&unit, c).is_empty())
        },
    );
    let o = s.rdc(
        "status",
        &[
            "--activity",
            "--hours",
            "1",
            "--case",
            "ASB/1",
            "--reason",
            "where to look",
        ],
    );
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for cam in ["front", "rear"] {
        let line = text
            .lines()
            .find(|l| l.starts_with(cam))
            .unwrap_or_else(|| panic!("no {cam} in {text}"));
        assert!(line.contains('█') && line.contains("MB/min"), "{line}");
    }
    let o = s.rdc(
        "status",
        &["--activity", "--hours", "1", "--case", "", "--reason", "x"],
    );
    assert_eq!(o.status.code(), Some(1));
    let o = eng_rdc(&["status", "--activity", "--case", "ASB/1", "--reason", "r"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("case support officer or manager"));
    // In service: no more stills, for anyone.
    let o = eng_rdc(&["commission", "--done", "--reason", "installation job 42"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = eng_rdc(&[
        "commission",
        "--camera",
        "front",
        "--out",
        &stills.display().to_string(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("in service since"));
    let audit = std::fs::read_to_string(unit.dir.path().join("store/logs/audit.jsonl")).unwrap();
    let n = |action: &str, outcome: &str| {
        audit
            .lines()
            .filter(|l| l.contains(&format!("\"action\":\"{action}\"")) && l.contains(outcome))
            .count()
    };
    assert_eq!(
        n("commission_still", "\"outcome\":\"granted\""),
        2,
        "{audit}"
    );
    assert_eq!(n("commission_still", "in service since"), 1, "{audit}");
    assert_eq!(n("commission_done", "installation job 42"), 1, "{audit}");
    assert!(
        n("commission_still", "field engineer or manager") >= 1,
        "{audit}"
    );
    assert_eq!(n("activity", "\"outcome\":\"granted\""), 2, "{audit}");
    assert!(
        n("activity", "case support officer or manager") >= 1,
        "{audit}"
    );

    // A mark made on the unit itself, while the recorder is stopped: audited at its start.
    unit.stop();
    std::fs::remove_file(unit.dir.path().join("store/in-service.json")).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_rdc-recorder-under-test"))
        .args(["commission", "--done", "--reason", "job 43", "--config"])
        .arg(unit.config())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    unit.start();
    wait_for(
        "the local mark in the audit log",
        std::time::Duration::from_secs(20),
        || {
            std::fs::read_to_string(unit.dir.path().join("store/logs/audit.jsonl"))
                .unwrap()
                .lines()
                .any(|l| l.contains("commission_done") && l.contains("job 43"))
        },
    );
    let o = eng_rdc(&[
        "commission",
        "--camera",
        "front",
        "--out",
        &stills.display().to_string(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    unit.stop();
    let audit = std::fs::read_to_string(unit.dir.path().join("store/logs/audit.jsonl")).unwrap();
    assert_eq!(
        audit.lines().filter(|l| l.contains("job 43")).count(),
        1,
        "the local mark is logged once: {audit}"
    );
}
