//! `rdc-recorder init`: the unit's identity, made on the unit so its private keys never leave
//! it (R11): the Ed25519 key that signs manifests and logs, the TLS key of the uplink, and a
//! certificate request that `rdc keys sign-unit` turns into the unit's certificate on the
//! scheme's machine.

use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// What `init` made or found.
#[derive(Debug)]
pub struct Made {
    pub signing_key: PathBuf,
    pub tls_key: PathBuf,
    pub request: PathBuf,
    pub public_key: String,
    pub created: Vec<PathBuf>,
}

/// The uid and gid of `user` from /etc/passwd, if it exists.
fn account(user: &str) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 3 && f[0] == user).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

fn private(p: &Path, owner: Option<(u32, u32)>) -> anyhow::Result<()> {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod 600 {}", p.display()))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(p, Some(uid), Some(gid))
            .with_context(|| format!("chown {} to the service's user", p.display()))?;
    }
    Ok(())
}

/// Refuses a configuration that holds sample keys or default credentials (R11). Its other
/// problems are expected while a unit is being set up (its certificate is not issued yet) and
/// are left to `check-config`.
pub fn refuse_samples(config: &Path) -> anyhow::Result<()> {
    let Err(e) = rdc_config::Config::load(config) else {
        return Ok(());
    };
    let bad: Vec<String> = e
        .problems()
        .iter()
        .filter(|p| p.is_sample_or_default())
        .map(|p| format!("  - {p}"))
        .collect();
    if bad.is_empty() {
        return Ok(());
    }
    bail!(
        "{} holds sample keys or default credentials; nothing was created:\n{}",
        config.display(),
        bad.join("\n")
    )
}

