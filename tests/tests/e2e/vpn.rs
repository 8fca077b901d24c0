//! Units behind carrier NAT (R18): the unit dials out over WireGuard to the scheme's hub and
//! officers reach it through the hub, with every file made by rdc's commands and run by the
//! stock tools (wg-quick, wireguard-go, nftables) in network namespaces.

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use rdc_tests::relay::Link;
use rdc_tests::wgnet::{self, NAT_MOVED, NAT_PUBLIC, Options, UNIT_A, VpnNet};

use crate::harness::*;

const S: i64 = 1_000_000_000;

/// `rdc units status --json` in the namespace `cmd` runs in.
fn fleet(mut cmd: Command, units: &str, timeout: &str) -> Vec<serde_json::Value> {
    let o = cmd
        .args([
            "units",
            "status",
            "--json",
            "--timeout",
            timeout,
            "--units",
            units,
        ])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "rdc units status: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// `rdc fetch` of `from..to` (ns) of camera front, from the officer's namespace, running.
fn fetch(
    net: &VpnNet,
    s: &Scheme,
    units: &str,
    from: i64,
    to: i64,
    out: &str,
) -> std::process::Child {
    let t = |ns: i64| rdc_format::time::rfc3339(ns);
    net.officer(env!("CARGO_BIN_EXE_rdc-under-test"))
        .args([
            "fetch", "--unit", "e2e", "--units", units, "--camera", "front",
        ])
        .args(["--from", &t(from), "--to", &t(to)])
        .args(["--case", "ASB/2026/26", "--reason", "tunnel test"])
        .args(["--identity", &s.path("officer.key"), "--out", out])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Fetches ten minutes of camera front from `from` into a new folder named `what`, doing
/// `meanwhile` once a third of it has crossed the 4G link; returns the folder and rdc's stderr.
fn fetch_with(
    net: &VpnNet,
    s: &Scheme,
    units: &str,
    from: i64,
    what: &str,
    h: &RecordedHour,
    meanwhile: impl FnOnce(),
) -> (std::path::PathBuf, String) {
    let out = s.keys.path().join(format!("out-{what}"));
    let child = fetch(
        net,
        s,
        units,
        from,
        from + 10 * 60 * S,
        &out.display().to_string(),
    );
    let before = net.link.stats.bytes_down.load(SeqCst);
    wait_for(
        "a third of ten minutes' footage",
        Duration::from_secs(120),
        || net.link.stats.bytes_down.load(SeqCst) - before > h.recorded.footage_bytes / 6 / 3,
    );
    meanwhile();
    (out.clone(), finish(child, what))
}

fn finish(mut c: std::process::Child, what: &str) -> String {
    let status = wait_child(&mut c, Duration::from_secs(240));
    let mut err = String::new();
    c.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(status.success(), "{what}: rdc fetch failed: {err}");
    err
}

fn ts_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("front"))
        .map(|r| {
            r.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".ts"))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn a_unit_behind_carrier_nat_is_reached_through_the_hub_only() {
    if skip_long("a_unit_behind_carrier_nat_is_reached_through_the_hub_only") {
        return;
    }
    wgnet::check().expect("the tunnel test needs root, /dev/net/tun, wireguard-go, wg and nft");
    let s = Scheme::new();
    let mut h = recorded_hour(&s, 200);
    let cam = Camera::start(&[]);
    let mut cfg = std::fs::read_to_string(h.unit.config()).unwrap();
    cfg.push_str(&format!(
        "\n[[camera]]\nid = \"live\"\nurl = \"{}\"\n",
        cam.url()
    ));
    std::fs::write(h.unit.config(), cfg).unwrap();
    // A 4G link on the unit's side: 10 Mbit/s, 60 ms round trip, 1 % loss. The NAT forgets a
    // UDP mapping after 5 s; the unit's keepalive comes every 2 s.
    let link = Link {
        rate_bps: 10_000_000,
        delay: Duration::from_millis(30),
        loss: 0.01,
        queue: Duration::from_millis(500),
    };
    let net = VpnNet::start(&Options {
        link,
        nat_udp_timeout: 5,
        keepalive: 2,
        rdc: env!("CARGO_BIN_EXE_rdc-under-test").into(),
        recorder: env!("CARGO_BIN_EXE_rdc-recorder-under-test").into(),
        unit_config: Some(h.unit.config()),
        unit_id: "e2e".into(),
    })
    .unwrap();
    // init pointed the uplink at the tunnel, and only there.
    let cfg = std::fs::read_to_string(h.unit.config()).unwrap();
    assert!(
        cfg.contains(&format!("listen = \"{UNIT_A}:{}\"", s.port)) && cfg.contains("[uplink.vpn]"),
        "init did not set the uplink to the tunnel:\n{cfg}"
    );
    assert!(
        net.init_output
            .contains(&format!("AllowedIPs = {UNIT_A}/32"))
    );
    h.unit.start();
    h.unit.wait_connected(1);
    wait_for("the uplink listening", Duration::from_secs(30), || {
        h.unit.log().contains("uplink listening")
    });

    let units_file = |name: &str, addr: String| {
        let p = s.keys.path().join(name);
        std::fs::write(
            &p,
            std::fs::read_to_string(s.keys.path().join("units.toml"))
                .unwrap()
                .replace(&format!("127.0.0.1:{}", s.port), &addr),
        )
        .unwrap();
        p.display().to_string()
    };
    let through_hub = units_file("units-vpn.toml", format!("{UNIT_A}:{}", s.port));
    // Direct, the officer has only the NAT's public address or the unit's private one.
    let direct_nat = units_file("units-nat.toml", format!("{NAT_PUBLIC}:{}", s.port));
    let direct_private = units_file(
        "units-private.toml",
        format!("{}:{}", net.link.unit_ip, s.port),
    );
    for f in [&direct_nat, &direct_private] {
        let l = fleet(net.officer(env!("CARGO_BIN_EXE_rdc-under-test")), f, "3");
        assert_eq!(l.len(), 1);
        assert_eq!(
            l[0]["reachable"], false,
            "reached the unit directly via {f}: {l:?}"
        );
    }
    // Through the hub: reachable, the tunnel's handshake fresh, the live camera recording.
    let l = fleet(
        net.officer(env!("CARGO_BIN_EXE_rdc-under-test")),
        &through_hub,
        "10",
    );
    assert_eq!(l[0]["reachable"], true, "{l:?}");
    assert!(
        l[0]["handshake_age_s"].as_u64().is_some_and(|a| a <= 180),
        "{l:?}"
    );
    assert_eq!(l[0]["cameras"], 2);
    assert_eq!(l[0]["cameras_recording"], 1);
    // The human line says the same.
    let human = net
        .officer(env!("CARGO_BIN_EXE_rdc-under-test"))
        .args(["units", "status", "--units", &through_hub])
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&human.stdout);
    assert!(
        line.starts_with("e2e")
            && line.contains("reachable")
            && line.contains("1/2 cameras recording"),
        "{line}"
    );
    // The unit's own selftest sees the tunnel: up, the hub answering, the MTU.
    let st = Command::new(env!("CARGO_BIN_EXE_rdc-recorder-under-test"))
        .args(["selftest", "--json", "--seconds", "1", "--config"])
        .arg(h.unit.config())
        .output()
        .unwrap();
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    for name in ["tunnel interface", "tunnel hub", "tunnel MTU"] {
        let line = st["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["check"] == name)
            .unwrap_or_else(|| panic!("no {name} line: {st}"));
        assert_eq!(line["pass"], true, "{line}");
        eprintln!("selftest: {}: {}", line["check"], line["detail"]);
    }

    // Idle for three of the NAT's timeouts: the keepalive holds the mapping, so the next
    // request goes straight through.
    let idle_from = Instant::now();
    wait_for(
        "three NAT timeouts of idling",
        Duration::from_secs(30),
        || idle_from.elapsed() >= Duration::from_secs(15),
    );
    assert!(
        net.nat_mappings()
            .unwrap()
            .contains(&format!("dport={}", wgnet::HUB_PORT)),
        "the NAT lost the unit's mapping despite the keepalive"
    );
    let t = Instant::now();
    let l = fleet(
        net.officer(env!("CARGO_BIN_EXE_rdc-under-test")),
        &through_hub,
        "10",
    );
    assert_eq!(l[0]["reachable"], true, "after idling: {l:?}");
    eprintln!("status after 15 s idle: {:.2} s", t.elapsed().as_secs_f64());

    // Another unit behind the hub cannot reach this one; the officer still can.
    let drops = net.hub_drops().unwrap();
    let l = fleet(
        net.unit_b(env!("CARGO_BIN_EXE_rdc-under-test")),
        &through_hub,
        "3",
    );
    assert_eq!(
        l[0]["reachable"], false,
        "unit B reached unit A through the hub: {l:?}"
    );
    assert!(
        net.hub_drops().unwrap() > drops,
        "unit B's packets were not dropped by the hub's rules: {}\n{}",
        net.hub_show("latest-handshakes").unwrap_or_default(),
        wgnet::run(net.hub_cmd("nft").args(["list", "ruleset"])).unwrap_or_default()
    );
    let l = fleet(
        net.officer(env!("CARGO_BIN_EXE_rdc-under-test")),
        &through_hub,
        "10",
    );
    assert_eq!(l[0]["reachable"], true);

    // The carrier moves the NAT's public address mid-fetch: the same connection goes on.
    let (out1, err) = fetch_with(
        &net,
        &s,
        &through_hub,
        h.start + 25 * 60 * S,
        "moved",
        &h,
        || net.move_nat_address().unwrap(),
    );
    assert!(
        !err.contains("link dropped"),
        "the fetch had to reconnect when the NAT's address moved: {err}"
    );
    let endpoints = net.hub_show("endpoints").unwrap();
    assert!(
        endpoints.contains(&NAT_MOVED.to_string()),
        "the hub did not follow the unit to its new address: {endpoints}"
    );
    assert!(
        ts_files(&out1) >= 50,
        "ten minutes are 60 segments: {}",
        ts_files(&out1)
    );

    // The hub restarts mid-fetch: a dropped link, resumed; the recorder never notices.
    let (out2, _) = fetch_with(
        &net,
        &s,
        &through_hub,
        h.start + 40 * 60 * S,
        "hub",
        &h,
        || {
            net.hub_down().unwrap();
            let down_at = Instant::now();
            wait_for("a 3 s hub outage", Duration::from_secs(10), || {
                down_at.elapsed() >= Duration::from_secs(3)
            });
            net.hub_up().unwrap();
        },
    );
    // The hub came back knowing where every unit was, idle unit B included: it can reach
    // an idle unit at once instead of waiting for the unit's next handshake.
    let endpoints = net.hub_show("endpoints").unwrap();
    assert_eq!(
        endpoints.matches(&NAT_MOVED.to_string()).count(),
        2,
        "the hub forgot the units' addresses over its restart: {endpoints}"
    );
    assert_eq!(ts_files(&out2), ts_files(&out1));
    assert!(
        h.unit
            .recorder
            .as_mut()
            .unwrap()
            .try_wait()
            .unwrap()
            .is_none(),
        "the recorder stopped when the hub did:\n{}",
        h.unit.log()
    );

    // Nothing was fragmented on the 4G link: QUIC fits the tunnel, the tunnel the link.
    assert_eq!(net.link.stats.fragments.load(SeqCst), 0);
    let max = net.link.stats.max_packet.load(SeqCst);
    assert!(
        max <= u64::from(rdc_uplink::vpn::DEFAULT_MTU + rdc_uplink::vpn::OVERHEAD_V4),
        "a {max}-byte packet on the 4G link"
    );
    eprintln!("largest packet on the 4G link: {max} bytes");
}
