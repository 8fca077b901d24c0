//! A carrier-NAT world for the WireGuard tests (R18), built from network namespaces, the
//! userspace WireGuard (wireguard-go with wireguard-tools: the test machine's kernel has no
//! WireGuard module) and nftables, with every file written by rdc's own commands.
//!
//! ```text
//!  this namespace (unit A)                       hub ns                       officer ns
//!  recorder on 10.77.1.7 ─ wg ─┐              wg-quick up (rdc keys hub)     wg-quick up
//!                              │ 4G (TunLink)  nft: officers → units only    (add-officer)
//!                              └──── nat ns ───── 198.51.100.0/24 ── hub ── 203.0.113.0/24 ── officer
//!  unit B ns (a second unit, wg only) ─ veth ─┘  masquerade, no inbound,
//!                                                UDP conntrack timeout lowered
//! ```
//!
//! The unit under test is this process's own namespace, so the recorder and the emulated camera
//! run as the rest of the suite runs them; it gets two routes only: the hub's public network
//! through the NAT, and the scheme's subnet through its tunnel. Needs root.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::relay::Link;
use crate::tunlink::TunLink;

/// The hub's address on the NAT's side of the "internet", and the port units dial.
pub const HUB_PUBLIC: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
pub const HUB_PORT: u16 = 51820;
/// The NAT's public address, and the one a carrier moves it to.
pub const NAT_PUBLIC: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
pub const NAT_MOVED: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 3);
pub const SUBNET: &str = "10.77.0.0/16";
pub const UNIT_A: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 7);
pub const UNIT_B: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 8);
/// Unit B's private address behind the NAT.
pub const UNIT_B_PRIVATE: Ipv4Addr = Ipv4Addr::new(192, 168, 9, 2);

/// How to build the world.
#[derive(Debug, Clone)]
pub struct Options {
    /// The unit's 4G link (between this namespace and the NAT).
    pub link: Link,
    /// The NAT's UDP mapping timeout, seconds (Linux's default is 30, 120 once replied to).
    pub nat_udp_timeout: u32,
    /// The units' WireGuard keepalive, seconds.
    pub keepalive: u16,
    /// `rdc` and `rdc-recorder` binaries.
    pub rdc: PathBuf,
    pub recorder: PathBuf,
    /// Unit A's configuration: `rdc-recorder init --config` points its uplink at the tunnel.
    pub unit_config: Option<PathBuf>,
    /// Unit A's id.
    pub unit_id: String,
}

