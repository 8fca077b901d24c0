//! WireGuard for units behind carrier NAT (R18): the unit dials out to the scheme's hub and
//! keeps its NAT mapping open; officers reach the unit's tunnel address through the hub. rdc
//! runs no tunnel of its own: the kernel's WireGuard (or wireguard-go) carries the packets and
//! this module only writes and reads the standard files around it, with no I/O:
//!
//! - keys: a Curve25519 key pair in WireGuard's base64 form ([`KeyPair`]);
//! - the unit's systemd-networkd pair ([`UnitTunnel::netdev`], [`UnitTunnel::network`]);
//! - the hub's wg-quick configuration and the nftables rules beside it ([`Hub`]): the hub
//!   forwards officers to units only, never unit to unit or unit to officer;
//! - `wg show all latest-handshakes` ([`handshakes`]), which the unit's selftest and status read.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

/// What went wrong with a key, an address or a configuration file.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct VpnError(pub String);

fn err<T>(m: impl Into<String>) -> Result<T, VpnError> {
    Err(VpnError(m.into()))
}

/// WireGuard's default tunnel MTU: a 1500-byte link less the outer IPv6, UDP and WireGuard
/// headers (40 + 8 + 32).
pub const DEFAULT_MTU: u16 = 1420;
/// The smallest tunnel MTU that carries QUIC: 1200-byte datagrams (RFC 9000 §14) plus the
/// inner IPv4 and UDP headers.
pub const MIN_MTU: u16 = 1228;
/// What WireGuard adds to each inner packet on an IPv4 path: outer IPv4 (20) and UDP (8)
/// headers, its own header (16) and the authentication tag (16).
pub const OVERHEAD_V4: u16 = 60;
/// WireGuard's usual keepalive for peers behind NAT, in seconds.
pub const DEFAULT_KEEPALIVE: u16 = 25;
/// A handshake is renewed every two minutes while packets flow (REKEY_AFTER_TIME) and the
/// keepalive makes them flow; older than this, the hub has not answered.
pub const HANDSHAKE_STALE_SECS: u64 = 180;

/// A WireGuard key pair, base64 as `wg genkey` and `wg pubkey` print them.
pub struct KeyPair {
    pub private: String,
    pub public: String,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl KeyPair {
    /// A new key from the operating system's random source, clamped as `wg genkey` does.
    pub fn generate() -> Result<KeyPair, VpnError> {
        let mut k = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut k)
            .map_err(|_| VpnError("the system's random source failed".into()))?;
        k[0] &= 248;
        k[31] = (k[31] & 127) | 64;
        let private = B64.encode(k);
        let public = public_key(&private)?;
        Ok(KeyPair { private, public })
    }
}

/// A key's 32 bytes from its base64 form, or what is wrong with it.
pub fn parse_key(s: &str) -> Result<[u8; 32], VpnError> {
    let s = s.trim();
    match B64.decode(s) {
        Ok(b) if b.len() == 32 => Ok(b.try_into().expect("32 bytes")),
        _ => err(format!(
            "{s:?} is not a WireGuard key (44 characters of base64, as `wg pubkey` prints)"
        )),
    }
}

/// The public key of a base64 private key.
pub fn public_key(private: &str) -> Result<String, VpnError> {
    let secret = x25519_dalek::StaticSecret::from(parse_key(private)?);
    Ok(B64.encode(x25519_dalek::PublicKey::from(&secret).as_bytes()))
}

/// An IPv4 network, `10.77.0.0/16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Net {
    pub fn parse(s: &str) -> Result<Net, VpnError> {
        let Some((a, p)) = s.trim().split_once('/') else {
            return err(format!(
                "{s:?}: give an address and prefix, e.g. 10.77.0.0/16"
            ));
        };
        let addr: Ipv4Addr = a
            .parse()
            .map_err(|_| VpnError(format!("{s:?}: {a:?} is not an IPv4 address")))?;
        let prefix: u8 = p
            .parse()
            .ok()
            .filter(|p| (8..=30).contains(p))
            .ok_or_else(|| VpnError(format!("{s:?}: the prefix must be from /8 to /30")))?;
        Ok(Net { addr, prefix })
    }

    fn mask(self) -> u32 {
        u32::MAX << (32 - u32::from(self.prefix))
    }

    /// The network's own address (host bits zero).
    pub fn network(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }

    pub fn contains(self, a: Ipv4Addr) -> bool {
        u32::from(a) & self.mask() == u32::from(self.network())
    }

    /// Whether `a` is a host of the network (not its network or broadcast address).
    pub fn is_host(self, a: Ipv4Addr) -> bool {
        let n = u32::from(self.network());
        let b = n | !self.mask();
        self.contains(a) && u32::from(a) != n && u32::from(a) != b
    }

    /// The hub's address: the network's first host.
    pub fn hub(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network()) + 1)
    }

    /// The broadcast address.
    fn last(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network()) | !self.mask())
    }
}

