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

use std::io::{Read as _, Write as _};
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
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The daemon's side: appends every spooled record to the audit log and answers with the
/// signed entry. Called ten times a second by the daemon.
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
    /// Bytes written to the stick this time.
    pub bytes: u64,
    /// Bytes found on the stick already, from an insertion that was cut short, and kept.
    pub kept: u64,
    pub status: String,
}

/// How far a job has got, for `rdc-recorder stick`'s progress line.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    pub segments_done: usize,
    pub segments: usize,
    pub bytes_done: u64,
    pub bytes: u64,
}

/// Writes `bytes` to `p` (through a temporary name, synced), so a stick pulled out leaves either
/// the old file or the new one.
fn write_synced(p: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = p.with_extension("tmp");
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.sync_all()
        .with_context(|| format!("writing {}", tmp.display()))?;
    drop(f);
    std::fs::rename(&tmp, p).with_context(|| format!("writing {}", p.display()))?;
    if let Some(d) = p.parent().and_then(|d| std::fs::File::open(d).ok()) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn write_status(stick: &Path, text: &str) -> anyhow::Result<()> {
    write_synced(&stick.join(STATUS_FILE), text.as_bytes())
}

/// Refuses the stick: STATUS.txt says why, and the attempt is audited.
fn refuse(cfg: &rdc_config::Config, stick: &Path, who: &str, why: &str) -> anyhow::Result<Done> {
    let status = format!(
        "NOTHING WAS EXPORTED from unit {}.\n\n{why}\n\nNo footage was written to this stick.\n",
        cfg.unit.id
    );
    write_status(stick, &status)?;
    audit_refusal(cfg, who, why);
    Ok(Done {
        status,
        ..Default::default()
    })
}

fn audit_refusal(cfg: &rdc_config::Config, who: &str, why: &str) {
    let rec = AuditRecord {
        who: who.to_owned(),
        role: rdc_format::Actor::Nobody,
        action: "stick_export".into(),
        outcome: rdc_format::Outcome::refused(why),
        ..Default::default()
    };
    if let Err(e) = spool_audit(&cfg.storage.path, &rec, Duration::from_secs(15)) {
        tracing::error!(error = %e, "the refusal could not be audited");
    }
}

/// Copies segment `src` to `dst` on the stick unless `dst` is that segment already (an
/// earlier insertion wrote it whole: its bytes read back must hash to the signed `sha256`).
/// Anything else under that name (the segment being written when the stick was pulled out)
/// is deleted and written again whole: appending to a file a pulled stick left behind trusts
/// a file system that was not cleanly unmounted (tried on FAT: the appended file read back
/// wrong). Hashes as it copies, one pass; the written file goes to `syncer`, which syncs it
/// while the next is written. Returns (bytes written, bytes kept).
fn copy_segment(
    src: &Path,
    dst: &Path,
    (len, sha256): (u64, &str),
    syncer: &Syncer,
    tick: &mut dyn FnMut(u64),
) -> anyhow::Result<(u64, u64)> {
    if let Ok(m) = std::fs::metadata(dst) {
        if m.len() == len
            && std::fs::File::open(dst)
                .ok()
                .and_then(|mut f| rdc_format::sha256_hex(&mut f).ok())
                .is_some_and(|h| h == sha256)
        {
            return Ok((0, len));
        }
        std::fs::remove_file(dst).with_context(|| format!("replacing {}", dst.display()))?;
    }
    let mut input =
        std::fs::File::open(src).with_context(|| format!("reading {}", src.display()))?;
    let mut out =
        std::fs::File::create(dst).with_context(|| format!("writing {}", dst.display()))?;
    // Reading and hashing on one thread, writing on this one: the stick is written while the
    // next MiB is read from the unit's disk.
    const BUF: usize = 1 << 20;
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<(Vec<u8>, usize)>(3);
    let (empty_tx, empty_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    for _ in 0..4 {
        let _ = empty_tx.send(vec![0u8; BUF]);
    }
    let (digest, n) = std::thread::scope(|sc| -> anyhow::Result<(String, u64)> {
        let reader = sc.spawn(move || -> std::io::Result<String> {
            let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
            for mut buf in empty_rx {
                let k = input.read(&mut buf)?;
                if k == 0 {
                    break;
                }
                hash.update(&buf[..k]);
                if full_tx.send((buf, k)).is_err() {
                    break;
                }
            }
            Ok(hex::encode(hash.finish()))
        });
        let mut n = 0u64;
        let written = (|| -> anyhow::Result<()> {
            for (buf, k) in &full_rx {
                out.write_all(&buf[..k])
                    .with_context(|| format!("writing {}", dst.display()))?;
                n += k as u64;
                tick(k as u64);
                let _ = empty_tx.send(buf);
            }
            Ok(())
        })();
        drop(empty_tx);
        drop(full_rx);
        let digest = reader
            .join()
            .map_err(|_| anyhow::anyhow!("the reading thread panicked"))?
            .with_context(|| format!("reading {}", src.display()))?;
        written?;
        Ok((digest, n))
    })?;
    if digest != sha256 {
        bail!(
            "{} does not match its signed manifest: the stored segment changed under the job, or the unit's disk is failing",
            src.display()
        );
    }
    syncer.sync(out, dst)?;
    Ok((n, 0))
}

/// Syncs written files on a thread of its own, one behind the writer: the stick writes one
/// file while the one before is flushed, and at most two files' bytes wait in memory (a slow
/// stick's dirty pages otherwise pile up until the kernel throttles every writer, the
/// recorder too).
struct Syncer {
    tx: Option<std::sync::mpsc::SyncSender<(std::fs::File, PathBuf)>>,
    failed: Arc<std::sync::Mutex<Option<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Syncer {
    fn new() -> Syncer {
        let (tx, rx) = std::sync::mpsc::sync_channel::<(std::fs::File, PathBuf)>(3);
        let failed = Arc::new(std::sync::Mutex::new(None));
        let f = failed.clone();
        let thread = std::thread::spawn(move || {
            for (file, path) in rx {
                if let Err(e) = file.sync_all() {
                    let mut g = f.lock().unwrap_or_else(|p| p.into_inner());
                    g.get_or_insert(format!("writing {}: {e}", path.display()));
                }
            }
        });
        Syncer {
            tx: Some(tx),
            failed,
            thread: Some(thread),
        }
    }

    fn check(&self) -> anyhow::Result<()> {
        match self
            .failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            Some(e) => bail!("{e}"),
            None => Ok(()),
        }
    }

    fn sync(&self, f: std::fs::File, p: &Path) -> anyhow::Result<()> {
        self.check()?;
        if let Some(tx) = &self.tx {
            tx.send((f, p.to_owned()))
                .map_err(|_| anyhow::anyhow!("the stick's sync thread stopped"))?;
        }
        Ok(())
    }

    /// Waits until every file handed over is synced.
    fn finish(mut self) -> anyhow::Result<()> {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.check()
    }
}

/// The job runs behind the recorder: the lowest CPU priority and the idle I/O class, so a slow
/// or failing stick never holds up a frame (the systemd unit sets the same, and caps its share).
#[allow(unsafe_code)]
fn yield_to_recording() {
    // SAFETY: plain syscalls on this process, with constant arguments.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 19);
        // ioprio_set(IOPRIO_WHO_PROCESS, self, IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT)
        libc::syscall(libc::SYS_ioprio_set, 1, 0, 3 << 13);
    }
}

/// The request on the stick, checked: who signed it, or the refusal to write.
enum Checked {
    Go {
        doc: Box<Signed<StickRequest>>,
        who: String,
        role: rdc_format::Actor,
    },
    Refused(Done),
}

fn check_request(
    cfg: &rdc_config::Config,
    uplink: &rdc_config::Uplink,
    stick: &Path,
    store: &Store,
) -> anyhow::Result<Checked> {
    let req_path = stick.join(REQUEST_FILE);
    let Ok(bytes) = std::fs::read(&req_path) else {
        return refuse(
            cfg,
            stick,
            "(no request)",
            &format!(
                "There is no {REQUEST_FILE} on this stick: an officer prepares one with `rdc stick prepare`."
            ),
        )
        .map(Checked::Refused);
    };
    let doc: Signed<StickRequest> = match serde_json::from_slice(&bytes) {
        Ok(d) => d,
        Err(e) => {
            return refuse(
                cfg,
                stick,
                "(unreadable request)",
                &format!("{REQUEST_FILE} is not a request: {e}"),
            )
            .map(Checked::Refused);
        }
    };
    let now = rdc_storage::clock::Clocks::wall_ns(&RealClocks);
    // The terms first (they need no trust: a request out of its terms is refused whoever signed
    // it), in the audit log under the name its certificate claims.
    if let Err(why) = rdc_format::stick::check_terms(&doc.body, cfg.unit.id.as_str(), now) {
        let claimed = rdc_uplink::tls::cert_der(&doc.certificate)
            .and_then(|d| rdc_uplink::pki::common_name(&d))
            .map_or_else(|| "(no name)".to_owned(), |n| format!("{n} (unverified)"));
        return refuse(
            cfg,
            stick,
            &claimed,
            &format!("The request is refused: {why}."),
        )
        .map(Checked::Refused);
    }
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
            )
            .map(Checked::Refused);
        }
    };
    let who = format!("{} ({})", signer.name, signer.fingerprint);
    let finished = format!("request {} complete", doc.sha256());
    if store.audit_entries(0)?.iter().any(|(_, a)| {
        a.action == "stick_export" && a.detail.as_deref().is_some_and(|d| d.contains(&finished))
    }) {
        // The stick that holds that export keeps its STATUS.txt: inserted again, it still says
        // COMPLETE and what it holds.
        let done_here = std::fs::read(
            stick
                .join("rdc")
                .join(cfg.unit.id.as_str())
                .join("receipt.json"),
        )
        .ok()
        .and_then(|b| serde_json::from_slice::<Entry>(&b).ok())
        .is_some_and(|e| {
            e.body["detail"]
                .as_str()
                .is_some_and(|d| d.contains(&finished))
        });
        let why = "The request was used already: an officer prepares a new one.";
        if done_here {
            audit_refusal(cfg, &who, &format!("{why} (this stick holds its export)"));
            let status = std::fs::read_to_string(stick.join(STATUS_FILE)).unwrap_or_default();
            return Ok(Checked::Refused(Done {
                status: format!(
                    "{status}\nNothing more was written: this stick holds the request's export already. {why}\n"
                ),
                ..Default::default()
            }));
        }
        return refuse(cfg, stick, &who, why).map(Checked::Refused);
    }
    Ok(Checked::Go {
        doc: Box::new(doc),
        who,
        role: signer.role.into(),
    })
}

