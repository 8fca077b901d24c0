//! Every bad-configuration case the foundation issue names, and the example file.

use super::*;
use std::fs;

const KEY_A: &str = "age1h7zsgcs4zu5jt5amtcw375ga0uqz4fwxdmq56pneaa3trzsyvvtsv20nr6";

fn base() -> String {
    format!(
        r#"
[unit]
id = "u1"
operator = "Op"
contact = "c@example.org"
purpose = "ASB"
site = "Somewhere"
signing_key = "/nonexistent/rdc-test/key.p8"

[storage]
path = "/var/lib/rdc/store"
max_bytes = "1 GiB"

[[camera]]
id = "front"
url = "rtsp://127.0.0.1:8554/cam"

[[recipient]]
name = "escrow"
public_key = "{KEY_A}"
"#
    )
}

fn problems(text: &str) -> Vec<Problem> {
    match Config::from_toml(text, "test.toml") {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => {
            // The whole message must name every problem too.
            let msg = e.to_string();
            for p in e.problems() {
                assert!(msg.contains(&p.key), "{msg}");
            }
            e.problems().to_vec()
        }
    }
}

fn has(ps: &[Problem], key: &str, value_part: &str, msg_part: &str) {
    assert!(
        ps.iter()
            .any(|p| p.key == key && p.value.contains(value_part) && p.message.contains(msg_part)),
        "no problem {key} / {value_part:?} / {msg_part:?} in {ps:#?}"
    );
}

/// The example is valid but for its sample recipients and its placeholder operator, contact
/// and site, which a unit refuses: with the scheme's own in their place it loads.
#[test]
fn example_config_is_valid_once_its_samples_and_placeholders_are_replaced() {
    let text = include_str!("../recorder.example.toml");
    let ps = problems(text);
    assert_eq!(ps.len(), 5, "{ps:#?}");
    has(&ps, "recipient[0].public_key", "age1v4jw", "sample key");
    has(&ps, "recipient[1].public_key", "age1lekw", "sample key");
    has(&ps, "unit.operator", "Example Housing", "placeholder");
    has(&ps, "unit.contact", "cctv@example.org", "placeholder");
    has(&ps, "unit.site", "Example Road", "placeholder");
    let mut text = text
        .replace(
            "Example Housing Association, Community Safety Team",
            "Northtown Homes, Community Safety Team",
        )
        .replace(
            "cctv@example.org / 0161 496 0000",
            "cctv@northtown.example / 01632 960000",
        )
        .replace(
            "Flat 2, 10 Example Road (front door)",
            "Flat 2, 10 Mill Lane (front door)",
        );
    for (i, sample) in rdc_config_samples().iter().enumerate() {
        let own = age_public(i);
        text = text.replace(sample, &own);
    }
    let loaded = Config::from_toml(&text, "recorder.example.toml").expect("example must validate");
    let c = &loaded.config;
    assert_eq!(c.cameras.len(), 2);
    assert_eq!(c.storage.retention_days, 28);
    assert_eq!(c.storage.budget, Budget::ReserveFree(2 << 30));
    assert_eq!(c.recipients.len(), 2);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    // The effective configuration is itself a valid configuration.
    let again =
        Config::from_toml(&c.to_toml(), "effective").expect("effective config must validate");
    assert_eq!(again.config.cameras[1].id.as_str(), "rear");
}

#[test]
fn defaults() {
    let c = Config::from_toml(&base(), "t").unwrap().config;
    assert_eq!(c.storage.retention_days, DEFAULT_RETENTION_DAYS);
    assert_eq!(c.storage.segment_secs, 60);
    assert_eq!(c.storage.sync_interval, Duration::from_secs(1));
    assert_eq!(c.storage.preview_interval, Some(Duration::from_secs(10)));
    assert_eq!(c.cameras[0].transport, Transport::Tcp);
    assert!(c.to_toml().contains("retention_days = 31"));
    assert!(c.to_toml().contains("preview_interval = \"10s\""));
}

