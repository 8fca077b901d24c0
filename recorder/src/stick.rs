//! On-site export to a memory stick (R12; issue 29, in progress): `rdc-recorder stick PATH`.
//!
//! The unit holds no key that decrypts footage, so a stick gets what the unit stores: each
//! segment's `.age` as stored, the camera's signed manifests around them, the unit's facts, and
//! a receipt from the audit log; STATUS.txt says in words what was written and whether it is
//! complete, and is written first (as "incomplete") and last, so a stick pulled out mid-write
//! never reads as complete. The store is opened read-only (no lock: the recorder keeps
//! recording); the audit log is the daemon's alone, so entries are handed to it through a spool
//! folder in the store ([`spool_audit`]), which it appends within a second and answers with the
//! signed entry.

use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rdc_format::AuditRecord;
use rdc_format::chain::Entry;
use rdc_format::stick::{REQUEST_FILE, STATUS_FILE, StickRequest};
use rdc_format::stills::Signed;
use rdc_storage::{RealClocks, Store, StoreConfig};

/// The store's spool folder, where jobs leave audit records for the daemon.
pub fn spool_dir(store_root: &Path) -> PathBuf {
    store_root.join("spool")
}

/// Hands `rec` to the daemon and waits (up to `limit`) for the signed entry it appended.
pub fn spool_audit(store_root: &Path, rec: &AuditRecord, limit: Duration) -> anyhow::Result<Entry> {
    let dir = spool_dir(store_root);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let id = format!(
        "{}-{}",
        rdc_storage::clock::Clocks::wall_ns(&RealClocks),
        std::process::id()
    );
    let tmp = dir.join(format!("{id}.tmp"));
    let req = dir.join(format!("{id}.audit.json"));
    let done = dir.join(format!("{id}.entry.json"));
    std::fs::write(&tmp, serde_json::to_vec(rec)?)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, &req)?;
    let t = Instant::now();
    loop {
        if let Ok(b) = std::fs::read(&done) {
            let _ = std::fs::remove_file(&done);
            return Ok(serde_json::from_slice(&b)?);
        }
        if t.elapsed() > limit {
            let _ = std::fs::remove_file(&req);
            bail!(
                "the recorder did not record the export in its audit log within {} s: is `rdc-recorder run` running?",
                limit.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The daemon's side: appends every spooled record to the audit log and answers with the
/// signed entry. Called every second by the daemon.
pub fn serve_spool(store: &Store) {
    let dir = spool_dir(&store.config().root);
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(id) = name.strip_suffix(".audit.json") else {
            continue;
        };
        let rec: Option<AuditRecord> = std::fs::read(&p)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let Some(rec) = rec else {
            tracing::warn!(file = %p.display(), "an unreadable record in the spool: removed");
            let _ = std::fs::remove_file(&p);
            continue;
        };
        match store.audit_receipt(&rec) {
            Ok(entry) => {
                let tmp = dir.join(format!("{id}.entry.tmp"));
                let out = dir.join(format!("{id}.entry.json"));
                if serde_json::to_vec(&entry)
                    .ok()
                    .and_then(|b| std::fs::write(&tmp, b).ok())
                    .and_then(|()| std::fs::rename(&tmp, &out).ok())
                    .is_some()
                {
                    let _ = std::fs::remove_file(&p);
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot audit a spooled record; retrying"),
        }
    }
}

/// What a stick job did.
#[derive(Debug, Default)]
pub struct Done {
    pub complete: bool,
    pub segments: usize,
    pub bytes: u64,
    pub status: String,
}

fn write_status(stick: &Path, text: &str) -> anyhow::Result<()> {
    let p = stick.join(STATUS_FILE);
    let tmp = stick.join("STATUS.tmp");
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, &p)?;
    if let Ok(d) = std::fs::File::open(stick) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Refuses the stick: STATUS.txt says why, and the attempt is audited.
fn refuse(cfg: &rdc_config::Config, stick: &Path, who: &str, why: &str) -> anyhow::Result<Done> {
    let status = format!(
        "NOTHING WAS EXPORTED from unit {}.\n\n{why}\n\nNo footage was written to this stick.\n",
        cfg.unit.id
    );
    write_status(stick, &status)?;
    let rec = AuditRecord {
        who: who.to_owned(),
        role: String::new(),
        action: "stick_export".into(),
        outcome: format!("refused: {why}"),
        ..Default::default()
    };
    if let Err(e) = spool_audit(&cfg.storage.path, &rec, Duration::from_secs(15)) {
        tracing::error!(error = %e, "the refusal could not be audited");
    }
    Ok(Done {
        status,
        ..Default::default()
    })
}

/// Copies `src` to `dst`, carrying on from what `dst` already holds when it is a prefix of it
/// (a stick pulled out mid-write); its SHA-256 must then be `sha256`. Bytes written.
fn copy_resuming(src: &Path, dst: &Path, len: u64, sha256: &str) -> anyhow::Result<u64> {
    let have = std::fs::metadata(dst).map_or(0, |m| m.len());
    if have == len && rdc_format::sha256_hex(&mut std::fs::File::open(dst)?)? == sha256 {
        return Ok(0);
    }
    let from = if have < len { have } else { 0 };
    let mut input =
        std::fs::File::open(src).with_context(|| format!("reading {}", src.display()))?;
    input.seek(SeekFrom::Start(from))?;
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(from == 0)
        .open(dst)
        .with_context(|| format!("writing {}", dst.display()))?;
    out.seek(SeekFrom::Start(from))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = input.read(&mut buf)?;
        if k == 0 {
            break;
        }
        out.write_all(&buf[..k])?;
        n += k as u64;
    }
    out.sync_all()?;
    drop(out);
    let got = rdc_format::sha256_hex(&mut std::fs::File::open(dst)?)?;
    if got != sha256 {
        // What was on the stick before was not a prefix of this segment: write it whole.
        if from > 0 {
            std::fs::remove_file(dst)?;
            return copy_resuming(src, dst, len, sha256);
        }
        bail!(
            "{} does not match its signed manifest after writing: the stick is failing",
            dst.display()
        );
    }
    Ok(n)
}

/// `rdc-recorder stick PATH`: the whole job on a mounted stick.
pub fn run(cfg: &rdc_config::Config, stick: &Path) -> anyhow::Result<Done> {
    let Some(uplink) = &cfg.uplink else {
        bail!("this unit has no [uplink] (its scheme's CA and users decide who may take footage)");
    };
    let req_path = stick.join(REQUEST_FILE);
    let Ok(bytes) = std::fs::read(&req_path) else {
        return refuse(
            cfg,
            stick,
            "(no request)",
            &format!(
                "There is no {REQUEST_FILE} on this stick: an officer prepares one with `rdc stick prepare`."
            ),
        );
    };
    let doc: Signed<StickRequest> = match serde_json::from_slice(&bytes) {
        Ok(d) => d,
        Err(e) => {
            return refuse(
                cfg,
                stick,
                "(unreadable request)",
                &format!("{REQUEST_FILE} is not a request: {e}"),
            );
        }
    };
    let now = rdc_storage::clock::Clocks::wall_ns(&RealClocks);
    let ca = std::fs::read_to_string(&uplink.ca)
        .with_context(|| format!("reading the scheme CA {}", uplink.ca.display()))?;
    let signer = match rdc_uplink::stick::check_signer(&doc, &ca, &uplink.users) {
        Ok(s) => s,
        Err(why) => {
            return refuse(
                cfg,
                stick,
                "(unknown signer)",
                &format!("The request is refused: {why}."),
            );
        }
    };
    let who = format!("{} ({})", signer.name, signer.fingerprint);
    if let Err(why) = rdc_format::stick::check_terms(&doc.body, cfg.unit.id.as_str(), now) {
        return refuse(cfg, stick, &who, &format!("The request is refused: {why}."));
    }
    let hash = doc.sha256();
    let (store, _) = Store::open_read_only(StoreConfig::from_config(cfg), Arc::new(RealClocks))
        .with_context(|| format!("opening the store at {}", cfg.storage.path.display()))?;
    let finished = format!("request {hash} complete");
    if store.audit_entries(0)?.iter().any(|(_, a)| {
        a.action == "stick_export" && a.detail.as_deref().is_some_and(|d| d.contains(&finished))
    }) {
        return refuse(
            cfg,
            stick,
            &who,
            "The request was used already: an officer prepares a new one.",
        );
    }
    // What goes: each camera's segments in the range.
    let r = &doc.body;
    let mut plan = Vec::new();
    for cam in &r.cameras {
        let list = store.list(cam, r.from_ns, r.to_ns)?;
        let segs: Vec<_> = list.into_iter().filter(|e| e.segment.bytes > 0).collect();
        plan.push((cam.clone(), segs));
    }
    let base = stick.join("rdc").join(cfg.unit.id.as_str());
    let need: u64 = plan
        .iter()
        .flat_map(|(c, s)| s.iter().map(move |e| (c, e)))
        .map(|(c, e)| {
            let have = std::fs::metadata(base.join(c).join(&e.segment.file)).map_or(0, |m| m.len());
            e.segment.bytes.saturating_sub(have)
        })
        .sum();
    let avail = rustix::fs::statvfs(stick)
        .map(|s| s.f_bavail * s.f_frsize)
        .unwrap_or(u64::MAX);
    if need + (1 << 20) > avail {
        return refuse(
            cfg,
            stick,
            &who,
            &format!(
                "The stick is too small: the footage asked for needs {} MB more and the stick has {} MB free. Use a larger stick, or ask for fewer cameras or a shorter range.",
                need.div_ceil(1 << 20),
                avail >> 20
            ),
        );
    }
    write_status(
        stick,
        &format!(
            "INCOMPLETE: unit {} is writing to this stick (or was, until it was pulled out).\nInsert it again to carry on.\n",
            cfg.unit.id
        ),
    )?;
    let total: usize = plan.iter().map(|(_, s)| s.len()).sum();
    spool_audit(
        &cfg.storage.path,
        &AuditRecord {
            who: who.clone(),
            role: signer.role.to_string(),
            action: "stick_export".into(),
            outcome: "started".into(),
            purpose: Some("export".into()),
            case_ref: Some(r.case_ref.clone()),
            reason: Some(r.reason.clone()),
            from_ns: Some(r.from_ns),
            to_ns: Some(r.to_ns),
            detail: Some(format!(
                "request {hash}: {total} segments of {}",
                r.cameras.join(", ")
            )),
            ..Default::default()
        },
        Duration::from_secs(15),
    )?;
    let mut written = 0u64;
    let mut lines = Vec::new();
    for (cam, segs) in &plan {
        let dir = base.join(cam);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for e in segs {
            let src = store.segment_path(cam, e.segment.seq)?;
            written += copy_resuming(
                &src,
                &dir.join(&e.segment.file),
                e.segment.bytes,
                &e.segment.ciphertext_sha256,
            )?;
        }
        let (lo, hi) = (
            segs.first().map_or(0, |e| e.segment.seq.saturating_sub(1)),
            segs.last().map_or(0, |e| e.segment.seq + 2),
        );
        let manifests = store.manifests(cam, lo, hi)?;
        std::fs::write(
            base.join(format!("{cam}.manifests.json")),
            serde_json::to_vec_pretty(&manifests)?,
        )?;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        lines.push(format!(
            "camera {cam}: {} segments, {} bytes{}",
            segs.len(),
            segs.iter().map(|e| e.segment.bytes).sum::<u64>(),
            match (segs.first(), segs.last()) {
                (Some(a), Some(b)) => format!(
                    ", {} to {}",
                    rdc_format::time::rfc3339(a.segment.start_ns),
                    rdc_format::time::rfc3339(b.segment.end_ns)
                ),
                _ => " (no footage in the range)".into(),
            }
        ));
    }
    // Per camera, what an export receipt says of its segments, so each camera's bundle made
    // from the stick checks against this one receipt.
    let per_camera: Vec<String> = plan
        .iter()
        .filter(|(_, segs)| !segs.is_empty())
        .map(|(cam, segs)| {
            let digest = rdc_format::export::segments_digest(
                segs.iter()
                    .map(|e| (e.segment.seq, e.segment.ciphertext_sha256.as_str())),
            );
            format!(
                "{cam}: {}",
                rdc_format::export::receipt_detail(
                    segs[0].segment.seq,
                    segs[segs.len() - 1].segment.seq,
                    segs.len() as u64,
                    &digest
                )
            )
        })
        .collect();
    let receipt = spool_audit(
        &cfg.storage.path,
        &AuditRecord {
            who,
            role: signer.role.to_string(),
            action: "stick_export".into(),
            outcome: "granted".into(),
            purpose: Some("export".into()),
            case_ref: Some(r.case_ref.clone()),
            reason: Some(r.reason.clone()),
            from_ns: Some(r.from_ns),
            to_ns: Some(r.to_ns),
            bytes: Some(written),
            detail: Some(format!("{finished}; {}", per_camera.join("; "))),
            ..Default::default()
        },
        Duration::from_secs(15),
    )?;
    std::fs::write(
        base.join("receipt.json"),
        serde_json::to_vec_pretty(&receipt)?,
    )?;
    std::fs::write(
        base.join("unit.json"),
        serde_json::to_vec_pretty(&serde_json::json!({
            "unit": cfg.unit.id.as_str(),
            "public_key": store.public_hex(),
            "retired_keys": store.retired_public_keys().iter().map(hex::encode).collect::<Vec<_>>(),
            "operator": cfg.unit.operator,
            "site": cfg.unit.site,
        }))?,
    )?;
    let status = format!(
        "COMPLETE: unit {} wrote {total} segments for case {} ({}).\n{}\n\nThe footage is encrypted: only the officer's age identity decrypts it.\nOn the officer's machine: rdc export --from-stick THIS-STICK --identity KEY --out BUNDLE\n",
        cfg.unit.id,
        r.case_ref,
        rdc_format::time::rfc3339(receipt.time_ns),
        lines.join("\n")
    );
    write_status(stick, &status)?;
    Ok(Done {
        complete: true,
        segments: total,
        bytes: written,
        status,
    })
}
