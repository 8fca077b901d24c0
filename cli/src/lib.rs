//! `rdc`: the tool with which the scheme's people reach units over their 4G links.
//!
//! `rdc keys` makes the scheme's CA, units' and users' certificates and officers' age
//! identities. `rdc status|list|fetch|audit` talk to a unit named in the units file. `fetch`
//! resumes after a dropped link, checks every segment against the unit's signed manifest, and
//! decrypts it with the officer's age identity on this machine.
//!
//! Exit codes: 0 success, 1 the unit refused or a check failed, 2 anything else.

#![forbid(unsafe_code)]

use std::io::{IsTerminal as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use clap::{Parser, Subcommand};
use rdc_config::Id;
use rdc_storage::chainlog::{self, Entry};
use rdc_storage::{Manifest, SegmentEntry};
use rdc_uplink::client::{Client, ClientError};
use rdc_uplink::pki::{self, Kind, Pem};
use rdc_uplink::protocol::{Justification, Purpose, Request};
use rdc_uplink::tls::{self, Identity};

pub mod progress;
use progress::{Counting, Progress};

#[derive(Parser, Debug)]
#[command(
    name = "rdc",
    version,
    about = "Reach redeployable CCTV units: status, list, fetch, audit"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Debug)]
struct Target {
    /// The unit, as named in the units file.
    #[arg(long, short)]
    unit: String,
    /// The units file (default: $XDG_CONFIG_HOME/rdc/units.toml or ~/.config/rdc/units.toml).
    #[arg(long)]
    units: Option<PathBuf>,
}

#[derive(clap::Args, Debug, Clone)]
struct Why {
    /// Why the footage is accessed: view, export or still.
    #[arg(long, default_value = "view")]
    purpose: String,
    /// The case reference (required for footage).
    #[arg(long = "case")]
    case_ref: String,
    /// The reason (required for footage).
    #[arg(long)]
    reason: String,
}

impl Why {
    fn justification(&self) -> anyhow::Result<Justification> {
        let purpose = match self.purpose.as_str() {
            "view" => Purpose::View,
            "export" => Purpose::Export,
            "still" => Purpose::Still,
            p => bail!("--purpose {p:?}: use view, export or still"),
        };
        Ok(Justification {
            purpose,
            case_ref: self.case_ref.clone(),
            reason: self.reason.clone(),
        })
    }
}

/// Which footage, and why.
#[derive(clap::Args, Debug)]
struct Footage {
    /// The camera's id (a-z, 0-9, '-', '_').
    #[arg(long)]
    camera: Id,
    /// Start: RFC 3339 UTC (2026-11-23T18:00:00Z), or now-10m, now-2h, now-1d.
    #[arg(long, default_value = "now-1h")]
    from: String,
    #[arg(long, default_value = "now")]
    to: String,
    #[command(flatten)]
    why: Why,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Make the scheme's keys and certificates.
    Keys {
        #[command(subcommand)]
        cmd: KeysCmd,
    },
    /// The unit's cameras, storage, clock and the days of footage its disk really holds.
    Status {
        #[command(flatten)]
        target: Target,
    },
    /// Segments of a camera in a time range.
    List {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        footage: Footage,
    },
    /// Fetch, verify and decrypt the segments of a camera in a time range.
    Fetch {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        footage: Footage,
        /// The officer's age identity (AGE-SECRET-KEY-…) that decrypts the footage.
        #[arg(long)]
        identity: Option<PathBuf>,
        /// Where the segments go (`<camera>/<file>.age` and, decrypted, `.ts`).
        #[arg(long, short, default_value = ".")]
        out: PathBuf,
    },
    /// Holds on footage (managers): keep footage past retention for a case.
    Holds {
        #[command(flatten)]
        target: Target,
        #[command(subcommand)]
        cmd: HoldsCmd,
    },
    /// The unit's audit log (managers and auditors), checked: every entry signed by the unit,
    /// the chain unbroken, and still containing the newest entry seen last time (kept in
    /// $XDG_STATE_HOME/rdc/audit-anchors.json), so a truncated or rewritten log is noticed.
    Audit {
        #[command(flatten)]
        target: Target,
        /// Print entries from this sequence number on (all are still checked).
        #[arg(long, default_value_t = 0)]
        from_seq: u64,
        /// Accept that the unit's signing key changed since last time (a re-provisioned unit).
        #[arg(long)]
        accept_new_key: bool,
    },
}