#[test]
fn preview_interval() {
    let with = |v: &str| {
        base().replace(
            "[storage]\n",
            &format!("[storage]\npreview_interval = {v}\n"),
        )
    };
    let c = |v: &str| {
        Config::from_toml(&with(v), "t")
            .unwrap()
            .config
            .storage
            .preview_interval
    };
    assert_eq!(c("\"2s\""), Some(Duration::from_secs(2)));
    assert_eq!(c("\"1min\""), Some(Duration::from_secs(60)));
    assert_eq!(c("\"off\""), None);
    for (bad, says) in [
        ("\"0s\"", "1s to 10min"),
        ("\"500ms\"", "1s to 10min"),
        ("\"2h\"", "1s to 10min"),
        ("\"often\"", "or \"off\""),
    ] {
        has(&problems(&with(bad)), "storage.preview_interval", bad, says);
    }
}

#[test]
fn no_recipients() {
    let text = base().replace(
        &format!("[[recipient]]\nname = \"escrow\"\npublic_key = \"{KEY_A}\"\n"),
        "",
    );
    has(&problems(&text), "recipient", "", "at least one");
}

#[test]
fn invalid_age_key() {
    // One character changed: the bech32 checksum fails.
    let bad = format!(
        "{}{}",
        &KEY_A[..10],
        if &KEY_A[10..11] == "q" { "p" } else { "q" }
    ) + &KEY_A[11..];
    has(
        &problems(&base().replace(KEY_A, &bad)),
        "recipient[0].public_key",
        &bad,
        "not an age X25519 public key",
    );
    // An age identity (secret key) pasted instead of the public key.
    let ps = problems(&base().replace(
        KEY_A,
        "AGE-SECRET-KEY-1SXWGVKS3TN8Z9TVE7HW5L6JWLZTDXD6JAM6E79NXTL48TLMGVL4QSWD69D",
    ));
    has(&ps, "recipient[0].public_key", "AGE-SECRET", "age1");
}

#[test]
fn duplicate_camera_id() {
    let text = base() + "\n[[camera]]\nid = \"front\"\nurl = \"rtsp://127.0.0.1:8554/b\"\n";
    has(&problems(&text), "camera[1].id", "front", "unique");
}

#[test]
fn relative_path() {
    has(
        &problems(&base().replace("/var/lib/rdc/store", "var/store")),
        "storage.path",
        "var/store",
        "absolute",
    );
}

#[test]
fn retention_bounds() {
    let with = |d: u32| base().replace("max_bytes", &format!("retention_days = {d}\nmax_bytes"));
    has(
        &problems(&with(0)),
        "storage.retention_days",
        "0",
        "1 to 42",
    );
    has(
        &problems(&with(60)),
        "storage.retention_days",
        "60",
        "1 to 42",
    );
    let w = Config::from_toml(&with(14), "t").unwrap().warnings;
    assert!(
        w.iter()
            .any(|p| p.key == "storage.retention_days" && p.message.contains("28 to 35")),
        "{w:?}"
    );
    assert!(
        Config::from_toml(&with(35), "t")
            .unwrap()
            .warnings
            .is_empty()
    );
}

#[test]
fn unknown_key_refused() {
    let text = base().replace("max_bytes", "retention_dayz = 3\nmax_bytes");
    let ps = problems(&text);
    has(&ps, "storage.retention_dayz", "3", "retention_days");
}

/// Wrong types, missing keys, unknown keys and bad values, in one file: every one is reported
/// in one go, each with its full key and what is allowed there.
#[test]
fn every_problem_at_once_with_full_keys() {
    let text = format!(
        r#"
[unit]
id = "u1"
operator = 5
contact = "c@example.org"
site = "Somewhere"

[storage]
path = "relative/store"
max_bytes = "1 GiB"
retention_days = "thirty"
segment_secs = -4

[[camera]]
id = "front"
url = "rtsp://127.0.0.1:8554/cam"

[[camera]]
id = "BAD ID"
url = 42
transprot = "tcp"

[[recipient]]
name = "escrow"
public_key = "{KEY_A}"

[logging]
format = "xml"
"#
    );
    let ps = problems(&text);
    has(&ps, "unit.operator", "5", "must be text");
    has(&ps, "unit.purpose", "", "missing");
    has(&ps, "storage.retention_days", "\"thirty\"", "whole number");
    has(&ps, "storage.segment_secs", "-4", "10 to 600");
    has(&ps, "camera[1].url", "42", "rtsp://");
    has(&ps, "camera[1].transprot", "\"tcp\"", "transport");
    has(&ps, "camera[1].id", "", "a-z");
    has(&ps, "storage.path", "relative/store", "absolute");
    has(&ps, "logging.format", "", "journald");
    // Placeholders put in for the wrong types raise no second complaint.
    assert_eq!(
        ps.iter().filter(|p| p.key == "unit.operator").count(),
        1,
        "{ps:#?}"
    );
    assert_eq!(
        ps.iter().filter(|p| p.key == "camera[1].url").count(),
        1,
        "{ps:#?}"
    );
}

