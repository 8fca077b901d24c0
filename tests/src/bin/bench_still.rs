//! `rdc-bench-still`: what a still costs over a poor 4G link (issue 27). A store holds a few
//! minutes of 1080p H.264 at 4 Mbit/s with a keyframe every 2 s, in 10 s segments, written as the
//! recorder writes them (frame index, piece hashes); the unit's uplink serves it in-process
//! behind the UDP link emulator (5 Mbit/s, 100 ms RTT, 1 % loss each way). For instants chosen
//! mid-GOP, an officer requests a still, a manager approves it, and `rdc still make` is timed
//! from its start to the PNG written; the bytes that crossed the link for it are counted and
//! set against the segment that holds the frame.
//!
//! ```text
//! cargo run --release -p rdc-tests --bin rdc-bench-still -- --stills 8
//! ```

use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use rdc_storage::{Budget, StoreConfig};
use rdc_tests::relay::{Link, Relay};
use rdc_uplink::pki::{self, Kind};

#[derive(Parser)]
struct Args {
    /// Stills made per scene.
    #[arg(long, default_value_t = 8)]
    stills: usize,
    /// Video bitrate, kbit/s.
    #[arg(long, default_value_t = 4000)]
    kbps: u32,
    /// Frames between keyframes (25 fps).
    #[arg(long, default_value_t = 50)]
    gop: u32,
    /// The link's rate, Mbit/s.
    #[arg(long, default_value_t = 5.0)]
    mbps: f64,
    /// Round-trip time, ms.
    #[arg(long, default_value_t = 100)]
    rtt_ms: u64,
    /// Loss each way, percent.
    #[arg(long, default_value_t = 1.0)]
    loss: f64,
}

const SCENES: &[(&str, &str)] = &[
    (
        "still scene, sensor noise, one moving object",
        "videotestsrc num-buffers=250 pattern=smpte ! video/x-raw,width=1920,height=1080,framerate=25/1 ! c.sink_0 \
         videotestsrc num-buffers=250 pattern=ball ! video/x-raw,width=480,height=360,framerate=25/1 ! c.sink_1 \
         videotestsrc num-buffers=250 pattern=snow ! video/x-raw,width=1920,height=1080,framerate=25/1 ! c.sink_2 \
         compositor name=c sink_2::alpha=0.06 ! video/x-raw,width=1920,height=1080,framerate=25/1",
    ),
    (
        "noise everywhere (night, high gain)",
        "videotestsrc num-buffers=250 pattern=snow ! video/x-raw,width=1920,height=1080,framerate=25/1",
    ),
];

const S: i64 = 1_000_000_000;

