//! `rdc stick prepare` (issue 29, in progress): the signed request an officer puts on a memory
//! stick, which a unit honours once, for its cameras and range, until it expires.

use rdc_format::stick::{self, REQUEST_FILE, StickRequest};

use crate::CheckFailed;
use crate::audit::{check_chain, unit_keys};
use crate::events::Events;
use crate::select::{Case, Span, Target};
use crate::time;
use crate::time::parse_time;
use crate::units;
use anyhow::{Context as _, anyhow, bail};
use rdc_config::Id;
use rdc_format::Manifest;
use rdc_format::chain::{self as chainlog, Entry};
use std::path::{Path, PathBuf};

#[derive(clap::Subcommand, Debug)]
pub(crate) enum StickCmd {
    /// Write onto the stick mounted at DIR a request, signed with your key, for the unit to
    /// export what it names when the stick is inserted.
    Prepare {
        /// Where the stick is mounted.
        dir: PathBuf,
        /// The unit, as named in the units file (its id).
        #[arg(long, short)]
        unit: String,
        /// The units file (default: $XDG_CONFIG_HOME/rdc/units.toml or ~/.config/rdc/units.toml).
        #[arg(long)]
        units: Option<PathBuf>,
        /// A camera to export (repeat for more).
        #[arg(long = "camera", required = true)]
        cameras: Vec<Id>,
        #[command(flatten)]
        span: Span,
        /// The case, and why the footage leaves on a stick.
        #[command(flatten)]
        case: Case,
        /// Hours the request stays valid (at most a week).
        #[arg(long, default_value_t = 72)]
        valid_hours: u32,
    },
}

pub(crate) async fn run(cmd: StickCmd) -> anyhow::Result<()> {
    let StickCmd::Prepare {
        dir,
        unit,
        units,
        cameras,
        span: Span { from, to },
        case: Case { case_ref, reason },
        valid_hours,
    } = cmd;
    let (from_ns, to_ns) = time::parse_range(&from, &to)?;
    let target = Target { unit, units };
    let entry = units::entry(&target)?;
    let cert_pem = std::fs::read_to_string(&entry.cert)
        .with_context(|| format!("reading your certificate {}", entry.cert.display()))?;
    let key_pem = std::fs::read_to_string(&entry.key)
        .with_context(|| format!("reading your key {}", entry.key.display()))?;
    let now = crate::time::now_ns();
    let valid = i64::from(valid_hours) * 3_600_000_000_000;
    if valid <= 0 || valid > stick::MAX_VALID_NS {
        bail!(
            "--valid-hours: 1 to {} (a week)",
            stick::MAX_VALID_NS / 3_600_000_000_000
        );
    }
    let nonce = {
        use ring::rand::SecureRandom as _;
        let mut b = [0u8; 16];
        ring::rand::SystemRandom::new()
            .fill(&mut b)
            .map_err(|_| anyhow!("no randomness"))?;
        hex::encode(b)
    };
    let body = StickRequest {
        format: stick::FORMAT.into(),
        unit: target.unit.clone(),
        cameras: cameras.iter().map(|c| c.to_string()).collect(),
        from_ns,
        to_ns,
        case_ref,
        reason,
        made_ns: now,
        expires_ns: now + valid,
        nonce,
    };
    stick::check_terms(&body, &target.unit, now).map_err(|e| anyhow!("{e}"))?;
    let doc = rdc_uplink::stills::sign(&body, &cert_pem, &key_pem)
        .context("your key cannot sign the request")?;
    let p = dir.join(REQUEST_FILE);
    let tmp = dir.join("RDC-REQUEST.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&doc)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, &p)?;
    outln!(
        "{} written: unit {} may export {} from {} to {} until {}; insert the stick into the unit",
        p.display(),
        target.unit,
        body.cameras.join(", "),
        rdc_format::time::rfc3339(from_ns),
        rdc_format::time::rfc3339(to_ns),
        rdc_format::time::rfc3339(body.expires_ns)
    );
    Ok(())
}

/// Reads a JSON file from the stick: untrusted input, named when it does not parse.
fn read_json<T: serde::de::DeserializeOwned>(p: &Path) -> anyhow::Result<T> {
    let b = std::fs::read(p).with_context(|| format!("reading {} from the stick", p.display()))?;
    serde_json::from_slice(&b).map_err(|e| {
        CheckFailed(format!(
            "{} on the stick is not what the unit writes: {e}",
            p.display()
        ))
        .into()
    })
}

/// A name from the stick that must be one plain file name.
fn plain_name(name: &str) -> anyhow::Result<&str> {
    let p = Path::new(name);
    if name.is_empty()
        || p.components().count() != 1
        || !matches!(p.components().next(), Some(std::path::Component::Normal(_)))
    {
        check_failed!("the stick names a file {name:?} that is not a plain file name");
    }
    Ok(name)
}

/// The unit's facts on the stick (`rdc/<unit>/unit.json`): its keys, bound to its certificate.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct StickUnit {
    #[serde(flatten)]
    binding: rdc_format::stick::KeyBinding,
    operator: Option<String>,
    site: Option<String>,
}

