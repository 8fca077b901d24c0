//! `rdc-bench-vpn`: what the WireGuard hub costs a unit behind carrier NAT (R18), on the world of
//! [`rdc_tests::wgnet`] (network namespaces, wireguard-go, nftables; needs root):
//!
//! 1. goodput of `rdc fetch` through the tunnel against the same fetch direct (the NAT
//!    forwarding the uplink's port, as a private APN would), over the same emulated 4G link,
//!    alternating, median of `--runs`;
//! 2. the bytes an idle unit's keepalives and handshakes put on the 4G link, per day;
//! 3. how long the first request after idling takes, with a NAT that keeps mappings longer
//!    than the keepalive and with one that forgets them sooner;
//! 4. `rdc units status` wall time for 10 reachable units and for a fleet of 500 of which 490
//!    never answer.
//!
//! `cargo run --release -p rdc-tests --bin rdc-bench-vpn -- --mbit 10 --rtt-ms 60 --loss-pct 1`

use std::net::SocketAddr;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use rdc_tests::relay::Link;
use rdc_tests::rig::{LinkArgs, UplinkRig};
use rdc_tests::wgnet::{self, NAT_PUBLIC, Options, UNIT_A, VpnNet};

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    link: LinkArgs,
    /// Frames of 40 kB in the unit's store (the fetched footage).
    #[arg(long, default_value_t = 500)]
    frames: u64,
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Seconds the idle unit's link is watched for keepalives and handshakes.
    #[arg(long, default_value_t = 300)]
    idle_secs: u64,
    /// Leave out the idle measurements (keepalive bytes, first request after idling).
    #[arg(long)]
    no_idle: bool,
    /// Print the NAT's UDP mappings every 2 s for 40 s with a 10 s timeout, then stop.
    #[arg(long, hide = true)]
    watch_nat: bool,
    /// Only the idle measurements.
    #[arg(long)]
    idle_only: bool,
    /// Only the NAT that forgets sooner than the keepalive.
    #[arg(long, hide = true)]
    short_nat_only: bool,
    /// Only the first request after idling (with --idle-only).
    #[arg(long, hide = true)]
    no_keepalive_bytes: bool,
}