#[test]
fn a_missing_section_is_named_with_its_keys() {
    let text = base().replace(
        "[storage]\npath = \"/var/lib/rdc/store\"\nmax_bytes = \"1 GiB\"\n",
        "",
    );
    let ps = problems(&text);
    has(&ps, "storage", "", "missing");
    has(&ps, "storage.path", "", "absolute path");
}

#[test]
fn max_bytes_larger_than_the_disk_is_warned() {
    let dir = tempfile::tempdir().unwrap();
    let text = base()
        .replace(
            "/var/lib/rdc/store",
            &dir.path().join("store").display().to_string(),
        )
        .replace("\"1 GiB\"", "\"900000 TiB\"");
    let w = Config::from_toml(&text, "t").unwrap().warnings;
    assert!(
        w.iter().any(
            |p| p.key == "storage.max_bytes" && p.message.contains("more than the file system")
        ),
        "{w:?}"
    );
}

#[test]
fn credentials_in_url_refused_and_not_echoed() {
    let ps = problems(&base().replace("rtsp://127.0.0.1", "rtsp://admin:hunter2@127.0.0.1"));
    has(&ps, "camera[0].url", "", "password_file");
    assert!(ps.iter().all(|p| !p.value.contains("hunter2")), "{ps:?}");
}

#[test]
fn unreadable_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.crt");
    fs::write(&ca, "x").unwrap();
    let text = base()
        + &format!(
            "\n[uplink]\nlisten = \"127.0.0.1:4433\"\ncert = \"{}/missing.crt\"\nkey_file = \"{}/missing.key\"\nca = \"{}\"\n",
            dir.path().display(),
            dir.path().display(),
            ca.display()
        );
    let ps = problems(&text);
    has(&ps, "uplink.cert", "missing.crt", "cannot be read");
    has(&ps, "uplink.key_file", "missing.key", "cannot be read");
}

fn rdc_config_samples() -> [&'static str; 2] {
    crate::SAMPLE_RECIPIENTS
}

/// A valid recipient that is not a sample.
fn age_public(i: usize) -> String {
    [
        "age1cyd55k5hjk2xttmvsa309x6ru6jguec59ekjzcv6n2zhxcpu2eps6frpcy",
        "age1xmgq4pafvcxhuc0vktfl42ma32ra3pfss3c56frrv6els6rpwalqrq9u5q",
    ][i]
        .to_owned()
}

#[test]
fn sample_keys_and_factory_passwords_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("front.password");
    for (user, password, says) in [
        ("admin", "12345\n", "factory-default"),
        ("admin", "Admin", "factory-default"),
        ("recorder", "recorder", "equal to the username"),
        ("recorder", "\n", "empty password"),
    ] {
        fs::write(&pw, password).unwrap();
        fs::set_permissions(&pw, fs::Permissions::from_mode(0o600)).unwrap();
        let text = base().replace(
            "url = \"rtsp://127.0.0.1:8554/cam\"",
            &format!(
                "url = \"rtsp://127.0.0.1:8554/cam\"\nusername = \"{user}\"\npassword_file = \"{}\"",
                pw.display()
            ),
        );
        has(
            &problems(&text),
            "camera[0].password_file",
            "front.password",
            says,
        );
    }
    fs::write(&pw, "k7#Lw-9q\n").unwrap();
    let text = base().replace(
        "url = \"rtsp://127.0.0.1:8554/cam\"",
        &format!(
            "url = \"rtsp://127.0.0.1:8554/cam\"\nusername = \"recorder\"\npassword_file = \"{}\"",
            pw.display()
        ),
    );
    assert!(Config::from_toml(&text, "t").is_ok());
}