/// A stick the unit wrote, checked: the request, the unit's keys (vouched for by its
/// certificate from the scheme CA), the camera's signed manifests and the unit's receipt for
/// this request. Nothing on it is trusted until checked here.
pub(crate) struct StickView {
    stick: PathBuf,
    pub(crate) request: StickRequest,
    pub(crate) unit: StickUnit,
    pub(crate) camera: Id,
    pub(crate) log: Vec<Entry>,
    pub(crate) receipt: Entry,
    pub(crate) entry: units::UnitEntry,
}

impl std::fmt::Debug for StickView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StickView")
            .field("stick", &self.stick)
            .field("camera", &self.camera)
            .finish_non_exhaustive()
    }
}

/// Opens and checks the stick mounted at `stick`; `unit`, when given, must be the one the
/// stick's request names; `units` is the officer's units file (for the scheme CA).
pub(crate) fn open(
    stick: &Path,
    unit: Option<&str>,
    units: Option<PathBuf>,
    camera: Option<Id>,
) -> anyhow::Result<StickView> {
    let status =
        std::fs::read_to_string(stick.join(rdc_format::stick::STATUS_FILE)).unwrap_or_default();
    if !status.starts_with("COMPLETE") {
        check_failed!(
            "the stick is not complete ({}): insert it into the unit again",
            status.lines().next().unwrap_or("no STATUS.txt")
        );
    }
    let doc: rdc_format::stills::Signed<StickRequest> = read_json(&stick.join(REQUEST_FILE))?;
    let r = doc.body.clone();
    let unit_id = plain_name(&r.unit)?.to_owned();
    if let Some(u) = unit
        && u != unit_id
    {
        bail!("the stick is from unit {unit_id}, not {u}");
    }
    let entry = units::entry(&Target {
        unit: unit_id.clone(),
        units,
    })?;
    let ca = std::fs::read_to_string(&entry.ca)
        .with_context(|| format!("reading the scheme CA {}", entry.ca.display()))?;
    let base = stick.join("rdc").join(&unit_id);
    let camera = match camera {
        Some(c) => c,
        None if r.cameras.len() == 1 => Id::parse(&r.cameras[0]).map_err(|e| anyhow!("{e}"))?,
        None => bail!(
            "the stick holds cameras {}: say which with --camera",
            r.cameras.join(", ")
        ),
    };
    if !r.cameras.iter().any(|c| c == camera.as_str()) {
        bail!(
            "the stick's request names cameras {}, not {camera}",
            r.cameras.join(", ")
        );
    }
    let facts: StickUnit = read_json(&base.join("unit.json"))?;
    let receipt: Entry = read_json(&base.join("receipt.json"))?;
    let b = &facts.binding;
    if b.unit != unit_id {
        check_failed!(
            "unit.json on the stick is unit {}'s, not {unit_id}'s",
            b.unit
        );
    }
    rdc_uplink::pki::check_binding(b, &ca, &unit_id, receipt.time_ns).map_err(|e| {
        CheckFailed(format!(
            "the unit's keys on the stick are not vouched for by unit {unit_id}'s certificate from {}: {e}",
            entry.ca.display()
        ))
    })?;
    let keys = unit_keys(&b.public_key, &b.retired_keys)?;
    chainlog::verify_entry_by(&receipt, &keys)
        .map_err(|e| CheckFailed(format!("the unit's receipt on the stick: {e}")))?;
    let finished = format!("request {} complete", doc.sha256());
    if receipt.body["action"] != "stick_export"
        || receipt.body["outcome"] != "granted"
        || !receipt.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains(&finished))
    {
        check_failed!(
            "the unit's receipt on the stick is not its receipt for this stick's request"
        );
    }
    let log: Vec<Entry> = read_json(&base.join(format!("{camera}.manifests.json")))?;
    check_chain(&log, &keys, "manifest")?;
    Ok(StickView {
        stick: stick.to_owned(),
        request: r,
        unit: facts,
        camera,
        log,
        receipt,
        entry,
    })
}

impl StickView {
    /// The camera's manifests, each checked to be of this unit and camera.
    fn manifests(&self) -> anyhow::Result<Vec<Manifest>> {
        let unit = &self.request.unit;
        self.log
            .iter()
            .map(|e| {
                let m: Manifest = serde_json::from_value(e.body.clone()).map_err(|err| {
                    CheckFailed(format!("manifest {} is not readable: {err}", e.seq))
                })?;
                if m.camera != self.camera.as_str() || &m.unit != unit {
                    check_failed!(
                        "manifest {} describes {}/{}, not {unit}/{}",
                        e.seq,
                        m.unit,
                        m.camera,
                        self.camera
                    );
                }
                Ok(m)
            })
            .collect()
    }

