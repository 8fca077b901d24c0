//! A packet-level 4G link between this process's network namespace (the unit's side) and a
//! network namespace of its own (the officer's side), for any protocol: QUIC and TCP cross the
//! same emulated link, so they can be compared fairly.
//!
//! The kernel here has no netem, so the link is two TUN devices with a userspace relay between
//! them: every IP packet one side sends is read from its TUN device, passed through a
//! [`Shaper`] (rate, one-way delay, random loss, outage, a one-second tail-drop queue) and
//! written into the other side's TUN device. Needs root (CAP_NET_ADMIN) and `ip` (iproute2).
//!
//! ```text
//!  this namespace                    relay (userspace)               namespace `rdcl-…`
//!  unit_ip ── rdcuN (tun) ──▶ Shaper (up/down) ──▶ rdcoN (tun) ── officer_ip
//! ```

use std::fs::File;
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::fs::OpenOptionsExt;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use anyhow::{Context, bail};
use tokio::io::unix::AsyncFd;

use crate::relay::{Link, Shaper, Stats};

/// A running packet-level link. Dropping it stops the relay and removes the namespace and
/// both devices.
#[allow(missing_debug_implementations)]
pub struct TunLink {
    /// The officer's network namespace; run programs there with [`TunLink::command`].
    pub ns: String,
    /// This namespace's address on the link: the unit listens here.
    pub unit_ip: Ipv4Addr,
    /// The officer's address, inside `ns`.
    pub officer_ip: Ipv4Addr,
    pub stats: Arc<Stats>,
    rt: Option<tokio::runtime::Runtime>,
    owns_ns: bool,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl TunLink {
    /// Whether a packet-level link can be made here (root, /dev/net/tun, iproute2), and if not,
    /// what is missing.
    pub fn check() -> anyhow::Result<()> {
        if !Command::new("ip")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            bail!("`ip` (iproute2) is not installed");
        }
        File::options()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
            .context(
                "opening /dev/net/tun (the packet-level link needs root and the tun driver)",
            )?;
        Ok(())
    }

    pub fn start(link: Link) -> anyhow::Result<TunLink> {
        Self::start_to(link, None)
    }

    /// A link from this namespace to `ns`, an existing network namespace (kept on drop), or
    /// to a new one of its own.
    pub fn start_to(link: Link, existing: Option<&str>) -> anyhow::Result<TunLink> {
        Self::check()?;
        // A /30 of 10.201.0.0/16 and device names unique to this process and link.
        let n = (std::process::id().wrapping_mul(8) + NEXT.fetch_add(1, Ordering::SeqCst)) % 16_384;
        let (hi, lo) = ((n >> 6) as u8, ((n & 63) * 4) as u8);
        let unit_ip = Ipv4Addr::new(10, 201, hi, lo + 1);
        let officer_ip = Ipv4Addr::new(10, 201, hi, lo + 2);
        let (udev, odev, ns) = (
            format!("rdcu{n}"),
            format!("rdco{n}"),
            existing.map_or_else(|| format!("rdcl-{}-{n}", std::process::id()), str::to_owned),
        );
        let ufd = open_tun(&udev)?;
        let ofd = open_tun(&odev)?;
        if existing.is_none() {
            let _ = ip(&["netns", "del", &ns]);
            ip(&["netns", "add", &ns])?;
        }
        let mut me = TunLink {
            owns_ns: existing.is_none(),
            ns: ns.clone(),
            unit_ip,
            officer_ip,
            stats: Arc::new(Stats::default()),
            rt: None,
        };
        let (u, o) = (unit_ip.to_string(), officer_ip.to_string());
        ip(&["link", "set", &odev, "netns", &ns])?;
        ip(&["addr", "add", &u, "peer", &o, "dev", &udev])?;
        ip(&["link", "set", &udev, "up"])?;
        for args in [
            &["addr", "add", &o, "peer", &u, "dev", &odev][..],
            &["link", "set", &odev, "up"],
            &["link", "set", "lo", "up"],
        ] {
            let mut a = vec!["netns", "exec", &ns, "ip"];
            a.extend_from_slice(args);
            ip(&a)?;
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let (ufd, ofd) = rt
            .block_on(async { anyhow::Ok((Arc::new(register(ufd)?), Arc::new(register(ofd)?))) })?;
        rt.spawn(carry(
            ufd.clone(),
            ofd.clone(),
            Shaper::new(link, false),
            me.stats.clone(),
        ));
        rt.spawn(carry(ofd, ufd, Shaper::new(link, true), me.stats.clone()));
        me.rt = Some(rt);
        Ok(me)
    }

    /// `program` run inside the officer's namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns]).arg(program);
        c
    }