#[derive(Subcommand, Debug)]
enum HoldsCmd {
    /// Active holds.
    List,
    /// Hold footage of some cameras (all if none given) in a time range.
    Create {
        #[arg(long = "camera")]
        cameras: Vec<Id>,
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        #[arg(long = "case")]
        case_ref: String,
        #[arg(long)]
        reason: String,
        /// When the hold must be reviewed (at most a year ahead), e.g. 2027-05-01T00:00:00Z.
        #[arg(long)]
        review: String,
    },
    /// Release a hold; its footage then follows normal retention.
    Release {
        id: u64,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand, Debug)]
enum KeysCmd {
    /// A new scheme CA: <dir>/ca.crt and <dir>/ca.key (keep ca.key offline).
    Ca {
        #[arg(long)]
        scheme: String,
        #[arg(long)]
        dir: PathBuf,
    },
    /// A unit's certificate: <dir>/<id>.crt and .key, for the unit's [uplink].
    Unit {
        #[arg(long)]
        ca_dir: PathBuf,
        #[arg(long)]
        id: String,
        #[arg(long)]
        dir: PathBuf,
    },
    /// A person's certificate: <dir>/<name>.crt and .key; prints the line for units' configs.
    User {
        #[arg(long)]
        ca_dir: PathBuf,
        #[arg(long)]
        name: String,
        /// The role the unit should give them: officer, manager, engineer or auditor.
        #[arg(long, default_value = "officer")]
        role: String,
        #[arg(long)]
        dir: PathBuf,
    },
    /// Revoke certificates: writes the scheme's CRL (adding to it if it exists). Install it on
    /// every unit as [uplink] crl.
    Revoke {
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
        #[arg(long)]
        out: PathBuf,
    },
}

/// The whole program; the `rdc` binary calls this.
pub fn main() -> ExitCode {
    main_from(std::env::args_os())
}

/// The program with these arguments (the first is the program's name).
pub fn main_from(args: impl IntoIterator<Item = std::ffi::OsString>) -> ExitCode {
    let cli = Cli::parse_from(args);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rdc: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rdc: {e:#}");
            ExitCode::from(exit_code(&e))
        }
    }
}

/// A check on what the unit sent failed: the footage or log is not what the unit signed.
#[derive(Debug, thiserror::Error)]
#[error("check failed: {0}")]
struct CheckFailed(String);

macro_rules! check_failed {
    ($($arg:tt)*) => {
        return Err(CheckFailed(format!($($arg)*)).into())
    };
}

/// 1 when the unit refused or a check failed (the officer must act), 2 for anything else.
fn exit_code(e: &anyhow::Error) -> u8 {
    let refused_or_failed = e.chain().any(|c| {
        c.is::<CheckFailed>()
            || matches!(
                c.downcast_ref::<ClientError>(),
                Some(ClientError::Refused(_) | ClientError::CertificateRefused { .. })
            )
    });
    if refused_or_failed { 1 } else { 2 }
}

fn write_private(path: &Path, data: &str) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))?;
    f.write_all(data.as_bytes())?;
    Ok(())
}

fn read_pem(dir: &Path, name: &str) -> anyhow::Result<Pem> {
    let cert = std::fs::read_to_string(dir.join(format!("{name}.crt")))
        .with_context(|| format!("reading {}/{name}.crt", dir.display()))?;
    let key = std::fs::read_to_string(dir.join(format!("{name}.key")))
        .with_context(|| format!("reading {}/{name}.key", dir.display()))?;
    Ok(Pem { cert, key })
}