impl std::fmt::Display for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network(), self.prefix)
    }
}

/// A WireGuard interface name as Linux allows it.
pub fn check_interface(name: &str) -> Result<(), VpnError> {
    if name.is_empty()
        || name.len() > 15
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_=+.-".contains(c))
    {
        return err(format!(
            "{name:?} is not an interface name: 1 to 15 letters, digits and _=+.-"
        ));
    }
    Ok(())
}

/// `host:port` of the hub as the unit dials it.
pub fn check_endpoint(s: &str) -> Result<(), VpnError> {
    match s.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0) => Ok(()),
        _ => err(format!(
            "{s:?}: give the hub's public name or address and UDP port, e.g. hub.example.org:51820"
        )),
    }
}

/// The unit's side of the tunnel: what `rdc-recorder init --vpn-*` writes for systemd-networkd.
#[derive(Debug, Clone)]
pub struct UnitTunnel {
    pub interface: String,
    /// The unit's tunnel address; its prefix is the scheme's subnet (the only route).
    pub address: Ipv4Addr,
    pub subnet: Net,
    /// The hub's public `host:port`.
    pub hub_endpoint: String,
    pub hub_key: String,
    pub keepalive: u16,
    pub mtu: u16,
    /// The unit's private key, readable only by systemd-networkd.
    pub private_key_file: PathBuf,
}

impl UnitTunnel {
    /// Checks every field; the error names the option at fault.
    pub fn check(&self) -> Result<(), VpnError> {
        check_interface(&self.interface).map_err(|e| VpnError(format!("--vpn-interface {e}")))?;
        check_endpoint(&self.hub_endpoint).map_err(|e| VpnError(format!("--vpn-hub {e}")))?;
        parse_key(&self.hub_key).map_err(|e| VpnError(format!("--vpn-hub-key {e}")))?;
        if !self.subnet.is_host(self.address) || self.address == self.subnet.hub() {
            return err(format!(
                "--vpn-address {}/{}: not a host address of {} other than the hub's ({})",
                self.address,
                self.subnet.prefix,
                self.subnet,
                self.subnet.hub()
            ));
        }
        if !(1..=3600).contains(&self.keepalive) {
            return err(format!(
                "--vpn-keepalive {}: from 1 to 3600 seconds (below the carrier NAT's UDP timeout; 25 suits most)",
                self.keepalive
            ));
        }
        if !(MIN_MTU..=1500 - OVERHEAD_V4).contains(&self.mtu) {
            return err(format!(
                "--vpn-mtu {}: from {MIN_MTU} (QUIC's 1200-byte datagrams) to {} (a 1500-byte link)",
                self.mtu,
                1500 - OVERHEAD_V4
            ));
        }
        Ok(())
    }

    /// The `.netdev` file: the WireGuard interface and its one peer, the hub.
    pub fn netdev(&self) -> String {
        format!(
            "# Written by `rdc-recorder init`: the unit's WireGuard tunnel to the scheme's hub.\n\
             # The unit dials out (no listening port: the carrier's NAT maps whatever it uses) and\n\
             # the keepalive holds that mapping open so officers reach the unit through the hub.\n\
             [NetDev]\n\
             Name={if}\n\
             Kind=wireguard\n\
             MTUBytes={mtu}\n\
             Description=rdc: tunnel to the scheme's hub\n\
             \n\
             [WireGuard]\n\
             PrivateKeyFile={key}\n\
             \n\
             [WireGuardPeer]\n\
             # The hub.\n\
             PublicKey={hub_key}\n\
             Endpoint={endpoint}\n\
             # Only the scheme's subnet goes through the tunnel.\n\
             AllowedIPs={subnet}\n\
             PersistentKeepalive={ka}\n",
            if = self.interface,
            mtu = self.mtu,
            key = self.private_key_file.display(),
            hub_key = self.hub_key.trim(),
            endpoint = self.hub_endpoint,
            subnet = self.subnet,
            ka = self.keepalive,
        )
    }

