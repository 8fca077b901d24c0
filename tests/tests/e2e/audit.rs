//! An auditor's `rdc audit`.

use std::path::Path;
use std::process::Command;

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
