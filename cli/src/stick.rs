//! `rdc stick prepare` (issue 29, in progress): the signed request an officer puts on a memory
//! stick, which a unit honours once, for its cameras and range, until it expires.

use rdc_format::stick::{self, REQUEST_FILE, StickRequest};

use crate::*;

#[derive(clap::Subcommand, Debug)]
pub(crate) enum StickCmd {
    /// Write onto the stick mounted at DIR a request, signed with your key, for the unit to
    /// export what it names when the stick is inserted.
    Prepare {
        dir: PathBuf,
        /// The unit, as named in the units file (its id).
        #[arg(long, short)]
        unit: String,
        #[arg(long)]
        units: Option<PathBuf>,
        #[arg(long = "camera", required = true)]
        cameras: Vec<Id>,
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        #[arg(long = "case")]
        case_ref: String,
        #[arg(long)]
        reason: String,
        /// Hours the request stays valid (at most a week).
        #[arg(long, default_value_t = 72)]
        valid_hours: u32,
    },
    /// Build the evidence bundle of a camera from a stick the unit wrote, as `rdc export` does
    /// over the link: every file checked against the unit's signed manifests, decrypted with
    /// your identity, the unit's receipt for the stick inside.
    Export {
        dir: PathBuf,
        /// The unit, as named in the units file (its CA, your key to sign the bundle).
        #[arg(long, short)]
        unit: String,
        #[arg(long)]
        units: Option<PathBuf>,
        /// The camera (needed when the stick holds more than one).
        #[arg(long)]
        camera: Option<Id>,
        #[arg(long)]
        identity: PathBuf,
        #[arg(long, short)]
        out: PathBuf,
    },
}

