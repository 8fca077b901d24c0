//! The unit's WireGuard tunnel to the scheme's hub, as the daemon and the selftest see it
//! (R18): the interface and its MTU from sysfs (readable by anyone), the hub's latest handshake
//! from `wg show all latest-handshakes`. Reading handshakes needs CAP_NET_ADMIN, which the
//! hardened service does not have; the package's `rdc-vpn-status.timer` runs `wg` as root
//! every 20 s into [`STATUS_FILE`], which the daemon reads instead.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdc_uplink::protocol::TunnelState;
use rdc_uplink::vpn;

use rdc_uplink::protocol::CheckLine as Line;

/// Where `rdc-vpn-status.service` leaves `wg show all latest-handshakes`.
pub const STATUS_FILE: &str = "/run/rdc-vpn/latest-handshakes";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `wg show all latest-handshakes`, from `wg` itself or, without the privilege, from the
/// status file when it is fresh (at most a minute old).
fn latest_handshakes(status_file: &Path) -> Result<String, String> {
    let direct = std::process::Command::new("wg")
        .args(["show", "all", "latest-handshakes"])
        .stdin(std::process::Stdio::null())
        .output();
    let why = match direct {
        Ok(o) if o.status.success() => {
            return Ok(String::from_utf8_lossy(&o.stdout).into_owned());
        }
        Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            "wg is not installed (apt install wireguard-tools)".to_owned()
        }
        Err(e) => format!("running wg: {e}"),
    };
    match std::fs::metadata(status_file).and_then(|m| m.modified()) {
        Ok(t) if t.elapsed().unwrap_or_default() <= Duration::from_secs(60) => {
            std::fs::read_to_string(status_file).map_err(|e| e.to_string())
        }
        Ok(_) => Err(format!(
            "{why}; {} is older than a minute (is rdc-vpn-status.timer running?)",
            status_file.display()
        )),
        Err(_) => Err(format!(
            "{why}; no {} (enable rdc-vpn-status.timer)",
            status_file.display()
        )),
    }
}

fn sys(interface: &str, what: &str) -> Option<String> {
    std::fs::read_to_string(format!("/sys/class/net/{interface}/{what}"))
        .ok()
        .map(|s| s.trim().to_owned())
}

/// The tunnel now.
pub fn read(interface: &str) -> TunnelState {
    read_with(interface, Path::new(STATUS_FILE))
}

pub fn read_with(interface: &str, status_file: &Path) -> TunnelState {
    let flags = sys(interface, "flags")
        .and_then(|f| u32::from_str_radix(f.trim_start_matches("0x"), 16).ok());
    let Some(flags) = flags else {
        return TunnelState {
            interface: interface.to_owned(),
            up: false,
            mtu: None,
            handshake_age_s: None,
            note: Some(format!(
                "no interface {interface}: is systemd-networkd running with the files `rdc-recorder init --vpn-*` wrote? (networkctl status {interface})"
            )),
        };
    };
    let mtu = sys(interface, "mtu").and_then(|m| m.parse().ok());
    let (handshake_age_s, note) = match latest_handshakes(status_file) {
        Ok(text) => {
            let mine: Vec<_> = vpn::handshakes(&text)
                .into_iter()
                .filter(|h| h.interface == interface)
                .collect();
            match mine.iter().filter_map(|h| h.at).max() {
                Some(at) => (Some(now().saturating_sub(at)), None),
                None if mine.is_empty() => (None, Some(format!("{interface} has no peer"))),
                None => (
                    None,
                    Some("no handshake with the hub yet: is the hub up and its address and key right?".into()),
                ),
            }
        }
        Err(why) => (None, Some(format!("cannot read the handshake: {why}"))),
    };
    TunnelState {
        interface: interface.to_owned(),
        up: flags & 1 == 1,
        mtu,
        handshake_age_s,
        note,
    }
}

/// The selftest's lines for the tunnel: the interface, the hub's answer, the MTU.
pub fn lines(t: &TunnelState) -> Vec<Line> {
    let iface = if t.up {
        Line::new("tunnel interface", true, format!("{} is up", t.interface))
    } else {
        return vec![Line::new(
            "tunnel interface",
            false,
            t.note.clone().unwrap_or_else(|| {
                format!(
                    "{} is down: networkctl up {} (and see networkctl status {0})",
                    t.interface, t.interface
                )
            }),
        )];
    };
    let handshake = match t.handshake_age_s {
        Some(age) if age <= vpn::HANDSHAKE_STALE_SECS => Line::new(
            "tunnel hub",
            true,
            format!(
                "the hub answered {age} s ago (WireGuard handshake); officers can reach this unit through it"
            ),
        ),
        Some(age) => Line::new(
            "tunnel hub",
            false,
            format!(
                "the hub last answered {age} s ago (renewed every 2 minutes while it is reachable): is the 4G link up, the hub running, the unit a peer of it?"
            ),
        ),
        None => Line::new(
            "tunnel hub",
            false,
            t.note
                .clone()
                .unwrap_or_else(|| "no handshake with the hub".into()),
        ),
    };
    let mtu = match t.mtu {
        Some(m) if m >= u32::from(vpn::MIN_MTU) => Line::new(
            "tunnel MTU",
            true,
            format!(
                "{m}: QUIC datagrams up to {} bytes fit unfragmented; the 4G link must carry {} (tunnel MTU + {} of WireGuard over IPv4)",
                m - 28,
                m + u32::from(vpn::OVERHEAD_V4),
                vpn::OVERHEAD_V4
            ),
        ),
        Some(m) => Line::new(
            "tunnel MTU",
            false,
            format!(
                "{m} is below {}: QUIC needs 1200-byte datagrams; raise MTUBytes in the .netdev",
                vpn::MIN_MTU
            ),
        ),
        None => Line::new("tunnel MTU", false, "cannot read it from /sys/class/net"),
    };
    vec![iface, handshake, mtu]
}