fn keys(cmd: KeysCmd) -> anyhow::Result<()> {
    match cmd {
        KeysCmd::Ca { scheme, dir } => {
            std::fs::create_dir_all(&dir)?;
            let ca = pki::new_ca(&scheme, 3650)?;
            write_private(&dir.join("ca.key"), &ca.key)?;
            std::fs::write(dir.join("ca.crt"), &ca.cert)?;
            println!(
                "scheme CA for {scheme:?}: {}/ca.crt (install on units and officers' machines); ca.key stays offline",
                dir.display()
            );
        }
        KeysCmd::Unit { ca_dir, id, dir } => {
            rdc_config::Id::parse(&id).map_err(|m| anyhow!("--id {id:?}: {m}"))?;
            let ca = read_pem(&ca_dir, "ca")?;
            let p = pki::issue(&ca, &id, Kind::Unit, 1095)?;
            std::fs::create_dir_all(&dir)?;
            write_private(&dir.join(format!("{id}.key")), &p.key)?;
            std::fs::write(dir.join(format!("{id}.crt")), &p.cert)?;
            println!(
                "unit {id}: {0}/{id}.crt and {0}/{id}.key (for [uplink] cert and key_file/key_credential)",
                dir.display()
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
            println!(
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
            println!(
                "{}: {} certificate(s) revoked now; copy it to every unit ([uplink] crl) and restart the recorder",
                crl.display(),
                certs.len()
            );
        }
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
            println!("{public}");
        }
    }
    Ok(())
}

/// How to reach a unit, from the units file.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UnitEntry {
    address: String,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UnitsFile {
    #[serde(default)]
    unit: std::collections::BTreeMap<String, UnitEntry>,
}

/// For the fuzz targets: parses a units file, says whether it is valid. Not an API.
#[doc(hidden)]
pub fn fuzz_units_file(text: &str) -> bool {
    parse_units(text).is_ok()
}

/// Parses a units file: `[unit.NAME]` sections with `address`, `ca`, `cert`, `key`.
fn parse_units(text: &str) -> Result<UnitsFile, toml::de::Error> {
    toml::from_str(text)
}

fn units_path(t: &Target) -> PathBuf {
    t.units.clone().unwrap_or_else(|| {
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".config")
            });
        base.join("rdc/units.toml")
    })
}

async fn connect(t: &Target) -> anyhow::Result<Client> {
    let path = units_path(t);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the units file {}", path.display()))?;
    let file = parse_units(&text)
        .with_context(|| format!("{} is not a valid units file", path.display()))?;
    let u = file.unit.get(&t.unit).ok_or_else(|| {
        anyhow!(
            "no unit {:?} in {}: add a [unit.{}] section",
            t.unit,
            path.display(),
            t.unit
        )
    })?;
    let addr = tokio::net::lookup_host(&u.address)
        .await
        .with_context(|| format!("unit {}: cannot resolve {}", t.unit, u.address))?
        .next()
        .ok_or_else(|| anyhow!("unit {}: {} resolves to nothing", t.unit, u.address))?;
    let id = Identity::from_files(&u.cert, &u.key)?;
    let ca = std::fs::read_to_string(&u.ca)
        .with_context(|| format!("reading the CA certificate {}", u.ca.display()))?;
    let cfg = tls::client_config(&id, &ca)?;
    Ok(Client::connect(addr, &t.unit, cfg).await?)
}

/// Parses `2026-11-23T18:00:00Z` (any RFC 3339 time), `now`, `now-10m`, `now+1d`.
fn parse_time(s: &str) -> anyhow::Result<i64> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as i64;
    if s == "now" {
        return Ok(now);
    }
    if let Some(rest) = s.strip_prefix("now+") {
        return Ok(2 * now - parse_time(&format!("now-{rest}"))?);
    }
    if let Some(rest) = s.strip_prefix("now-") {
        let (num, unit) = rest.split_at(
            rest.find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len()),
        );
        let n: i64 = num
            .parse()
            .with_context(|| format!("{s:?}: write e.g. now-10m"))?;
        let secs = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => bail!("{s:?}: the unit must be s, m, h or d"),
        };
        return Ok(now - n * secs * 1_000_000_000);
    }
    rdc_storage::clock::parse_rfc3339(s).ok_or_else(|| {
        anyhow!("{s:?} is not a time: use RFC 3339 like 2026-11-23T18:00:00Z, or now-10m")
    })
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.cmd {
        Cmd::Keys { cmd } => keys(cmd),
        Cmd::Status { target } => {
            let c = connect(&target).await?;
            let v = c.status().await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(())
        }
        Cmd::Holds { target, cmd } => {
            let c = connect(&target).await?;
            let req = match cmd {
                HoldsCmd::List => Request::HoldList,
                HoldsCmd::Create {
                    cameras,
                    from,
                    to,
                    case_ref,
                    reason,
                    review,
                } => Request::HoldCreate {
                    cameras,
                    from_ns: parse_time(&from)?,
                    to_ns: parse_time(&to)?,
                    case_ref,
                    reason,
                    review_ns: parse_time(&review)?,
                },
                HoldsCmd::Release { id, reason } => Request::HoldRelease { id, reason },
            };
            println!("{}", serde_json::to_string_pretty(&c.call(&req).await?)?);
            Ok(())
        }
        Cmd::Audit {
            target,
            from_seq,
            accept_new_key,
        } => audit(&target, from_seq, accept_new_key).await,
        Cmd::List { target, footage } => {
            let c = connect(&target).await?;
            let entries = list(&c, &footage).await?;
            for e in &entries {
                println!(
                    "{:<8} {:>6}  {} .. {}  {:>10} bytes  {:?}",
                    e.camera,
                    e.seq,
                    rdc_storage::clock::rfc3339(e.start_ns),
                    rdc_storage::clock::rfc3339(e.end_ns),
                    e.bytes,
                    e.ended
                );
            }
            eprintln!("{} segments", entries.len());
            Ok(())
        }
        Cmd::Fetch {
            target,
            footage,
            identity,
            out,
        } => fetch(&target, &footage, identity.as_deref(), &out).await,
    }
}

