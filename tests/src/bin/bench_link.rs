//! `rdc-bench-link`: goodput of `rdc fetch` through an emulated 4G link, as a fraction of the
//! link rate, side by side with a TCP transfer of the same bytes over the same link.
//!
//! As root, the link is packet-level ([`rdc_tests::tunlink`]: two TUN devices and a userspace
//! shaper between this namespace and the officer's), so QUIC and TCP meet exactly the same
//! rate, delay and loss; `rdc fetch` runs as a process in the officer's namespace, and TCP is
//! the kernel's, with Cubic (Linux's default) and with BBR. Without root it falls back to the
//! userspace UDP relay and measures the uplink's client alone.
//!
//! `cargo run --release -p rdc-tests --bin rdc-bench-link -- --mbit 10 --rtt-ms 60 --loss-pct 1`
//! (500 frames of 40 kB = 20 MB by default). Figures go in BENCHMARKS.md.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use rdc_tests::relay::{Link, Relay};
use rdc_tests::rig::{Busy, LinkArgs, UplinkRig, officer_identity};
use rdc_tests::tunlink::TunLink;
use rdc_uplink::protocol::{Justification, Purpose};

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    link: LinkArgs,
    /// The link's queue, ms of backlog (tail drop beyond it).
    #[arg(long, default_value_t = 1000)]
    queue_ms: u64,
    /// Frames of 40 kB in the unit's store.
    #[arg(long, default_value_t = 500)]
    frames: u64,
    /// Runs of each transfer; the median is shown.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Use the userspace UDP relay even as root (no TCP comparison).
    #[arg(long)]
    udp_relay: bool,
    /// Leave out the TCP transfers.
    #[arg(long)]
    no_tcp: bool,
    /// Serve the uplink from a real `rdc-recorder run` process (this binary) that records this
    /// many emulated 1080p 4 Mbit/s cameras while the officer fetches (as root; no TCP rows).
    #[arg(long, default_value_t = 0)]
    busy_cameras: usize,
    /// (with --busy-cameras) print where each fetch's time went on the link, and write every
    /// packet of run N to DIR/run-N.csv (offered at, direction, bytes, arrives at; ms).
    #[arg(long)]
    trace: Option<std::path::PathBuf>,
    #[command(subcommand)]
    role: Option<Role>,
}

#[derive(Subcommand)]
enum Role {
    /// (inside the officer's namespace) receive a TCP transfer; print seconds and bytes.
    #[command(hide = true)]
    TcpRecv { addr: SocketAddr },
}

