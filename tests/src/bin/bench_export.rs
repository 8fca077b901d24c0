//! `rdc-bench-export`: how long `rdc export` takes to build the working copy (one MP4 with a
//! time track, GStreamer's mp4mux) of N minutes of 1080p footage from fetched segments, against
//! `ffmpeg -f concat -c copy` of the same segments, in the same run (issue 12).
//!
//! The footage: 10 s of 1080p H.264 at 4 Mbit/s encoded once (x264 of noise, so the rate
//! control spends the whole bitrate; a keyframe a second), muxed by the recorder's own TS muxer into 10 s segments as the unit writes them,
//! repeated with advancing times to fill the length asked for.
//!
//! ```text
//! cargo run --release -p rdc-tests --bin rdc-bench-export -- --minutes 60 --runs 3
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, bail};
use clap::Parser;
use rdc_cli::mp4;

#[derive(Parser)]
struct Args {
    /// Minutes of footage.
    #[arg(long, default_value_t = 60)]
    minutes: u64,
    /// Timed runs of each.
    #[arg(long, default_value_t = 3)]
    runs: u32,
    /// Where the segments and outputs go (default: a temporary folder, removed after).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Video bitrate, kbit/s.
    #[arg(long, default_value_t = 4000)]
    kbps: u32,
}

const SEG_NS: i64 = 10_000_000_000;
const START_NS: i64 = 1_796_000_000_000_000_000;

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let tmp =
        tempfile::tempdir_in(std::env::var_os("TMPDIR").unwrap_or_else(|| "/var/tmp".into()))?;
    let dir = a.dir.clone().unwrap_or_else(|| tmp.path().to_owned());
    std::fs::create_dir_all(&dir)?;
    eprintln!("encoding 10 s of 1080p H.264 at {} kbit/s ...", a.kbps);
    let aus = rdc_tests::footage::encode_h264(
        "videotestsrc num-buffers=250 pattern=snow ! video/x-raw,width=1920,height=1080,framerate=25/1",
        250,
        25,
        a.kbps,
        25,
    )?
    .aus;
    let n = (a.minutes * 6) as usize;
    let pieces = rdc_tests::footage::ts_segments(&dir, &aus, n, (START_NS, SEG_NS))?;
    let bytes: u64 = pieces
        .iter()
        .map(|p| std::fs::metadata(&p.ts).map_or(0, |m| m.len()))
        .sum();
    eprintln!(
        "{n} segments, {:.1} MB, in {}",
        bytes as f64 / 1e6,
        dir.display()
    );
    let list = dir.join("concat.txt");
    std::fs::write(
        &list,
        pieces
            .iter()
            .map(|p| format!("file '{}'\n", p.ts.display()))
            .collect::<String>(),
    )?;
    let range = (START_NS, START_NS + n as i64 * SEG_NS);
    let (mut ours, mut ff, mut ff_fast) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..a.runs {
        let out = dir.join("working-copy.mp4");
        let _ = std::fs::remove_file(&out);
        drop_caches();
        let t = Instant::now();
        let made = mp4::working_copy(&pieces, range, "bench", &[], &out)?;
        ours.push(t.elapsed().as_secs_f64());
        if run == 0 {
            check(&out, made.frames, n as f64 * 10.0)?;
        }
        for (faststart, v) in [(false, &mut ff), (true, &mut ff_fast)] {
            let out = dir.join("ffmpeg.mp4");
            let _ = std::fs::remove_file(&out);
            drop_caches();
            let t = Instant::now();
            let mut c = Command::new("ffmpeg");
            c.args(["-v", "error", "-y", "-f", "concat", "-safe", "0", "-i"])
                .arg(&list)
                .args(["-c", "copy"]);
            if faststart {
                c.args(["-movflags", "+faststart"]);
            }
            let st = c.arg(&out).status().context("running ffmpeg")?;
            if !st.success() {
                bail!("ffmpeg failed: {st}");
            }
            v.push(t.elapsed().as_secs_f64());
        }
        println!(
            "run {}: rdc working copy {:.2} s, ffmpeg concat -c copy {:.2} s, with +faststart {:.2} s",
            run + 1,
            ours[run as usize],
            ff[run as usize],
            ff_fast[run as usize]
        );
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (o, f, ffs) = (med(&mut ours), med(&mut ff), med(&mut ff_fast));
    println!(
        "median of {} runs, {} min of 1080p ({:.1} MB): rdc {o:.2} s; ffmpeg concat {f:.2} s (ratio {:.2}); ffmpeg concat +faststart {ffs:.2} s (ratio {:.2})",
        a.runs,
        a.minutes,
        bytes as f64 / 1e6,
        o / f,
        o / ffs
    );
    Ok(())
}

/// Writes dirty pages out and drops the page cache (as root), so every run reads from disk
/// alike; without root, runs read the cache alike.
fn drop_caches() {
    let _ = Command::new("sync").status();
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "1");
}

/// ffprobe agrees: one video stream, the time track, the duration.
fn check(out: &Path, frames: u64, secs: f64) -> anyhow::Result<()> {
    let o = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration:stream=codec_type",
            "-of",
            "csv=p=0",
        ])
        .arg(out)
        .output()?;
    let text = String::from_utf8_lossy(&o.stdout);
    let dur: f64 = text
        .lines()
        .find_map(|l| l.parse().ok())
        .unwrap_or_default();
    if !text.contains("video") || !text.contains("subtitle") || (dur - secs).abs() > 0.5 {
        bail!("the working copy is not what it should be ({frames} frames): {text}");
    }
    Ok(())
}