#[test]
fn world_readable_secret_file() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("front.password");
    fs::write(&pw, "secret\n").unwrap();
    fs::set_permissions(&pw, fs::Permissions::from_mode(0o644)).unwrap();
    let text = base().replace(
        "url = \"rtsp://127.0.0.1:8554/cam\"",
        &format!(
            "url = \"rtsp://127.0.0.1:8554/cam\"\nusername = \"rec\"\npassword_file = \"{}\"",
            pw.display()
        ),
    );
    has(
        &problems(&text),
        "camera[0].password_file",
        "front.password",
        "world-readable",
    );

    fs::set_permissions(&pw, fs::Permissions::from_mode(0o600)).unwrap();
    let c = Config::from_toml(&text, "t").unwrap().config;
    let secret = c.cameras[0].password.as_ref().unwrap().read().unwrap();
    assert_eq!(secret.expose(), "secret");
    // Never printed: not by Debug, not in the effective configuration.
    assert!(!format!("{c:?}").contains("secret\""));
    assert!(!format!("{secret:?}").contains("secret\""));
    assert!(!c.to_toml().contains("secret\n") && !c.to_toml().contains("\"secret\""));
}

#[test]
fn every_problem_reported_at_once() {
    let text = base()
        .replace("id = \"u1\"", "id = \"Unit One\"")
        .replace("/var/lib/rdc/store", "store")
        .replace("rtsp://", "http://");
    let ps = problems(&text);
    has(&ps, "unit.id", "Unit One", "a-z");
    has(&ps, "storage.path", "store", "absolute");
    has(&ps, "camera[0].url", "http://", "rtsp://");
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_text_is_a_config_or_a_list_of_problems(text in any::<String>()) {
            if let Err(ConfigError::Invalid { problems, .. }) = Config::from_toml(&text, "t") {
                prop_assert!(!problems.is_empty());
            }
        }

        #[test]
        fn any_changed_byte_of_a_valid_file_is_handled(at in any::<usize>(), to in any::<u8>()) {
            let mut b = base().into_bytes();
            let i = at % b.len();
            b[i] = to;
            if let Ok(text) = String::from_utf8(b) {
                match Config::from_toml(&text, "t") {
                    Ok(_) | Err(ConfigError::Syntax { .. }) => {}
                    Err(ConfigError::Invalid { problems, .. }) => {
                        // Every problem names a key.
                        prop_assert!(problems.iter().all(|p| !p.key.is_empty()));
                    }
                    Err(e) => prop_assert!(false, "{e}"),
                }
            }
        }
    }
}

#[test]
fn a_unit_behind_the_hub_listens_on_its_tunnel_only() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.crt");
    fs::write(&ca, "x").unwrap();
    let uplink = |listen: &str, vpn: &str| {
        base()
            + &format!(
                "\n[uplink]\nlisten = \"{listen}\"\ncert = \"{c}\"\nkey_file = \"{c}\"\nca = \"{c}\"\n{vpn}",
                c = ca.display()
            )
    };
    let ps = problems(&uplink(
        "0.0.0.0:4433",
        "[uplink.vpn]\ninterface = \"rdc-vpn\"\n",
    ));
    has(&ps, "uplink.listen", "0.0.0.0:4433", "tunnel address only");
    let ps = problems(&uplink(
        "10.77.1.7:4433",
        "[uplink.vpn]\ninterface = \"a/b\"\n",
    ));
    has(&ps, "uplink.vpn.interface", "a/b", "interface name");
    let ps = problems(&uplink(
        "10.77.1.7:4433",
        "[uplink.vpn]\ninterface = \"rdc-vpn\"\n",
    ));
    assert!(
        ps.iter()
            .all(|p| !p.key.starts_with("uplink.listen") && !p.key.starts_with("uplink.vpn")),
        "{ps:?}"
    );
}