fn main() -> anyhow::Result<ExitCode> {
    if let Some(code) = rdc_tests::rig::as_tool() {
        return Ok(code);
    }
    let args = Args::parse();
    wgnet::check()?;
    let me = std::env::current_exe()?;
    let wrapper = tempfile::tempdir()?;
    // `rdc` and `rdc-recorder` as programs: this binary with a first argument.
    let script = |name: &str, sub: &str| -> anyhow::Result<std::path::PathBuf> {
        let p = wrapper.path().join(name);
        std::fs::write(
            &p,
            format!("#!/bin/sh\nexec {} {sub} \"$@\"\n", me.display()),
        )?;
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        Ok(p)
    };
    let rdc = script("rdc", "rdc")?;
    let recorder = script("rdc-recorder", "recorder")?;
    let link = Link {
        rate_bps: (args.link.mbit * 1e6) as u64,
        delay: Duration::from_secs_f64(args.link.rtt_ms / 2000.0),
        loss: args.link.loss_pct / 100.0,
        queue: Duration::from_millis(500),
    };
    let rig = UplinkRig::new(args.frames);
    let footage = rig.footage_bytes();
    let net = VpnNet::start(&Options {
        link,
        nat_udp_timeout: 30,
        keepalive: wgnet_default_keepalive(),
        rdc: rdc.clone(),
        recorder,
        unit_config: None,
        unit_id: "relay-unit".into(),
    })?;
    let port = rig.server_addr.port();
    net.port_forward(port)?;
    if args.watch_nat {
        net.set_nat_timeout(10)?;
        for _ in 0..20 {
            std::thread::sleep(Duration::from_secs(2));
            println!("---\n{}", net.nat_mappings()?);
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "link {} Mbit/s, {} ms RTT, {} % loss each way on the unit's side; footage {footage} bytes",
        args.link.mbit, args.link.rtt_ms, args.link.loss_pct
    );

    let tunnel_units = goodput(&net, &rig, (&me, &rdc), &args)?;

    if !args.no_idle {
        // 2. Keepalive bytes of an idle unit.
        if !args.no_keepalive_bytes {
            keepalive_bytes(&net, args.idle_secs);
        }
        // 3. First request after idling.
        first_request(&net, &rdc, &tunnel_units, &args)?;
    }
    drop(rig.rt);
    Ok(ExitCode::SUCCESS)
}

/// Goodput through the tunnel and directly, alternating (measurement 1), then the fleet status
/// (4). Returns the officer's units file that reaches the unit through the tunnel.
fn goodput(
    net: &VpnNet,
    rig: &UplinkRig,
    (me, rdc): (&std::path::Path, &std::path::Path),
    args: &Args,
) -> anyhow::Result<std::path::PathBuf> {
    let port = rig.server_addr.port();
    let footage = rig.footage_bytes();
    // (The rig names a units file by port; both paths use the same port, so each is kept aside.)
    let keep = |addr: SocketAddr, name: &str| -> anyhow::Result<std::path::PathBuf> {
        let p = rig.dir.path().join(name);
        std::fs::rename(rig.units_file(addr), &p)?;
        Ok(p)
    };
    let tunnel_units = keep(SocketAddr::from((UNIT_A, port)), "units-tunnel.toml")?;
    let direct_units = keep(SocketAddr::from((NAT_PUBLIC, port)), "units-direct.toml")?;
    let (mut t_secs, mut d_secs) = (Vec::new(), Vec::new());
    let (mut t_wire, mut d_wire) = (Vec::new(), Vec::new());
    for run in 0..if args.idle_only { 0 } else { args.runs } {
        for (name, units, secs, wire) in [
            ("tunnel", &tunnel_units, &mut t_secs, &mut t_wire),
            ("direct", &direct_units, &mut d_secs, &mut d_wire),
        ] {
            let out = tempfile::tempdir()?;
            let before = net.link.bytes();
            net.link.stats.trace.lock().unwrap().clear();
            net.link
                .stats
                .tracing
                .store(true, std::sync::atomic::Ordering::SeqCst);
            let mut c = net.officer(me);
            c.arg("rdc");
            UplinkRig::fetch_args(&mut c, units, out.path());
            let t = Instant::now();
            let o = c.output()?;
            let s = t.elapsed().as_secs_f64();
            if !o.status.success() {
                bail!(
                    "{name} fetch failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
            }
            net.link
                .stats
                .tracing
                .store(false, std::sync::atomic::Ordering::SeqCst);
            rig.assert_fetched(out.path());
            // The footage's packets on the 4G link (unit to NAT), by size.
            let mut sizes = std::collections::HashMap::<u32, usize>::new();
            for p in net
                .link
                .stats
                .trace
                .lock()
                .unwrap()
                .iter()
                .filter(|p| !p.up)
            {
                *sizes.entry(p.bytes).or_default() += 1;
            }
            let mut sizes: Vec<_> = sizes.into_iter().collect();
            sizes.sort_by_key(|s| std::cmp::Reverse(s.1));
            sizes.truncate(3);
            let w = (net.link.bytes() - before) as f64 / footage as f64;
            println!(
                "run {} {name:<6}: {s:>6.2} s, goodput {:>5.2} Mbit/s, wire/footage {w:.3}; commonest packets unit to NAT (bytes, count): {sizes:?}",
                run + 1,
                footage as f64 * 8.0 / s / 1e6
            );
            secs.push(s);
            wire.push(w);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    if !args.idle_only {
        let (ts, ds) = (median(&mut t_secs), median(&mut d_secs));
        println!(
            "goodput median: tunnel {:.2} Mbit/s, direct {:.2} Mbit/s: tunnel/direct {:.3}x; wire/footage tunnel {:.3}, direct {:.3}",
            footage as f64 * 8.0 / ts / 1e6,
            footage as f64 * 8.0 / ds / 1e6,
            ds / ts,
            median(&mut t_wire),
            median(&mut d_wire)
        );
        println!(
            "largest packet on the 4G link: {} bytes; IPv4 fragments: {}",
            net.link
                .stats
                .max_packet
                .load(std::sync::atomic::Ordering::SeqCst),
            net.link
                .stats
                .fragments
                .load(std::sync::atomic::Ordering::SeqCst)
        );

        // 4. Fleet status.
        fleet(net, rdc, rig)?;
    }

    Ok(tunnel_units)
}

/// Measurement 2: the bytes an idle unit's keepalives cost on the 4G link.
fn keepalive_bytes(net: &VpnNet, idle_secs: u64) {
    // After the link's own start-up chatter (IPv6 router solicitations) is over.
    std::thread::sleep(Duration::from_secs(20));
    let before = net.link.bytes();
    let t = Instant::now();
    net.link.stats.trace.lock().unwrap().clear();
    net.link
        .stats
        .tracing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs(idle_secs));
    net.link
        .stats
        .tracing
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let bytes = net.link.bytes() - before;
    let trace = net.link.stats.trace.lock().unwrap().clone();
    let mut sizes = std::collections::BTreeMap::<(bool, u32), usize>::new();
    for p in &trace {
        *sizes.entry((p.up, p.bytes)).or_default() += 1;
    }
    println!("idle packets (officer-bound?, bytes) -> count: {sizes:?}");
    let per_day = bytes as f64 * 86_400.0 / t.elapsed().as_secs_f64();
    println!(
        "idle unit, keepalive {} s: {bytes} bytes in {:.0} s on the 4G link (both ways, IP) = {:.2} MB a day",
        wgnet_default_keepalive(),
        t.elapsed().as_secs_f64(),
        per_day / 1e6
    );
}

/// Measurement 3: how long the first request after idling takes, NAT mappings kept and forgotten.
fn first_request(
    net: &VpnNet,
    rdc: &std::path::Path,
    tunnel_units: &std::path::Path,
    args: &Args,
) -> anyhow::Result<()> {
    // Idle times spread over the keepalive's cycle (the request's own packets restart it).
    let cases: &[(u32, u64)] = if args.short_nat_only {
        &[(10, 30)]
    } else {
        &[(30, 60), (10, 60)]
    };
    for &(nat_timeout, idle) in cases {
        net.set_nat_timeout(nat_timeout)?;
        let mut delays = Vec::new();
        for i in 0..if args.short_nat_only { 3u64 } else { 6 } {
            std::thread::sleep(Duration::from_secs(idle + i * 4));
            // With the shorter NAT timeout, the worst case: the unit's mapping is gone.
            if nat_timeout < u32::from(wgnet_default_keepalive()) {
                let unit = net.link.unit_ip.to_string();
                let t = Instant::now();
                while net.nat_mappings()?.contains(&format!("src={unit} "))
                    && t.elapsed() < Duration::from_secs(60)
                {
                    std::thread::sleep(Duration::from_millis(100));
                }
                if std::env::var_os("RDC_BENCH_DEBUG").is_some() {
                    println!("before: {}", net.nat_mappings()?);
                }
            }
            let t = Instant::now();
            let o = net
                .officer(rdc)
                .args(["status", "--unit", "relay-unit", "--units"])
                .arg(tunnel_units)
                .stdout(Stdio::null())
                .output()?;
            if !o.status.success() {
                println!(
                    "   status failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
            }
            delays.push(t.elapsed().as_secs_f64());
            if std::env::var_os("RDC_BENCH_DEBUG").is_some() {
                println!("after: {}", net.nat_mappings()?);
            }
        }
        println!(
            "first request after {idle} to {} s idle, NAT UDP timeout {nat_timeout} s, keepalive {} s: {}",
            idle + 20,
            wgnet_default_keepalive(),
            delays
                .iter()
                .map(|d| format!("{d:.2} s"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

fn wgnet_default_keepalive() -> u16 {
    rdc_uplink::vpn::DEFAULT_KEEPALIVE
}

/// 10 units reachable through the hub (in-process uplinks on the unit's tunnel address, each
/// with its own certificate and store), then the same 10 among 490 that never answer (tunnel
/// addresses the hub has no peer for).
fn fleet(net: &VpnNet, rdc: &std::path::Path, rig: &UplinkRig) -> anyhow::Result<()> {
    use rdc_uplink::pki::{self, Kind};
    let dir = tempfile::tempdir()?;
    let ca = pki::new_ca("Fleet", 30)?;
    let officer = pki::issue(&ca, "j.smith", Kind::User, 30)?;
    let p = |s: &str| dir.path().join(s);
    std::fs::write(p("ca.crt"), &ca.cert)?;
    std::fs::write(p("officer.crt"), &officer.cert)?;
    std::fs::write(p("officer.key"), &officer.key)?;
    let users = rdc_tests::rig::officer_users(&officer)?;
    let mut entries = String::new();
    let entry = |name: &str, addr: String| {
        format!(
            "[unit.{name}]\naddress = \"{addr}\"\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
            p("ca.crt").display(),
            p("officer.crt").display(),
            p("officer.key").display()
        )
    };
    for i in 0..10 {
        let name = format!("unit-{i:02}");
        let cert = pki::issue(&ca, &name, Kind::Unit, 30)?;
        let key = Arc::new(rdc_storage::UnitKey::load_or_create(&p(&format!(
            "{name}.p8"
        )))?);
        let cfg = rdc_storage::StoreConfig::new(p(&name), &name, vec![[9u8; 32]]);
        let (store, _) = rdc_storage::Store::open(cfg, key, Arc::new(rdc_storage::RealClocks))?;
        let tls = rdc_uplink::tls::server_config(
            &rdc_uplink::tls::Identity::from_pem(&cert.cert, &cert.key)?,
            &ca.cert,
            None,
        )?;
        let port = rig.rt.block_on(async {
            let s = rdc_uplink::server::Server::bind(
                SocketAddr::from((UNIT_A, 0)),
                tls,
                users.clone(),
                store,
            )?;
            let port = s.local_addr()?.port();
            tokio::spawn(s.serve());
            anyhow::Ok(port)
        })?;
        entries.push_str(&entry(&name, format!("{UNIT_A}:{port}")));
    }
    std::fs::write(p("ten.toml"), &entries)?;
    for i in 0..490 {
        entries.push_str(&entry(
            &format!("gone-{i:03}"),
            format!("10.77.{}.{}:4433", 100 + i / 200, 1 + i % 200),
        ));
    }
    std::fs::write(p("five-hundred.toml"), &entries)?;
    for (what, file) in [
        ("10 units", "ten.toml"),
        ("500 units, 490 unreachable", "five-hundred.toml"),
    ] {
        for _ in 0..2 {
            let t = Instant::now();
            let o = net
                .officer(rdc)
                .args(["units", "status", "--json", "--units"])
                .arg(p(file))
                .output()?;
            let secs = t.elapsed().as_secs_f64();
            let v: serde_json::Value = serde_json::from_slice(&o.stdout)
                .with_context(|| String::from_utf8_lossy(&o.stderr).into_owned())?;
            let up = v
                .as_array()
                .map_or(0, |a| a.iter().filter(|u| u["reachable"] == true).count());
            println!("rdc units status, {what}: {secs:.2} s wall, {up} reachable");
        }
    }
    Ok(())
}
