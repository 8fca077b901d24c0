//! `rdc-bench-preview`: what previews cost on the link (issue 14). Records N minutes of 1080p
//! H.264 at 4 Mbit/s (a keyframe every 2 s, as cameras ship) into a real store, footage and
//! previews every 10 s as the recorder writes them, for each of three scenes, and reports the
//! preview track's bytes (ciphertext, as `rdc preview` fetches them, with its signed manifests)
//! as a share of the footage's, and that share for 24 hours.
//!
//! ```text
//! cargo run --release -p rdc-tests --bin rdc-bench-preview -- --minutes 60
//! ```
//!
//! The share is a keyframe's size against the bytes between previews, so it depends on the
//! scene, the camera's rate control and its keyframe spacing; three scenes are measured.

use std::sync::Arc;

use clap::Parser;
use rdc_storage::{Budget, RealClocks, Store, StoreConfig, UnitKey};

#[derive(Parser)]
struct Args {
    /// Minutes of footage per scene.
    #[arg(long, default_value_t = 60)]
    minutes: u64,
    /// Video bitrate, kbit/s.
    #[arg(long, default_value_t = 4000)]
    kbps: u32,
    /// Frames between keyframes (25 fps).
    #[arg(long, default_value_t = 50)]
    gop: u32,
    /// Seconds between previews.
    #[arg(long, default_value_t = 10)]
    every: u64,
}

const SCENES: &[(&str, &str)] = &[
    (
        "still scene with sensor noise and one moving object",
        "videotestsrc num-buffers=250 pattern=smpte ! video/x-raw,width=1920,height=1080,framerate=25/1 ! c.sink_0 \
         videotestsrc num-buffers=250 pattern=ball ! video/x-raw,width=480,height=360,framerate=25/1 ! c.sink_1 \
         videotestsrc num-buffers=250 pattern=snow ! video/x-raw,width=1920,height=1080,framerate=25/1 ! c.sink_2 \
         compositor name=c sink_2::alpha=0.06 ! video/x-raw,width=1920,height=1080,framerate=25/1",
    ),
    (
        "still scene, no noise (bars and a clock)",
        "videotestsrc num-buffers=250 pattern=smpte ! video/x-raw,width=1920,height=1080,framerate=25/1 ! timeoverlay",
    ),
    (
        "noise everywhere (night, high gain)",
        "videotestsrc num-buffers=250 pattern=snow ! video/x-raw,width=1920,height=1080,framerate=25/1",
    ),
];

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let tmp =
        tempfile::tempdir_in(std::env::var_os("TMPDIR").unwrap_or_else(|| "/var/tmp".into()))?;
    println!(
        "{} min of 1080p25 per scene, x264 at {} kbit/s, a keyframe every {} frames, a preview every {} s",
        a.minutes, a.kbps, a.gop, a.every
    );
    println!(
        "{:<52} {:>9} {:>11} {:>11} {:>8} {:>13}",
        "scene", "Mbit/s", "footage MB", "previews MB", "share", "24 h previews"
    );
    for (i, (name, source)) in SCENES.iter().enumerate() {
        // Normalise the source's caps for the encoder: the compositor's output is AYUV.
        let src = format!("{source} ! videoconvert ! video/x-raw,format=I420");
        let clip = rdc_tests::footage::encode_h264(&src, 250, 25, a.kbps, a.gop)?;
        let root = tmp.path().join(format!("store-{i}"));
        let cfg = StoreConfig {
            budget: Budget::MaxBytes(1 << 40),
            segment_ns: 60_000_000_000,
            preview_interval_ns: Some(a.every * 1_000_000_000),
            ..StoreConfig::new(root.clone(), "bench", vec![[7u8; 32]])
        };
        let key = Arc::new(UnitKey::load_or_create(
            &tmp.path().join(format!("key-{i}")),
        )?);
        let (store, _) = Store::open(cfg, key, Arc::new(RealClocks))?;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
        let len = a.minutes * 60_000_000_000;
        let start = now.as_nanos() as i64 - len as i64 - 60_000_000_000;
        let rec = rdc_tests::footage::record(&store, "c", &clip, (start, len), &[], "end")?;
        let st = store.status()?;
        let cam = &st.cameras[0];
        let pv = cam.previews.clone().unwrap_or_default();
        let manifests = std::fs::metadata(root.join("logs/manifests/c.preview.jsonl"))?.len();
        let preview = pv.bytes + manifests;
        let share = preview as f64 / cam.bytes as f64;
        let day = preview as f64 * 1440.0 / a.minutes as f64;
        println!(
            "{:<52} {:>9.2} {:>11.1} {:>11.2} {:>7.2}% {:>10.0} MB   ({} previews)",
            name,
            rec.footage_bytes as f64 * 8.0 / (len as f64 / 1e9) / 1e6,
            cam.bytes as f64 / 1e6,
            preview as f64 / 1e6,
            share * 100.0,
            day / 1e6,
            rec.previews
        );
        drop(store);
        std::fs::remove_dir_all(&root)?;
    }
    Ok(())
}