fn main() -> anyhow::Result<ExitCode> {
    // `rdc-bench-link rdc ARGS`: the `rdc` tool, run inside the officer's namespace;
    // `rdc-bench-link recorder ARGS`: the recorder, for --busy-cameras.
    if let Some(code) = rdc_tests::rig::as_tool() {
        return Ok(code);
    }
    let args = Args::parse();
    match args.role {
        Some(Role::TcpRecv { addr }) => {
            let t = Instant::now();
            let mut s = TcpStream::connect(addr)?;
            let mut n = 0u64;
            let mut buf = vec![0u8; 1 << 16];
            loop {
                match s.read(&mut buf)? {
                    0 => break,
                    k => n += k as u64,
                }
            }
            println!("{} {n}", t.elapsed().as_secs_f64());
            return Ok(ExitCode::SUCCESS);
        }
        None => {}
    }
    let rig = UplinkRig::new(args.frames);
    if args.busy_cameras > 0 {
        return busy(rig, &args);
    }
    let footage = rig.footage_bytes();
    let entries = rig.store.list("front", 0, i64::MAX)?;
    println!(
        "footage {footage} bytes in {} segments; link {} Mbit/s, {} ms RTT, {} % loss each way; median of {} run(s)",
        entries.len(),
        args.link.mbit,
        args.link.rtt_ms,
        args.link.loss_pct,
        args.runs
    );
    let packet_level = !args.udp_relay && TunLink::check().is_ok();
    if !packet_level && !args.udp_relay {
        println!(
            "packet-level link unavailable ({:#}); UDP relay only, no TCP comparison",
            TunLink::check().unwrap_err()
        );
    }
    println!(
        "{:<44} {:>8} {:>13} {:>8} {:>12}",
        "transfer", "seconds", "goodput Mb/s", "of link", "wire/footage"
    );
    for (cond, loss) in [("no loss", 0.0), ("loss", args.link.loss_pct / 100.0)] {
        let link = Link {
            rate_bps: (args.link.mbit * 1e6) as u64,
            delay: Duration::from_secs_f64(args.link.rtt_ms / 2000.0),
            loss,
            queue: Duration::from_millis(args.queue_ms),
        };
        let mut rows: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
        for _ in 0..args.runs {
            let mut results = Vec::new();
            if packet_level {
                results.push(("QUIC: rdc fetch".to_string(), rdc_fetch(&rig, link)?));
                for cc in ["cubic", "bbr"].into_iter().filter(|_| !args.no_tcp) {
                    results.push((format!("TCP ({cc})"), tcp(&rig, link, cc)?));
                }
            } else {
                results.push((
                    "QUIC: uplink client, UDP relay".to_string(),
                    client_via_relay(&rig, link)?,
                ));
            }
            for (name, r) in results {
                match rows.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, v)) => v.push(r),
                    None => rows.push((name, vec![r])),
                }
            }
        }
        for (name, mut v) in rows {
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            let (secs, wire) = v[v.len() / 2];
            let goodput = footage as f64 * 8.0 / secs / 1e6;
            println!(
                "{:<44} {:>8.2} {:>13.2} {:>7.1}% {:>12.3}",
                format!("{name}, {cond}"),
                secs,
                goodput,
                goodput / args.link.mbit * 100.0,
                wire / footage as f64
            );
        }
    }
    drop(rig.rt);
    Ok(ExitCode::SUCCESS)
}

/// `rdc fetch` of the whole store, run in the officer's namespace: (seconds, bytes on the wire).
fn rdc_fetch(rig: &UplinkRig, link: Link) -> anyhow::Result<(f64, f64)> {
    let net = TunLink::start(link)?;
    let units = rig.units_file(SocketAddr::from((net.unit_ip, rig.server_addr.port())));
    let out = tempfile::tempdir()?;
    let secs = timed_fetch(&net, &units, out.path())?;
    rig.assert_fetched(out.path());
    Ok((secs, net.bytes() as f64))
}

/// `rdc fetch` (this binary) of the rig's camera in the officer's namespace, through `units`
/// into `out`: the seconds it took.
fn timed_fetch(
    net: &TunLink,
    units: &std::path::Path,
    out: &std::path::Path,
) -> anyhow::Result<f64> {
    let mut c = net.command(std::env::current_exe()?);
    c.arg("rdc");
    UplinkRig::fetch_args(&mut c, units, out);
    let t = Instant::now();
    let o = c.output()?;
    let secs = t.elapsed().as_secs_f64();
    if !o.status.success() {
        bail!("rdc fetch failed: {}", String::from_utf8_lossy(&o.stderr));
    }
    // A fetch that had to resume says so: it explains a slow run.
    for l in String::from_utf8_lossy(&o.stderr)
        .lines()
        .filter(|l| l.contains("resuming"))
    {
        println!("        rdc: {}", l.trim());
    }
    Ok(secs)
}

/// The same bytes over one TCP connection with congestion control `cc`, from this namespace to
/// a receiver in the officer's: (seconds from connect to the last byte, bytes on the wire).
fn tcp(rig: &UplinkRig, link: Link, cc: &str) -> anyhow::Result<(f64, f64)> {
    let net = TunLink::start(link)?;
    let mut data = Vec::new();
    for e in rig.store.list("front", 0, i64::MAX)? {
        data.extend(std::fs::read(
            rig.store.segment_path("front", e.segment.seq)?,
        )?);
    }
    let l = TcpListener::bind((net.unit_ip, 0))?;
    socket2::SockRef::from(&l)
        .set_tcp_congestion(cc.as_bytes())
        .with_context(|| format!("TCP congestion control {cc}"))?;
    let addr = l.local_addr()?;
    let child = net
        .command(std::env::current_exe()?)
        .args(["tcp-recv", &addr.to_string()])
        .stdout(Stdio::piped())
        .spawn()?;
    let (mut s, _) = l.accept()?;
    socket2::SockRef::from(&s).set_tcp_congestion(cc.as_bytes())?;
    s.write_all(&data)?;
    s.shutdown(std::net::Shutdown::Write)?;
    let o = child.wait_with_output()?;
    let line = String::from_utf8_lossy(&o.stdout);
    let mut it = line.split_whitespace();
    let secs: f64 = it.next().context("receiver printed nothing")?.parse()?;
    let n: u64 = it.next().context("receiver printed no count")?.parse()?;
    if n != data.len() as u64 {
        bail!("TCP receiver got {n} of {} bytes", data.len());
    }
    Ok((secs, net.bytes() as f64))
}

