//! `rdc-bench-console`: how soon an officer sees a camera's day in the console over a weak 4G
//! link (issue 25). Records `--hours` of 1080p H.264 into a real store (footage and previews
//! every 10 s, as the recorder writes them, one-minute segments, a 30 s outage), serves it
//! with the unit's uplink on loopback behind the emulated link (5 Mbit/s, 100 ms round trip,
//! 1 % loss), starts `rdc console` and a headless chromium, and opens the camera's 24-hour
//! timeline, each run with a fresh console (nothing remembered). It reports the time to the
//! page's first contentful paint (the chart, spans and gaps; the page is usable), to the first
//! picture and to the last, and the bytes the link carried for each, against the day's footage.
//!
//! ```text
//! cargo run --release -p rdc-tests --bin rdc-bench-console -- --hours 24 --runs 3
//! ```

use std::time::{Duration, Instant};

use clap::Parser;
use fantoccini::Locator;
use rdc_storage::{Budget, StoreConfig};
use rdc_tests::browser::{Browser, ConsoleProcess};

#[derive(Parser)]
struct Args {
    /// Hours of footage on the unit (the timeline shows the last 24 of them).
    #[arg(long, default_value_t = 24)]
    hours: u64,
    /// Video bitrate, kbit/s.
    #[arg(long, default_value_t = 2000)]
    kbps: u32,
    /// Page loads, each with a fresh console.
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

const S: i64 = 1_000_000_000;

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let tmp =
        tempfile::tempdir_in(std::env::var_os("TMPDIR").unwrap_or_else(|| "/var/tmp".into()))?;
    let p = |s: &str| tmp.path().join(s);
    // The scheme: a CA, the unit, an officer (certificate and age identity).
    use rdc_uplink::pki::{self, Kind};
    let ca = pki::new_ca("Bench", 365)?;
    let unit = pki::issue(&ca, "bench", Kind::Unit, 365)?;
    let officer = pki::issue(&ca, "j.smith", Kind::User, 365)?;
    std::fs::write(p("ca.crt"), &ca.cert)?;
    std::fs::write(p("officer.crt"), &officer.cert)?;
    std::fs::write(p("officer.key"), &officer.key)?;
    let rdc = std::env::current_exe()?.with_file_name("rdc-under-test");
    let o = std::process::Command::new(&rdc)
        .args(["keys", "identity", "--out"])
        .arg(p("officer.age"))
        .output()?;
    anyhow::ensure!(o.status.success(), "rdc keys identity failed");
    let recipient = rdc_config::Recipient::parse_key(String::from_utf8(o.stdout)?.trim())
        .map_err(|e| anyhow::anyhow!("{e}"))?;

    // A day of 1080p: a still scene with sensor noise and a moving object (the benchmark's
    // middle scene for previews), a keyframe every 2 s.
    let source = "videotestsrc num-buffers=250 pattern=smpte ! video/x-raw,width=1920,height=1080,framerate=25/1 ! c.sink_0 \
         videotestsrc num-buffers=250 pattern=ball ! video/x-raw,width=480,height=360,framerate=25/1 ! c.sink_1 \
         videotestsrc num-buffers=250 pattern=snow ! video/x-raw,width=1920,height=1080,framerate=25/1 ! c.sink_2 \
         compositor name=c sink_2::alpha=0.06 ! video/x-raw,width=1920,height=1080,framerate=25/1 ! videoconvert ! video/x-raw,format=I420";
    let clip = rdc_tests::footage::encode_h264(source, 250, 25, a.kbps, 50)?;
    let (store, now) = rdc_tests::rig::bench_store(tmp.path(), recipient, |c| StoreConfig {
        budget: Budget::MaxBytes(1 << 42),
        segment_ns: 60 * S as u64,
        preview_interval_ns: Some(10 * S as u64),
        ..c
    })?;
    let len = a.hours as i64 * 3600 * S;
    let start = (now - len) / (60 * S) * (60 * S);
    let outage = (start + len / 2, start + len / 2 + 30 * S);
    let t = Instant::now();
    let rec = rdc_tests::footage::record(
        &store,
        "front",
        &clip,
        (start, len as u64),
        &[outage],
        "the camera closed the connection",
    )?;
    let st = store.status()?;
    let cam = &st.cameras[0];
    println!(
        "{} h of 1080p25 at {:.2} Mbit/s recorded in {:.0} s: {:.1} GB footage ({} segments), {:.1} MB previews",
        a.hours,
        rec.footage_bytes as f64 * 8.0 / (len as f64 / 1e9) / 1e6,
        t.elapsed().as_secs_f64(),
        cam.bytes as f64 / 1e9,
        cam.segments,
        cam.previews.as_ref().map_or(0, |p| p.bytes) as f64 / 1e6
    );
    let day_bytes = cam.bytes as f64 * 24.0 / a.hours.max(24) as f64;