    /// The `.network` file: the unit's tunnel address; its prefix gives the one route.
    pub fn network(&self) -> String {
        format!(
            "# Written by `rdc-recorder init`: the unit's address in the scheme's tunnel.\n\
             [Match]\n\
             Name={}\n\
             \n\
             [Network]\n\
             Address={}/{}\n",
            self.interface, self.address, self.subnet.prefix
        )
    }

    /// The lines the hub needs for this unit.
    pub fn hub_peer(&self, unit: &str, public: &str) -> String {
        format!(
            "# unit {unit}\n[Peer]\nPublicKey = {public}\nAllowedIPs = {}/32\n",
            self.address
        )
    }
}

/// Who a hub's peer is: a unit (reached, never reaching) or an officer's machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerKind {
    Unit,
    Officer,
}

impl PeerKind {
    fn word(self) -> &'static str {
        match self {
            PeerKind::Unit => "unit",
            PeerKind::Officer => "officer",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub kind: PeerKind,
    pub name: String,
    pub public_key: String,
    pub address: Ipv4Addr,
}

/// The hub: one wg-quick interface, one address per peer, and nftables rules that forward
/// officers to units only. Its configuration is the standard wg-quick file, so the scheme's IT
/// runs it with `systemctl enable --now wg-quick@NAME`; rdc's facts about each peer (kind and
/// name) are comments in it, so the file stays the one truth.
#[derive(Clone)]
pub struct Hub {
    pub interface: String,
    pub subnet: Net,
    pub listen_port: u16,
    /// The hub's public `host:port`, as units and officers dial it.
    pub endpoint: String,
    pub private_key: String,
    pub peers: Vec<Peer>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("interface", &self.interface)
            .field("subnet", &self.subnet)
            .field("peers", &self.peers)
            .finish_non_exhaustive()
    }
}

const HUB_MARK: &str = "# rdc-hub";

impl Hub {
    pub fn public_key(&self) -> Result<String, VpnError> {
        public_key(&self.private_key)
    }

    /// The nftables table's name: one per hub interface.
    pub fn table(&self) -> String {
        format!("rdc_{}", self.interface.replace(['-', '.', '=', '+'], "_"))
    }

    /// The wg-quick configuration; `nft` is where the rules file lies on the hub.
    pub fn render(&self, nft: &Path) -> String {
        let mut s = format!(
            "# The scheme's WireGuard hub for rdc units, written by `rdc keys hub`.\n\
             # Add peers with `rdc keys hub add-unit|add-officer`; run with\n\
             # `systemctl enable --now wg-quick@{if}`. Officers reach units; units reach nobody.\n\
             {HUB_MARK} subnet={subnet} endpoint={endpoint}\n\
             [Interface]\n\
             Address = {hub}/{prefix}\n\
             ListenPort = {port}\n\
             PrivateKey = {key}\n\
             PostUp = sysctl -q -w net.ipv4.ip_forward=1\n\
             PostUp = nft -f {nft}\n\
             # Units' last addresses survive a restart, so the hub can reach an idle unit\n\
             # through the NAT mapping its keepalives hold open, without waiting for it.\n\
             PostUp = f={endpoints}; [ -f \"$f\" ] && while read -r k e; do wg show %i peers | grep -qxF \"$k\" && [ \"$e\" != \"(none)\" ] && wg set %i peer \"$k\" endpoint \"$e\"; done < \"$f\"; true\n\
             PreDown = wg show %i endpoints > {endpoints}\n\
             PostDown = nft delete table inet {table}\n",
            if = self.interface,
            subnet = self.subnet,
            endpoint = self.endpoint,
            hub = self.subnet.hub(),
            prefix = self.subnet.prefix,
            port = self.listen_port,
            key = self.private_key,
            nft = nft.display(),
            endpoints = nft.with_extension("endpoints").display(),
            table = self.table(),
        );
        for p in &self.peers {
            let _ = write!(
                s,
                "\n# {} {}\n[Peer]\nPublicKey = {}\nAllowedIPs = {}/32\n",
                p.kind.word(),
                p.name,
                p.public_key,
                p.address
            );
        }
        s
    }

