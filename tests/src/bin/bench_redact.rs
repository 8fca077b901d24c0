//! `rdc-bench-redact`: how fast `rdc redact` renders a disclosure (issue 28): N minutes of
//! 1080p25 H.264 at 4 Mbit/s (a keyframe every 2 s; a still scene with sensor noise and a
//! moving object), as an export's working copy, with three regions moving across the picture;
//! decode, obscure, x264 at the preset named, mux with the time subtitles. Reports the speed as
//! a multiple of real time and the output's size against the source's.
//!
//! ```text
//! cargo run --release -p rdc-tests --bin rdc-bench-redact -- --minutes 10 --preset superfast
//! ```

use std::time::Instant;

use clap::Parser;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 10)]
    minutes: u64,
    #[arg(long, default_value_t = 4000)]
    kbps: u32,
    /// x264 presets to measure, comma-separated.
    #[arg(long, default_value = "superfast")]
    preset: String,
    #[arg(long)]
    pixelate: bool,
}

const SEG_NS: i64 = 10_000_000_000;
const START_NS: i64 = 1_796_000_000_000_000_000;
const SOURCE: &str = "videotestsrc num-buffers=250 pattern=smpte ! video/x-raw,width=1920,height=1080,framerate=25/1 ! c.sink_0 \
     videotestsrc num-buffers=250 pattern=ball ! video/x-raw,width=480,height=360,framerate=25/1 ! c.sink_1 \
     videotestsrc num-buffers=250 pattern=snow ! video/x-raw,width=1920,height=1080,framerate=25/1 ! c.sink_2 \
     compositor name=c sink_2::alpha=0.06 ! video/x-raw,width=1920,height=1080,framerate=25/1 ! videoconvert ! video/x-raw,format=I420";

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let tmp =
        tempfile::tempdir_in(std::env::var_os("TMPDIR").unwrap_or_else(|| "/var/tmp".into()))?;
    let clip = rdc_tests::footage::encode_h264(SOURCE, 250, 25, a.kbps, 50)?;
    let n = (a.minutes * 6) as usize;
    let pieces = rdc_tests::footage::ts_segments(tmp.path(), &clip.aus, n, (START_NS, SEG_NS))?;
    let wc = tmp.path().join("working-copy.mp4");
    let range = (START_NS, START_NS + n as i64 * SEG_NS);
    rdc_cli::mp4::working_copy(&pieces, range, "bench", &[], &wc)?;
    let source_bytes = std::fs::metadata(&wc)?.len();
    for p in &pieces {
        std::fs::remove_file(&p.ts)?;
    }
    let secs = a.minutes as i64 * 60;
    let t = |s: i64| rdc_format::time::rfc3339(START_NS + s * 1_000_000_000);
    // Three regions crossing the picture, each for the whole length.
    let mut regions = String::new();
    for (i, (y, w, h)) in [(100, 200, 300), (400, 160, 320), (700, 300, 240)]
        .iter()
        .enumerate()
    {
        regions.push_str(&format!(
            "[[region]]\nlabel = \"person {}\"\nfrom = \"{}\"\nto = \"{}\"\nkeyframes = [\n  {{ at = \"{}\", x = 0, y = {y}, w = {w}, h = {h} }},\n  {{ at = \"{}\", x = 1600, y = {y}, w = {w}, h = {h} }},\n  {{ at = \"{}\", x = 100, y = {y}, w = {w}, h = {h} }},\n]\n",
            i + 1,
            t(0),
            t(secs),
            t(0),
            t(secs / 2),
            t(secs),
        ));
    }
    println!(
        "{} min of 1080p25 at {} kbit/s ({:.1} MB working copy), three moving regions, {}, on {} cores",
        a.minutes,
        a.kbps,
        source_bytes as f64 / 1e6,
        if a.pixelate { "pixelated" } else { "black" },
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for preset in a.preset.split(',') {
        let out = tmp.path().join(format!("disclosure-{preset}.mp4"));
        let started = Instant::now();
        let frames =
            rdc_cli::redact_render_for_bench(&wc, START_NS, &regions, a.pixelate, preset, &out)?;
        let took = started.elapsed().as_secs_f64();
        let bytes = std::fs::metadata(&out)?.len();
        println!(
            "x264 {preset:<10} {frames} frames in {took:.1} s: {:.2}x real time ({:.0} fps); output {:.1} MB, {:.2}x the source",
            secs as f64 / took,
            frames as f64 / took,
            bytes as f64 / 1e6,
            bytes as f64 / source_bytes as f64
        );
        std::fs::remove_file(&out)?;
    }
    Ok(())
}