    // The unit's uplink, behind the emulated 4G link.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let users = rdc_tests::rig::officer_users(&officer)?;
    let server = rdc_tests::rig::serve_store(&rt, (&unit, &ca.cert), users, store)?;
    let link = rdc_tests::relay::Link {
        rate_bps: 5_000_000,
        delay: Duration::from_millis(50),
        loss: 0.01,
        queue: Duration::from_millis(300),
    };
    let relay = rdc_tests::relay::Relay::start(server, link)?;
    std::fs::write(p("unit.crt"), &unit.cert)?;
    std::fs::write(
        p("units.toml"),
        format!(
            "[unit.bench]\naddress = \"{}\"\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
            relay.addr,
            p("ca.crt").display(),
            p("officer.crt").display(),
            p("officer.key").display()
        ),
    )?;
    println!(
        "link: 5 Mbit/s, 100 ms round trip, 1 % loss; the 24-hour timeline of a day of {:.1} GB",
        day_bytes / 1e9
    );
    println!(
        "{:>4} {:>12} {:>12} {:>14} {:>12} {:>12} {:>10}",
        "run", "paint s", "paint kB", "first pic s", "all pics s", "all kB", "of day"
    );
    for run in 1..=a.runs {
        let state = p(&format!("state-{run}"));
        let console = ConsoleProcess::start(
            &rdc,
            &p("units.toml"),
            &p("officer.age"),
            &state,
            &p("exports"),
        );
        let r = rt.block_on(paint_timeline(&console, &relay))?;
        let (fcp, paint_bytes, first_at, all_at, all_bytes, pics) = r;
        println!(
            "{run:>4} {fcp:>12.2} {:>12.1} {first_at:>14.1} {all_at:>12.1} {:>12.0} {:>9.3}%   ({pics} pictures of 1920x1080)",
            paint_bytes as f64 / 1e3,
            all_bytes as f64 / 1e3,
            all_bytes as f64 / day_bytes * 100.0
        );
        drop(console);
    }
    Ok(())
}

/// One officer's first look at the day's timeline through the console, in a real browser:
/// (first paint s, bytes to it, first picture s, all pictures s, bytes in all, 1080p pictures).
async fn paint_timeline(
    console: &ConsoleProcess,
    relay: &rdc_tests::relay::Relay,
) -> anyhow::Result<(f64, u64, f64, f64, u64, serde_json::Value)> {
    let browser = Browser::start(true).await;
    let b = &browser.client;
    b.goto(&console.url).await?;
    b.goto(&console.at("/case?back=/")).await?;
    b.find(Locator::Css("input[name=case]"))
        .await?
        .send_keys("BENCH/1")
        .await?;
    b.find(Locator::Css("input[name=reason]"))
        .await?
        .send_keys("benchmark")
        .await?;
    b.find(Locator::Css("form button")).await?.click().await?;
    wait(b, "return document.querySelector('h1') !== null").await?;
    let before = relay.bytes();
    let t = Instant::now();
    b.goto(&console.at("/unit/bench/camera/front?span=1d"))
        .await?;
    wait(
        b,
        "return performance.getEntriesByName('first-contentful-paint').length > 0",
    )
    .await?;
    let fcp = b
        .execute(
            "const n = performance.getEntriesByType('navigation')[0]; return (performance.getEntriesByName('first-contentful-paint')[0].startTime - n.startTime) / 1000",
            vec![],
        )
        .await?
        .as_f64()
        .unwrap_or(f64::NAN);
    let paint_bytes = relay.bytes() - before;
    let gaps = b.find(Locator::Css("#gaps")).await?.text().await?;
    anyhow::ensure!(
        gaps.contains("closed the connection"),
        "the outage is not shown: {gaps}"
    );
    wait(b, "return [...document.querySelectorAll('.tiles img')].some(i => i.complete && i.naturalWidth > 0)").await?;
    let first_at = t.elapsed().as_secs_f64();
    wait(b, "return [...document.querySelectorAll('.tiles img')].every(i => i.complete && i.naturalWidth > 0)").await?;
    let all_at = t.elapsed().as_secs_f64();
    let all_bytes = relay.bytes() - before;
    let pics = b
        .execute("return [...document.querySelectorAll('.tiles img')].filter(i => i.naturalWidth === 1920).length", vec![])
        .await?;
    Ok((fcp, paint_bytes, first_at, all_at, all_bytes, pics))
}

/// Polls a script until it returns true (at most 10 minutes): how long it took.
async fn wait(b: &fantoccini::Client, script: &str) -> anyhow::Result<Duration> {
    let t = Instant::now();
    loop {
        if b.execute(script, vec![]).await?.as_bool() == Some(true) {
            return Ok(t.elapsed());
        }
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(600),
            "timed out: {script}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