/// The id the keys in `dir` were made for: its `unit-id` file, or for a folder made before
/// that file, the name in its certificate request. None for a folder without keys.
fn keys_made_for(dir: &Path) -> anyhow::Result<Option<String>> {
    match std::fs::read_to_string(dir.join(UNIT_ID_FILE)) {
        Ok(id) => return Ok(Some(id.trim().to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => bail!("reading {}: {e}", dir.join(UNIT_ID_FILE).display()),
    }
    if !dir.join("uplink.key").exists() && !dir.join("unit-signing-key.p8").exists() {
        return Ok(None);
    }
    match std::fs::read_to_string(dir.join("uplink.csr")) {
        Ok(pem) => Ok(rdc_uplink::pki::request_unit(&pem).ok()),
        Err(_) => Ok(None),
    }
}

/// The file in the keys folder that names the unit they belong to.
const UNIT_ID_FILE: &str = "unit-id";
/// The keys folder's record of renames (time, old id, new id), appended.
const RENAMES_FILE: &str = "renames.log";

/// Creates what is missing in `dir` for unit `id`; keeps existing keys (a new request is made
/// for the same TLS key). Files are mode 600, owned by `user` when that account exists.
///
/// Keys made for another unit are refused: a unit that silently took over unit-0001's keys
/// under another name would sign as both. `rename` says the unit is being renamed on purpose;
/// the rename is recorded in the folder's `renames.log` and said on standard error.
pub fn init(id: &str, dir: &Path, user: &str, rename: bool) -> anyhow::Result<Made> {
    rdc_config::Id::parse(id).map_err(|m| anyhow::anyhow!("--id {id:?}: {m}"))?;
    let previous = keys_made_for(dir)?;
    if let Some(old) = previous.as_deref().filter(|old| *old != id) {
        if !rename {
            bail!(
                "{} holds the keys of unit {old}, not {id}: nothing was changed. To make a new unit, give another --dir; to rename unit {old} to {id} (its keys and signed history go with it), run again with --rename",
                dir.display()
            );
        }
        let line = format!(
            "{} renamed unit {old} to {id}\n",
            rdc_format::time::rfc3339(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as i64)
            )
        );
        let p = dir.join(RENAMES_FILE);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .with_context(|| format!("opening {}", p.display()))?;
        std::io::Write::write_all(&mut f, line.as_bytes())?;
        f.sync_all()?;
        eprintln!("renaming unit {old} to {id}: recorded in {}", p.display());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let owner = account(user);
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(dir, Some(uid), Some(gid))
            .with_context(|| format!("chown {}", dir.display()))?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let mut created = Vec::new();
    let signing_key = dir.join("unit-signing-key.p8");
    if !signing_key.exists() {
        created.push(signing_key.clone());
    }
    let key = rdc_storage::UnitKey::load_or_create(&signing_key)
        .with_context(|| format!("the signing key {}", signing_key.display()))?;
    private(&signing_key, owner)?;
    let tls_key = dir.join("uplink.key");
    let existing = match std::fs::read_to_string(&tls_key) {
        Ok(pem) => Some(pem),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => bail!("reading {}: {e}", tls_key.display()),
    };
    let req = rdc_uplink::pki::unit_request(id, existing.as_deref())
        .context("making the uplink key and its certificate request")?;
    if existing.is_none() {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tls_key)
            .with_context(|| format!("creating {}", tls_key.display()))?;
        std::io::Write::write_all(&mut f, req.key.as_bytes())?;
        f.sync_all()?;
        created.push(tls_key.clone());
    }
    private(&tls_key, owner)?;
    let request = dir.join("uplink.csr");
    std::fs::write(&request, &req.cert)?;
    std::fs::write(dir.join(UNIT_ID_FILE), format!("{id}\n"))?;
    Ok(Made {
        signing_key,
        tls_key,
        request,
        public_key: key.public_hex(),
        created,
    })
}

/// What `init --vpn-*` asks for: the unit's side of its WireGuard tunnel to the scheme's hub.
#[derive(Debug, Clone)]
pub struct VpnOptions {
    pub interface: String,
    /// The hub's public `host:port`.
    pub hub: String,
    pub hub_key: String,
    /// `ADDR/PREFIX`: the unit's tunnel address and the scheme's subnet.
    pub address: String,
    pub keepalive: u16,
    pub mtu: u16,
    /// Where systemd-networkd reads .netdev and .network files.
    pub networkd_dir: PathBuf,
}

/// What `init --vpn-*` wrote.
#[derive(Debug)]
pub struct VpnMade {
    pub tunnel: rdc_uplink::vpn::UnitTunnel,
    pub public_key: String,
    pub netdev: PathBuf,
    pub network: PathBuf,
    /// The key was made now (not kept from an earlier init).
    pub new_key: bool,
    /// The configuration file was changed to listen on the tunnel only.
    pub config_changed: Option<PathBuf>,
}

/// Makes the unit's WireGuard key (kept if it exists: re-running init never changes what the
/// hub knows) and writes the systemd-networkd pair; with `config`, sets the uplink to listen
/// on the tunnel address only.
pub fn vpn(o: &VpnOptions, config: Option<&Path>) -> anyhow::Result<VpnMade> {
    use rdc_uplink::vpn::{KeyPair, Net, UnitTunnel, public_key};
    let net = Net::parse(&o.address).map_err(|e| anyhow::anyhow!("--vpn-address {e}"))?;
    let key_file = o.networkd_dir.join(format!("{}.key", o.interface));
    let tunnel = UnitTunnel {
        interface: o.interface.clone(),
        address: net.addr,
        subnet: net,
        hub_endpoint: o.hub.clone(),
        hub_key: o.hub_key.trim().to_owned(),
        keepalive: o.keepalive,
        mtu: o.mtu,
        private_key_file: key_file.clone(),
    };
    tunnel.check()?;
    std::fs::create_dir_all(&o.networkd_dir)
        .with_context(|| format!("creating {}", o.networkd_dir.display()))?;
    let (public, new_key) = match std::fs::read_to_string(&key_file) {
        Ok(k) => (
            public_key(&k)
                .with_context(|| format!("{} holds no WireGuard key", key_file.display()))?,
            false,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let k = KeyPair::generate()?;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&key_file)
                .with_context(|| format!("creating {}", key_file.display()))?;
            std::io::Write::write_all(&mut f, format!("{}\n", k.private).as_bytes())?;
            f.sync_all()?;
            (k.public, true)
        }
        Err(e) => bail!("reading {}: {e}", key_file.display()),
    };
    // systemd-networkd reads the key as its own user; nobody else may.
    private(&key_file, account("systemd-network"))?;
    let netdev = o.networkd_dir.join(format!("60-{}.netdev", o.interface));
    let network = o.networkd_dir.join(format!("60-{}.network", o.interface));
    for (p, text) in [(&netdev, tunnel.netdev()), (&network, tunnel.network())] {
        let tmp = p.with_extension("tmp");
        std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))?;
        std::fs::rename(&tmp, p).with_context(|| format!("writing {}", p.display()))?;
    }
    let config_changed = match config {
        Some(c) => listen_on_tunnel(c, &tunnel)?.then(|| c.to_owned()),
        None => None,
    };
    Ok(VpnMade {
        tunnel,
        public_key: public,
        netdev,
        network,
        new_key,
        config_changed,
    })
}