pub(crate) async fn run(cmd: StickCmd) -> anyhow::Result<()> {
    if let StickCmd::Export {
        dir,
        unit,
        units,
        camera,
        identity,
        out,
    } = cmd
    {
        let x = export(&dir, &Target { unit, units }, camera, &identity, &out).await?;
        outln!(
            "{} segments from the stick in {}: checked against the unit's signed manifests, decrypted; the unit's receipt for the stick is entry {}. Check it with: rdc verify {} --ca {}",
            x.segments,
            x.dir.display(),
            x.receipt_seq,
            x.dir.display(),
            x.ca.display()
        );
        return Ok(());
    }
    let StickCmd::Prepare {
        dir,
        unit,
        units,
        cameras,
        from,
        to,
        case_ref,
        reason,
        valid_hours,
    } = cmd
    else {
        unreachable!("handled above");
    };
    let (from_ns, to_ns) = (parse_time(&from)?, parse_time(&to)?);
    if from_ns >= to_ns {
        bail!("--from must be before --to");
    }
    let target = Target { unit, units };
    let entry = units::entry(&target)?;
    let cert_pem = std::fs::read_to_string(&entry.cert)
        .with_context(|| format!("reading your certificate {}", entry.cert.display()))?;
    let key_pem = std::fs::read_to_string(&entry.key)
        .with_context(|| format!("reading your key {}", entry.key.display()))?;
    let now = crate::export::now_ns();
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

/// `rdc stick export`: the bundle of one camera from a stick the unit wrote.
async fn export(
    stick: &Path,
    target: &Target,
    camera: Option<Id>,
    identity: &Path,
    out: &Path,
) -> anyhow::Result<crate::export::Exported> {
    let status =
        std::fs::read_to_string(stick.join(rdc_format::stick::STATUS_FILE)).unwrap_or_default();
    if !status.starts_with("COMPLETE") {
        check_failed!(
            "the stick is not complete ({}): insert it into the unit again",
            status.lines().next().unwrap_or("no STATUS.txt")
        );
    }
    if out.join(crate::export::MANIFEST).exists() {
        bail!(
            "{} already holds a finished export: choose another --out",
            out.display()
        );
    }
    let doc: rdc_format::stills::Signed<StickRequest> = read_json(&stick.join(REQUEST_FILE))?;
    let r = &doc.body;
    let unit_id = plain_name(&r.unit)?.to_owned();
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
    let facts: serde_json::Value = read_json(&base.join("unit.json"))?;
    let key = facts["public_key"].as_str().unwrap_or_default().to_owned();
    let retired: Vec<String> = facts["retired_keys"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|k| k.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let keys = unit_keys(&key, &retired)?;
    let log: Vec<Entry> = read_json(&base.join(format!("{camera}.manifests.json")))?;
    check_chain(&log, &keys, "manifest")?;
    let receipt: Entry = read_json(&base.join("receipt.json"))?;
    chainlog::verify_entry_by(&receipt, &keys)
        .map_err(|e| CheckFailed(format!("the unit's receipt on the stick: {e}")))?;
    let ids = crate::export::read_identities(identity)?;
    let master = out.join("master");
    std::fs::create_dir_all(&master).with_context(|| format!("creating {}", master.display()))?;
    let mut run = Vec::new();
    let mut fetched = Vec::new();
    for e in &log {
        let m: Manifest = serde_json::from_value(e.body.clone())
            .map_err(|err| CheckFailed(format!("manifest {} is not readable: {err}", e.seq)))?;
        if m.camera != camera.as_str() || m.unit != unit_id {
            check_failed!(
                "manifest {} describes {}/{}, not {unit_id}/{camera}",
                e.seq,
                m.unit,
                m.camera
            );
        }
        run.push(m.clone());
        if m.ciphertext_len == 0 || m.start_ns >= r.to_ns || m.end_ns <= r.from_ns {
            continue;
        }
        let src = base.join(camera.as_str()).join(plain_name(&m.file)?);
        let stem = crate::fetch::local_stem(m.seq, m.start_ns);
        let age = master.join(format!("{stem}.age"));
        std::fs::copy(&src, &age)
            .with_context(|| format!("copying {} from the stick", src.display()))?;
        let sha = crate::fetch::sha256_file(&age)?;
        if sha != m.ciphertext_sha256 {
            check_failed!(
                "{} on the stick is not the segment {} the unit signed (SHA-256 {sha}, signed {})",
                src.display(),
                m.seq,
                m.ciphertext_sha256
            );
        }
        let ts = master.join(format!("{stem}.ts"));
        crate::fetch::decrypt(&age, &ts, &ids)?;
        fetched.push(crate::fetch::Fetched {
            manifest: m,
            age,
            ts: Some(ts),
        });
    }
    if fetched.is_empty() {
        bail!("the stick holds no footage of {camera} in its range");
    }
    let present = |s: u64| fetched.iter().any(|f| f.manifest.seq == s);
    let gaps = rdc_format::export::gaps((r.from_ns, r.to_ns), &run, &present);
    let entry = units::entry(target)?;
    let cert_pem = std::fs::read_to_string(&entry.cert)
        .with_context(|| format!("reading your certificate {}", entry.cert.display()))?;
    let der = tls::cert_der(&cert_pem)
        .ok_or_else(|| anyhow!("{} holds no certificate", entry.cert.display()))?;
    let signer = crate::export::BundleSigner {
        exporter: rdc_format::export::Exporter {
            name: pki::common_name(&der).unwrap_or_else(|| "(no name)".into()),
            fingerprint: pki::fingerprint_text(&der),
            certificate: cert_pem,
        },
        key_pem: std::fs::read_to_string(&entry.key)
            .with_context(|| format!("reading your key {}", entry.key.display()))?,
        ca_pem: std::fs::read_to_string(&entry.ca)
            .with_context(|| format!("reading the scheme CA {}", entry.ca.display()))?,
        ca_path: entry.ca.clone(),
    };
    let parts = crate::export::Parts {
        unit: rdc_format::export::UnitFacts {
            id: unit_id,
            public_key: key,
            retired_keys: retired,
            operator: facts["operator"].as_str().map(str::to_owned),
            contact: None,
            purpose: None,
            site: facts["site"].as_str().map(str::to_owned),
        },
        camera: camera.to_string(),
        case_ref: r.case_ref.clone(),
        reason: r.reason.clone(),
        range: (r.from_ns, r.to_ns),
        log,
        fetched,
        gaps,
        receipt,
    };
    crate::export::assemble(out, parts, &signer, &Events::terminal()).await
}
