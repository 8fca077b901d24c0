//! The tools a person meets: `rdc status` in words and as JSON, local times echoed in UTC, a
//! reversed range refused before anything reaches the unit, an empty range saying where the
//! footage is, global flags anywhere, completions that bash loads and man pages that render.

use std::process::Command;

use crate::harness::*;

fn out(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn status_in_words_times_in_the_schemes_zone_and_ranges_checked_first() {
    let s = Scheme::new();
    let cam = Camera::start(&[]);
    let mut unit = s.unit(&[Cam {
        id: "front",
        url: cam.url(),
        extra: String::new(),
    }]);
    unit.start();
    wait_for("a segment", std::time::Duration::from_secs(60), || {
        !manifests_in_log(&unit, "front").is_empty()
    });

    // A summary for people; the unit's answer as JSON for tools.
    let o = s.rdc("status", &[]);
    let t = out(&o);
    assert!(o.status.success(), "{t}");
    for want in [
        "unit        e2e",
        "operator    Test Housing",
        "site        loopback",
        "recording   front        yes",
        "disk        ",
        "camera front",
    ] {
        assert!(t.contains(want), "no {want:?} in:\n{t}");
    }
    assert!(!t.contains("time_ns") && !t.contains("budget_bytes"), "{t}");
    let o = s.rdc("status", &["--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["unit"], "e2e");
    assert!(v["store"]["budget_bytes"].as_u64().unwrap() > 0);
    // --activity needs a case and reason, said before anything is sent.
    let o = s.rdc("status", &["--activity"]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(out(&o).contains("--case"), "{}", out(&o));

    // A reversed range: refused before anything is sent (no audit entry on the unit).
    let audit = || std::fs::read_to_string(unit.dir.path().join("store/logs/audit.jsonl")).unwrap();
    let before = audit().lines().count();
    for cmd in ["list", "fetch"] {
        let o = s.rdc(
            cmd,
            &[
                "--camera",
                "front",
                "--from",
                "now",
                "--to",
                "now-1h",
                "--case",
                "C/1",
                "--reason",
                "r",
                "--out",
                "/nonexistent",
            ][..if cmd == "list" { 10 } else { 12 }],
        );
        let t = out(&o);
        assert!(!o.status.success(), "{cmd}: {t}");
        assert!(t.contains("is not before --to"), "{cmd}: {t}");
    }
    assert_eq!(audit().lines().count(), before, "{}", audit());

    // A local time is the scheme's (Europe/London), echoed in UTC; an empty range says where
    // the footage is.
    let o = s.rdc(
        "list",
        &[
            "--camera",
            "front",
            "--from",
            "2026-06-01T18:00",
            "--to",
            "2026-06-01T19:00",
            "--case",
            "C/1",
            "--reason",
            "r",
        ],
    );
    let t = out(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("from 2026-06-01 18:00:00 BST to 2026-06-01 19:00:00 BST")
            && t.contains("2026-06-01T17:00:00.000Z to 2026-06-01T18:00:00.000Z"),
        "{t}"
    );
    assert!(
        t.contains("no footage of front") && t.contains("the unit has front's footage from"),
        "{t}"
    );
    // The repeated autumn hour: refused, both meanings named.
    let o = s.rdc(
        "list",
        &[
            "--camera",
            "front",
            "--from",
            "2026-10-25T01:30",
            "--to",
            "now",
            "--case",
            "C",
            "--reason",
            "r",
        ],
    );
    let t = out(&o);
    assert!(
        !o.status.success() && t.contains("happened twice") && t.contains("+01:00"),
        "{t}"
    );
    // The list in words.
    let o = s.rdc(
        "list",
        &[
            "--camera", "front", "--from", "now-1h", "--to", "now", "--case", "C", "--reason", "r",
        ],
    );
    let t = out(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("segment") && t.contains("then") && !t.contains("Cut"),
        "{t}"
    );
    unit.stop();

    // A global flag after the subcommand, as before it.
    let o = Command::new(env!("CARGO_BIN_EXE_rdc-recorder-under-test"))
        .args(["store", "status", "--config"])
        .arg(unit.config())
        .output()
        .unwrap();
    let t = out(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("disk") && t.contains(" of ") && !t.contains("budget of"),
        "{t}"
    );
}

#[test]
fn completions_load_in_bash_and_man_pages_render() {
    let dir = tempfile::tempdir().unwrap();
    for (bin, exe) in [
        ("rdc", env!("CARGO_BIN_EXE_rdc-under-test")),
        (
            "rdc-recorder",
            env!("CARGO_BIN_EXE_rdc-recorder-under-test"),
        ),
    ] {
        for shell in ["bash", "zsh", "fish"] {
            let o = Command::new(exe)
                .args(["completions", shell])
                .output()
                .unwrap();
            assert!(o.status.success(), "{bin} {shell}: {}", out(&o));
            let text = String::from_utf8(o.stdout).unwrap();
            assert!(text.contains(bin), "{bin} {shell}");
            let f = dir.path().join(format!("{bin}.{shell}"));
            std::fs::write(&f, &text).unwrap();
            if shell == "bash" {
                let o = Command::new("bash")
                    .arg("-c")
                    .arg(format!("set -e; source {}; complete -p {bin}", f.display()))
                    .output()
                    .unwrap();
                assert!(o.status.success(), "{bin}: {}", out(&o));
            }
        }
        let man = dir.path().join(format!("man-{bin}"));
        let o = Command::new(exe).arg("man").arg(&man).output().unwrap();
        assert!(o.status.success(), "{}", out(&o));
        let pages: Vec<_> = std::fs::read_dir(&man).unwrap().flatten().collect();
        assert!(pages.len() > 5, "{bin}: {} pages", pages.len());
        for p in pages {
            let o = Command::new("man")
                .args(["-P", "cat", "-l"])
                .arg(p.path())
                .env("MANWIDTH", "80")
                .output()
                .unwrap();
            let t = String::from_utf8_lossy(&o.stdout);
            assert!(
                o.status.success() && t.contains("NAME") && t.contains("SYNOPSIS"),
                "{}: {}",
                p.path().display(),
                out(&o)
            );
        }
    }
}
