//! Stills as exhibits (R14): requested by the case's officer, approved by another manager,
//! made from the exact frame, registered on the unit; every refusal the policy needs made by
//! the unit and audited; the still's folder checked offline, and a tampered one named.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rdc_format::stills::{Signed, StillApproval, StillRequest};
use rdc_uplink::client::{Client, ClientError};
use rdc_uplink::protocol::{Refusal, Request};

use crate::harness::*;

const S: i64 = 1_000_000_000;

fn ok(o: std::process::Output) -> String {
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// The command failed (exit 1: refused or a check failed) and said `says`.
fn refused(o: std::process::Output, says: &str) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(1), "expected a refusal: {text}");
    assert!(text.contains(says), "does not say {says:?}: {text}");
    text
}

/// The still's number in `rdc still request`'s answer.
fn still_id(out: &str) -> u64 {
    out.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A connection to the unit as `who`, through the library (to sign documents with chosen times).
fn client(s: &Scheme, who: &str) -> (tokio::runtime::Runtime, Client, String, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cert = std::fs::read_to_string(s.path(&format!("users/{who}.crt"))).unwrap();
    let key = std::fs::read_to_string(s.path(&format!("users/{who}.key"))).unwrap();
    let id = rdc_uplink::tls::Identity::from_pem(&cert, &key).unwrap();
    let ca = std::fs::read_to_string(s.path("ca/ca.crt")).unwrap();
    let cfg = rdc_uplink::tls::client_config(&id, &ca).unwrap();
    let addr = format!("127.0.0.1:{}", s.port).parse().unwrap();
    let c = rt.block_on(Client::connect(addr, "e2e", cfg)).unwrap();
    (rt, c, cert, key)
}

fn refusal_of(r: Result<rdc_format::chain::Entry, ClientError>) -> Refusal {
    match r {
        Err(ClientError::Refused(r)) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// ffprobe's presentation times of `ts`'s video frames, in decode-output order.
fn frame_pts(ts: &Path) -> Vec<u64> {
    let v = ffprobe(
        &[
            "-select_streams",
            "v:0",
            "-show_entries",
            "frame=pts",
            "-of",
            "json",
        ],
        ts,
    );
    v["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["pts"].as_u64().unwrap())
        .collect()
}

/// ffmpeg's decode of frame `n` of `ts` as raw planes in `pix_fmt`.
fn ffmpeg_frame(ts: &Path, n: usize, pix_fmt: &str) -> Vec<u8> {
    let o = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(ts)
        .args([
            "-vf",
            &format!("select=eq(n\\,{n})"),
            "-frames:v",
            "1",
            "-f",
            "rawvideo",
            "-pix_fmt",
            pix_fmt,
            "-",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o.stdout
}

/// The still's PNG as RGB, read by ffmpeg.
fn png_rgb(png: &Path) -> Vec<u8> {
    let o = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(png)
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o.stdout
}

/// The rule the still's record states, applied here independently: limited-range BT.601 or
/// BT.709, each chroma sample for its 2×2 block, rounded half up.
fn yuv420_to_rgb(yuv: &[u8], w: usize, h: usize, bt709: bool) -> Vec<u8> {
    let (kr, kb) = if bt709 {
        (0.2126, 0.0722)
    } else {
        (0.299, 0.114)
    };
    let cw = w.div_ceil(2);
    let ch = h.div_ceil(2);
    let (y, rest) = yuv.split_at(w * h);
    let (u, v) = rest.split_at(cw * ch);
    let mut out = Vec::with_capacity(w * h * 3);
    for r in 0..h {
        for c in 0..w {
            let l = (f64::from(y[r * w + c]) - 16.0) / 219.0;
            let pb = (f64::from(u[(r / 2) * cw + c / 2]) - 128.0) / 224.0;
            let pr = (f64::from(v[(r / 2) * cw + c / 2]) - 128.0) / 224.0;
            let red = l + 2.0 * (1.0 - kr) * pr;
            let blue = l + 2.0 * (1.0 - kb) * pb;
            let green = (l - kr * red - kb * blue) / (1.0 - kr - kb);
            for x in [red, green, blue] {
                out.push((x * 255.0 + 0.5).floor().clamp(0.0, 255.0) as u8);
            }
        }
    }
    out
}

fn sha256(b: &[u8]) -> String {
    use std::fmt::Write as _;
    rdc_format::stills::leaf(b)
        .iter()
        .fold(String::new(), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn audit_lines(unit: &Unit) -> Vec<serde_json::Value> {
    std::fs::read_to_string(unit.dir.path().join("store/logs/audit.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|e| e["body"].clone())
        .collect()
}

/// The audit log holds a refusal of `action` that says `says`.
fn audited_refusal(unit: &Unit, action: &str, says: &str) {
    let all = audit_lines(unit);
    assert!(
        all.iter().any(|b| b["action"] == action
            && b["outcome"]
                .as_str()
                .is_some_and(|o| o.starts_with("refused") && o.contains(says))),
        "no audited refusal of {action} saying {says:?} in {all:#?}"
    );
}

#[test]
fn a_still_is_requested_approved_by_another_manager_made_from_the_exact_frame_and_registered() {
    let s = Scheme::new();
    for (name, role) in [
        ("m.jones", "manager"),
        ("m.kay", "manager"),
        ("e.lee", "engineer"),
        ("a.aud", "auditor"),
    ] {
        s.add_user(name, role);
    }
    // A keyframe every 2 s (50 frames at 25 fps).
    let cam = Camera::start(&["--gop", "50", "--kbps", "2000"]);
    let mut unit = s.unit(&[Cam {
        id: "front",
        url: cam.url(),
        extra: String::new(),
    }]);
    unit.start();
    wait_for("two segments", Duration::from_secs(60), || {
        manifests_in_log(&unit, "front")
            .iter()
            .filter(|m| m.frames > 0)
            .count()
            >= 2
    });
    let seg = manifests_in_log(&unit, "front")
        .into_iter()
        .find(|m| m.frames > 0 && m.index.is_some())
        .expect("a segment with a frame index");
    // Mid-GOP: 3.52 s in, 1.52 s after the keyframe at 2 s.
    let at_ns = (seg.start_ns + 3_520_000_000) / 1_000_000 * 1_000_000;
    let at = rdc_format::time::rfc3339(at_ns);
    let dir = s.keys.path();
    let req_copy = dir.join("request.json");
    let req = |who: &str, at: &str, extra: &[&str]| {
        let mut a = vec![
            "request",
            "--camera",
            "front",
            "--at",
            at,
            "--case",
            "ASB/2026/114",
            "--reason",
            "identify the person at the door",
        ];
        a.extend_from_slice(extra);
        s.rdc_as(who, "still", &a)
    };

    // An engineer can neither request nor approve.
    refused(req("e.lee", &at, &[]), "may not still request");
    // An instant in a gap is refused, naming the nearest footage.
    let first = manifests_in_log(&unit, "front")
        .into_iter()
        .find(|m| m.frames > 0)
        .unwrap();
    let before = rdc_format::time::rfc3339(first.start_ns - 30 * S);
    refused(
        req("j.smith", &before, &[]),
        &format!(
            "the nearest footage starts at {}",
            rdc_format::time::rfc3339(first.start_ns)
        ),
    );
    audited_refusal(&unit, "still_request", "nearest footage");

    // The officer asks; the request is pending.
    let out = ok(req("j.smith", &at, &["--out", req_copy.to_str().unwrap()]));
    let id = still_id(&out);
    let ids = id.to_string();
    let pending = ok(s.rdc_as("m.jones", "still", &["approve"]));
    assert!(pending.contains(&format!("still {id}")), "{pending}");
    refused(
        s.rdc(
            "still",
            &[
                "make",
                &ids,
                "--identity",
                &s.path("officer.key"),
                "-o",
                "/nonexistent/x",
            ],
        ),
        "no manager has approved it yet",
    );
    // Refused approvals: not a manager, an edited request, the requester themself, too old.
    refused(
        s.rdc_as("j.smith", "still", &["approve", &ids, "--yes"]),
        "may not still approve",
    );
    refused(
        s.rdc_as("e.lee", "still", &["approve", &ids, "--yes"]),
        "your role (engineer) may not",
    );
    let mut edited: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&req_copy).unwrap()).unwrap();
    edited["body"]["reason"] = "any reason at all".into();
    let edited_path = dir.join("request-edited.json");
    std::fs::write(&edited_path, serde_json::to_vec(&edited).unwrap()).unwrap();
    refused(
        s.rdc_as(
            "m.jones",
            "still",
            &[
                "approve",
                &ids,
                "--yes",
                "--request",
                edited_path.to_str().unwrap(),
            ],
        ),
        "different or edited request",
    );
    audited_refusal(&unit, "still_approve", "different or edited request");
    // A police officer's request carries the senior officer's authorisation, by its hash; the
    // manager sees it. An incomplete one is refused.
    let auth = dir.join("authorisation.pdf");
    std::fs::write(&auth, b"%PDF-1.4 signed by Insp. Jane Smith").unwrap();
    let police = still_id(&ok(req(
        "j.smith",
        &at,
        &[
            "--police-officer",
            "DC Brown",
            "--police-id",
            "MP1234",
            "--authorised-by",
            "Insp. Jane Smith",
            "--authorisation",
            auth.to_str().unwrap(),
        ],
    )));
    let shown = ok(s.rdc_as("m.jones", "still", &["approve", &police.to_string()]));
    assert!(
        shown.contains("for police officer DC Brown (MP1234), authorised by Insp. Jane Smith: authorisation.pdf")
            && shown.contains(&sha256(&std::fs::read(&auth).unwrap())),
        "{shown}"
    );
    assert!(shown.contains("nothing signed"), "{shown}");
    let o = req("j.smith", &at, &["--police-officer", "DC Brown"]);
    assert!(!o.status.success());
    let own = still_id(&ok(req("m.kay", &at, &[])));
    refused(
        s.rdc_as("m.kay", "still", &["approve", &own.to_string(), "--yes"]),
        "may not approve their own request",
    );
    audited_refusal(&unit, "still_approve", "may not approve their own request");
    {
        // Documents signed more than the scheme's 7 days ago (by the signers' own keys).
        let (rt, c, cert, key) = client(&s, "j.smith");
        let old = StillRequest {
            unit: "e2e".into(),
            camera: "front".into(),
            at_ns,
            at: at.clone(),
            case_ref: "ASB/2026/114".into(),
            reason: "old".into(),
            police: None,
            requested_ns: now_ns() - 8 * 86_400 * S,
        };
        let doc = rdc_uplink::stills::sign(&old, &cert, &key).unwrap();
        let r = refusal_of(rt.block_on(c.register(&Request::StillRequest { request: doc })));
        assert!(r.to_string().contains("more than 7 days ago"), "{r}");
        let (rt, c, cert, key) = client(&s, "m.jones");
        let reg = rt.block_on(c.stills()).unwrap();
        let entry = reg.entries.iter().find(|e| e.seq == id).unwrap();
        let request: Signed<StillRequest> =
            serde_json::from_value(entry.body["request"].clone()).unwrap();
        let stale = StillApproval {
            unit: "e2e".into(),
            still: id,
            request_sha256: request.sha256(),
            approved_ns: now_ns() - 8 * 86_400 * S,
            note: String::new(),
        };
        let doc = rdc_uplink::stills::sign(&stale, &cert, &key).unwrap();
        let r = refusal_of(rt.block_on(c.register(&Request::StillApprove { approval: doc })));
        assert!(r.to_string().contains("not within 7 days"), "{r}");
        // An engineer's signed approval is refused by role, whatever it says.
        let fresh = StillApproval {
            approved_ns: now_ns(),
            ..stale.clone()
        };
        let (rt2, e, ecert, ekey) = client(&s, "e.lee");
        let doc = rdc_uplink::stills::sign(&fresh, &ecert, &ekey).unwrap();
        let r = refusal_of(rt2.block_on(e.register(&Request::StillApprove { approval: doc })));
        assert!(r.to_string().contains("may not still approve"), "{r}");
        // A document signed by someone other than the person connected.
        let (_, _, other_cert, other_key) = client(&s, "m.kay");
        let forged = rdc_uplink::stills::sign(&stale, &other_cert, &other_key).unwrap();
        let r = refusal_of(rt.block_on(c.register(&Request::StillApprove { approval: forged })));
        assert!(r.to_string().contains("each person signs their own"), "{r}");
    }
    audited_refusal(&unit, "still_request", "more than 7 days ago");
    audited_refusal(&unit, "still_approve", "not within 7 days");

    // Another manager approves the request as the unit holds it.
    let approved = ok(s.rdc_as("m.jones", "still", &["approve", &ids, "--yes"]));
    assert!(
        approved.contains(&format!("still {id} approved")),
        "{approved}"
    );

    // The officer makes it.
    let out_dir = dir.join("still");
    let made = ok(s.rdc(
        "still",
        &[
            "make",
            &ids,
            "--identity",
            &s.path("officer.key"),
            "-o",
            out_dir.to_str().unwrap(),
        ],
    ));
    eprintln!("{made}");
    if let Ok(keep) = std::env::var("RDC_KEEP_STILL") {
        copy_dir(&out_dir, Path::new(&keep));
    }
    let signed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("still.json")).unwrap()).unwrap();
    let rec = &signed["record"];
    let frame = &rec["frame"];
    assert_eq!(frame["keyframe"], false, "{frame:#}");
    assert!(frame["after_keyframe"].as_u64().unwrap() > 0, "{frame:#}");
    let frame_ns = frame["time_ns"].as_i64().unwrap();
    assert!(
        frame_ns <= at_ns && at_ns - frame_ns < 40_000_000,
        "{frame:#}"
    );
    let served = rec["served"]["bytes"].as_u64().unwrap();
    assert!(
        served < seg.ciphertext_len,
        "{served} of {}",
        seg.ciphertext_len
    );

    // Nothing decrypted stays on the officer's machine: the folder holds the served
    // ciphertext (an age file's start), the PNG, the record, the CA, the register entry.
    let mut files: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "README.txt",
            "register-made.json",
            "scheme-ca.crt",
            "served.age-part",
            "still.json",
            "still.png"
        ]
    );
    assert!(
        std::fs::read(out_dir.join("served.age-part"))
            .unwrap()
            .starts_with(b"age-encryption.org/v1\n")
    );

    // The pixels are ffmpeg's decode of that frame of the fetched segment.
    let fetched = dir.join("fetched");
    ok(s.rdc(
        "fetch",
        &[
            "--camera",
            "front",
            "--from",
            &rdc_format::time::rfc3339(seg.start_ns),
            "--to",
            &rdc_format::time::rfc3339(seg.start_ns + S),
            "--case",
            "ASB/2026/114",
            "--reason",
            "check the still",
            "--identity",
            &s.path("officer.key"),
            "-o",
            fetched.to_str().unwrap(),
        ],
    ));
    let ts: PathBuf = std::fs::read_dir(fetched.join("front"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "ts"))
        .expect("the fetched segment");
    let pts = frame["pts"].as_u64().unwrap();
    let n = frame_pts(&ts)
        .iter()
        .position(|p| *p == pts)
        .expect("the still's frame in the fetched segment");
    assert!(n > 0);
    let (w, h) = (
        rec["picture"]["width"].as_u64().unwrap() as usize,
        rec["picture"]["height"].as_u64().unwrap() as usize,
    );
    assert_eq!((w, h), (640, 360));
    let yuv = ffmpeg_frame(&ts, n, "yuv420p");
    assert_eq!(
        sha256(&yuv),
        rec["picture"]["decoded_sha256"].as_str().unwrap(),
        "the decoder's planes differ from ffmpeg's decode of frame {n}"
    );
    let rgb = png_rgb(&out_dir.join("still.png"));
    let bt709 = rec["picture"]["matrix"] == "bt709";
    let want = yuv420_to_rgb(&yuv, w, h, bt709);
    assert_eq!(
        rgb.len(),
        w * (h + rec["picture"]["caption_rows"].as_u64().unwrap() as usize) * 3
    );
    assert!(
        rgb[..w * h * 3] == want[..],
        "the PNG's picture is not frame {n}'s pixels"
    );
    // ffmpeg's own conversion agrees to within its rounding.
    let theirs = ffmpeg_frame(&ts, n, "rgb24");
    let far = theirs
        .iter()
        .zip(&rgb)
        .filter(|(a, b)| a.abs_diff(**b) > 6)
        .count();
    assert!(
        far < theirs.len() / 100,
        "{far} values differ from ffmpeg's RGB"
    );

    // Checked offline, with the scheme's CA, and with the identity that it is that decode.
    let ca = s.path("ca/ca.crt");
    let v = ok(rdc(&["verify", "--ca", &ca, out_dir.to_str().unwrap()]));
    assert!(v.contains("complete and unaltered"), "{v}");
    let v = ok(rdc(&[
        "verify",
        "--ca",
        &ca,
        "--identity",
        &s.path("officer.key"),
        out_dir.to_str().unwrap(),
    ]));
    assert!(v.contains("pixel for pixel"), "{v}");

    // A still is redacted like footage: a third party's region black, the rest the still's
    // own pixels (lossless), the caption untouched; a derivative of the still.
    let regions = dir.join("still-regions.toml");
    std::fs::write(
        &regions,
        format!(
            "[[region]]\nlabel = \"a passer-by\"\nfrom = \"{a}\"\nto = \"{b}\"\nkeyframes = [{{ at = \"{a}\", x = 100, y = 100, w = 100, h = 80 }}]\n",
            a = rdc_format::time::rfc3339(frame_ns - S),
            b = rdc_format::time::rfc3339(frame_ns + S),
        ),
    )
    .unwrap();
    let disc = dir.join("still-disclosure");
    ok(rdc(&[
        "redact",
        out_dir.to_str().unwrap(),
        "--regions",
        regions.to_str().unwrap(),
        "--out",
        disc.to_str().unwrap(),
        "--reason",
        "disclosure to the requester",
        "--unit",
        "e2e",
        "--units",
        &s.path("units.toml"),
    ]));
    let before = png_rgb(&out_dir.join("still.png"));
    let after = png_rgb(&disc.join("disclosure.png"));
    assert_eq!(before.len(), after.len());
    for y in 0..h + 40 {
        for x in 0..w {
            let i = (y * w + x) * 3;
            let inside = (100..200).contains(&x) && (100..180).contains(&y);
            // Obscured on the 16 px grid with a 16 px margin: 80..224 × 80..208.
            let obscured = (80..224).contains(&x) && (80..208).contains(&y);
            if inside {
                assert_eq!(&after[i..i + 3], &[0, 0, 0], "{x},{y}");
            } else if !obscured {
                assert_eq!(&after[i..i + 3], &before[i..i + 3], "{x},{y}");
            }
        }
    }
    let v = ok(rdc(&[
        "verify",
        "--ca",
        &s.path("ca/ca.crt"),
        "--source",
        out_dir.to_str().unwrap(),
        disc.to_str().unwrap(),
    ]));
    assert!(v.contains("a redacted derivative of the exhibit"), "{v}");

    // Tampered copies fail, named.
    let tamper = |name: &str, f: &dyn Fn(&Path), says: &str| {
        let d = dir.join(format!("tampered-{name}"));
        copy_dir(&out_dir, &d);
        f(&d);
        refused(rdc(&["verify", "--ca", &ca, d.to_str().unwrap()]), says);
    };
    tamper(
        "png",
        &|d| {
            let mut b = std::fs::read(d.join("still.png")).unwrap();
            let i = b.len() - 20;
            b[i] ^= 1;
            std::fs::write(d.join("still.png"), b).unwrap();
        },
        "still.png has been altered",
    );
    tamper(
        "record",
        &|d| {
            let t = std::fs::read_to_string(d.join("still.json")).unwrap();
            std::fs::write(
                d.join("still.json"),
                t.replace("identify the person", "identify a person"),
            )
            .unwrap();
        },
        "signature does not match",
    );
    tamper(
        "served",
        &|d| {
            let mut b = std::fs::read(d.join("served.age-part")).unwrap();
            let i = b.len() - 100;
            b[i] ^= 1;
            std::fs::write(d.join("served.age-part"), b).unwrap();
        },
        "served bytes",
    );
    tamper(
        "extra",
        &|d| std::fs::write(d.join("other.png"), b"x").unwrap(),
        "other.png is in the still's folder",
    );
    tamper(
        "link",
        &|d| {
            std::fs::remove_file(d.join("README.txt")).unwrap();
            std::os::unix::fs::symlink("/etc/hostname", d.join("README.txt")).unwrap();
        },
        "README.txt is not a regular file",
    );

    // The register: released to the police; officers, managers and auditors read it, checked.
    refused(
        s.rdc("still", &["release", &own.to_string(), "--to", "DC Brown"]),
        "has not been made yet",
    );
    ok(s.rdc(
        "still",
        &[
            "release",
            &ids,
            "--to",
            "DC Brown, Met Police, exhibit JB/1",
        ],
    ));
    let reg = ok(s.rdc_as("a.aud", "stills", &["--case", "ASB/2026/114"]));
    assert!(reg.contains(&format!("still {id:<4} released")), "{reg}");
    assert!(
        reg.contains("approved by M. Jones") || reg.contains("approved by m.jones"),
        "{reg}"
    );
    assert!(
        reg.contains("released by") && reg.contains("DC Brown, Met Police, exhibit JB/1"),
        "{reg}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(s.rdc_as("m.kay", "stills", &["--json"]))).unwrap();
    let kinds: Vec<&str> = json["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["still"] == id)
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["request", "approval", "production", "made", "release"]
    );
    refused(s.rdc_as("e.lee", "stills", &[]), "may not stills register");

    // A manager approves in the console, in a real browser, seeing the nearest preview; the
    // console also lists the open subject access requests.
    let second = still_id(&ok(req("j.smith", &at, &[])));
    let today = rdc_format::sar::date_text(rdc_format::sar::uk_date(now_ns()));
    ok(rdc(&[
        "sar",
        "open",
        "--unit",
        "e2e",
        "--units",
        &s.path("units-m.kay.toml"),
        "--camera",
        "front",
        "--from",
        &rdc_format::time::rfc3339(seg.start_ns),
        "--to",
        &rdc_format::time::rfc3339(seg.end_ns),
        "--received",
        &today,
        "--requester-ref",
        "SAR-2026-31",
    ]));
    let work = tempfile::tempdir().unwrap();
    let console = crate::console::start_console(
        Path::new(&s.path("units-m.kay.toml")),
        &s.path("officer.key"),
        &work.path().join("state"),
        &work.path().join("exports"),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use fantoccini::Locator;
        let browser = rdc_tests::browser::Browser::start(false).await;
        let b = &browser.client;
        b.goto(&console.url).await.unwrap();
        crate::console::wait_text(b, "main", Duration::from_secs(30), |t| t.contains("Stills of e2e")).await;
        b.goto(&console.at("/case?back=/unit/e2e/stills")).await.unwrap();
        crate::console::set_input(b, "input[name=case]", "ASB/2026/114").await;
        crate::console::set_input(b, "input[name=reason]", "approve a still").await;
        b.find(Locator::Css("form.stack button")).await.unwrap().click().await.unwrap();
        let page = crate::console::wait_text(b, "main", Duration::from_secs(30), |t| {
            t.contains(&format!("Still {second}"))
        })
        .await;
        assert!(page.contains("identify the person at the door"), "{page}");
        crate::console::assert_accessible(b, "stills").await;
        // The preview nearest the instant is shown.
        let t = std::time::Instant::now();
        loop {
            let w = b
                .execute(
                    "const i = document.querySelector('img.still-preview'); return i && i.complete ? i.naturalWidth : 0;",
                    vec![],
                )
                .await
                .unwrap();
            if w.as_u64().unwrap_or(0) >= 256 {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(40), "no preview: {w}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        b.find(Locator::XPath(&format!("//button[text()='Approve still {second}']")))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        crate::console::wait_text(b, "table", Duration::from_secs(30), |t| t.contains("approved by m.kay")).await;
        b.goto(&console.at("/sars")).await.unwrap();
        let due = rdc_format::sar::date_text(rdc_format::sar::due(
            rdc_format::sar::parse_date(&today).unwrap(),
            0,
        ));
        let sars = crate::console::wait_text(b, "main", Duration::from_secs(30), |t| t.contains("SAR-2026-31")).await;
        assert!(sars.contains(&due), "{sars}");
        crate::console::assert_accessible(b, "subject access requests").await;
    });
    drop(console);
    let reg = ok(s.rdc("stills", &[]));
    assert!(
        reg.contains(&format!("still {second:<4} approved")),
        "{reg}"
    );

    // An entry of the register edited on the unit is named.
    let log = unit.dir.path().join("store/logs/stills.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    std::fs::write(
        &log,
        text.replace("DC Brown, Met Police", "DC Green, Met Police"),
    )
    .unwrap();
    let o = s.rdc("stills", &[]);
    refused(o, "register entry");
    unit.stop();
}