    /// Reads a file [`Hub::render`] wrote (and the scheme's IT may have edited).
    pub fn parse(text: &str) -> Result<Hub, VpnError> {
        let mut subnet = None;
        let mut endpoint = String::new();
        let (mut address, mut port, mut key) = (None, None, None);
        let mut peers = Vec::new();
        let mut who: Option<(PeerKind, String)> = None;
        let mut section = "";
        let mut peer: Option<(PeerKind, String, Option<String>, Option<Ipv4Addr>)> = None;
        let flush = |peer: &mut Option<(PeerKind, String, Option<String>, Option<Ipv4Addr>)>,
                     peers: &mut Vec<Peer>|
         -> Result<(), VpnError> {
            if let Some((kind, name, k, a)) = peer.take() {
                match (k, a) {
                    (Some(public_key), Some(address)) => peers.push(Peer {
                        kind,
                        name,
                        public_key,
                        address,
                    }),
                    _ => return err(format!("peer {name}: no PublicKey or AllowedIPs")),
                }
            }
            Ok(())
        };
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix(HUB_MARK) {
                for kv in rest.split_whitespace() {
                    match kv.split_once('=') {
                        Some(("subnet", v)) => subnet = Some(Net::parse(v)?),
                        Some(("endpoint", v)) => endpoint = v.to_owned(),
                        _ => {}
                    }
                }
                continue;
            }
            if let Some(c) = line.strip_prefix('#') {
                let mut w = c.split_whitespace();
                who = match (w.next(), w.next()) {
                    (Some("unit"), Some(name)) => Some((PeerKind::Unit, name.to_owned())),
                    (Some("officer"), Some(name)) => Some((PeerKind::Officer, name.to_owned())),
                    _ => who,
                };
                continue;
            }
            if line.is_empty() {
                continue;
            }
            if line.starts_with('[') {
                flush(&mut peer, &mut peers)?;
                section = if line.eq_ignore_ascii_case("[peer]") {
                    let (kind, name) = who.take().ok_or_else(|| {
                        VpnError(format!(
                            "line {}: a [Peer] without the `# unit NAME` or `# officer NAME` line above it",
                            n + 1
                        ))
                    })?;
                    peer = Some((kind, name, None, None));
                    "peer"
                } else {
                    "interface"
                };
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return err(format!("line {}: {line:?} is not `Key = value`", n + 1));
            };
            let (k, v) = (k.trim(), v.trim());
            match (section, k) {
                ("interface", "Address") => {
                    address = Some(Net::parse(v)?);
                }
                ("interface", "ListenPort") => port = v.parse().ok(),
                ("interface", "PrivateKey") => key = Some(v.to_owned()),
                ("peer", "PublicKey") => {
                    if let Some(p) = &mut peer {
                        p.2 = Some(v.to_owned());
                    }
                }
                ("peer", "AllowedIPs") => {
                    let a = v.trim_end_matches("/32").parse().map_err(|_| {
                        VpnError(format!(
                            "line {}: AllowedIPs {v:?}: one address (/32) per peer",
                            n + 1
                        ))
                    })?;
                    if let Some(p) = &mut peer {
                        p.3 = Some(a);
                    }
                }
                _ => {}
            }
        }
        flush(&mut peer, &mut peers)?;
        let subnet = subnet
            .or(address)
            .ok_or_else(|| VpnError("no `# rdc-hub subnet=…` line nor Address".into()))?;
        Ok(Hub {
            interface: String::new(),
            subnet,
            listen_port: port.ok_or_else(|| VpnError("no ListenPort".into()))?,
            endpoint,
            private_key: key.ok_or_else(|| VpnError("no PrivateKey".into()))?,
            peers,
        })
    }

    /// Adds a peer: its name, key and address must be new, the address a host of the subnet.
    /// Without an address, the lowest free one above the hub's.
    pub fn add(
        &mut self,
        kind: PeerKind,
        name: &str,
        public_key: &str,
        address: Option<Ipv4Addr>,
    ) -> Result<Ipv4Addr, VpnError> {
        parse_key(public_key)?;
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
        {
            return err(format!(
                "{name:?}: a peer's name is 1 to 64 letters, digits and -_.@"
            ));
        }
        if let Some(p) = self.peers.iter().find(|p| p.name == name) {
            return err(format!(
                "{} {name} is already a peer (address {})",
                p.kind.word(),
                p.address
            ));
        }
        if let Some(p) = self
            .peers
            .iter()
            .find(|p| p.public_key == public_key.trim())
        {
            return err(format!(
                "that key is already {} {}'s: each peer has its own key",
                p.kind.word(),
                p.name
            ));
        }
        let taken =
            |a: Ipv4Addr| a == self.subnet.hub() || self.peers.iter().any(|p| p.address == a);
        let address = match address {
            Some(a) => {
                if !self.subnet.is_host(a) || a == self.subnet.hub() {
                    return err(format!(
                        "{a} is not a host address of {} other than the hub's",
                        self.subnet
                    ));
                }
                if let Some(p) = self.peers.iter().find(|p| p.address == a) {
                    return err(format!("{a} is {} {}'s already", p.kind.word(), p.name));
                }
                a
            }
            None => {
                let (lo, hi) = (
                    u32::from(self.subnet.hub()) + 1,
                    u32::from(self.subnet.last()),
                );
                (lo..hi)
                    .map(Ipv4Addr::from)
                    .find(|a| !taken(*a))
                    .ok_or_else(|| VpnError(format!("{} has no free address", self.subnet)))?
            }
        };
        self.peers.push(Peer {
            kind,
            name: name.to_owned(),
            public_key: public_key.trim().to_owned(),
            address,
        });
        Ok(address)
    }

    /// The nftables rules beside the configuration: officers may open flows to units; replies
    /// return; nothing else crosses the hub or reaches the hub itself from the tunnel (but
    /// ping, for a unit's selftest). Loading the file again replaces the table.
    pub fn nft(&self) -> String {
        let set = |kind: PeerKind| {
            let v: Vec<String> = self
                .peers
                .iter()
                .filter(|p| p.kind == kind)
                .map(|p| p.address.to_string())
                .collect();
            if v.is_empty() {
                String::new()
            } else {
                format!(" elements = {{ {} }};", v.join(", "))
            }
        };
        format!(
            "#!/usr/sbin/nft -f\n\
             # Written by `rdc keys hub`: what the hub forwards between its WireGuard peers.\n\
             table inet {t}\n\
             delete table inet {t}\n\
             table inet {t} {{\n\
             \tset units {{ type ipv4_addr;{units} }}\n\
             \tset officers {{ type ipv4_addr;{officers} }}\n\
             \tchain forward {{\n\
             \t\ttype filter hook forward priority filter; policy accept;\n\
             \t\tiifname \"{i}\" ct state established,related accept\n\
             \t\tiifname \"{i}\" oifname \"{i}\" ip saddr @officers ip daddr @units accept\n\
             \t\tiifname \"{i}\" counter drop\n\
             \t\toifname \"{i}\" counter drop\n\
             \t}}\n\
             \tchain input {{\n\
             \t\ttype filter hook input priority filter; policy accept;\n\
             \t\tiifname \"{i}\" ct state established,related accept\n\
             \t\tiifname \"{i}\" icmp type echo-request accept\n\
             \t\tiifname \"{i}\" counter drop\n\
             \t}}\n\
             }}\n",
            t = self.table(),
            i = self.interface,
            units = set(PeerKind::Unit),
            officers = set(PeerKind::Officer),
        )
    }

    /// An officer's wg-quick configuration: the scheme's subnet through the hub, nothing else.
    pub fn officer_conf(&self, private: &str, address: Ipv4Addr) -> Result<String, VpnError> {
        Ok(format!(
            "# An officer's tunnel to the scheme's units, written by `rdc keys hub add-officer`.\n\
             # Keep it private (it holds the key). Use: wg-quick up ./THIS-FILE.conf\n\
             [Interface]\n\
             Address = {address}/{prefix}\n\
             PrivateKey = {private}\n\
             \n\
             [Peer]\n\
             PublicKey = {hub}\n\
             Endpoint = {endpoint}\n\
             AllowedIPs = {subnet}\n\
             PersistentKeepalive = {DEFAULT_KEEPALIVE}\n",
            prefix = self.subnet.prefix,
            hub = self.public_key()?,
            endpoint = self.endpoint,
            subnet = self.subnet,
        ))
    }
}

