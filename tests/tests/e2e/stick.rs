//! On-site export to a memory stick (issue 29, in progress): the officer's signed request, the
//! unit's job writing only what it stores (ciphertext, signed manifests, a receipt from the
//! audit log) while the recorder keeps recording, STATUS.txt, and the refusals. On a plain
//! folder for now; the FAT32 and exFAT images come with the udev rule.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::harness::*;

fn stick_job(unit: &Unit, dir: &Path) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_rdc-recorder-under-test"))
        .args(["stick", "--config"])
        .arg(unit.config())
        .arg(dir)
        .output()
        .unwrap();
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

#[test]
fn a_stick_gets_the_stored_ciphertext_its_manifests_and_a_receipt_once() {
    let s = Scheme::new();
    s.add_user("e.lee", "engineer");
    let cam = Camera::start(&[]);
    let mut unit = s.unit(&[Cam {
        id: "front",
        url: cam.url(),
        extra: String::new(),
    }]);
    unit.start();
    wait_for("two segments", Duration::from_secs(60), || {
        manifests_in_log(&unit, "front").len() >= 2
    });
    let ms = manifests_in_log(&unit, "front");
    let (from, to) = (ms[0].start_ns, ms[1].end_ns);
    let stick = tempfile::tempdir().unwrap();
    let prepare = |who: &str, dir: &Path| {
        let units = if who == "j.smith" {
            s.path("units.toml")
        } else {
            s.path(&format!("units-{who}.toml"))
        };
        rdc(&[
            "stick",
            "prepare",
            dir.to_str().unwrap(),
            "--unit",
            "e2e",
            "--units",
            &units,
            "--camera",
            "front",
            "--from",
            &rdc_format::time::rfc3339(from),
            "--to",
            &rdc_format::time::rfc3339(to),
            "--case",
            "ASB/9",
            "--reason",
            "the link is down",
        ])
    };
    // No request: only STATUS.txt, saying so.
    let (ok, text) = stick_job(&unit, stick.path());
    assert!(
        !ok && text.contains("There is no RDC-REQUEST.json"),
        "{text}"
    );
    assert!(!stick.path().join("rdc").exists());

    let o = prepare("j.smith", stick.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (ok, text) = stick_job(&unit, stick.path());
    assert!(ok && text.starts_with("COMPLETE"), "{text}");
    let status = std::fs::read_to_string(stick.path().join("STATUS.txt")).unwrap();
    assert!(
        status.contains("COMPLETE") && status.contains("camera front: 2 segments"),
        "{status}"
    );
    // Each segment as the unit stores it: the signed hash, an age file.
    let dir = stick.path().join("rdc/e2e/front");
    for m in &ms[..2] {
        let f = dir.join(&m.file);
        let bytes = std::fs::read(&f).unwrap();
        assert!(bytes.starts_with(b"age-encryption.org/v1\n"));
        assert_eq!(
            rdc_format::sha256_hex(&mut std::io::Cursor::new(&bytes)).unwrap(),
            m.ciphertext_sha256
        );
    }
    let receipt: rdc_format::chain::Entry =
        serde_json::from_slice(&std::fs::read(stick.path().join("rdc/e2e/receipt.json")).unwrap())
            .unwrap();
    assert_eq!(receipt.body["action"], "stick_export");
    assert_eq!(receipt.body["outcome"], "granted");
    // On the officer's machine: the same bundle as the remote export, verified the same way,
    // its receipt saying the footage left by stick.
    let work = tempfile::tempdir().unwrap();
    let bundle = work.path().join("bundle");
    let o = rdc(&[
        "stick",
        "export",
        stick.path().to_str().unwrap(),
        "--unit",
        "e2e",
        "--units",
        &s.path("units.toml"),
        "--identity",
        &s.path("officer.key"),
        "--out",
        bundle.to_str().unwrap(),
    ]);
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let v = rdc(&[
        "verify",
        bundle.to_str().unwrap(),
        "--ca",
        &s.path("ca/ca.crt"),
        "--identity",
        &s.path("officer.key"),
    ]);
    let text = String::from_utf8_lossy(&v.stdout).into_owned();
    assert!(v.status.success(), "{text}");
    assert!(
        text.contains("onto a memory stick") && text.contains("complete and unaltered"),
        "{text}"
    );
    // A segment edited on the stick is refused, named.
    let f = dir.join(&ms[0].file);
    let mut b = std::fs::read(&f).unwrap();
    let n = b.len() - 10;
    b[n] ^= 1;
    std::fs::write(&f, b).unwrap();
    let o = rdc(&[
        "stick",
        "export",
        stick.path().to_str().unwrap(),
        "--unit",
        "e2e",
        "--units",
        &s.path("units.toml"),
        "--identity",
        &s.path("officer.key"),
        "--out",
        work.path().join("again").to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&ms[0].file) && text.contains("is not the segment"),
        "{text}"
    );
    // Used once: the second insertion gets nothing.
    let (ok, text) = stick_job(&unit, stick.path());
    assert!(!ok && text.contains("used already"), "{text}");
    // An engineer's request is refused.
    let other = tempfile::tempdir().unwrap();
    assert!(prepare("e.lee", other.path()).status.success());
    let (ok, text) = stick_job(&unit, other.path());
    assert!(
        !ok && text.contains("only case support officers and managers"),
        "{text}"
    );
    assert!(!other.path().join("rdc").exists());
    // Every attempt is in the audit log.
    let audit = std::fs::read_to_string(unit.dir.path().join("store/logs/audit.jsonl")).unwrap();
    assert_eq!(
        audit.matches("\"action\":\"stick_export\"").count(),
        5,
        "{audit}"
    );
    unit.stop();
}