/// The running world. Dropping it takes everything down.
#[allow(missing_debug_implementations)]
pub struct VpnNet {
    pub tag: String,
    pub hub_ns: String,
    pub nat_ns: String,
    pub officer_ns: String,
    pub unit_b_ns: String,
    /// The 4G link of unit A (this namespace) to the NAT.
    pub link: TunLink,
    pub dir: tempfile::TempDir,
    pub hub_if: String,
    pub unit_if: String,
    pub unit_b_if: String,
    pub officer_if: String,
    /// The officer's tunnel address.
    pub officer_addr: Ipv4Addr,
    /// What `rdc-recorder init --vpn-*` printed for the hub (unit A).
    pub init_output: String,
    children: Vec<Child>,
    rdc: PathBuf,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Runs a command, failing with its stderr.
pub fn run(c: &mut Command) -> anyhow::Result<String> {
    let o = c
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {c:?}"))?;
    if !o.status.success() {
        bail!(
            "{c:?}: {}{}",
            String::from_utf8_lossy(&o.stderr).trim(),
            String::from_utf8_lossy(&o.stdout).trim()
        );
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// `program` in namespace `ns` (or this one).
pub fn in_ns(ns: Option<&str>, program: impl AsRef<std::ffi::OsStr>) -> Command {
    match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

fn ip(ns: Option<&str>, args: &str) -> anyhow::Result<String> {
    run(in_ns(ns, "ip").args(args.split_whitespace()))
}

/// A veth pair between two namespaces: (namespace, device, address/prefix) at each end.
fn veth(a: (&str, &str, &str), b: (&str, &str, &str)) -> anyhow::Result<()> {
    ip(
        None,
        &format!("link add {} type veth peer name {}", a.1, b.1),
    )?;
    for (ns, dev, addr) in [a, b] {
        ip(None, &format!("link set {dev} netns {ns}"))?;
        ip(Some(ns), &format!("addr add {addr} dev {dev}"))?;
        ip(Some(ns), &format!("link set {dev} up"))?;
    }
    Ok(())
}

fn nft(ns: &str, rules: &str) -> anyhow::Result<()> {
    let f = tempfile::NamedTempFile::new()?;
    std::fs::write(f.path(), rules)?;
    run(in_ns(Some(ns), "nft").arg("-f").arg(f.path()))?;
    Ok(())
}

/// Whether the tools are here: root, /dev/net/tun, wireguard-go, wg, wg-quick, nft.
pub fn check() -> anyhow::Result<()> {
    TunLink::check()?;
    for (tool, pkg) in [
        ("wireguard-go", "wireguard-go"),
        ("wg", "wireguard-tools"),
        ("wg-quick", "wireguard-tools"),
        ("nft", "nftables"),
    ] {
        if !Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            bail!("{tool} is missing (apt install {pkg}; scripts/install-deps.sh does)");
        }
    }
    Ok(())
}

/// The fields of a systemd-networkd file, `Key=value` under `[Section]`, in order.
fn networkd_fields(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for l in text.lines().map(str::trim) {
        if l.starts_with('#') || l.is_empty() {
            continue;
        }
        if let Some(s) = l.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = s.to_owned();
        } else if let Some((k, v)) = l.split_once('=') {
            out.push((section.clone(), k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    out
}

/// Does what systemd-networkd does with the pair `rdc-recorder init --vpn-*` wrote, with
/// wireguard-go in place of the kernel module: returns wireguard-go's process.
pub fn networkd_up(ns: Option<&str>, netdev: &Path, network: &Path) -> anyhow::Result<Child> {
    let nd = networkd_fields(&std::fs::read_to_string(netdev)?);
    let nw = networkd_fields(&std::fs::read_to_string(network)?);
    let get = |f: &[(String, String, String)], s: &str, k: &str| {
        f.iter()
            .find(|(sec, key, _)| sec == s && key == k)
            .map(|(_, _, v)| v.clone())
            .with_context(|| format!("no {k}= in [{s}]"))
    };
    let name = get(&nd, "NetDev", "Name")?;
    let mtu = get(&nd, "NetDev", "MTUBytes")?;
    let key = get(&nd, "WireGuard", "PrivateKeyFile")?;
    let peer = get(&nd, "WireGuardPeer", "PublicKey")?;
    let endpoint = get(&nd, "WireGuardPeer", "Endpoint")?;
    let allowed = get(&nd, "WireGuardPeer", "AllowedIPs")?;
    let keepalive = get(&nd, "WireGuardPeer", "PersistentKeepalive")?;
    let address = get(&nw, "Network", "Address")?;
    let child = in_ns(ns, "wireguard-go")
        .args(["-f", &name])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting wireguard-go")?;
    let sock = PathBuf::from(format!("/var/run/wireguard/{name}.sock"));
    let t = Instant::now();
    while !sock.exists() {
        if t.elapsed() > Duration::from_secs(10) {
            bail!("wireguard-go made no {}", sock.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    run(in_ns(ns, "wg").args([
        "set",
        &name,
        "private-key",
        &key,
        "peer",
        &peer,
        "endpoint",
        &endpoint,
        "allowed-ips",
        &allowed,
        "persistent-keepalive",
        &keepalive,
    ]))?;
    ip(ns, &format!("addr add {address} dev {name}"))?;
    ip(ns, &format!("link set {name} mtu {mtu} up"))?;
    Ok(child)
}

impl VpnNet {
    pub fn start(o: &Options) -> anyhow::Result<VpnNet> {
        check()?;
        let n = (std::process::id() % 1000) * 10 + NEXT.fetch_add(1, Ordering::SeqCst) % 10;
        let tag = format!("{n}");
        let ns = |k: &str| format!("rv{k}-{tag}");
        let (hub_ns, nat_ns, officer_ns, unit_b_ns) = (ns("hub"), ns("nat"), ns("off"), ns("ub"));
        for s in [&hub_ns, &nat_ns, &officer_ns, &unit_b_ns] {
            let _ = ip(None, &format!("netns del {s}"));
            ip(None, &format!("netns add {s}"))?;
            ip(Some(s), "link set lo up")?;
        }
        let dir = tempfile::tempdir()?;
        let link = TunLink::start_to(o.link, Some(&nat_ns))?;
        let mut me = VpnNet {
            hub_if: format!("rvh{tag}"),
            unit_if: format!("rvu{tag}"),
            unit_b_if: format!("rvb{tag}"),
            officer_if: format!("rvo{tag}"),
            officer_addr: Ipv4Addr::UNSPECIFIED,
            init_output: String::new(),
            tag: tag.clone(),
            hub_ns,
            nat_ns,
            officer_ns,
            unit_b_ns,
            link,
            dir,
            children: Vec::new(),
            rdc: o.rdc.clone(),
        };
        me.wire(o)?;
        me.make_hub(o)?;
        Ok(me)
    }

    /// The veths, routes and the NAT.
    fn wire(&self, o: &Options) -> anyhow::Result<()> {
        let t = &self.tag;
        let (nat, off, ub) = (
            Some(self.nat_ns.as_str()),
            Some(self.officer_ns.as_str()),
            Some(self.unit_b_ns.as_str()),
        );
        // hub <-> NAT: the internet the carrier's NAT faces; hub <-> officer; unit B <-> NAT.
        veth(
            (
                &self.hub_ns,
                &format!("rvhn{t}"),
                &format!("{HUB_PUBLIC}/24"),
            ),
            (
                &self.nat_ns,
                &format!("rvnh{t}"),
                &format!("{NAT_PUBLIC}/24"),
            ),
        )?;
        veth(
            (&self.hub_ns, &format!("rvho{t}"), "203.0.113.1/24"),
            (&self.officer_ns, &format!("rvoh{t}"), "203.0.113.2/24"),
        )?;
        veth(
            (
                &self.unit_b_ns,
                &format!("rvbn{t}"),
                &format!("{UNIT_B_PRIVATE}/24"),
            ),
            (&self.nat_ns, &format!("rvnb{t}"), "192.168.9.1/24"),
        )?;
        ip(nat, &format!("route add default via {HUB_PUBLIC}"))?;
        ip(off, "route add default via 203.0.113.1")?;
        ip(ub, "route add default via 192.168.9.1")?;
        // Unit A (this namespace) reaches the hub's network through its 4G link, nothing else.
        ip(
            None,
            &format!(
                "route replace 198.51.100.0/24 via {} src {}",
                self.link.officer_ip, self.link.unit_ip
            ),
        )?;
        for s in [&self.hub_ns, &self.nat_ns] {
            run(in_ns(Some(s), "sysctl").args(["-q", "-w", "net.ipv4.ip_forward=1"]))?;
        }
        // The carrier's NAT: masquerade out, nothing new in; its UDP mappings expire soon.
        nft(
            &self.nat_ns,
            &format!(
                "table ip cgnat {{\n\
                 \tchain post {{ type nat hook postrouting priority srcnat; oifname \"rvnh{t}\" masquerade; }}\n\
                 \tchain through {{ type filter hook forward priority filter; policy drop;\n\
                 \t\tct state established,related accept\n\
                 \t\toifname \"rvnh{t}\" accept\n\
                 \t}}\n\
                 \tchain input {{ type filter hook input priority filter; policy accept;\n\
                 \t\tiifname \"rvnh{t}\" ct state new drop\n\
                 \t}}\n\
                 }}\n"
            ),
        )?;
        self.set_nat_timeout(o.nat_udp_timeout)
    }

    fn rdc(&self, args: &[&str]) -> anyhow::Result<String> {
        run(Command::new(&self.rdc).args(args))
    }

    /// The hub (`rdc keys hub`), the units (`rdc-recorder init --vpn-*`, `add-unit`) and the
    /// officer (`add-officer`), all brought up.
    fn make_hub(&mut self, o: &Options) -> anyhow::Result<()> {
        let d = self.dir.path().to_owned();
        let hubdir = d.join("hub");
        let hd = hubdir.display().to_string();
        let hub_key = self
            .rdc(&[
                "keys",
                "hub",
                "--dir",
                &hd,
                "--interface",
                &self.hub_if,
                "--subnet",
                SUBNET,
                "--listen",
                &HUB_PORT.to_string(),
                "--endpoint",
                &format!("{HUB_PUBLIC}:{HUB_PORT}"),
            ])?
            .trim()
            .to_owned();
        // Unit A, with its configuration, and unit B.
        let units = [
            (
                o.unit_id.clone(),
                UNIT_A,
                self.unit_if.clone(),
                o.unit_config.clone(),
                None,
            ),
            (
                "unit-b".to_owned(),
                UNIT_B,
                self.unit_b_if.clone(),
                None,
                Some(self.unit_b_ns.clone()),
            ),
        ];
        let mut late = Vec::new();
        for (id, addr, ifname, config, ns) in units {
            let keys = d.join(format!("keys-{id}"));
            let networkd = d.join(format!("networkd-{id}"));
            let mut c = Command::new(&o.recorder);
            c.args(["init", "--id", &id, "--user", "nobody-here", "--dir"])
                .arg(&keys)
                .args([
                    "--vpn-hub",
                    &format!("{HUB_PUBLIC}:{HUB_PORT}"),
                    "--vpn-hub-key",
                    &hub_key,
                    "--vpn-address",
                    &format!("{addr}/16"),
                    "--vpn-interface",
                    &ifname,
                    "--vpn-keepalive",
                    &o.keepalive.to_string(),
                    "--networkd-dir",
                ])
                .arg(&networkd);
            if let Some(cfg) = &config {
                c.arg("--config").arg(cfg);
            }
            let out = run(&mut c)?;
            let public = out
                .lines()
                .find_map(|l| l.strip_prefix("PublicKey = "))
                .context("init printed no PublicKey line for the hub")?
                .to_owned();
            if config.is_some() {
                self.init_output = out.clone();
            }
            let add = [
                "keys",
                "hub",
                "add-unit",
                "--dir",
                &hd,
                "--interface",
                &self.hub_if,
                "--name",
                &id,
                "--public-key",
                &public,
                "--address",
                &addr.to_string(),
            ]
            .map(str::to_owned);
            if ns.is_some() {
                // Unit B joins the running hub later, with `--apply`.
                late.push(add);
            } else {
                self.rdc(&add.each_ref().map(String::as_str))?;
            }
            self.children.push(networkd_up(
                ns.as_deref(),
                &networkd.join(format!("60-{ifname}.netdev")),
                &networkd.join(format!("60-{ifname}.network")),
            )?);
        }
        let officer_conf = d.join(format!("{}.conf", self.officer_if));
        self.officer_addr = self
            .rdc(&[
                "keys",
                "hub",
                "add-officer",
                "--dir",
                &hd,
                "--interface",
                &self.hub_if,
                "--name",
                "j.smith",
                "--out",
                &officer_conf.display().to_string(),
            ])?
            .trim()
            .parse()?;
        self.hub_up()?;
        for add in late {
            run(in_ns(Some(&self.hub_ns), &self.rdc)
                .args(add)
                .arg("--apply"))?;
        }
        run(in_ns(Some(&self.officer_ns), "wg-quick")
            .arg("up")
            .arg(&officer_conf))?;
        Ok(())
    }

    fn hub_conf(&self) -> PathBuf {
        self.dir
            .path()
            .join("hub")
            .join(format!("{}.conf", self.hub_if))
    }

    /// `wg-quick up` of the hub's own configuration, in the hub's namespace.
    pub fn hub_up(&self) -> anyhow::Result<()> {
        run(in_ns(Some(&self.hub_ns), "wg-quick")
            .arg("up")
            .arg(self.hub_conf()))?;
        Ok(())
    }

    /// `wg-quick down`: the hub's WireGuard and its rules gone.
    pub fn hub_down(&self) -> anyhow::Result<()> {
        run(in_ns(Some(&self.hub_ns), "wg-quick")
            .arg("down")
            .arg(self.hub_conf()))?;
        Ok(())
    }

    /// The carrier gives the NAT a new public address: the old one goes (and with it every
    /// mapping masquerade made), the unit's next packet leaves from the new one.
    pub fn move_nat_address(&self) -> anyhow::Result<()> {
        let nat = Some(self.nat_ns.as_str());
        let dev = format!("rvnh{}", self.tag);
        ip(nat, &format!("addr del {NAT_PUBLIC}/24 dev {dev}"))?;
        ip(nat, &format!("addr add {NAT_MOVED}/24 dev {dev}"))?;
        ip(nat, &format!("route replace default via {HUB_PUBLIC}"))?;
        Ok(())
    }

    /// Makes the unit directly reachable at the NAT's public address, UDP `port` (as a private
    /// APN or a public IP would): for comparing the tunnel with the direct path over the same
    /// 4G link. The unit sees the NAT's link address as the sender, so its replies take the link.
    pub fn port_forward(&self, port: u16) -> anyhow::Result<()> {
        let unit = self.link.unit_ip;
        nft(
            &self.nat_ns,
            &format!(
                "table ip cgnat {{\n\
                 \tchain pre {{ type nat hook prerouting priority dstnat; iifname \"rvnh{t}\" udp dport {port} dnat to {unit}; }}\n\
                 \tchain post2 {{ type nat hook postrouting priority srcnat; ip daddr {unit} ct status dnat masquerade; }}\n\
                 }}\n\
                 add rule ip cgnat through ct status dnat accept\n",
                t = self.tag
            ),
        )?;
        Ok(())
    }

    /// Sets the NAT's UDP mapping timeout (seconds), for mappings made from now on.
    pub fn set_nat_timeout(&self, secs: u32) -> anyhow::Result<()> {
        for k in [
            "nf_conntrack_udp_timeout",
            "nf_conntrack_udp_timeout_stream",
        ] {
            run(in_ns(Some(&self.nat_ns), "sysctl").args([
                "-q",
                "-w",
                &format!("net.netfilter.{k}={secs}"),
            ]))?;
        }
        Ok(())
    }

    /// `wg show <interface> <what>` in the hub's namespace.
    pub fn hub_show(&self, what: &str) -> anyhow::Result<String> {
        run(in_ns(Some(&self.hub_ns), "wg").args(["show", &self.hub_if, what]))
    }

    /// Packets the hub's rules dropped coming from the tunnel (its `iifname … counter drop`).
    pub fn hub_drops(&self) -> anyhow::Result<u64> {
        let table = format!("rdc_{}", self.hub_if);
        let t = run(
            in_ns(Some(&self.hub_ns), "nft").args(["list", "chain", "inet", &table, "forward"])
        )?;
        Ok(t.lines()
            .filter(|l| l.contains(&format!("iifname \"{}\" counter packets", self.hub_if)))
            .filter_map(|l| {
                l.split("packets ")
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .sum())
    }

    /// The NAT's UDP mappings (`conntrack -L -p udp`), when conntrack is installed.
    pub fn nat_mappings(&self) -> anyhow::Result<String> {
        let o = in_ns(Some(&self.nat_ns), "conntrack")
            .args(["-L", "-p", "udp"])
            .stdin(Stdio::null())
            .output()?;
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    }

    /// `program` in the officer's namespace.
    pub fn officer(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        in_ns(Some(&self.officer_ns), program)
    }

    /// `program` in the hub's namespace.
    pub fn hub_cmd(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        in_ns(Some(&self.hub_ns), program)
    }

    /// `program` in unit B's namespace.
    pub fn unit_b(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        in_ns(Some(&self.unit_b_ns), program)
    }
}

impl Drop for VpnNet {
    fn drop(&mut self) {
        let _ = self.hub_down();
        let _ = run(in_ns(Some(&self.officer_ns), "wg-quick")
            .arg("down")
            .arg(self.dir.path().join(format!("{}.conf", self.officer_if))));
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for i in [
            &self.hub_if,
            &self.unit_if,
            &self.unit_b_if,
            &self.officer_if,
        ] {
            let _ = std::fs::remove_file(format!("/var/run/wireguard/{i}.sock"));
        }
        let _ = ip(None, "route del 198.51.100.0/24");
        for s in [
            &self.hub_ns,
            &self.nat_ns,
            &self.officer_ns,
            &self.unit_b_ns,
        ] {
            let _ = ip(None, &format!("netns del {s}"));
        }
    }
}
