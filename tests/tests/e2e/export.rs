//! Evidence export: `rdc export` of a range across a camera outage and a power cut, checked
//! with `rdc verify`,
//! the stock `sha256sum` and `age`, ffprobe; then each kind of tampering, named by verify.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rdc_format::Ended;
use rdc_format::time::rfc3339;

use crate::harness::*;

const CASE: &str = "ASB/2026/0099";
const REASON: &str = "damage to the front door: for the police";

fn export(s: &Scheme, from_ns: i64, to_ns: i64, out: &Path) -> std::process::Output {
    s.rdc(
        "export",
        &[
            "--camera",
            "front",
            "--from",
            &rfc3339(from_ns),
            "--to",
            &rfc3339(to_ns),
            "--case",
            CASE,
            "--reason",
            REASON,
            "--identity",
            &s.path("officer.key"),
            "--out",
            &out.display().to_string(),
        ],
    )
}

fn verify(s: &Scheme, dir: &Path) -> (i32, String) {
    let o = rdc(&[
        "verify",
        &dir.display().to_string(),
        "--ca",
        &s.path("ca/ca.crt"),
        "--identity",
        &s.path("officer.key"),
    ]);
    (
        o.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

/// An emulated camera started with `camera_args`, recorded by the scheme's unit as "front"
/// until three segments are finished.
fn recording(s: &Scheme, camera_args: &[&str]) -> (Camera, Unit) {
    let cam = Camera::start(camera_args);
    let mut unit = s.unit(&[Cam {
        id: "front",
        url: cam.url(),
        extra: String::new(),
    }]);
    unit.start();
    wait_for("three segments", Duration::from_secs(60), || {
        manifests_in_log(&unit, "front").len() >= 3
    });
    (cam, unit)
}

fn bundle(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

/// Rewrites manifest.json with `edit` applied to the bundle and signed with `key` (an
/// insider's re-signing: the signature holds, so what verify finds is the content).
fn resign(dir: &Path, key: &str, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut signed = bundle(dir);
    edit(&mut signed["bundle"]);
    let sig = rdc_uplink::pki::sign(
        &std::fs::read_to_string(key).unwrap(),
        &rdc_format::export::canonical(&signed["bundle"]),
    )
    .unwrap();
    use base64::Engine as _;
    signed["signature"]["value"] = base64::engine::general_purpose::STANDARD.encode(sig).into();
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec_pretty(&signed).unwrap(),
    )
    .unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.join("master")).unwrap();
    for sub in ["", "master"] {
        for e in std::fs::read_dir(from.join(sub)).unwrap().flatten() {
            if e.file_type().unwrap().is_file() {
                std::fs::copy(e.path(), to.join(sub).join(e.file_name())).unwrap();
            }
        }
    }
}

fn flip_byte(p: &Path, at: u64) {
    let mut b = std::fs::read(p).unwrap();
    let i = (at as usize).min(b.len() - 1);
    b[i] ^= 0x01;
    std::fs::write(p, b).unwrap();
}

fn first_master(dir: &Path, ext: &str) -> PathBuf {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("master"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v.remove(0)
}

/// What a recipient's player sees of the working copy `mp4` (its manifest entry `wc`): one
/// video stream and the time track, no audio; as long as its footage; every frame the manifest
/// counts decodes, without an error.
fn assert_plays(mp4: &Path, wc: &serde_json::Value) {
    let p = ffprobe(&["-show_format", "-count_frames", "-show_streams"], mp4);
    let kinds: Vec<&str> = p["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["codec_type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["video", "subtitle"], "{p:#}");
    assert_eq!(p["streams"][1]["codec_name"], "mov_text");
    let dur: f64 = p["format"]["duration"].as_str().unwrap().parse().unwrap();
    let want = (wc["to_ns"].as_i64().unwrap() - wc["from_ns"].as_i64().unwrap()) as f64 / 1e9;
    assert!((dur - want).abs() < 0.3, "MP4 {dur} s, footage {want} s");
    let frames: u64 = p["streams"][0]["nb_read_frames"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        frames,
        wc["frames"].as_u64().unwrap(),
        "every frame decodes"
    );
    let decode = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(mp4)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(
        decode.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&decode.stderr)
    );
}

#[test]
fn an_export_across_an_outage_and_a_power_cut_lists_the_gaps_verifies_and_every_tampering_is_named()
{
    if skip_long(
        "an_export_across_an_outage_and_a_power_cut_lists_the_gaps_verifies_and_every_tampering_is_named",
    ) {
        return;
    }
    let s = Scheme::new();
    let (mut cam, mut unit) = recording(&s, &["--audio"]);
    // The camera dies for 12 s, then comes back.
    cam.kill();
    wait_for(
        "the segment closed by the outage",
        Duration::from_secs(30),
        || {
            manifests_in_log(&unit, "front")
                .iter()
                .any(|m| matches!(m.ended, Ended::Stopped { .. }))
        },
    );
    std::thread::sleep(Duration::from_secs(12));
    cam.restart();
    let before = manifests_in_log(&unit, "front").len();
    wait_for(
        "two segments after the outage",
        Duration::from_secs(60),
        || manifests_in_log(&unit, "front").len() >= before + 2,
    );
    // Then the power fails (SIGKILL) 4-8 s into a segment, and comes back.
    let before = manifests_in_log(&unit, "front").len();
    wait_for("a segment 4-8 s old", Duration::from_secs(60), || {
        let ms = manifests_in_log(&unit, "front");
        let age = now_ns() - ms.last().map_or(0, |m| m.end_ns);
        ms.len() > before && (4_000_000_000..8_000_000_000).contains(&age)
    });
    unit.kill();
    std::thread::sleep(Duration::from_secs(3));
    unit.start();
    let before = manifests_in_log(&unit, "front").len();
    wait_for(
        "two segments after the power cut",
        Duration::from_secs(60),
        || manifests_in_log(&unit, "front").len() >= before + 3,
    );
    let ms = manifests_in_log(&unit, "front");
    let cut = ms
        .iter()
        .find(|m| m.ended == Ended::PowerLoss)
        .expect("the segment cut by the power failure");
    let back = ms.iter().find(|m| m.seq == cut.seq + 1).unwrap();
    // The outage: the stopped segment after which nothing came for 10 s or more.
    let (stopped, resumed) = ms
        .windows(2)
        .find(|w| {
            matches!(w[0].ended, Ended::Stopped { .. })
                && w[1].start_ns - w[0].end_ns >= 10_000_000_000
        })
        .map(|w| (&w[0], &w[1]))
        .expect("the outage's segments");
    // From between two keyframes of the second segment to inside the last finished one.
    let from_ns = ms[1].start_ns + 3_300_000_000;
    let to_ns = ms.last().unwrap().end_ns - 2_000_000_000;

    // A range with no footage is refused, saying what exists.
    let work = tempfile::tempdir().unwrap();
    let none = export(
        &s,
        from_ns - 7_200_000_000_000,
        from_ns - 3_600_000_000_000,
        &work.path().join("none"),
    );
    let err = String::from_utf8_lossy(&none.stderr);
    assert!(!none.status.success());
    assert!(
        err.contains("no footage from front") && err.contains("The unit has front's footage from"),
        "{err}"
    );

    let out = work.path().join("bundle");
    let o = export(&s, from_ns, to_ns, &out);
    assert!(
        o.status.success(),
        "rdc export: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let b = bundle(&out)["bundle"].clone();
    assert_eq!(b["camera"], "front");
    assert_eq!(b["case_ref"], CASE);
    assert_eq!(b["unit"]["operator"], "Test Housing");
    assert_eq!(b["unit"]["site"], "loopback");
    // The two gaps: from the camera's last frame to its first after the outage, and from the
    // last synced frame before the power cut to the first after it, each with its cause. Any
    // other is one the unit's manifests show (a session that stalled on a loaded machine): it
    // starts where a segment stopped.
    let gaps = b["gaps"].as_array().unwrap();
    let gap_from = |ns: i64| {
        gaps.iter()
            .find(|g| g["from_ns"].as_i64() == Some(ns))
            .unwrap_or_else(|| panic!("no gap from {ns}: {gaps:#?}"))
    };
    let outage = gap_from(stopped.end_ns);
    assert_eq!(outage["to_ns"].as_i64().unwrap(), resumed.start_ns);
    assert!(resumed.start_ns - stopped.end_ns >= 10_000_000_000);
    assert!(
        outage["cause"]
            .as_str()
            .unwrap()
            .starts_with("recording stopped:"),
        "{gaps:#?}"
    );
    let power = gap_from(cut.end_ns);
    assert_eq!(power["to_ns"].as_i64().unwrap(), back.start_ns);
    assert!(
        power["cause"].as_str().unwrap().contains("lost power"),
        "{gaps:#?}"
    );
    for g in gaps {
        let at = g["from_ns"].as_i64().unwrap();
        assert!(
            ms.iter().any(|m| m.end_ns == at && m.ended != Ended::Cut),
            "a gap where no segment stopped: {g:#}"
        );
    }
    // The working copy starts at the keyframe before the requested start, and says so.
    let wc = &b["working_copy"];
    assert!(wc["from_ns"].as_i64().unwrap() <= from_ns);
    assert!(
        from_ns - wc["from_ns"].as_i64().unwrap() < 2_000_000_000,
        "{wc:#}"
    );
    assert!(
        wc["note"].as_str().unwrap().contains("keyframe before"),
        "{wc:#}"
    );
    // The unit's audit log has the export, with the case.
    let audit = std::fs::read_to_string(unit.dir.path().join("store/logs/audit.jsonl")).unwrap();
    assert!(
        audit
            .lines()
            .any(|l| l.contains("\"action\":\"export\"") && l.contains(CASE)),
        "no export in the audit log"
    );

    // rdc verify: all holds.
    let (code, text) = verify(&s, &out);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("complete and unaltered"), "{text}");
    assert!(!text.contains("FAILED"), "{text}");
    assert!(text.contains("frame times increase strictly"), "{text}");
    // Without the scheme's CA, the bundle only vouches for itself: a distinct exit code, and
    // no "complete and unaltered".
    let o = rdc(&["verify", &out.display().to_string()]);
    let t = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(3), "{t}");
    assert!(
        t.contains("ORIGIN IS UNPROVEN") && !t.contains("complete and unaltered"),
        "{t}"
    );
    // The stock tools: sha256sum -c, age -d.
    let sums = Command::new("sha256sum")
        .args(["--quiet", "-c", "SHA256SUMS"])
        .current_dir(&out)
        .output()
        .unwrap();
    assert!(
        sums.status.success(),
        "{}",
        String::from_utf8_lossy(&sums.stdout)
    );
    let age_file = first_master(&out, "age");
    let dec = Command::new("age")
        .args(["-d", "-i", &s.path("officer.key")])
        .arg(&age_file)
        .output()
        .unwrap();
    assert!(
        dec.status.success(),
        "{}",
        String::from_utf8_lossy(&dec.stderr)
    );
    assert_eq!(
        dec.stdout,
        std::fs::read(age_file.with_extension("ts")).unwrap()
    );
    // ffprobe: one video stream and the time track, no audio, the right duration.
    let mp4 = out.join("working-copy.mp4");
    assert_plays(&mp4, wc);
    // The time track: the first second's UTC time, the camera, and the gap said as such.
    let srt = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&mp4)
        .args(["-map", "0:s", "-f", "srt", "-"])
        .output()
        .unwrap();
    let srt = String::from_utf8_lossy(&srt.stdout);
    let first_utc = rdc_format::time::utc_plain(
        wc["from_ns"].as_i64().unwrap() / 1_000_000_000 * 1_000_000_000,
    );
    assert!(
        srt.contains(&first_utc),
        "{first_utc} not in {}",
        &srt[..srt.len().min(400)]
    );
    assert!(
        srt.contains("camera front") && srt.contains("GMT"),
        "{}",
        &srt[..400]
    );
    assert!(
        srt.contains("NO FOOTAGE: recording stopped"),
        "the gap is not in the time track"
    );

    // A second export, of the footage after the outage: its receipt, for the swap below.
    let out2 = work.path().join("bundle2");
    let o = export(&s, resumed.start_ns + 1_000_000_000, to_ns, &out2);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let other_receipt = bundle(&out2)["bundle"]["receipt"].clone();
    unit.stop();

    // Each tampering: verify exits 1 and names the problem.
    let key = s.path("users/j.smith.key");
    // Another officer of the same scheme, whose certificate the scheme's CA issued.
    s.add_user("a.jones", "officer");
    let ms_age = first_master(&out, "age");
    let age_name = ms_age.file_name().unwrap().to_string_lossy().into_owned();
    type Tamper<'a> = Box<dyn Fn(&Path) + 'a>;
    let cases: Vec<(&str, Tamper, &str)> = vec![
        (
            "a flipped byte in a master segment",
            Box::new(|d: &Path| flip_byte(&d.join("master").join(&age_name), 5000)),
            "has been altered",
        ),
        (
            "a flipped byte in the working copy",
            Box::new(|d: &Path| flip_byte(&d.join("working-copy.mp4"), 100_000)),
            "working-copy.mp4 has been altered",
        ),
        (
            "a removed segment",
            Box::new(|d: &Path| std::fs::remove_file(d.join("master").join(&age_name)).unwrap()),
            "is missing",
        ),
        (
            "an edited manifest",
            Box::new(|d: &Path| {
                let t = std::fs::read_to_string(d.join("manifest.json")).unwrap();
                std::fs::write(d.join("manifest.json"), t.replace(CASE, "ASB/2026/0100")).unwrap();
            }),
            "signature does not match",
        ),
        (
            "a manifest re-signed by someone outside the scheme",
            Box::new(|d: &Path| {
                let other = tempfile::tempdir().unwrap();
                let od = other.path().display().to_string();
                assert!(
                    rdc(&[
                        "keys",
                        "ca",
                        "--scheme",
                        "Other",
                        "--dir",
                        &format!("{od}/ca")
                    ])
                    .status
                    .success()
                );
                assert!(
                    rdc(&[
                        "keys",
                        "user",
                        "--ca-dir",
                        &format!("{od}/ca"),
                        "--name",
                        "j.smith",
                        "--dir",
                        &od
                    ])
                    .status
                    .success()
                );
                let cert = std::fs::read_to_string(format!("{od}/j.smith.crt")).unwrap();
                let fp =
                    rdc_uplink::pki::fingerprint_text(&rdc_uplink::tls::cert_der(&cert).unwrap());
                resign(d, &format!("{od}/j.smith.key"), |b| {
                    b["exporter"]["certificate"] = cert.into();
                    b["exporter"]["fingerprint"] = fp.into();
                });
            }),
            "the exporter's certificate",
        ),
        (
            "a manifest re-signed by another officer of the scheme",
            Box::new(|d: &Path| {
                let cert = std::fs::read_to_string(s.path("users/a.jones.crt")).unwrap();
                let fp =
                    rdc_uplink::pki::fingerprint_text(&rdc_uplink::tls::cert_der(&cert).unwrap());
                resign(d, &s.path("users/a.jones.key"), |b| {
                    b["exporter"]["name"] = "a.jones".into();
                    b["exporter"]["certificate"] = cert.into();
                    b["exporter"]["fingerprint"] = fp.into();
                });
            }),
            "but manifest.json is signed by a.jones",
        ),
        (
            "an extra copy of a segment in master/",
            Box::new(|d: &Path| {
                std::fs::copy(d.join("master").join(&age_name), d.join("master/extra.age"))
                    .unwrap();
            }),
            "master/extra.age is in the bundle but not part of the export",
        ),
        (
            "a symbolic link added to the bundle",
            Box::new(|d: &Path| {
                std::os::unix::fs::symlink("/etc/hostname", d.join("notes.txt")).unwrap();
            }),
            "notes.txt is a symbolic link added to the bundle",
        ),
        (
            "a master segment replaced by a link to an identical file outside",
            Box::new(|d: &Path| {
                let outside = d.with_extension("outside.age");
                let m = d.join("master").join(&age_name);
                std::fs::rename(&m, &outside).unwrap();
                std::os::unix::fs::symlink(&outside, &m).unwrap();
            }),
            "is not a regular file (a symbolic link)",
        ),
        (
            "reordered segments",
            Box::new(|d: &Path| {
                resign(d, &key, |b| {
                    b["segments"].as_array_mut().unwrap().swap(0, 1)
                });
            }),
            "out of order",
        ),
        (
            "an edited SHA256SUMS",
            Box::new(|d: &Path| {
                let t = std::fs::read_to_string(d.join("SHA256SUMS")).unwrap();
                let mut lines: Vec<String> = t.lines().map(str::to_owned).collect();
                let l = &mut lines[0];
                let c = if l.starts_with('0') { "1" } else { "0" };
                l.replace_range(0..1, c);
                std::fs::write(d.join("SHA256SUMS"), lines.join("\n") + "\n").unwrap();
            }),
            "SHA256SUMS line 1",
        ),
        (
            "a swapped audit receipt",
            Box::new(|d: &Path| resign(d, &key, |b| b["receipt"] = other_receipt.clone())),
            "not this export's",
        ),
        (
            "a file name that escapes the bundle",
            Box::new(|d: &Path| {
                resign(d, &key, |b| {
                    b["files"][0]["path"] = "../../etc/passwd".into()
                })
            }),
            "outside the bundle",
        ),
    ];
    for (what, tamper, says) in &cases {
        let d = work.path().join(what.replace(' ', "-"));
        copy_dir(&out, &d);
        tamper(&d);
        let (code, text) = verify(&s, &d);
        assert_eq!(code, 1, "{what}: verify exited {code}:\n{text}");
        assert!(
            text.lines()
                .any(|l| l.starts_with("FAILED") && l.contains(says)),
            "{what}: verify did not fail with {says:?}:\n{text}"
        );
        assert!(text.contains("NOT intact"), "{what}:\n{text}");
    }
}

/// A camera with B-frames (decode order differs from presentation order), exported from
/// between two keyframes: the working copy decodes without an error, lasts as long as its
/// footage, and the bundle verifies.
#[test]
fn the_working_copy_of_a_b_frame_camera_decodes_cleanly() {
    let s = Scheme::new();
    let (_cam, mut unit) = recording(&s, &["--bframes", "2", "--gop", "50"]);
    let ms = manifests_in_log(&unit, "front");
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("bundle");
    let o = export(
        &s,
        ms[1].start_ns + 2_700_000_000,
        ms[2].end_ns - 1_300_000_000,
        &out,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    unit.stop();
    let (code, text) = verify(&s, &out);
    assert_eq!(code, 0, "{text}");
    let b = bundle(&out)["bundle"].clone();
    assert_plays(&out.join("working-copy.mp4"), &b["working_copy"]);
}