async fn list(c: &Client, f: &Footage) -> anyhow::Result<Vec<SegmentEntry>> {
    Ok(c.list(
        &f.camera,
        parse_time(&f.from)?,
        parse_time(&f.to)?,
        &f.why.justification()?,
    )
    .await?)
}

/// The local name of a segment: built from numbers only, never from a name the unit sent, so
/// a compromised or impostor unit cannot write outside `--out`.
fn local_stem(seq: u64, start_ns: i64) -> String {
    format!("{seq:010}-{start_ns}")
}

/// Where segment `seq` is fetched to before it is verified.
fn part_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:010}.part"))
}

/// Fetches every segment in the range, resuming, verifying and decrypting.
async fn fetch(
    target: &Target,
    footage: &Footage,
    identity: Option<&Path>,
    out: &Path,
) -> anyhow::Result<()> {
    let camera = &footage.camera;
    let identities = match identity {
        Some(p) => {
            let f = age::IdentityFile::from_file(p.display().to_string())
                .with_context(|| format!("reading the age identity {}", p.display()))?;
            Some(
                f.into_identities()
                    .with_context(|| format!("{} holds no usable age identity", p.display()))?,
            )
        }
        None => None,
    };
    let just = footage.why.justification()?;
    let mut client = connect(target).await?;
    // Round trips cost 60-150 ms on 4G: the status (for the unit's signing key) and the list
    // go together, then the manifests with the first segments' bytes.
    let (status, entries) = tokio::join!(client.status(), list(&client, footage));
    let (status, entries) = (status?, entries?);
    let unit_keys = unit_keys(&status.unit_public_key, &status.retired_keys)?;
    if entries.is_empty() {
        eprintln!("no footage from {camera} in that range");
        return Ok(());
    }
    let (lo, hi) = (
        entries.iter().map(|e| e.seq).min().unwrap_or(0),
        entries.iter().map(|e| e.seq).max().unwrap_or(0) + 1,
    );
    // The camera is an `Id` (checked as the command line was parsed): a plain folder name.
    let dir = out.join(camera.as_str());
    std::fs::create_dir_all(&dir)?;
    let total: u64 = entries.iter().map(|e| e.bytes).sum();
    let progress = Arc::new(Mutex::new(Progress::new(
        camera.as_str(),
        total,
        std::io::stderr().is_terminal(),
    )));
    let bar = || progress.lock().unwrap_or_else(|e| e.into_inner());
    for e in &entries {
        let on_disk = if dir
            .join(format!("{}.age", local_stem(e.seq, e.start_ns)))
            .exists()
        {
            e.bytes
        } else {
            std::fs::metadata(part_path(&dir, e.seq)).map_or(0, |md| md.len())
        };
        bar().resumed(e.seq, on_disk);
    }
    let (manifests, ()) = tokio::join!(
        client.manifests(camera, lo, hi, &just),
        prefetch(&client, camera, &entries, &dir, &just, &progress)
    );
    let manifests: Vec<Entry> = manifests?;
    check_chain(&manifests, &unit_keys, "manifest")?;
    for e in &entries {
        let m = verified_manifest(&manifests, camera, e.seq)?;
        let stem = local_stem(m.seq, m.start_ns);
        let fin = dir.join(format!("{stem}.age"));
        let part = part_path(&dir, m.seq);
        if !(fin.exists() && sha256_file(&fin)? == m.ciphertext_sha256) {
            let mut attempts = 0;
            loop {
                let have = std::fs::metadata(&part).map(|md| md.len()).unwrap_or(0);
                if have >= m.ciphertext_len {
                    break;
                }
                let mut f = open_part(&part, e.seq, &progress).await?;
                let r = client.fetch(camera, e.seq, have, &just, &mut f).await;
                drop(f);
                match r {
                    Ok(_) => {}
                    Err(
                        err @ (ClientError::Refused(_) | ClientError::CertificateRefused { .. }),
                    ) => return Err(err.into()),
                    Err(err) => {
                        attempts += 1;
                        if attempts > 30 {
                            return Err(anyhow!(err)).context(
                                "the link kept dropping; run the same command again to resume",
                            );
                        }
                        let now = std::fs::metadata(&part).map(|md| md.len()).unwrap_or(0);
                        // What was buffered but not written is fetched again.
                        bar().set(e.seq, now);
                        eprintln!(
                            "\nlink dropped at {now} of {} bytes ({err}); resuming",
                            m.ciphertext_len
                        );
                        tokio::time::sleep(Duration::from_secs(1.min(attempts))).await;
                        if let Ok(c) = connect(target).await {
                            client = c;
                        }
                    }
                }
            }
            let got = sha256_file(&part)?;
            if got != m.ciphertext_sha256 {
                std::fs::remove_file(&part)?;
                check_failed!(
                    "segment {} does not match its signed manifest (SHA-256 {got}); it was removed, fetch again",
                    e.seq
                );
            }
            std::fs::rename(&part, &fin)?;
        }
        bar().segment_done(e.seq);
        if let Some(ids) = &identities {
            decrypt(&fin, &dir.join(format!("{stem}.ts")), ids)?;
        }
    }
    bar().finish();
    eprintln!(
        "{} segments from {camera} in {}: verified against the unit's signed manifests{}",
        entries.len(),
        dir.display(),
        if identities.is_some() {
            ", decrypted"
        } else {
            ""
        }
    );
    client.close();
    Ok(())
}