/// One peer's latest handshake, from `wg show all latest-handshakes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    pub interface: String,
    pub peer: String,
    /// Unix seconds; None for a peer that never completed a handshake.
    pub at: Option<u64>,
}

/// Parses `wg show all latest-handshakes` (interface, peer, Unix seconds or 0 per line).
pub fn handshakes(text: &str) -> Vec<Handshake> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (i, p, t) = (f.next()?, f.next()?, f.next()?.parse::<u64>().ok()?);
            Some(Handshake {
                interface: i.to_owned(),
                peer: p.to_owned(),
                at: (t > 0).then_some(t),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_wg() {
        // `echo AAAA…= | wg pubkey` with the RFC 7748 test vector (Alice's key, clamped).
        let private = "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=";
        assert_eq!(
            public_key(private).unwrap(),
            "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo="
        );
        let k = KeyPair::generate().unwrap();
        assert_eq!(public_key(&k.private).unwrap(), k.public);
        assert!(parse_key("short").is_err());
    }

    fn hub() -> Hub {
        Hub {
            interface: "rdc-hub".into(),
            subnet: Net::parse("10.77.0.0/16").unwrap(),
            listen_port: 51820,
            endpoint: "hub.example.org:51820".into(),
            private_key: KeyPair::generate().unwrap().private,
            peers: vec![],
        }
    }

    #[test]
    fn hub_round_trips_and_refuses_clashes() {
        let mut h = hub();
        let u = KeyPair::generate().unwrap().public;
        let o = KeyPair::generate().unwrap().public;
        let a = h
            .add(
                PeerKind::Unit,
                "unit-07",
                &u,
                Some("10.77.1.7".parse().unwrap()),
            )
            .unwrap();
        assert_eq!(a.to_string(), "10.77.1.7");
        assert_eq!(
            h.add(PeerKind::Officer, "alice", &o, None)
                .unwrap()
                .to_string(),
            "10.77.0.2"
        );
        let text = h.render(Path::new("/etc/wireguard/rdc-hub.nft"));
        let mut back = Hub::parse(&text).unwrap();
        back.interface = h.interface.clone();
        assert_eq!(back.peers, h.peers);
        assert_eq!(back.subnet, h.subnet);
        assert_eq!(back.endpoint, h.endpoint);
        let k = KeyPair::generate().unwrap().public;
        assert!(back.add(PeerKind::Unit, "unit-07", &k, None).is_err());
        assert!(back.add(PeerKind::Unit, "unit-08", &u, None).is_err());
        let e = back
            .add(
                PeerKind::Unit,
                "unit-08",
                &k,
                Some("10.77.1.7".parse().unwrap()),
            )
            .unwrap_err();
        assert!(e.0.contains("unit unit-07"), "{e}");
        assert!(
            back.add(
                PeerKind::Unit,
                "unit-08",
                &k,
                Some("10.78.0.9".parse().unwrap())
            )
            .is_err()
        );
        assert!(
            back.add(
                PeerKind::Unit,
                "unit-08",
                &k,
                Some("10.77.0.1".parse().unwrap())
            )
            .is_err()
        );
        let rules = back.nft();
        assert!(
            rules.contains("set units { type ipv4_addr; elements = { 10.77.1.7 }; }"),
            "{rules}"
        );
        assert!(rules.contains("set officers { type ipv4_addr; elements = { 10.77.0.2 }; }"));
    }

    #[test]
    fn unit_tunnel_checks_its_options() {
        let ok = UnitTunnel {
            interface: "rdc-vpn".into(),
            address: "10.77.1.7".parse().unwrap(),
            subnet: Net::parse("10.77.1.7/16").unwrap(),
            hub_endpoint: "hub.example.org:51820".into(),
            hub_key: KeyPair::generate().unwrap().public,
            keepalive: 25,
            mtu: 1420,
            private_key_file: "/etc/systemd/network/rdc-vpn.key".into(),
        };
        ok.check().unwrap();
        assert!(ok.netdev().contains("AllowedIPs=10.77.0.0/16\n"));
        assert!(ok.network().contains("Address=10.77.1.7/16\n"));
        for bad in [
            UnitTunnel {
                hub_endpoint: "hub".into(),
                ..ok.clone()
            },
            UnitTunnel {
                address: "10.77.0.1".parse().unwrap(),
                ..ok.clone()
            },
            UnitTunnel {
                mtu: 1200,
                ..ok.clone()
            },
            UnitTunnel {
                interface: "a-very-long-interface".into(),
                ..ok.clone()
            },
            UnitTunnel {
                hub_key: "nope".into(),
                ..ok.clone()
            },
        ] {
            assert!(bad.check().is_err());
        }
    }

    #[test]
    fn reads_latest_handshakes() {
        let h = handshakes("rdc-vpn\tabc=\t1765000000\nrdc-vpn\tdef=\t0\n");
        assert_eq!(h[0].at, Some(1_765_000_000));
        assert_eq!(h[1].at, None);
    }
}
