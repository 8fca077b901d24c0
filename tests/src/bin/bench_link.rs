//! `rdc-bench-link`: goodput of a fetch over the uplink through an emulated 4G link (a userspace
//! UDP relay: rate limit, one-way delay, random loss), as a fraction of the link rate.
//!
//! `cargo run --release -p rdc-tests --bin rdc-bench-link -- [MBIT] [RTT_MS] [LOSS_PCT] [FRAMES]`
//! (default 10 Mbit/s, 60 ms, 1 %, 500 frames of 40 kB = 20 MB). Figures go in BENCHMARKS.md.

use std::time::{Duration, Instant};

use rdc_tests::relay::{Link, Relay};
use rdc_tests::rig::UplinkRig;
use rdc_uplink::protocol::{Justification, Purpose};

fn main() -> anyhow::Result<()> {
    let args: Vec<f64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let mbit = args.first().copied().unwrap_or(10.0);
    let rtt_ms = args.get(1).copied().unwrap_or(60.0);
    let loss_pct = args.get(2).copied().unwrap_or(1.0);
    let frames = args.get(3).copied().unwrap_or(500.0) as u64;
    let rig = UplinkRig::new(frames);
    let footage = rig.footage_bytes();
    let entries = rig.store.list("front", 0, i64::MAX)?;
    let p = |s: &str| rig.dir.path().join(s);
    let id = rdc_uplink::tls::Identity::from_files(&p("officer.crt"), &p("officer.key"))?;
    let ca = std::fs::read_to_string(p("ca.crt"))?;
    let why = Justification {
        purpose: Purpose::View,
        case_ref: "BENCH".into(),
        reason: "benchmark".into(),
    };
    println!("footage {footage} bytes in {} segments", entries.len());
    println!(
        "{:<34} {:>10} {:>12} {:>10} {:>12}",
        "link", "seconds", "goodput Mb/s", "of link", "wire/footage"
    );
    for (name, loss) in [
        ("rate + delay, no loss", 0.0),
        ("rate + delay + loss", loss_pct / 100.0),
    ] {
        let link = Link {
            rate_bps: (mbit * 1e6) as u64,
            delay: Duration::from_secs_f64(rtt_ms / 2000.0),
            loss,
        };
        let relay = Relay::start(rig.server_addr, link)?;
        let cfg = rdc_uplink::tls::client_config(&id, &ca)?;
        let secs = rig.rt.block_on(async {
            let c = rdc_uplink::client::Client::connect(relay.addr, "relay-unit", cfg).await?;
            let t = Instant::now();
            for e in &entries {
                let mut sink = tokio::io::sink();
                c.fetch("front", e.seq, 0, &why, &mut sink).await?;
            }
            c.close();
            anyhow::Ok(t.elapsed().as_secs_f64())
        })?;
        let goodput = footage as f64 * 8.0 / secs / 1e6;
        println!(
            "{:<34} {:>10.2} {:>12.2} {:>9.1}% {:>12.3}",
            format!("{name} ({mbit} Mbit/s, {rtt_ms} ms, {:.1} %)", loss * 100.0),
            secs,
            goodput,
            goodput / mbit * 100.0,
            relay.bytes() as f64 / footage as f64
        );
    }
    drop(rig.rt);
    Ok(())
}