/// The uplink's client in this process through the userspace UDP relay.
fn client_via_relay(rig: &UplinkRig, link: Link) -> anyhow::Result<(f64, f64)> {
    let entries = rig.store.list("front", 0, i64::MAX)?;
    let p = |s: &str| rig.dir.path().join(s);
    let id = rdc_uplink::tls::Identity::from_files(&p("officer.crt"), &p("officer.key"))?;
    let ca = std::fs::read_to_string(p("ca.crt"))?;
    let why = Justification {
        purpose: Purpose::View,
        case_ref: "BENCH".into(),
        reason: "benchmark".into(),
    };
    let relay = Relay::start(rig.server_addr, link)?;
    let cfg = rdc_uplink::tls::client_config(&id, &ca)?;
    let secs = rig.rt.block_on(async {
        let c = rdc_uplink::client::Client::connect(relay.addr, "relay-unit", cfg).await?;
        let t = Instant::now();
        for e in &entries {
            let mut sink = tokio::io::sink();
            c.fetch(
                &rdc_config::Id::parse("front")?,
                e.segment.seq,
                0,
                &why,
                &mut sink,
            )
            .await?;
        }
        c.close();
        anyhow::Ok(t.elapsed().as_secs_f64())
    })?;
    Ok((secs, relay.bytes() as f64))
}