/// The unit's facts for the stick: its keys as the daemon bound them to its certificate.
fn unit_facts(cfg: &rdc_config::Config, store: &Store) -> anyhow::Result<serde_json::Value> {
    let p = store
        .config()
        .root
        .join(rdc_format::stick::KEY_BINDING_FILE);
    let b: rdc_format::stick::KeyBinding = std::fs::read(&p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .with_context(|| {
            format!(
                "{} is missing: the recorder writes it when it starts with its [uplink]; start `rdc-recorder run` and insert the stick again",
                p.display()
            )
        })?;
    if b.public_key != store.public_hex() {
        bail!(
            "{} names another signing key than the store's: restart the recorder (it binds its keys again when it starts)",
            p.display()
        );
    }
    let mut v = serde_json::to_value(&b)?;
    v["operator"] = cfg.unit.operator.clone().into();
    v["site"] = cfg.unit.site.clone().into();
    Ok(v)
}

/// `rdc-recorder stick PATH`: the whole job on a mounted stick; `progress` hears of each MiB.
pub fn run(
    cfg: &rdc_config::Config,
    stick: &Path,
    progress: &mut dyn FnMut(Progress),
) -> anyhow::Result<Done> {
    yield_to_recording();
    let Some(uplink) = &cfg.uplink else {
        bail!("this unit has no [uplink] (its scheme's CA and users decide who may take footage)");
    };
    let (store, _) = Store::open_read_only(StoreConfig::from_config(cfg), Arc::new(RealClocks))
        .with_context(|| format!("opening the store at {}", cfg.storage.path.display()))?;
    let (doc, who, role) = match check_request(cfg, uplink, stick, &store)? {
        Checked::Go { doc, who, role } => (doc, who, role),
        Checked::Refused(done) => return Ok(done),
    };
    let facts = unit_facts(cfg, &store)?;
    let r = &doc.body;
    let hash = doc.sha256();
    // What goes: each camera's segments in the range.
    let mut plan: Plan = Vec::new();
    for cam in &r.cameras {
        let list = store.list(cam, r.from_ns, r.to_ns)?;
        let segs: Vec<_> = list.into_iter().filter(|e| e.segment.bytes > 0).collect();
        plan.push((cam.clone(), segs));
    }
    let base = stick.join("rdc").join(cfg.unit.id.as_str());
    let all = || plan.iter().flat_map(|(c, s)| s.iter().map(move |e| (c, e)));
    let need: u64 = all()
        .map(|(c, e)| {
            let have = std::fs::metadata(base.join(c).join(&e.segment.file)).map_or(0, |m| m.len());
            e.segment.bytes.saturating_sub(have)
        })
        .sum();
    // A file system that does not say its size (some FUSE drivers answer zeros) is taken as
    // big enough: a full stick then fails the copy, which says so and is carried on later.
    let avail = rustix::fs::statvfs(stick)
        .ok()
        .filter(|s| s.f_blocks > 0)
        .map_or(u64::MAX, |s| s.f_bavail * s.f_frsize);
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
    let audit = |outcome: rdc_format::Outcome, detail: String, bytes: Option<u64>| {
        spool_audit(
            &cfg.storage.path,
            &AuditRecord {
                who: who.clone(),
                role,
                action: "stick_export".into(),
                outcome,
                purpose: Some(rdc_format::Purpose::Export),
                case_ref: Some(r.case_ref.clone()),
                reason: Some(r.reason.clone()),
                from_ns: Some(r.from_ns),
                to_ns: Some(r.to_ns),
                bytes,
                detail: Some(detail),
                ..Default::default()
            },
            Duration::from_secs(15),
        )
    };
    audit(
        rdc_format::Outcome::Started,
        format!(
            "request {hash}: {total} segments of {}",
            r.cameras.join(", ")
        ),
        None,
    )?;
    let mut p = Progress {
        segments: total,
        bytes: all().map(|(_, e)| e.segment.bytes).sum(),
        ..Default::default()
    };
    let (mut written, mut kept) = (0u64, 0u64);
    let copied = copy_all(
        &store,
        &plan,
        &base,
        &facts,
        (&mut p, progress),
        (&mut written, &mut kept),
    );
    let lines = match copied {
        Ok(l) => l,
        Err(e) => {
            let why = format!("{e:#}");
            if let Err(a) = audit(
                rdc_format::Outcome::Interrupted,
                format!("request {hash}: {written} bytes written before: {why}"),
                Some(written),
            ) {
                tracing::error!(error = %a, "the interruption could not be audited");
            }
            return Err(e.context(
                "the stick was not finished (pulled out, full or failing): insert it again to carry on",
            ));
        }
    };
    let receipt = audit(
        rdc_format::Outcome::Granted,
        format!(
            "request {hash} complete; {}",
            receipt_details(&plan).join("; ")
        ),
        Some(written),
    )?;
    write_synced(
        &base.join("receipt.json"),
        &serde_json::to_vec_pretty(&receipt)?,
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
        kept,
        status,
    })
}

