//! On-site export to a memory stick: the officer's signed request, the unit's job writing only
//! what it stores (ciphertext, signed manifests, its keys bound to its certificate, a receipt
//! from the audit log) onto real FAT32 and exFAT file systems (image files, mounted by the
//! package's own `rdc-stick-mount` through FUSE, since this kernel has no vfat), a stick pulled
//! out mid-write and inserted again, every refusal, and the officer's `rdc export --from-stick`
//! and `rdc fetch --from-stick`; the real recorder records an emulated camera throughout.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::harness::*;

const MOUNT_HELPER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../systemd/rdc-stick-mount");

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fs {
    Fat32,
    ExFat,
}

/// A stick: a file system in an image file, and where it is mounted while inserted.
struct Stick {
    img: PathBuf,
    mnt: PathBuf,
}

impl Stick {
    fn new(dir: &Path, name: &str, fs: Fs, mib: u64) -> Stick {
        let img = dir.join(format!("{name}.img"));
        let f = std::fs::File::create(&img).unwrap();
        f.set_len(mib << 20).unwrap();
        drop(f);
        let o = match fs {
            Fs::Fat32 => Command::new("mkfs.vfat")
                .args(["-F", "32", "-n", "STICK"])
                .arg(&img)
                .output(),
            Fs::ExFat => Command::new("mkfs.exfat")
                .args(["-L", "STICK"])
                .arg(&img)
                .output(),
        }
        .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        Stick {
            img,
            mnt: dir.join(format!("{name}.mnt")),
        }
    }

    fn mnt(&self) -> &str {
        self.mnt.to_str().unwrap()
    }

    /// Mounted as the unit's service mounts it (and as an officer's machine would).
    fn insert(&self) {
        let o = Command::new(MOUNT_HELPER)
            .arg("mount")
            .arg(&self.img)
            .arg(&self.mnt)
            .env("RDC_STICK_USER", "root")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "rdc-stick-mount: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    fn pull(&self) {
        let o = Command::new(MOUNT_HELPER)
            .arg("unmount")
            .arg(&self.mnt)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    /// Pulled out with no warning: the file system's process dies mid-write.
    fn yank(&self) {
        let pid = fuse_process(&self.mnt).expect("the stick's FUSE process");
        Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap();
        self.pull();
    }
}

impl Drop for Stick {
    fn drop(&mut self) {
        let _ = Command::new(MOUNT_HELPER)
            .arg("unmount")
            .arg(&self.mnt)
            .output();
    }
}

/// The process serving the FUSE mount at `mnt` (fusefat or mount.exfat-fuse).
fn fuse_process(mnt: &Path) -> Option<u32> {
    let want = mnt.as_os_str().as_encoded_bytes();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|d| {
        let pid: u32 = d.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(d.path().join("cmdline")).ok()?;
        let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
        let fuse = args
            .first()
            .is_some_and(|a| a.ends_with(b"fusefat") || a.ends_with(b"exfat-fuse"));
        (fuse && args.contains(&want)).then_some(pid)
    })
}

