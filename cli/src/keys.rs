//! `rdc keys`: the scheme's CA, units' and people's certificates, revocation, age identities.

use anyhow::{Context as _, anyhow, bail};
use rdc_uplink::pki::{self, Kind, Pem};
use rdc_uplink::tls::Identity;

use crate::hub::HubCmd;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

pub(crate) fn write_private(path: &Path, data: &str) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))?;
    f.write_all(data.as_bytes())?;
    Ok(())
}

pub(crate) fn read_pem(dir: &Path, name: &str) -> anyhow::Result<Pem> {
    let cert = std::fs::read_to_string(dir.join(format!("{name}.crt")))
        .with_context(|| format!("reading {}/{name}.crt", dir.display()))?;
    let key = std::fs::read_to_string(dir.join(format!("{name}.key")))
        .with_context(|| format!("reading {}/{name}.key", dir.display()))?;
    Ok(Pem { cert, key })
}

pub(crate) fn keys(cmd: KeysCmd) -> anyhow::Result<()> {
    match cmd {
        KeysCmd::Ca { scheme, dir } => {
            std::fs::create_dir_all(&dir)?;
            let ca = pki::new_ca(&scheme, 3650)?;
            write_private(&dir.join("ca.key"), &ca.key)?;
            std::fs::write(dir.join("ca.crt"), &ca.cert)?;
            outln!(
                "scheme CA for {scheme:?}: {}/ca.crt (install on units and officers' machines); ca.key stays offline",
                dir.display()
            );
        }
        KeysCmd::Unit {
            ca_dir,
            id,
            dir,
            days,
        } => {
            rdc_config::Id::parse(&id).map_err(|m| anyhow!("--id {id:?}: {m}"))?;
            if !(1..=3650).contains(&days) {
                bail!("--days {days}: from 1 to 3650");
            }
            let ca = read_pem(&ca_dir, "ca")?;
            let p = pki::issue(&ca, &id, Kind::Unit, days)?;
            std::fs::create_dir_all(&dir)?;
            write_private(&dir.join(format!("{id}.key")), &p.key)?;
            std::fs::write(dir.join(format!("{id}.crt")), &p.cert)?;
            outln!(
                "unit {id}: {0}/{id}.crt and {0}/{id}.key (for [uplink] cert and key_file/key_credential)",
                dir.display()
            );
        }
        KeysCmd::SignUnit {
            ca_dir,
            csr,
            dir,
            days,
        } => {
            if !(1..=3650).contains(&days) {
                bail!("--days {days}: from 1 to 3650");
            }
            let ca = read_pem(&ca_dir, "ca")?;
            let req = std::fs::read_to_string(&csr)
                .with_context(|| format!("reading the unit's request {}", csr.display()))?;
            let (id, cert) = pki::sign_request(&ca, &req, days).with_context(|| {
                format!("{} is not a unit's certificate request", csr.display())
            })?;
            rdc_config::Id::parse(&id).map_err(|m| {
                anyhow!("the request names the unit {id:?}, not a valid unit id: {m}")
            })?;
            std::fs::create_dir_all(&dir)?;
            let out = dir.join(format!("{id}.crt"));
            std::fs::write(&out, cert)?;
            outln!(
                "unit {id}: {} (valid {days} days); install it on the unit with {}/ca.crt as [uplink] cert and ca",
                out.display(),
                ca_dir.display()
            );
        }
        KeysCmd::User {
            ca_dir,
            name,
            role,
            dir,
        } => {
            let ca = read_pem(&ca_dir, "ca")?;
            let p = pki::issue(&ca, &name, Kind::User, 730)?;
            std::fs::create_dir_all(&dir)?;
            write_private(&dir.join(format!("{name}.key")), &p.key)?;
            std::fs::write(dir.join(format!("{name}.crt")), &p.cert)?;
            let der = Identity::from_pem(&p.cert, &p.key)?.chain[0].to_vec();
            outln!(
                "# add to each unit's recorder.toml:\n[[uplink.user]]\nname = {name:?}\nrole = {role:?}\nfingerprint = \"{}\"",
                pki::fingerprint_text(&der)
            );
        }
        KeysCmd::Revoke { ca_dir, crl, certs } => {
            use rdc_uplink::tls::{cert_der, crl_der};
            let ca = read_pem(&ca_dir, "ca")?;
            let previous = match std::fs::read_to_string(&crl) {
                Ok(pem) => Some(
                    crl_der(&pem).with_context(|| format!("{} is not a PEM CRL", crl.display()))?,
                ),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(e).with_context(|| format!("reading {}", crl.display())),
            };
            let mut ders = Vec::new();
            for c in &certs {
                let pem = std::fs::read_to_string(c)
                    .with_context(|| format!("reading {}", c.display()))?;
                ders.push(
                    cert_der(&pem)
                        .with_context(|| format!("{} is not a PEM certificate", c.display()))?,
                );
            }
            let out = pki::revoke(&ca, &ders, previous.as_deref())?;
            std::fs::write(&crl, out)?;
            outln!(
                "{}: {} certificate(s) revoked now; copy it to every unit ([uplink] crl) and restart the recorder",
                crl.display(),
                certs.len()
            );
        }
        KeysCmd::Hub {
            cmd,
            dir,
            interface,
            subnet,
            listen,
            endpoint,
        } => crate::hub::hub(cmd, &dir, &interface, subnet, listen, endpoint)?,
        KeysCmd::Identity { out } => {
            use age::secrecy::ExposeSecret as _;
            let id = age::x25519::Identity::generate();
            let public = id.to_public().to_string();
            write_private(
                &out,
                &format!(
                    "# created by rdc keys identity\n# public key: {public}\n{}\n",
                    id.to_string().expose_secret()
                ),
            )?;
            outln!("{public}");
        }
    }
    Ok(())
}