    /// IP bytes both ends sent into the link, including those it lost: what went on the air.
    pub fn bytes(&self) -> u64 {
        self.stats.bytes_offered.load(Ordering::SeqCst)
    }
}

impl Drop for TunLink {
    fn drop(&mut self) {
        // Closing the devices' file descriptors removes them.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
        if self.owns_ns {
            let _ = ip(&["netns", "del", &self.ns]);
        }
    }
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let o = Command::new("ip")
        .args(args)
        .output()
        .context("running ip")?;
    if !o.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    Ok(())
}

/// Opens a new TUN device named `name` (IP packets, no packet information header), non-blocking.
fn open_tun(name: &str) -> anyhow::Result<File> {
    let f = File::options()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/net/tun")
        .context("opening /dev/net/tun")?;
    attach(&f, name).with_context(|| format!("creating the TUN device {name}"))?;
    Ok(f)
}

#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// TUNSETIFF: the one ioctl the link needs, which std does not offer.
#[allow(unsafe_code)]
fn attach(f: &File, name: &str) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short,
        _pad: [0; 22],
    };
    assert!(name.len() < libc::IFNAMSIZ, "device name too long");
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: `req` is a valid `struct ifreq` (name, flags, padding to its full size) that
    // outlives the call, and the fd is open.
    let rc = unsafe { libc::ioctl(f.as_raw_fd(), libc::TUNSETIFF, &mut req as *mut IfReq) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Registers the device with the runtime's reactor.
#[allow(unsafe_code)]
fn register(f: File) -> std::io::Result<AsyncFd<File>> {
    // SAFETY: the `File` owns its descriptor, which stays open for as long as the `AsyncFd`
    // that owns the `File` lives.
    unsafe { AsyncFd::register(f) }.map_err(std::io::Error::from)
}

/// Carries packets from `src` to `dst` through the shaper, each written when it is due.
async fn carry(
    src: Arc<AsyncFd<File>>,
    dst: Arc<AsyncFd<File>>,
    mut shaper: Shaper,
    stats: Arc<Stats>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    tokio::spawn(async move {
        while let Some((due, p)) = rx.recv().await {
            tokio::time::sleep_until(due.into()).await;
            loop {
                let Ok(mut g) = dst.writable().await else {
                    return;
                };
                match g.try_io(|f| f.get_ref().write(&p)) {
                    Ok(_) => break,
                    Err(_would_block) => continue,
                }
            }
        }
    });
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok(mut g) = src.readable().await else {
            return;
        };
        let n = match g.try_io(|f| f.get_ref().read(&mut buf)) {
            Ok(Ok(n)) => n,
            Ok(Err(_)) => return,
            Err(_would_block) => continue,
        };
        note_packet(&buf[..n], &stats);
        if let Some(due) = shaper.admit(n, Instant::now(), &stats)
            && tx.send((due, buf[..n].to_vec())).is_err()
        {
            return;
        }
    }
}

/// Records the largest IP packet offered and every IPv4 fragment (a set more-fragments flag or
/// a non-zero offset): what a tunnel test checks the link never had to do.
fn note_packet(p: &[u8], stats: &Stats) {
    stats.max_packet.fetch_max(p.len() as u64, Ordering::SeqCst);
    if p.len() >= 20 && p[0] >> 4 == 4 {
        let frag = u16::from_be_bytes([p[6], p[7]]);
        if frag & 0x2000 != 0 || frag & 0x1fff != 0 {
            stats.fragments.fetch_add(1, Ordering::SeqCst);
        }
    }
}