/// The signed manifest of segment `seq` of `camera`, checked to be about that segment.
fn verified_manifest(ms: &[Entry], camera: &Id, seq: u64) -> anyhow::Result<Manifest> {
    let Some(entry) = ms.iter().find(|x| x.body["seq"].as_u64() == Some(seq)) else {
        check_failed!("the unit sent no manifest for segment {seq}");
    };
    let m: Manifest = serde_json::from_value(entry.body.clone()).map_err(|e| {
        CheckFailed(format!(
            "the manifest of segment {seq} is not readable: {e}"
        ))
    })?;
    if m.camera != camera.as_str() || m.seq != seq {
        check_failed!(
            "the manifest sent for {camera}/{seq} describes {}/{}",
            m.camera,
            m.seq
        );
    }
    Ok(m)
}

/// The first pass over the segments not yet on disk, two at a time so that the link does not
/// idle for a round trip between segments. Whatever fails here stays in its `.part` file for the
/// checked, resuming pass that follows.
async fn prefetch(
    client: &Client,
    camera: &Id,
    entries: &[SegmentEntry],
    dir: &Path,
    just: &Justification,
    progress: &Arc<Mutex<Progress>>,
) {
    use futures_util::StreamExt as _;
    futures_util::stream::iter(entries.iter().filter(|e| {
        !dir.join(format!("{}.age", local_stem(e.seq, e.start_ns)))
            .exists()
    }))
    .map(|e| async move {
        let part = part_path(dir, e.seq);
        let have = std::fs::metadata(&part).map_or(0, |md| md.len());
        if have >= e.bytes {
            return;
        }
        let Ok(mut f) = open_part(&part, e.seq, progress).await else {
            return;
        };
        let _ = client.fetch(camera, e.seq, have, just, &mut f).await;
    })
    .buffer_unordered(2)
    .collect::<()>()
    .await;
}