/// An officer's age identity, which a job on another thread may hold.
pub(crate) type AgeIdentity = Box<dyn age::Identity + Send + Sync>;

/// The X25519 identities (`AGE-SECRET-KEY-1…` lines, as `rdc keys identity` and `age-keygen`
/// write them) of an age identity file.
pub(crate) fn read_identities(p: &Path) -> anyhow::Result<Vec<AgeIdentity>> {
    let text = std::fs::read_to_string(p)
        .with_context(|| format!("reading the age identity {}", p.display()))?;
    let mut ids: Vec<AgeIdentity> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let id: age::x25519::Identity = line.parse().map_err(|e| {
            anyhow!(
                "{} line {}: not an age X25519 identity (AGE-SECRET-KEY-1…): {e}",
                p.display(),
                n + 1
            )
        })?;
        ids.push(Box::new(id));
    }
    if ids.is_empty() {
        bail!("{} holds no age identity", p.display());
    }
    Ok(ids)
}

#[derive(clap::Subcommand, Debug)]
pub(crate) enum KeysCmd {
    /// A new scheme CA: <dir>/ca.crt and <dir>/ca.key (keep ca.key offline).
    Ca {
        /// The scheme's name, as its certificates will carry it.
        #[arg(long)]
        scheme: String,
        /// The folder the keys and certificates are written to.
        #[arg(long)]
        dir: PathBuf,
    },
    /// A unit's certificate: <dir>/<id>.crt and .key, for the unit's [uplink].
    Unit {
        /// The scheme CA's folder (from `rdc keys ca`).
        #[arg(long)]
        ca_dir: PathBuf,
        /// The unit's id, as officers will name it.
        #[arg(long)]
        id: String,
        /// The folder the keys and certificates are written to.
        #[arg(long)]
        dir: PathBuf,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = 1095)]
        days: i64,
    },
    /// A unit's certificate from the request `rdc-recorder init` made on the unit (its key
    /// never leaves it): <dir>/<id>.crt.
    SignUnit {
        /// The scheme CA's folder (from `rdc keys ca`).
        #[arg(long)]
        ca_dir: PathBuf,
        /// The unit's request (uplink.csr).
        #[arg(long)]
        csr: PathBuf,
        /// The folder the keys and certificates are written to.
        #[arg(long)]
        dir: PathBuf,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = 1095)]
        days: i64,
    },
    /// A person's certificate: <dir>/<name>.crt and .key; prints the line for units' configs.
    User {
        /// The scheme CA's folder (from `rdc keys ca`).
        #[arg(long)]
        ca_dir: PathBuf,
        /// The person's name, as their certificate and the audit log will carry it.
        #[arg(long)]
        name: String,
        /// The role the unit should give them: officer, manager, engineer or auditor.
        #[arg(long, default_value = "officer")]
        role: String,
        /// The folder the keys and certificates are written to.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Revoke certificates: writes the scheme's CRL (adding to it if it exists). Install it on
    /// every unit as [uplink] crl.
    Revoke {
        /// The scheme CA's folder (from `rdc keys ca`).
        #[arg(long)]
        ca_dir: PathBuf,
        /// The CRL file to create or extend.
        #[arg(long)]
        crl: PathBuf,
        /// Certificates (PEM files) to revoke.
        #[arg(required = true)]
        certs: Vec<PathBuf>,
    },
    /// An officer's age identity (standard age format); prints its public key (a recipient).
    Identity {
        /// Where the file is written.
        #[arg(long)]
        out: PathBuf,
    },
    /// The scheme's WireGuard hub for units behind carrier NAT: writes <dir>/<interface>.conf
    /// (standard wg-quick) and <interface>.nft (officers reach units; units reach nobody).
    /// `add-unit` and `add-officer` extend them.
    Hub {
        #[command(subcommand)]
        cmd: Option<HubCmd>,
        /// Where the hub's files are (on the hub: /etc/wireguard).
        #[arg(long, global = true, default_value = "/etc/wireguard")]
        dir: PathBuf,
        /// The hub's WireGuard interface (and its files' name).
        #[arg(long, global = true, default_value = "rdc-hub")]
        interface: String,
        /// The scheme's tunnel subnet; the hub takes its first address.
        #[arg(long, value_name = "CIDR")]
        subnet: Option<String>,
        /// The hub's UDP port.
        #[arg(long, value_name = "PORT")]
        listen: Option<u16>,
        /// The hub's public name or address and port, as units and officers dial it.
        #[arg(long, value_name = "HOST:PORT")]
        endpoint: Option<String>,
    },
}