/// Sets `[uplink] listen` to the tunnel address (keeping the port) and `[uplink.vpn]`, keeping
/// the file's comments. False when the file has no [uplink] yet.
fn listen_on_tunnel(config: &Path, t: &rdc_uplink::vpn::UnitTunnel) -> anyhow::Result<bool> {
    let text =
        std::fs::read_to_string(config).with_context(|| format!("reading {}", config.display()))?;
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .with_context(|| format!("{} is not valid TOML", config.display()))?;
    let Some(uplink) = doc.get_mut("uplink").and_then(|u| u.as_table_mut()) else {
        return Ok(false);
    };
    let port = uplink
        .get("listen")
        .and_then(|l| l.as_str())
        .and_then(|l| l.parse::<std::net::SocketAddr>().ok())
        .map_or(4433, |a| a.port());
    uplink["listen"] = toml_edit::value(format!("{}:{port}", t.address));
    let mut vpn = toml_edit::Table::new();
    vpn["interface"] = toml_edit::value(t.interface.clone());
    uplink["vpn"] = toml_edit::Item::Table(vpn);
    let tmp = config.with_extension("toml.tmp");
    std::fs::write(&tmp, doc.to_string())?;
    if let Ok(m) = std::fs::metadata(config) {
        std::fs::set_permissions(&tmp, m.permissions())?;
    }
    std::fs::rename(&tmp, config)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vpn_keeps_its_key_and_points_the_uplink_at_the_tunnel() {
        let d = tempfile::tempdir().unwrap();
        let config = d.path().join("recorder.toml");
        std::fs::write(
            &config,
            "# the unit\n[uplink]\nlisten = \"0.0.0.0:4500\" # all addresses\ncert = \"/x\"\n",
        )
        .unwrap();
        let o = VpnOptions {
            interface: "rdc-vpn".into(),
            hub: "hub.example.org:51820".into(),
            hub_key: rdc_uplink::vpn::KeyPair::generate().unwrap().public,
            address: "10.77.1.7/16".into(),
            keepalive: 25,
            mtu: 1420,
            networkd_dir: d.path().join("network"),
        };
        let first = vpn(&o, Some(&config)).unwrap();
        assert!(first.new_key);
        let mode = std::fs::metadata(&first.tunnel.private_key_file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = vpn(&o, Some(&config)).unwrap();
        assert!(!again.new_key);
        assert_eq!(
            again.public_key, first.public_key,
            "init again changed the unit's key"
        );
        let text = std::fs::read_to_string(&config).unwrap();
        assert!(text.contains("listen = \"10.77.1.7:4500\""), "{text}");
        assert!(
            text.contains("[uplink.vpn]\ninterface = \"rdc-vpn\""),
            "{text}"
        );
        assert!(text.starts_with("# the unit\n"), "comments lost: {text}");
        let netdev = std::fs::read_to_string(&first.netdev).unwrap();
        assert!(netdev.contains("AllowedIPs=10.77.0.0/16\n"), "{netdev}");
        assert!(netdev.contains("PersistentKeepalive=25\n"));
        let bad = VpnOptions {
            address: "10.77.0.1/16".into(),
            ..o.clone()
        };
        let e = vpn(&bad, None).unwrap_err().to_string();
        assert!(e.contains("--vpn-address"), "{e}");
    }
}