/// Segment `seq`'s `.part` file, open for appending, counting what is written into `progress`.
async fn open_part(
    part: &Path,
    seq: u64,
    progress: &Arc<Mutex<Progress>>,
) -> std::io::Result<Counting<tokio::io::BufWriter<tokio::fs::File>>> {
    let f = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(part)
        .await?;
    Ok(Counting {
        inner: tokio::io::BufWriter::new(f),
        seq,
        progress: progress.clone(),
    })
}

/// Every entry signed by the unit and matching its hash, consecutive, each linked to the one
/// before it.
fn check_chain(es: &[Entry], keys: &[[u8; 32]], what: &str) -> anyhow::Result<()> {
    for (i, e) in es.iter().enumerate() {
        chainlog::verify_entry_by(e, keys).map_err(|m| CheckFailed(format!("{what} {m}")))?;
        if i == 0 {
            continue;
        }
        let p = &es[i - 1];
        if p.seq + 1 != e.seq {
            check_failed!(
                "{what} {} follows {what} {}: the entries between are missing",
                e.seq,
                p.seq
            );
        }
        if p.hash != e.prev {
            check_failed!(
                "{what} {} does not follow {what} {}: the chain is broken",
                e.seq,
                p.seq
            );
        }
    }
    Ok(())
}

/// The unit's signing key and the keys it retired deliberately (hex, from its answers).
fn unit_keys(current: &str, retired: &[String]) -> anyhow::Result<Vec<[u8; 32]>> {
    let mut keys = vec![unit_key(current)?];
    for r in retired {
        keys.push(unit_key(r)?);
    }
    Ok(keys)
}

/// The unit's signing key (hex, from its status or audit answer).
fn unit_key(hex_key: &str) -> anyhow::Result<[u8; 32]> {
    hex::decode(hex_key)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| anyhow!("the unit gave no valid signing key ({hex_key:?})"))
}

/// The newest audit entry seen from a unit: what its log must still contain next time.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Anchor {
    unit_key: String,
    seq: u64,
    hash: String,
    seen: String,
}

fn anchors_path() -> PathBuf {
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".local/state")
        })
        .join("rdc/audit-anchors.json")
}