/// Who signs what a person makes (a bundle, a still, a disclosure): their certificate and key
/// from the units file, and the scheme's CA.
pub(crate) struct Signer {
    pub(crate) who: rdc_format::export::Exporter,
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
    pub(crate) ca_pem: String,
    pub(crate) ca_path: PathBuf,
}

impl Signer {
    /// The signer a units file's entry names; refused before anything is fetched if the key
    /// cannot sign (`what` says what it was to sign).
    pub(crate) fn from_entry(
        entry: &crate::units::UnitEntry,
        what: &str,
    ) -> anyhow::Result<Signer> {
        let cert_pem = std::fs::read_to_string(&entry.cert)
            .with_context(|| format!("reading your certificate {}", entry.cert.display()))?;
        let key_pem = std::fs::read_to_string(&entry.key)
            .with_context(|| format!("reading your key {}", entry.key.display()))?;
        let ca_pem = std::fs::read_to_string(&entry.ca)
            .with_context(|| format!("reading the scheme CA {}", entry.ca.display()))?;
        let der = rdc_uplink::tls::cert_der(&cert_pem)
            .ok_or_else(|| anyhow!("{} holds no certificate", entry.cert.display()))?;
        pki::sign(&key_pem, b"rdc").with_context(|| format!("your key cannot sign {what}"))?;
        Ok(Signer {
            who: rdc_format::export::Exporter {
                name: pki::common_name(&der).unwrap_or_else(|| "(no name)".into()),
                fingerprint: pki::fingerprint_text(&der),
                certificate: cert_pem.clone(),
            },
            cert_pem,
            key_pem,
            ca_pem,
            ca_path: entry.ca.clone(),
        })
    }
}