fn main() -> anyhow::Result<ExitCode> {
    // `rdc-bench-still rdc ARGS`: the `rdc` tool, as a process of its own.
    if let Some(code) = rdc_tests::rig::as_tool() {
        return Ok(code);
    }
    let a = Args::parse();
    let link = Link {
        rate_bps: (a.mbps * 1e6) as u64,
        delay: Duration::from_millis(a.rtt_ms / 2),
        loss: a.loss / 100.0,
        queue: Duration::from_millis(200),
    };
    println!(
        "1080p25 x264 at {} kbit/s, a keyframe every {} frames, 10 s segments; link {} Mbit/s, {} ms RTT, {} % loss",
        a.kbps, a.gop, a.mbps, a.rtt_ms, a.loss
    );
    println!(
        "{:<46} {:>6} {:>10} {:>10} {:>10} {:>7} {:>7}",
        "scene", "still", "segment B", "served B", "link B", "share", "make s"
    );
    for (scene, source) in SCENES {
        let src = format!("{source} ! videoconvert ! video/x-raw,format=I420");
        let clip = rdc_tests::footage::encode_h264(&src, 250, 25, a.kbps, a.gop)?;
        bench_scene(scene, &clip, &a, link)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn bench_scene(
    scene: &str,
    clip: &rdc_tests::footage::Clip,
    a: &Args,
    link: Link,
) -> anyhow::Result<()> {
    let tmp =
        tempfile::tempdir_in(std::env::var_os("TMPDIR").unwrap_or_else(|| "/var/tmp".into()))?;
    let p = |s: &str| tmp.path().join(s);
    let ca = pki::new_ca("Bench", 365)?;
    let unit = pki::issue(&ca, "bench", Kind::Unit, 365)?;
    std::fs::write(p("ca.crt"), &ca.cert)?;
    let mut users = Vec::new();
    for (who, role) in [
        ("j.smith", rdc_config::Role::Officer),
        ("m.jones", rdc_config::Role::Manager),
    ] {
        let c = pki::issue(&ca, who, Kind::User, 365)?;
        std::fs::write(p(&format!("{who}.crt")), &c.cert)?;
        std::fs::write(p(&format!("{who}.key")), &c.key)?;
        users.push(rdc_config::User {
            name: who.into(),
            role,
            fingerprint: None,
            common_name: Some(who.into()),
        });
    }
    let public = rdc_tests::rig::officer_identity(&std::env::current_exe()?, &p("officer.key"))?;
    let recipient = rdc_config::Recipient::parse_key(&public)
        .map_err(|e| anyhow::anyhow!("the officer's identity: {e}"))?;
    let (store, now) = rdc_tests::rig::bench_store(tmp.path(), recipient, |c| StoreConfig {
        budget: Budget::MaxBytes(1 << 40),
        segment_ns: 10 * S as u64,
        ..c
    })?;
    let len = 120 * S;
    let start = (now - len - 60 * S) / S * S;
    rdc_tests::footage::record(&store, "front", clip, (start, len as u64), &[], "end")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let server_addr = rdc_tests::rig::serve_store(&rt, (&unit, &ca.cert), users, store.clone())?;
    let relay = Relay::start(server_addr, link)?;
    for who in ["j.smith", "m.jones"] {
        std::fs::write(
            p(&format!("units-{who}.toml")),
            format!(
                "[unit.bench]\naddress = \"{}\"\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
                relay.addr,
                p("ca.crt").display(),
                p(&format!("{who}.crt")).display(),
                p(&format!("{who}.key")).display()
            ),
        )?;
    }
    let rdc = |who: &str, args: &[&str]| -> anyhow::Result<String> {
        let o = Command::new(std::env::current_exe()?)
            .arg("rdc")
            .args(&args[..1])
            .args(["--unit", "bench", "--units"])
            .arg(p(&format!("units-{who}.toml")))
            .args(&args[1..])
            .output()?;
        if !o.status.success() {
            bail!(
                "rdc {args:?}: {}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
        }
        Ok(String::from_utf8(o.stdout)?)
    };
    let manifests = manifests(&p("store/logs/manifests/front.jsonl"))?;
    let mut shares = Vec::new();
    let mut times = Vec::new();
    for i in 0..a.stills {
        // Segments 2.. of the two minutes; an instant 0.5-1.5 s after one of the keyframes.
        let m = &manifests[2 + (i * 3) % (manifests.len() - 3)];
        let gop_ns = i64::from(a.gop) * S / 25;
        let into = (i as i64 % 4) * gop_ns + gop_ns / 4 + (i as i64 * 97_000_000) % (gop_ns / 2);
        let at = rdc_format::time::rfc3339(m.start_ns + into);
        let out = rdc(
            "j.smith",
            &[
                "still",
                "request",
                "--camera",
                "front",
                "--at",
                &at,
                "--case",
                "BENCH/1",
                "--reason",
                "benchmark",
            ],
        )?;
        let id = out
            .split_whitespace()
            .nth(1)
            .context("no still number")?
            .to_owned();
        rdc("m.jones", &["still", "approve", &id, "--yes"])?;
        let dir = p(&format!("still-{id}"));
        let before = relay.bytes();
        let t = Instant::now();
        rdc(
            "j.smith",
            &[
                "still",
                "make",
                &id,
                "--identity",
                &p("officer.key").display().to_string(),
                "-o",
                &dir.display().to_string(),
            ],
        )?;
        let secs = t.elapsed().as_secs_f64();
        let on_link = relay.bytes() - before;
        let rec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("still.json"))?)?;
        let served = rec["record"]["served"]["bytes"].as_u64().unwrap_or(0);
        let share = served as f64 / m.ciphertext_len as f64;
        shares.push(share);
        times.push(secs);
        println!(
            "{:<46} {:>6} {:>10} {:>10} {:>10} {:>6.1}% {:>7.2}",
            if i == 0 { scene } else { "" },
            id,
            m.ciphertext_len,
            served,
            on_link,
            share * 100.0,
            secs
        );
    }
    shares.sort_by(f64::total_cmp);
    times.sort_by(f64::total_cmp);
    println!(
        "{:<46} median share {:.1} % (max {:.1} %), median time {:.2} s (max {:.2} s)",
        "",
        shares[shares.len() / 2] * 100.0,
        shares[shares.len() - 1] * 100.0,
        times[times.len() / 2],
        times[times.len() - 1]
    );
    rt.shutdown_timeout(Duration::from_secs(2));
    Ok(())
}

fn manifests(path: &Path) -> anyhow::Result<Vec<rdc_storage::Manifest>> {
    Ok(std::fs::read_to_string(path)?
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|e| serde_json::from_value(e["body"].clone()).ok())
        .filter(|m: &rdc_storage::Manifest| m.frames > 0)
        .collect())
}