/// What a camera's footage on the stick is: its segments in the range.
type Plan = Vec<(String, Vec<rdc_storage::SegmentEntry>)>;

/// Copies every planned segment and each camera's manifests to the stick, then the unit's
/// facts; counts what was written and what an earlier insertion had already written. Returns
/// STATUS.txt's line for each camera.
fn copy_all(
    store: &Store,
    plan: &Plan,
    base: &Path,
    facts: &serde_json::Value,
    (p, progress): (&mut Progress, &mut dyn FnMut(Progress)),
    (written, kept): (&mut u64, &mut u64),
) -> anyhow::Result<Vec<String>> {
    let mut lines = Vec::new();
    let syncer = Syncer::new();
    for (cam, segs) in plan {
        let dir = base.join(cam);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for e in segs {
            let src = store.segment_path(cam, e.segment.seq)?;
            let (n, k) = copy_segment(
                &src,
                &dir.join(&e.segment.file),
                (e.segment.bytes, &e.segment.ciphertext_sha256),
                &syncer,
                &mut |b| {
                    p.bytes_done += b;
                    progress(*p);
                },
            )?;
            *written += n;
            *kept += k;
            p.bytes_done += k;
            p.segments_done += 1;
            progress(*p);
        }
        let (lo, hi) = (
            segs.first().map_or(0, |e| e.segment.seq.saturating_sub(1)),
            segs.last().map_or(0, |e| e.segment.seq + 2),
        );
        let manifests = store.manifests(cam, lo, hi)?;
        write_synced(
            &base.join(format!("{cam}.manifests.json")),
            &serde_json::to_vec_pretty(&manifests)?,
        )?;
        lines.push(camera_line(cam, segs));
    }
    syncer.finish()?;
    for (cam, _) in plan {
        if let Ok(d) = std::fs::File::open(base.join(cam)) {
            let _ = d.sync_all();
        }
    }
    write_synced(&base.join("unit.json"), &serde_json::to_vec_pretty(&facts)?)?;
    Ok(lines)
}

/// STATUS.txt's line for a camera.
fn camera_line(cam: &str, segs: &[rdc_storage::SegmentEntry]) -> String {
    format!(
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
    )
}

/// Per camera, what an export receipt says of its segments, so each camera's bundle made from
/// the stick checks against the one receipt.
fn receipt_details(plan: &[(String, Vec<rdc_storage::SegmentEntry>)]) -> Vec<String> {
    plan.iter()
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
        .collect()
}