    /// Copies the camera's segments in `range` from the stick into `dir`, each checked against
    /// its signed manifest (named when it is not), decrypted beside it with `ids`.
    fn copy_out(
        &self,
        range: (i64, i64),
        dir: &Path,
        ids: &[crate::keys::AgeIdentity],
    ) -> anyhow::Result<Vec<crate::fetch::Fetched>> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let base = self
            .stick
            .join("rdc")
            .join(&self.request.unit)
            .join(self.camera.as_str());
        let mut fetched = Vec::new();
        for m in self.manifests()? {
            if m.ciphertext_len == 0 || m.start_ns >= range.1 || m.end_ns <= range.0 {
                continue;
            }
            let src = base.join(plain_name(&m.file)?);
            let stem = crate::fetch::local_stem(m.seq, m.start_ns);
            let age = dir.join(format!("{stem}.age"));
            std::fs::copy(&src, &age)
                .with_context(|| format!("copying {} from the stick", src.display()))?;
            let sha = crate::fetch::sha256_file(&age)?;
            if sha != m.ciphertext_sha256 {
                let _ = std::fs::remove_file(&age);
                check_failed!(
                    "{} on the stick is not the segment {} the unit signed (SHA-256 {sha}, signed {})",
                    src.display(),
                    m.seq,
                    m.ciphertext_sha256
                );
            }
            let ts = dir.join(format!("{stem}.ts"));
            crate::fetch::decrypt(&age, &ts, ids)?;
            fetched.push(crate::fetch::Fetched {
                manifest: m,
                age,
                ts: Some(ts),
            });
        }
        if fetched.is_empty() {
            bail!(
                "the stick holds no footage of {} in that range",
                self.camera
            );
        }
        Ok(fetched)
    }
}

/// The request's range, narrowed by `--from`/`--to` when given.
fn narrowed(r: &StickRequest, from: Option<&str>, to: Option<&str>) -> anyhow::Result<(i64, i64)> {
    let (f, t) = (
        from.map(parse_time).transpose()?,
        to.map(parse_time).transpose()?,
    );
    if let (Some(f), Some(t)) = (f, t) {
        time::check_range(f, t)?;
    }
    let from = f.map_or(r.from_ns, |t| t.max(r.from_ns));
    let to = t.map_or(r.to_ns, |t| t.min(r.to_ns));
    if from >= to {
        bail!(
            "the stick holds {} to {}: --from and --to must overlap it",
            time::local(r.from_ns),
            time::local(r.to_ns)
        );
    }
    Ok((from, to))
}

/// `rdc fetch --from-stick`: the camera's segments from the stick, checked and decrypted, into
/// `<out>/<camera>/` as a fetch over the link puts them.
pub(crate) fn fetch(
    v: &StickView,
    from: Option<&str>,
    to: Option<&str>,
    identity: &Path,
    out: &Path,
) -> anyhow::Result<crate::fetch::Fetch> {
    let range = narrowed(&v.request, from, to)?;
    let ids = crate::keys::read_identities(identity)?;
    let dir = out.join(v.camera.as_str());
    let got = v.copy_out(range, &dir, &ids)?;
    Ok(crate::fetch::Fetch {
        dir,
        segments: got.len(),
        bytes: got.iter().map(|f| f.manifest.ciphertext_len).sum(),
        decrypted: true,
    })
}

/// `rdc export --from-stick`: the bundle of one camera from a stick the unit wrote, built by the
/// same assembly as the export over the link, with the unit's receipt for the stick.
pub(crate) async fn export(
    v: StickView,
    identity: &Path,
    out: &Path,
) -> anyhow::Result<crate::export::Exported> {
    if out.join(crate::export::MANIFEST).exists() {
        bail!(
            "{} already holds a finished export: choose another --out",
            out.display()
        );
    }
    let ids = crate::keys::read_identities(identity)?;
    let r = &v.request;
    let fetched = v.copy_out((r.from_ns, r.to_ns), &out.join("master"), &ids)?;
    let run = v.manifests()?;
    let present = |s: u64| fetched.iter().any(|f| f.manifest.seq == s);
    let gaps = rdc_format::export::gaps((r.from_ns, r.to_ns), &run, &present);
    let signer = crate::keys::Signer::from_entry(&v.entry, "the bundle")?;
    let b = &v.unit.binding;
    let parts = crate::export::Parts {
        unit: rdc_format::export::UnitFacts {
            id: r.unit.clone(),
            public_key: b.public_key.clone(),
            retired_keys: b.retired_keys.clone(),
            operator: v.unit.operator.clone(),
            contact: None,
            purpose: None,
            site: v.unit.site.clone(),
        },
        camera: v.camera.to_string(),
        case_ref: r.case_ref.clone(),
        reason: r.reason.clone(),
        range: (r.from_ns, r.to_ns),
        log: v.log.clone(),
        fetched,
        gaps,
        receipt: v.receipt.clone(),
    };
    crate::export::assemble(out, parts, &signer, &Events::terminal()).await
}