/// The unit as it runs: `rdc-recorder run` (this binary) on the rig's store, recording
/// `--busy-cameras` emulated 1080p cameras while it serves the officer's fetch; each run's wire
/// bytes per footage byte and goodput, and the worst of them.
fn busy(rig: UplinkRig, args: &Args) -> anyhow::Result<ExitCode> {
    TunLink::check().context("--busy-cameras needs the packet-level link (root)")?;
    let footage = rig.footage_bytes();
    let files: Vec<(String, std::path::PathBuf)> = rig
        .store
        .list("front", 0, i64::MAX)?
        .iter()
        .map(|e| {
            Ok((
                e.segment.file.clone(),
                rig.store.segment_path("front", e.segment.seq)?,
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    let exe = std::env::current_exe()?;
    // The officer's age recipient, made as an officer makes it.
    let id_dir = tempfile::tempdir()?;
    let recipient = officer_identity(&exe, &id_dir.path().join("officer-age.key"))?;
    let camera = exe.with_file_name("rdc-fake-camera");
    let unit = rig.into_recording_unit(&Busy::hd(&exe, &camera, args.busy_cameras, &recipient))?;
    let (d, port) = (unit.dir.path(), unit.port);
    println!(
        "footage {footage} bytes in {} segments, served by rdc-recorder recording {} cameras (1080p, 4 Mbit/s); link {} Mbit/s, {} ms RTT, {} % loss each way, {} ms queue; {} run(s)",
        files.len(),
        args.busy_cameras,
        args.link.mbit,
        args.link.rtt_ms,
        args.link.loss_pct,
        args.queue_ms,
        args.runs
    );
    let link = Link {
        rate_bps: (args.link.mbit * 1e6) as u64,
        delay: Duration::from_secs_f64(args.link.rtt_ms / 2000.0),
        loss: args.link.loss_pct / 100.0,
        queue: Duration::from_millis(args.queue_ms),
    };
    let mut runs = Vec::new();
    for run in 0..args.runs {
        let net = TunLink::start(link)?;
        let units =
            rdc_tests::rig::units_file_in(d, "officer", SocketAddr::from((net.unit_ip, port)));
        let out = tempfile::tempdir()?;
        net.stats
            .tracing
            .store(args.trace.is_some(), std::sync::atomic::Ordering::SeqCst);
        let started = Instant::now();
        let secs = timed_fetch(&net, &units, out.path())?;
        if let Some(dir) = &args.trace {
            let trace = std::mem::take(&mut *net.stats.trace.lock().unwrap());
            print_trace(started, secs, &trace);
            std::fs::create_dir_all(dir)?;
            let mut f = std::io::BufWriter::new(std::fs::File::create(
                dir.join(format!("run-{}.csv", run + 1)),
            )?);
            let ms = |t: Instant| t.saturating_duration_since(started).as_secs_f64() * 1e3;
            for o in &trace {
                writeln!(
                    f,
                    "{:.3},{},{},{},{}",
                    ms(o.at),
                    if o.up { "up" } else { "down" },
                    o.bytes,
                    o.arrives.map_or(String::new(), |a| format!("{:.3}", ms(a))),
                    if o.queue_full { "full" } else { "" }
                )?;
            }
        }
        for (name, path) in &files {
            if std::fs::read(out.path().join("front").join(name))? != std::fs::read(path)? {
                bail!("segment {name} differs");
            }
        }
        let ratio = net.bytes() as f64 / footage as f64;
        let share = footage as f64 * 8.0 / secs / 1e6 / args.link.mbit;
        println!(
            "run {:>2}: {secs:7.2} s, goodput {:5.1} % of the link, wire/footage {ratio:.3}",
            run + 1,
            share * 100.0
        );
        runs.push((secs, ratio, share));
    }
    let worst_ratio = runs.iter().map(|r| r.1).fold(0.0, f64::max);
    let worst_share = runs.iter().map(|r| r.2).fold(f64::INFINITY, f64::min);
    println!(
        "worst of {} runs: wire/footage {worst_ratio:.3}, goodput {:.1} % of the link",
        runs.len(),
        worst_share * 100.0
    );
    drop(unit);
    Ok(ExitCode::SUCCESS)
}

/// Where a fetch's time went on the link: the first and last footage-sized packet to reach
/// the officer, the longest pause between two of them, and what the link dropped.
fn print_trace(started: Instant, secs: f64, trace: &[rdc_tests::relay::Offered]) {
    let ms = |t: Instant| t.saturating_duration_since(started).as_secs_f64() * 1e3;
    let mut arrivals: Vec<f64> = trace
        .iter()
        .filter(|o| !o.up && o.bytes > 1000)
        .filter_map(|o| o.arrives.map(ms))
        .collect();
    arrivals.sort_by(f64::total_cmp);
    let (Some(first), Some(last)) = (arrivals.first(), arrivals.last()) else {
        println!("        trace: nothing reached the officer");
        return;
    };
    let mut gaps: Vec<(f64, f64)> = arrivals.windows(2).map(|w| (w[1] - w[0], w[0])).collect();
    gaps.sort_by(|a, b| b.0.total_cmp(&a.0));
    let dropped = trace
        .iter()
        .filter(|o| !o.up && o.arrives.is_none())
        .count();
    let full: Vec<f64> = trace
        .iter()
        .filter(|o| !o.up && o.queue_full)
        .map(|o| ms(o.at))
        .collect();
    let sent = trace.iter().filter(|o| !o.up).count();
    let up_dropped = trace.iter().filter(|o| o.up && o.arrives.is_none()).count();
    println!(
        "        trace: first data {first:.0} ms, last {last:.0} ms, exit {:.0} ms; longest pauses {}; down {dropped} of {sent} packets lost ({} to the full queue{}), up {up_dropped} lost",
        secs * 1e3,
        gaps.iter()
            .take(3)
            .map(|(g, at)| format!("{g:.0} ms at {at:.0}"))
            .collect::<Vec<_>>()
            .join(", "),
        full.len(),
        match (full.first(), full.last()) {
            (Some(a), Some(b)) => format!(", from {a:.0} to {b:.0} ms"),
            _ => String::new(),
        }
    );
}