/// `rdc audit`: fetches the unit's audit log from the last anchor (or `from_seq`, whichever is
/// older), checks it, prints the entries from `from_seq`, and moves the anchor to the newest.
async fn audit(target: &Target, from_seq: u64, accept_new_key: bool) -> anyhow::Result<()> {
    let path = anchors_path();
    let mut anchors: std::collections::BTreeMap<String, Anchor> = match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b)
            .with_context(|| format!("{} is damaged; move it aside", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Default::default(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let c = connect(target).await?;
    // From the anchor on (or `from_seq`, whichever is older). The key comes with the answer;
    // the anchor is checked against it before anything else.
    let anchor = anchors.get(&target.unit).cloned();
    let start = anchor.as_ref().map_or(from_seq, |a| a.seq.min(from_seq));
    let answer = c.audit(start).await?;
    c.close();
    let key = unit_key(&answer.unit_public_key)?;
    let keys = unit_keys(&answer.unit_public_key, &answer.retired_keys)?;
    let key_hex = hex::encode(key);
    let anchor = match anchor {
        Some(a) if a.unit_key != key_hex => {
            if !accept_new_key {
                check_failed!(
                    "unit {} signs with a different key than when you last read its audit log ({}): its store was replaced or the unit re-provisioned. If that is expected, run again with --accept-new-key",
                    target.unit,
                    a.seen
                );
            }
            None
        }
        a => a,
    };
    let entries = answer.entries;
    check_chain(&entries, &keys, "audit entry")?;
    if entries.first().is_some_and(|e| e.seq != start) {
        check_failed!(
            "the unit's audit log starts at entry {} where {start} was asked for: entries are missing",
            entries[0].seq
        );
    }
    if let Some(a) = &anchor {
        match entries.iter().find(|e| e.seq == a.seq) {
            Some(e) if e.hash == a.hash => {}
            Some(_) => check_failed!(
                "audit entry {} is not the one you saw on {}: the unit's audit log was rewritten",
                a.seq,
                a.seen
            ),
            _ => check_failed!(
                "the unit's audit log no longer has entry {}, which you saw on {}: entries were removed",
                a.seq,
                a.seen
            ),
        }
    }
    for e in entries.iter().filter(|e| e.seq >= from_seq) {
        println!("{}", serde_json::to_string(e)?);
    }
    if let Some(last) = entries.last() {
        anchors.insert(
            target.unit.clone(),
            Anchor {
                unit_key: key_hex,
                seq: last.seq,
                hash: last.hash.clone(),
                seen: rdc_storage::clock::rfc3339(parse_time("now")?),
            },
        );
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // Replaced whole (a new file renamed over the old), so a crash leaves one or the other.
        let tmp = path.with_extension("json.new");
        let _ = std::fs::remove_file(&tmp);
        write_private(&tmp, &serde_json::to_string_pretty(&anchors)?)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, &path)?;
    }
    eprintln!(
        "{} audit entries checked: each signed by the unit, the chain unbroken{}",
        entries.len(),
        match &anchor {
            Some(a) => format!(", continuing from entry {} seen on {}", a.seq, a.seen),
            None =>
                " (first reading: later readings will check the log still holds its newest entry)"
                    .into(),
        }
    );
    Ok(())
}

fn sha256_file(p: &Path) -> anyhow::Result<String> {
    let mut f = std::fs::File::open(p).with_context(|| format!("reading {}", p.display()))?;
    Ok(rdc_storage::sha256_hex(&mut f)?)
}

fn decrypt(src: &Path, dst: &Path, ids: &[Box<dyn age::Identity>]) -> anyhow::Result<()> {
    let d = age::Decryptor::new(std::fs::File::open(src)?)
        .with_context(|| format!("{} is not an age file", src.display()))?;
    let mut r = d.decrypt(ids.iter().map(|i| i.as_ref())).with_context(|| {
        format!(
            "your identity cannot decrypt {}: is it one of the unit's recipients?",
            src.display()
        )
    })?;
    let mut out = std::fs::File::create(dst)?;
    std::io::copy(&mut r, &mut out).with_context(|| format!("decrypting {}", src.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{local_stem, parse_time, parse_units, part_path};
    use proptest::prelude::*;

    proptest! {
        /// Whatever numbers a unit (or an impostor) sends, the files `rdc fetch` writes stay in
        /// the camera's folder under `--out`: names are built from numbers only.
        #[test]
        fn local_names_stay_in_the_folder(seq in any::<u64>(), start in any::<i64>()) {
            let dir = std::path::Path::new("/out/front");
            for name in [
                format!("{}.age", local_stem(seq, start)),
                format!("{}.ts", local_stem(seq, start)),
            ] {
                let p = dir.join(&name);
                prop_assert_eq!(p.parent(), Some(dir));
                prop_assert!(!name.contains('/') && !name.starts_with('.'));
            }
            let part = part_path(dir, seq);
            prop_assert_eq!(part.parent(), Some(dir));
        }

        #[test]
        fn any_units_file_parses_or_is_refused_never_a_panic(text in any::<String>()) {
            let _ = parse_units(&text);
        }

        #[test]
        fn a_units_file_reads_back(
            name in "[a-z][a-z0-9-]{0,20}",
            port in any::<u16>(),
            path in "[a-zA-Z0-9/._ -]{1,40}",
        ) {
            let text = format!(
                "[unit.{name}]\naddress = \"unit.example:{port}\"\nca = {path:?}\ncert = {path:?}\nkey = {path:?}\n"
            );
            let f = parse_units(&text).unwrap();
            let u = &f.unit[&name];
            prop_assert_eq!(&u.address, &format!("unit.example:{port}"));
            prop_assert_eq!(u.key.to_str().unwrap(), path.as_str());
        }

        #[test]
        fn any_time_parses_or_is_refused_never_a_panic(text in any::<String>()) {
            let _ = parse_time(&text);
        }
    }

    #[test]
    fn times() {
        assert_eq!(
            parse_time("2026-11-23T18:04:05Z").unwrap(),
            1_795_457_045_000_000_000
        );
        assert_eq!(parse_time("1970-01-01T00:00:00Z").unwrap(), 0);
        assert!(parse_time("now-10m").unwrap() < parse_time("now").unwrap());
        assert!(parse_time("yesterday").is_err());
    }
}