fn stick_job(unit: &Unit, dir: &Path) -> (bool, String) {
    let o = stick_cmd(unit, dir).output().unwrap();
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

fn stick_cmd(unit: &Unit, dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rdc-recorder-under-test"));
    c.args(["stick", "--config"]).arg(unit.config()).arg(dir);
    c
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Age files under `dir`, recursively.
fn age_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(age_files(&p));
        } else if p.extension().is_some_and(|x| x == "age") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// A request signed with `cert`/`key`, written as `rdc stick prepare` writes it.
fn write_request(dir: &Path, body: &rdc_format::stick::StickRequest, cert: &str, key: &str) {
    let doc = rdc_uplink::stills::sign(
        body,
        &std::fs::read_to_string(cert).unwrap(),
        &std::fs::read_to_string(key).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join(rdc_format::stick::REQUEST_FILE),
        serde_json::to_vec(&doc).unwrap(),
    )
    .unwrap();
}

#[test]
fn sticks_get_only_ciphertext_on_a_signed_request_survive_being_pulled_and_export_as_bundles() {
    if skip_long(
        "sticks_get_only_ciphertext_on_a_signed_request_survive_being_pulled_and_export_as_bundles",
    ) {
        return;
    }
    const S: i64 = 1_000_000_000;
    let s = Scheme::new();
    s.add_user("e.lee", "engineer");
    let cam = Camera::start(&[]);
    let mut unit = s.unit(&[
        Cam {
            id: "live",
            url: cam.url(),
            extra: String::new(),
        },
        Cam {
            id: "front",
            url: format!("rtsp://127.0.0.1:{}/cam", free_port()),
            extra: String::new(),
        },
    ]);
    // Ten minutes of "front" already in the store (about 90 MB in 10 s segments).
    let start = (now_ns() - 2 * 3600 * S) / (60 * S) * (60 * S);
    {
        let store = unit.store();
        let clip = rdc_tests::footage::encode_h264(
            "videotestsrc num-buffers=50 pattern=snow ! video/x-raw,width=320,height=180,framerate=5/1",
            50,
            5,
            1200,
            5,
        )
        .unwrap();
        rdc_tests::footage::record(&store, "front", &clip, (start, 600 * S as u64), &[], "")
            .unwrap();
    }
    let (from, to) = (
        rdc_format::time::rfc3339(start),
        rdc_format::time::rfc3339(start + 600 * S),
    );
    unit.start();
    wait_for(
        "the live camera's first segment",
        Duration::from_secs(60),
        || !manifests_in_log(&unit, "live").is_empty(),
    );
    let test_started = now_ns();
    let work = tempfile::tempdir().unwrap();
    let w = |p: &str| work.path().join(p);
    let prepare = |who: &str, dir: &str, from: &str, to: &str| {
        let units = if who == "j.smith" {
            s.path("units.toml")
        } else {
            s.path(&format!("units-{who}.toml"))
        };
        rdc(&[
            "stick",
            "prepare",
            dir,
            "--unit",
            "e2e",
            "--units",
            &units,
            "--camera",
            "front",
            "--from",
            from,
            "--to",
            to,
            "--case",
            "ASB/9",
            "--reason",
            "the link is down",
        ])
    };
    let (officer_crt, officer_key) = (s.path("users/j.smith.crt"), s.path("users/j.smith.key"));

    // Refused, each with only a STATUS.txt saying why, each audited.
    let refused = |dir: &Path, says: &str| {
        let (ok, out) = stick_job(&unit, dir);
        assert!(!ok && out.contains(says), "{out}");
        let status = std::fs::read_to_string(dir.join("STATUS.txt")).unwrap();
        assert!(
            status.starts_with("NOTHING WAS EXPORTED") && status.contains(says),
            "{status}"
        );
        assert!(!dir.join("rdc").exists());
    };
    let none = tempfile::tempdir().unwrap();
    refused(none.path(), "There is no RDC-REQUEST.json");
    let engineer = tempfile::tempdir().unwrap();
    assert!(
        prepare("e.lee", engineer.path().to_str().unwrap(), &from, &to)
            .status
            .success()
    );
    refused(engineer.path(), "only case support officers and managers");
    // A valid request's terms, signed by someone from another scheme (same name).
    let now = now_ns();
    let body = rdc_format::stick::StickRequest {
        format: rdc_format::stick::FORMAT.into(),
        unit: "e2e".into(),
        cameras: vec!["front".into()],
        from_ns: start,
        to_ns: start + 600 * S,
        case_ref: "ASB/9".into(),
        reason: "forged".into(),
        made_ns: now,
        expires_ns: now + 3600 * S,
        nonce: "01".into(),
    };
    let other_ca = rdc_uplink::pki::new_ca("Elsewhere", 30).unwrap();
    let stranger =
        rdc_uplink::pki::issue(&other_ca, "j.smith", rdc_uplink::pki::Kind::User, 30).unwrap();
    std::fs::write(w("stranger.crt"), &stranger.cert).unwrap();
    std::fs::write(w("stranger.key"), &stranger.key).unwrap();
    let forged = tempfile::tempdir().unwrap();
    write_request(
        forged.path(),
        &body,
        w("stranger.crt").to_str().unwrap(),
        w("stranger.key").to_str().unwrap(),
    );
    refused(forged.path(), "The request is refused");
    // Edited after signing.
    let edited = tempfile::tempdir().unwrap();
    write_request(edited.path(), &body, &officer_crt, &officer_key);
    let p = edited.path().join("RDC-REQUEST.json");
    let t = std::fs::read_to_string(&p)
        .unwrap()
        .replace("forged", "edited");
    std::fs::write(&p, t).unwrap();
    refused(edited.path(), "The request is refused");
    // Expired, and another unit's.
    let expired = tempfile::tempdir().unwrap();
    let mut old = body.clone();
    (old.made_ns, old.expires_ns) = (now - 100 * 3600 * S, now - 28 * 3600 * S);
    write_request(expired.path(), &old, &officer_crt, &officer_key);
    refused(expired.path(), "expired");
    let other_unit = tempfile::tempdir().unwrap();
    let mut other = body.clone();
    other.unit = "unit-0099".into();
    write_request(other_unit.path(), &other, &officer_crt, &officer_key);
    refused(other_unit.path(), "this is unit \"e2e\"");

    // A stick too small for what is asked: told before anything is written.
    let small = Stick::new(work.path(), "small", Fs::ExFat, 40);
    small.insert();
    assert!(prepare("j.smith", small.mnt(), &from, &to).status.success());
    let (ok, out) = stick_job(&unit, &small.mnt);
    assert!(!ok && out.contains("The stick is too small"), "{out}");
    assert!(!small.mnt.join("rdc").exists());
    small.pull();

    // FAT32: prepared by the officer, inserted, pulled out mid-write, inserted again.
    let fat = Stick::new(work.path(), "fat", Fs::Fat32, 256);
    fat.insert();
    let o = prepare("j.smith", fat.mnt(), &from, &to);
    assert!(o.status.success(), "{}", text(&o));
    fat.pull();
    fat.insert();
    let job_log = w("job.log");
    let mut job = stick_cmd(&unit, &fat.mnt)
        .stdout(std::fs::File::create(w("job.out")).unwrap())
        .stderr(std::fs::File::create(&job_log).unwrap())
        .spawn()
        .unwrap();
    let seg_dir = fat.mnt.join("rdc/e2e/front");
    wait_for(
        "a third of the segments on the stick",
        Duration::from_secs(60),
        || {
            assert!(
                job.try_wait().unwrap().is_none(),
                "the job ended: {}{}",
                std::fs::read_to_string(&job_log).unwrap_or_default(),
                std::fs::read_to_string(w("job.out")).unwrap_or_default()
            );
            std::fs::read_dir(&seg_dir).map_or(0, |d| d.count()) >= 20
        },
    );
    fat.yank();
    let status = wait_child(&mut job, Duration::from_secs(30));
    let log = std::fs::read_to_string(&job_log).unwrap();
    assert!(
        !status.success(),
        "the job finished on a pulled stick: {log}"
    );
    assert!(log.contains("insert it again"), "{log}");
    fat.insert();
    let status = std::fs::read_to_string(fat.mnt.join("STATUS.txt")).unwrap();
    assert!(status.starts_with("INCOMPLETE"), "{status}");
    let (ok, out) = stick_job(&unit, &fat.mnt);
    assert!(ok && out.contains("COMPLETE"), "{out}");
    assert!(
        out.contains("carried on from an earlier insertion"),
        "{out}"
    );
    let manifests: Vec<_> = manifests_in_log(&unit, "front")
        .into_iter()
        .filter(|m| m.start_ns < start + 600 * S && m.ciphertext_len > 0)
        .collect();
    assert!(manifests.len() >= 55, "{}", manifests.len());
    assert!(
        out.contains(&format!("camera front: {} segments", manifests.len())),
        "{out}"
    );
    // Every file on the stick is what the unit stores: age ciphertext, to the officer alone.
    let on_stick = age_files(&fat.mnt);
    assert_eq!(on_stick.len(), manifests.len());
    for f in &on_stick {
        let b = std::fs::read(f).unwrap();
        assert!(b.starts_with(b"age-encryption.org/v1\n"), "{}", f.display());
    }
    let stranger_id = w("stranger-age.key");
    let o = Command::new("age-keygen")
        .arg("-o")
        .arg(&stranger_id)
        .output()
        .unwrap();
    assert!(o.status.success());
    let age_d = |id: &str, f: &Path| {
        Command::new("age")
            .args(["-d", "-i", id, "-o", "/dev/null"])
            .arg(f)
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(!age_d(stranger_id.to_str().unwrap(), &on_stick[0]));
    assert!(age_d(&s.path("officer.key"), &on_stick[0]));
    fat.pull();

    // Inserted once more: the request was used.
    fat.insert();
    let (ok, out) = stick_job(&unit, &fat.mnt);
    assert!(!ok && out.contains("used already"), "{out}");
    // The stick still says what it holds; the footage written before stays.
    let status = std::fs::read_to_string(fat.mnt.join("STATUS.txt")).unwrap();
    assert!(status.starts_with("COMPLETE"), "{status}");
    assert_eq!(age_files(&fat.mnt).len(), manifests.len());
    fat.pull();

    // On the officer's machine: the bundle, as over the link, and the decrypted segments.
    fat.insert();
    let bundle = w("bundle");
    let o = rdc(&[
        "export",
        "--from-stick",
        fat.mnt(),
        "--units",
        &s.path("units.toml"),
        "--identity",
        &s.path("officer.key"),
        "--out",
        bundle.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v = rdc(&[
        "verify",
        bundle.to_str().unwrap(),
        "--ca",
        &s.path("ca/ca.crt"),
        "--identity",
        &s.path("officer.key"),
    ]);
    let vt = text(&v);
    assert!(v.status.success(), "{vt}");
    assert!(
        vt.contains("onto a memory stick") && vt.contains("complete and unaltered"),
        "{vt}"
    );
    let fetched = w("fetched");
    let o = rdc(&[
        "fetch",
        "--from-stick",
        fat.mnt(),
        "--units",
        &s.path("units.toml"),
        "--identity",
        &s.path("officer.key"),
        "--from",
        &rdc_format::time::rfc3339(start + 60 * S),
        "--to",
        &rdc_format::time::rfc3339(start + 120 * S),
        "--out",
        fetched.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let ts: Vec<_> = std::fs::read_dir(fetched.join("front"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "ts"))
        .collect();
    assert_eq!(ts.len(), 6, "{}", text(&o));
    let p = probe(&ts[0].path());
    assert!(
        !p.dts.is_empty() && p.decode_errors.is_empty(),
        "{:?}",
        p.decode_errors
    );
    fat.pull();

    // exFAT: part of the range, written whole; then tampered with, three ways.
    let ex = Stick::new(work.path(), "ex", Fs::ExFat, 256);
    ex.insert();
    let (efrom, eto) = (
        rdc_format::time::rfc3339(start + 300 * S),
        rdc_format::time::rfc3339(start + 360 * S),
    );
    assert!(prepare("j.smith", ex.mnt(), &efrom, &eto).status.success());
    let (ok, out) = stick_job(&unit, &ex.mnt);
    assert!(ok && out.contains("camera front: 6 segments"), "{out}");
    ex.pull();
    ex.insert();
    let export_ex = |out: &str| {
        rdc(&[
            "export",
            "--from-stick",
            ex.mnt(),
            "--unit",
            "e2e",
            "--units",
            &s.path("units.toml"),
            "--identity",
            &s.path("officer.key"),
            "--out",
            w(out).to_str().unwrap(),
        ])
    };
    let o = export_ex("bundle-ex");
    assert!(o.status.success(), "{}", text(&o));
    let segs = age_files(&ex.mnt);
    let mut b = std::fs::read(&segs[2]).unwrap();
    let n = b.len() - 10;
    b[n] ^= 1;
    std::fs::write(&segs[2], &b).unwrap();
    let o = export_ex("tampered-segment");
    let t = text(&o);
    let name = segs[2].file_name().unwrap().to_str().unwrap();
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains(name) && t.contains("is not the segment"), "{t}");
    b[n] ^= 1;
    std::fs::write(&segs[2], &b).unwrap();
    // The unit's keys swapped for someone else's: not vouched for by the unit's certificate.
    let unit_json = ex.mnt.join("rdc/e2e/unit.json");
    let original = std::fs::read_to_string(&unit_json).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&original).unwrap();
    v["public_key"] = "07".repeat(32).into();
    std::fs::write(&unit_json, v.to_string()).unwrap();
    let o = export_ex("tampered-key");
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("not vouched for by unit e2e's certificate"),
        "{t}"
    );
    std::fs::write(&unit_json, original).unwrap();
    // A request that names a unit outside the stick's folder.
    let req = ex.mnt.join("RDC-REQUEST.json");
    let mut r: serde_json::Value = serde_json::from_slice(&std::fs::read(&req).unwrap()).unwrap();
    r["body"]["unit"] = "../../e2e".into();
    std::fs::write(&req, r.to_string()).unwrap();
    let o = export_ex("escape");
    let t = text(&o);
    assert!(
        !o.status.success() && t.contains("not a plain file name"),
        "{t}"
    );
    assert!(!w("escape").join("master").exists());
    ex.pull();

    // The live camera recorded throughout: no frame dropped, no segment stopped early.
    let st = s.rdc("status", &["--json"]);
    let status: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    let live = status["live"]["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["camera"] == "live")
        .unwrap()
        .clone();
    assert_eq!(live["dropped_frames"], 0, "{live}");
    assert_eq!(live["recording"], true, "{live}");
    let live_segments: Vec<_> = manifests_in_log(&unit, "live")
        .into_iter()
        .filter(|m| m.end_ns > test_started)
        .collect();
    assert!(live_segments.len() >= 2, "{}", live_segments.len());
    for m in &live_segments {
        assert_eq!(m.ended, rdc_storage::Ended::Cut, "segment {}", m.seq);
    }

    // Every attempt is in the audit log: six refusals, the small stick, the pulled one, the
    // finished ones, the used one.
    let audit = std::fs::read_to_string(unit.dir.path().join("store/logs/audit.jsonl")).unwrap();
    let outcomes: Vec<String> = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["body"]["action"] == "stick_export")
        .map(|e| e["body"]["outcome"].as_str().unwrap_or_default().to_owned())
        .collect();
    let count = |p: &str| outcomes.iter().filter(|o| o.starts_with(p)).count();
    assert_eq!(count("refused"), 8, "{outcomes:?}");
    assert_eq!(count("interrupted"), 1, "{outcomes:?}");
    assert_eq!(count("started"), 3, "{outcomes:?}");
    assert_eq!(count("granted"), 2, "{outcomes:?}");
    unit.stop();
}
