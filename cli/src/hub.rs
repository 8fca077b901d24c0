//! `rdc keys hub`: the scheme's WireGuard hub (R18). Units behind carrier NAT dial out to it;
//! officers reach units' tunnel addresses through it; rdc's QUIC, mutual TLS, roles and audit
//! run inside the tunnel unchanged. The files are the standard ones (wg-quick, nftables), so
//! the scheme's IT runs the hub with stock tools; [`rdc_uplink::vpn::Hub`] writes them.

use rdc_uplink::vpn::{Hub, KeyPair, Net, PeerKind, check_endpoint, check_interface};

use anyhow::{Context as _, anyhow, bail};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

fn paths(dir: &Path, interface: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{interface}.conf")),
        dir.join(format!("{interface}.nft")),
    )
}

/// Writes `path` whole or not at all, with `mode`.
fn replace(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn load(dir: &Path, interface: &str) -> anyhow::Result<Hub> {
    let (conf, _) = paths(dir, interface);
    let text = std::fs::read_to_string(&conf).with_context(|| {
        format!(
            "reading {} (make the hub first: rdc keys hub --dir {} --subnet CIDR --listen PORT --endpoint HOST:PORT)",
            conf.display(),
            dir.display()
        )
    })?;
    let mut hub = Hub::parse(&text).map_err(|e| anyhow!("{}: {e}", conf.display()))?;
    hub.interface = interface.to_owned();
    Ok(hub)
}

fn save(dir: &Path, hub: &Hub) -> anyhow::Result<()> {
    let (conf, nft) = paths(dir, &hub.interface);
    let abs_nft = std::path::absolute(&nft).unwrap_or(nft.clone());
    replace(&nft, &hub.nft(), 0o644)?;
    replace(&conf, &hub.render(&abs_nft), 0o600)?;
    Ok(())
}

/// Puts the files' peers and rules into the running hub, leaving its sessions alone: what
/// `wg syncconf NAME <(wg-quick strip FILE)` and `nft -f` do.
fn apply(dir: &Path, interface: &str) -> anyhow::Result<()> {
    let (conf, nft) = paths(dir, interface);
    let run = |c: &mut std::process::Command| -> anyhow::Result<Vec<u8>> {
        let o = c
            .output()
            .with_context(|| format!("running {c:?} (is wireguard-tools installed?)"))?;
        if !o.status.success() {
            bail!(
                "{c:?} failed: {} (is the hub up: systemctl status wg-quick@{interface}?)",
                String::from_utf8_lossy(&o.stderr).trim()
            );
        }
        Ok(o.stdout)
    };
    let stripped = run(std::process::Command::new("wg-quick")
        .arg("strip")
        .arg(&conf))?;
    let tmp = dir.join(format!(".{interface}.sync"));
    replace(&tmp, &String::from_utf8_lossy(&stripped), 0o600)?;
    let synced = run(std::process::Command::new("wg")
        .args(["syncconf", interface])
        .arg(&tmp));
    let _ = std::fs::remove_file(&tmp);
    synced?;
    run(std::process::Command::new("nft").arg("-f").arg(&nft))?;
    eprintln!("applied to the running hub {interface}");
    Ok(())
}

fn apply_hint(dir: &Path, interface: &str) {
    eprintln!(
        "on a running hub, apply it: wg syncconf {interface} <(wg-quick strip {0}) && nft -f {1}",
        paths(dir, interface).0.display(),
        paths(dir, interface).1.display()
    );
}

pub(crate) fn hub(
    cmd: Option<HubCmd>,
    dir: &Path,
    interface: &str,
    subnet: Option<String>,
    listen: Option<u16>,
    endpoint: Option<String>,
) -> anyhow::Result<()> {
    check_interface(interface).map_err(|e| anyhow!("--interface {e}"))?;
    match cmd {
        None => {
            let (Some(subnet), Some(listen)) = (subnet, listen) else {
                bail!(
                    "give --subnet CIDR and --listen PORT to make the hub (or add-unit / add-officer to extend it)"
                );
            };
            let subnet = Net::parse(&subnet).map_err(|e| anyhow!("--subnet {e}"))?;
            let endpoint = endpoint.unwrap_or_else(|| format!("HUB-ADDRESS:{listen}"));
            if !endpoint.starts_with("HUB-ADDRESS:") {
                check_endpoint(&endpoint).map_err(|e| anyhow!("--endpoint {e}"))?;
            }
            if listen == 0 {
                bail!("--listen 0: give the fixed UDP port units dial, e.g. 51820");
            }
            let (conf, nft) = paths(dir, interface);
            if conf.exists() {
                bail!(
                    "{} exists: this hub is made already (extend it with add-unit or add-officer)",
                    conf.display()
                );
            }
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            let hub = Hub {
                interface: interface.to_owned(),
                subnet,
                listen_port: listen,
                endpoint,
                private_key: KeyPair::generate()?.private,
                peers: Vec::new(),
            };
            save(dir, &hub)?;
            outln!("{}", hub.public_key()?);
            eprintln!(
                "hub {interface}: {} (mode 600, holds the hub's key) and {}\nsubnet {} (the hub is {}); units dial UDP {listen}\nthe hub's public key is printed above: engineers give it to `rdc-recorder init --vpn-hub-key`\nrun it: systemctl enable --now wg-quick@{interface}  (with the files in /etc/wireguard)",
                conf.display(),
                nft.display(),
                hub.subnet,
                hub.subnet.hub()
            );
        }
        Some(HubCmd::AddUnit {
            name,
            public_key,
            address,
            apply: now,
        }) => {
            let mut hub = load(dir, interface)?;
            let a = hub.add(PeerKind::Unit, &name, &public_key, address)?;
            save(dir, &hub)?;
            outln!("{a}");
            eprintln!(
                "unit {name}: {a} in {}; in officers' units.toml its address is \"{a}:4433\" (the uplink's port)",
                paths(dir, interface).0.display()
            );
            if now {
                apply(dir, interface)?;
            } else {
                apply_hint(dir, interface);
            }
        }
        Some(HubCmd::AddOfficer {
            name,
            public_key,
            address,
            out,
            apply: now,
        }) => {
            let mut hub = load(dir, interface)?;
            let made = match &public_key {
                Some(_) => None,
                None => Some(KeyPair::generate()?),
            };
            let key = public_key
                .clone()
                .or_else(|| made.as_ref().map(|k| k.public.clone()))
                .expect("one");
            if made.is_some() && hub.endpoint.starts_with("HUB-ADDRESS:") {
                bail!(
                    "the hub was made without --endpoint, so an officer's file cannot say where to dial: edit the `# rdc-hub … endpoint=` line of {}",
                    paths(dir, interface).0.display()
                );
            }
            let a = hub.add(PeerKind::Officer, &name, &key, address)?;
            if let Some(k) = &made {
                let out = out.unwrap_or_else(|| PathBuf::from(format!("{name}.conf")));
                replace(&out, &hub.officer_conf(&k.private, a)?, 0o600)
                    .with_context(|| format!("the officer's file {}", out.display()))?;
                eprintln!(
                    "officer {name}: {a}; their WireGuard file {} (mode 600: it holds their key; hand it over privately; `wg-quick up` it on their machine)",
                    out.display()
                );
            } else {
                eprintln!(
                    "officer {name}: {a} (Address = {a}/{} on their machine)",
                    hub.subnet.prefix
                );
            }
            save(dir, &hub)?;
            outln!("{a}");
            if now {
                apply(dir, interface)?;
            } else {
                apply_hint(dir, interface);
            }
        }
    }
    Ok(())
}

#[derive(clap::Subcommand, Debug)]
pub(crate) enum HubCmd {
    /// A unit, with the key and address `rdc-recorder init --vpn-*` printed on it.
    AddUnit {
        /// The person's name, as their certificate and the audit log will carry it.
        #[arg(long)]
        name: String,
        /// The WireGuard public key it printed.
        #[arg(long)]
        public_key: String,
        /// The unit's tunnel address (as given to init); the lowest free one when absent.
        #[arg(long)]
        address: Option<std::net::Ipv4Addr>,
        /// Apply it to the running hub at once (`wg syncconf` and `nft -f`; as root, on the hub).
        #[arg(long)]
        apply: bool,
    },
    /// An officer's machine. Without --public-key, makes its key pair and writes the officer's
    /// wg-quick file to --out (mode 600) to hand over.
    AddOfficer {
        /// The person's name, as their certificate and the audit log will carry it.
        #[arg(long)]
        name: String,
        /// The key `wg pubkey` printed on the officer's machine.
        #[arg(long, conflicts_with = "out")]
        public_key: Option<String>,
        /// The officer's tunnel address (e.g. 10.77.255.3); the lowest free one when absent.
        #[arg(long)]
        address: Option<std::net::Ipv4Addr>,
        /// Where the officer's configuration goes (default: ./<name>.conf).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Apply it to the running hub at once (`wg syncconf` and `nft -f`; as root, on the hub).
        #[arg(long)]
        apply: bool,
    },
}
