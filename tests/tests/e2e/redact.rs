//! Disclosure copies (R15, 002 §41): an exported exhibit redacted with a region that moves across
//! the picture; the pixels under it keep nothing of the master (black: one value; pixelated:
//! 16 px blocks), the pixels away from it stay close to the master (PSNR over 30 dB);
//! `--keep-only`; the review sheet; the unit's receipt; `rdc verify` names a tampered file; a
//! subject access request closed with the disclosure.

use std::path::Path;
use std::time::Duration;

use rdc_format::time::rfc3339;

use crate::harness::*;

const S: i64 = 1_000_000_000;
const W: usize = 320;
const H: usize = 180;

fn ok(o: std::process::Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{text}");
    text
}

/// Every frame's luma, as ffmpeg decodes `mp4`.
fn luma_frames(mp4: &Path) -> Vec<Vec<u8>> {
    let o = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(mp4)
        .args(["-map", "0:v:0", "-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o.stdout.chunks(W * H).map(<[u8]>::to_vec).collect()
}

fn stats(f: &[u8], (x0, y0, x1, y1): (usize, usize, usize, usize)) -> (f64, f64) {
    let mut v = Vec::new();
    for y in y0..y1 {
        for x in x0..x1 {
            v.push(f64::from(f[y * W + x]));
        }
    }
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
    (mean, var)
}

/// PSNR of `b` against `a` over the pixels `keep` says.
fn psnr(a: &[u8], b: &[u8], keep: impl Fn(usize, usize) -> bool) -> f64 {
    let (mut se, mut n) = (0f64, 0usize);
    for y in 0..H {
        for x in 0..W {
            if keep(x, y) {
                let d = f64::from(a[y * W + x]) - f64::from(b[y * W + x]);
                se += d * d;
                n += 1;
            }
        }
    }
    if se == 0.0 {
        return 99.0;
    }
    10.0 * (255.0f64 * 255.0 / (se / n as f64)).log10()
}

/// The region at frame `i` (5 fps from the working copy's first frame): 64×64, moving from
/// x = 16 to x = 240 over the first 40 s.
fn rect_at(i: usize) -> (usize, usize, usize, usize) {
    let t = (i as f64 / 5.0).min(40.0);
    let x = (16.0 + (240.0 - 16.0) * t / 40.0).round() as usize;
    (x, 48, x + 64, 112)
}

#[test]
fn a_disclosure_obscures_a_moving_region_beyond_recovery_and_keeps_the_rest() {
    let s = Scheme::new();
    s.add_user("boss", "manager");
    let RecordedHour {
        mut unit, start, ..
    } = recorded_hour_of(
        &s,
        800,
        "videotestsrc num-buffers=50 pattern=smpte ! video/x-raw,width=320,height=180,framerate=5/1 ! timeoverlay ! videoconvert ! video/x-raw,format=I420",
    );
    unit.start();
    wait_for("the uplink", Duration::from_secs(30), || {
        s.rdc("status", &[]).status.success()
    });
    let work = tempfile::tempdir().unwrap();
    let bundle = work.path().join("exhibit");
    // A minute, from a keyframe (the clip's GOP is a second).
    let (from, to) = (start + 300 * S, start + 360 * S);
    ok(s.rdc(
        "export",
        &[
            "--camera",
            "front",
            "--from",
            &rfc3339(from),
            "--to",
            &rfc3339(to),
            "--case",
            "ASB/2026/7",
            "--reason",
            "subject access request",
            "--identity",
            &s.path("officer.key"),
            "--out",
            bundle.to_str().unwrap(),
        ],
    ));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("manifest.json")).unwrap()).unwrap();
    let first_ns = manifest["bundle"]["working_copy"]["from_ns"]
        .as_i64()
        .unwrap();
    let regions = work.path().join("regions.toml");
    std::fs::write(
        &regions,
        format!(
            "[[region]]\nlabel = \"a neighbour walking past\"\nfrom = \"{}\"\nto = \"{}\"\nkeyframes = [\n  {{ at = \"{}\", x = 16, y = 48, w = 64, h = 64 }},\n  {{ at = \"{}\", x = 240, y = 48, w = 64, h = 64 }},\n]\n",
            rfc3339(first_ns - S),
            rfc3339(first_ns + 70 * S),
            rfc3339(first_ns),
            rfc3339(first_ns + 40 * S),
        ),
    )
    .unwrap();
    // A subject access request, closed below with the disclosure.
    let units_boss = s.path("units-boss.toml");
    let today = rdc_format::sar::date_text(rdc_format::sar::uk_date(now_ns()));
    ok(rdc(&[
        "sar",
        "open",
        "--unit",
        "e2e",
        "--units",
        &units_boss,
        "--camera",
        "front",
        "--from",
        &rfc3339(from),
        "--to",
        &rfc3339(to),
        "--received",
        &today,
        "--requester-ref",
        "SAR-7",
    ]));

    let redact = |out: &Path, extra: &[&str]| {
        let mut a = vec![
            "redact",
            bundle.to_str().unwrap(),
            "--regions",
            regions.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--reason",
            "disclosure to the requester",
            "--request-ref",
            "SAR-7",
            "--unit",
            "e2e",
            "--units",
            &units_boss,
        ];
        a.extend_from_slice(extra);
        ok(rdc(&a))
    };
    // The review sheet first.
    let sheet = work.path().join("check.png");
    let text = ok(rdc(&[
        "redact",
        bundle.to_str().unwrap(),
        "--regions",
        regions.to_str().unwrap(),
        "--check",
        sheet.to_str().unwrap(),
    ]));
    assert!(text.contains("pictures with the regions drawn"), "{text}");
    assert!(std::fs::metadata(&sheet).unwrap().len() > 1000);

    let master = luma_frames(&bundle.join("working-copy.mp4"));
    let solid = work.path().join("solid");
    let text = redact(&solid, &[]);
    assert!(text.contains("recorded by unit e2e"), "{text}");
    let red = luma_frames(&solid.join("disclosure.mp4"));
    assert_eq!(red.len(), master.len(), "every frame is in the disclosure");
    // It keeps the working copy's time subtitles; the exhibit itself is untouched.
    let streams = ffprobe(
        &["-show_entries", "stream=codec_type", "-of", "json"],
        &solid.join("disclosure.mp4"),
    );
    let kinds: Vec<&str> = streams["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["codec_type"].as_str())
        .collect();
    assert_eq!(kinds, ["video", "subtitle"], "{streams}");
    let v = ok(rdc(&[
        "verify",
        "--ca",
        &s.path("ca/ca.crt"),
        bundle.to_str().unwrap(),
    ]));
    assert!(v.contains("complete and unaltered"), "{v}");
    let mut far_psnr = Vec::new();
    for (i, (m, r)) in master.iter().zip(&red).enumerate() {
        let rr = rect_at(i);
        let (mean, var) = stats(r, rr);
        assert!(
            var == 0.0 && mean <= 17.0,
            "frame {i}: under the region mean {mean}, variance {var}"
        );
        // Away from the region (and the 16 px grid and margin around it): the master's pixels.
        let near =
            |x: usize, y: usize| x + 48 >= rr.0 && x < rr.2 + 48 && y + 48 >= rr.1 && y < rr.3 + 48;
        far_psnr.push(psnr(m, r, |x, y| !near(x, y)));
    }
    let worst = far_psnr.iter().copied().fold(f64::INFINITY, f64::min);
    eprintln!(
        "{} frames; PSNR away from the region: worst {worst:.1} dB",
        red.len()
    );
    assert!(
        worst > 30.0,
        "PSNR away from the region: worst {worst:.1} dB"
    );
    // The region moved: its first and last frames' pixels differ from the master's there.
    assert!(
        stats(&master[0], rect_at(0)).1 > 10.0,
        "the master has detail under the region"
    );

    // Pixelated: 16 px blocks, each one value.
    let pix = work.path().join("pixelate");
    redact(&pix, &["--mode", "pixelate"]);
    let red = luma_frames(&pix.join("disclosure.mp4"));
    for (i, r) in red.iter().enumerate().step_by(7) {
        let rr = rect_at(i);
        for by in (rr.1 / 16)..(rr.3 / 16) {
            for bx in (rr.0 / 16)..(rr.2 / 16) {
                let (_, var) = stats(r, (bx * 16, by * 16, bx * 16 + 16, by * 16 + 16));
                assert!(var < 1.0, "frame {i}, block {bx},{by}: variance {var}");
            }
        }
    }

    // Only the requester kept: everything outside the region is black.
    let keep = work.path().join("keep");
    redact(&keep, &["--keep-only"]);
    let red = luma_frames(&keep.join("disclosure.mp4"));
    for (i, (m, r)) in master.iter().zip(&red).enumerate().step_by(5) {
        let rr = rect_at(i);
        let (mean, var) = stats(r, (0, 0, W, 16));
        assert!(
            var == 0.0 && mean <= 17.0,
            "frame {i}: the top rows: {mean} {var}"
        );
        let inner = (rr.0.div_ceil(16) * 16 + 16, 64, rr.2 / 16 * 16 - 16, 96);
        if inner.0 < inner.2 {
            let p = psnr(m, r, |x, y| {
                x >= inner.0 && x < inner.2 && y >= inner.1 && y < inner.3
            });
            assert!(p > 30.0, "frame {i}: the kept region {p:.1} dB");
        }
    }

    // Checked offline as a derivative of the exhibit; a tampered disclosure fails, named.
    let ca = s.path("ca/ca.crt");
    let v = ok(rdc(&[
        "verify",
        "--ca",
        &ca,
        "--source",
        bundle.to_str().unwrap(),
        solid.to_str().unwrap(),
    ]));
    assert!(v.contains("a redacted derivative of the exhibit"), "{v}");
    assert!(v.contains("recorded this disclosure"), "{v}");
    let t = work.path().join("tampered");
    std::fs::create_dir_all(&t).unwrap();
    for e in std::fs::read_dir(&solid).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), t.join(e.file_name())).unwrap();
    }
    let mut b = std::fs::read(t.join("disclosure.mp4")).unwrap();
    let n = b.len() / 2;
    b[n] ^= 0x40;
    std::fs::write(t.join("disclosure.mp4"), b).unwrap();
    let o = rdc(&["verify", "--ca", &ca, t.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(text.contains("disclosure.mp4 has been altered"), "{text}");
    let o = rdc(&[
        "verify",
        "--ca",
        &ca,
        "--source",
        &s.path("ca"),
        solid.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));

    // The unit recorded each render; the request is closed with the disclosure.
    let audit = std::fs::read_to_string(unit.dir.path().join("store/logs/audit.jsonl")).unwrap();
    assert_eq!(
        audit.matches("\"action\":\"disclosure\"").count(),
        3,
        "{audit}"
    );
    ok(rdc(&[
        "sar",
        "close",
        "--unit",
        "e2e",
        "--units",
        &units_boss,
        "SAR-7",
        "--disclosed",
        solid.to_str().unwrap(),
    ]));
    let list = ok(rdc(&["sar", "list", "--all", "--units", &units_boss]));
    assert!(
        list.contains("closed: disclosed") && list.contains("SAR-7"),
        "{list}"
    );
    unit.stop();
}
