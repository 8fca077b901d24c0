//! `rdc export`: a court bundle of one camera's footage in a time range, which anyone can
//! check offline with `rdc verify` (or, for the hashes, `sha256sum -c`).
//!
//! ```text
//! OUT/master/<seq>-<start>.age   the segments as the unit encrypted and signed them
//! OUT/master/<seq>-<start>.ts    their decryption, bit for bit
//! OUT/working-copy.mp4           one MP4 of the range, remuxed, with a time track
//! OUT/scheme-ca.crt              the CA the exporter's certificate was issued by
//! OUT/README.txt                 what each file is, how to play and verify it
//! OUT/manifest.json              everything above, hashed, and the exporter's signature
//! OUT/SHA256SUMS                 every file's SHA-256, for `sha256sum -c`
//! ```

use rdc_format::export::{
    self, Bundle, BundleSegment, ClockSummary, FileHash, Range, Signature, Signed, UnitFacts,
    WorkingCopy,
};

use crate::CheckFailed;
use crate::audit::unit_keys;
use crate::events::{Event, Events};
use crate::fetch::{Fetched, fetch_segments, seq_span, status_and_list};
use crate::keys::Signer;
use crate::mp4;
use crate::select::Target;
use crate::time::{self, now_ns};
use crate::units;
use crate::units::connect;
use anyhow::{Context as _, anyhow, bail};
use rdc_config::Id;
use rdc_format::Manifest;
use rdc_format::chain::{self as chainlog, Entry};
use rdc_uplink::client::Client;
use rdc_uplink::pki;
use rdc_uplink::protocol::{Justification, Purpose, Request, Track};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The working copy's file name in a bundle.
pub(crate) const WORKING_COPY: &str = "working-copy.mp4";
pub(crate) const MANIFEST: &str = "manifest.json";
pub(crate) const SUMS: &str = "SHA256SUMS";
pub(crate) const CA_FILE: &str = "scheme-ca.crt";
pub(crate) const README: &str = "README.txt";

/// `rdc export`'s arguments as typed: over the link every one is needed; from a stick, only
/// the identity, the folder and (when it holds several) the camera.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct ExportCli {
    /// The camera's id (with --from-stick, needed only when the stick holds more than one).
    #[arg(long, required_unless_present = "from_stick")]
    pub(crate) camera: Option<Id>,
    /// Start: RFC 3339 UTC (2026-11-23T18:00:00Z), or now-10m, now-2h, now-1d.
    #[arg(
        long,
        required_unless_present = "from_stick",
        conflicts_with = "from_stick"
    )]
    pub(crate) from: Option<String>,
    /// End, as --from.
    #[arg(
        long,
        required_unless_present = "from_stick",
        conflicts_with = "from_stick"
    )]
    pub(crate) to: Option<String>,
    /// The case reference.
    #[arg(
        long = "case",
        required_unless_present = "from_stick",
        conflicts_with = "from_stick"
    )]
    pub(crate) case_ref: Option<String>,
    /// Why the footage is exported (recorded by the unit and in the bundle).
    #[arg(
        long,
        required_unless_present = "from_stick",
        conflicts_with = "from_stick"
    )]
    pub(crate) reason: Option<String>,
    /// The officer's age identity, one of the unit's recipients: the bundle holds the
    /// decrypted footage too.
    #[arg(long)]
    pub(crate) identity: PathBuf,
    /// The bundle's folder (created; an earlier, unfinished export there is resumed).
    #[arg(long, short)]
    pub(crate) out: PathBuf,
}

impl ExportCli {
    /// The arguments of an export over the link (clap has made sure each is there).
    pub(crate) fn remote(self) -> anyhow::Result<ExportArgs> {
        let need = |v: Option<String>, flag: &str| v.ok_or_else(|| anyhow!("{flag} is needed"));
        Ok(ExportArgs {
            camera: self.camera.ok_or_else(|| anyhow!("--camera is needed"))?,
            from: need(self.from, "--from")?,
            to: need(self.to, "--to")?,
            case_ref: need(self.case_ref, "--case")?,
            reason: need(self.reason, "--reason")?,
            identity: self.identity,
            out: self.out,
        })
    }
}

/// What to export and why.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ExportArgs {
    /// The camera's id.
    pub(crate) camera: Id,
    /// Start: RFC 3339 UTC (2026-11-23T18:00:00Z), or now-10m, now-2h, now-1d.
    pub(crate) from: String,
    pub(crate) to: String,
    /// The case reference.
    pub(crate) case_ref: String,
    /// Why the footage is exported (recorded by the unit and in the bundle).
    pub(crate) reason: String,
    /// The officer's age identity, one of the unit's recipients: the bundle holds the
    /// decrypted footage too.
    pub(crate) identity: PathBuf,
    /// The bundle's folder (created; an earlier, unfinished export there is resumed).
    pub(crate) out: PathBuf,
}

/// `rdc export`: the bundle, a progress bar, and what was made.
pub(crate) async fn export(target: &Target, a: &ExportArgs) -> anyhow::Result<()> {
    let x = export_bundle(target, a, &Events::terminal()).await?;
    eprintln!(
        "exported {} segments of {} ({} to {}) into {}: {} gap(s); the unit recorded the export (audit entry {}). {}",
        x.segments,
        a.camera,
        x.from,
        x.to,
        x.dir.display(),
        x.gaps,
        x.receipt_seq,
        x.check_it()
    );
    Ok(())
}

/// What [`export_bundle`] made.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Exported {
    pub dir: PathBuf,
    pub segments: usize,
    pub from: String,
    pub to: String,
    pub gaps: usize,
    /// The unit's audit entry recording the export.
    pub receipt_seq: u64,
    /// The scheme CA the officer's units file names (to check the bundle against).
    pub ca: PathBuf,
}

impl Exported {
    /// The command that checks the bundle against the scheme's CA.
    pub fn check_it(&self) -> String {
        format!(
            "Check it with: rdc verify {} --ca {}",
            self.dir.display(),
            self.ca.display()
        )
    }
}

/// Makes the evidence bundle `a` asks for, reporting progress to `events`; resumes an
/// unfinished one in the same folder.
pub async fn export_bundle(
    target: &Target,
    a: &ExportArgs,
    events: &Events,
) -> anyhow::Result<Exported> {
    let (from_ns, to_ns) = time::parse_range(&a.from, &a.to)?;
    if a.out.join(MANIFEST).exists() {
        bail!(
            "{} already holds a finished export: choose another --out (an exhibit is never overwritten)",
            a.out.display()
        );
    }
    let identities = crate::keys::read_identities(&a.identity)?;
    let entry = units::entry(target)?;
    let signer = Signer::from_entry(&entry, "the bundle")?;

    let just = Justification {
        purpose: Purpose::Export,
        case_ref: a.case_ref.clone(),
        reason: a.reason.clone(),
    };
    let camera = &a.camera;
    let mut client = connect(target).await?;
    let master = a.out.join("master");
    let (status, entries, lead) =
        status_and_list(&client, camera.into(), (from_ns, to_ns), &just, &master).await?;
    let unit_keys = unit_keys(&status.unit_public_key, &status.retired_keys)?;
    if entries.is_empty() {
        return Err(nothing_there(&client, &status, camera, (from_ns, to_ns), &just).await);
    }
    let (lo, hi) = seq_span(&entries);
    let (log, fetched) = fetch_segments(
        &mut client,
        target,
        (camera, Track::Footage),
        &entries,
        (lo.saturating_sub(1), hi + 1),
        &unit_keys,
        &master,
        &just,
        Some(&identities),
        lead,
        events,
    )
    .await?;
    let run: Vec<Manifest> = log
        .iter()
        .map(|e| serde_json::from_value(e.body.clone()))
        .collect::<Result<_, _>>()
        .map_err(|e| CheckFailed(format!("a manifest of {camera} is not readable: {e}")))?;
    let present = |s: u64| fetched.iter().any(|f| f.manifest.seq == s);
    let gaps = export::gaps((from_ns, to_ns), &run, &present);
    let digest = export::segments_digest(
        fetched
            .iter()
            .map(|f| (f.manifest.seq, f.manifest.ciphertext_sha256.as_str())),
    );
    let first = &fetched[0].manifest;
    let last = &fetched[fetched.len() - 1].manifest;
    let receipt = client
        .export_receipt(&Request::ExportReceipt {
            camera: camera.clone(),
            from_ns,
            to_ns,
            first_seq: first.seq,
            last_seq: last.seq,
            count: fetched.len() as u64,
            digest,
            why: just.clone(),
        })
        .await
        .context("the unit did not record the export")?;
    chainlog::verify_entry_by(&receipt, &unit_keys)
        .map_err(|e| CheckFailed(format!("the unit's export receipt: {e}")))?;
    client.close();

    let parts = Parts {
        unit: unit_facts(&status),
        camera: camera.to_string(),
        case_ref: a.case_ref.clone(),
        reason: a.reason.clone(),
        range: (from_ns, to_ns),
        log,
        fetched,
        gaps,
        receipt,
    };
    assemble(&a.out, parts, &signer, events).await
}

/// What a bundle is made of, however its footage arrived (over the link, or on a stick).
pub(crate) struct Parts {
    pub(crate) unit: UnitFacts,
    pub(crate) camera: String,
    pub(crate) case_ref: String,
    pub(crate) reason: String,
    pub(crate) range: (i64, i64),
    /// The camera's signed manifests, an unbroken run around the segments.
    pub(crate) log: Vec<Entry>,
    /// The segments, checked against their manifests and decrypted.
    pub(crate) fetched: Vec<crate::fetch::Fetched>,
    pub(crate) gaps: Vec<export::Gap>,
    /// The unit's signed audit entry recording the footage leaving it.
    pub(crate) receipt: Entry,
}

/// The working copy, the signed manifest, the CA, the README and SHA256SUMS of a bundle whose
/// footage is in `out/master/`.
pub(crate) async fn assemble(
    out: &Path,
    p: Parts,
    s: &Signer,
    events: &Events,
) -> anyhow::Result<Exported> {
    let Parts {
        unit,
        camera,
        case_ref,
        reason,
        range: (from_ns, to_ns),
        log,
        fetched,
        gaps,
        receipt,
    } = p;
    let (first, last) = match (fetched.first(), fetched.last()) {
        (Some(f), Some(l)) => (f.manifest.clone(), l.manifest.clone()),
        _ => bail!("no footage to put in the bundle"),
    };
    events.emit(&Event::Step {
        what: "building the working copy (MP4)".into(),
    });
    let pieces: Vec<mp4::Piece> = fetched
        .iter()
        .enumerate()
        .map(|(i, f)| mp4::Piece {
            ts: f.ts.clone().expect("decrypted with the identity"),
            start_ns: f.manifest.start_ns,
            continues: i > 0 && {
                let p = &fetched[i - 1].manifest;
                p.seq + 1 == f.manifest.seq && p.ended == rdc_format::Ended::Cut
            },
        })
        .collect();
    let mp4_path = out.join(WORKING_COPY);
    let (cam, g, p) = (camera.to_string(), gaps.clone(), mp4_path.clone());
    let made = tokio::task::spawn_blocking(move || {
        mp4::working_copy(&pieces, (from_ns, to_ns), &cam, &g, &p)
    })
    .await??;
    let note = (made.first_ns < from_ns - 1_000_000).then(|| {
        format!(
            "starts at the keyframe before the requested start, {:.3} s earlier ({}): a copy cannot start between keyframes without re-encoding",
            (from_ns - made.first_ns) as f64 / 1e9,
            rdc_format::time::rfc3339(made.first_ns)
        )
    });

    let now = now_ns();
    let mut bundle = Bundle {
        format: export::FORMAT.into(),
        exported_at_ns: now,
        exported_at: rdc_format::time::rfc3339(now),
        unit,
        camera: camera.clone(),
        case_ref,
        reason,
        requested: Range::new(from_ns, to_ns),
        footage: Range::new(first.start_ns, last.end_ns),
        gaps,
        clock: ClockSummary::of(fetched.iter().map(|f| &f.manifest)),
        working_copy: Some(WorkingCopy {
            file: WORKING_COPY.into(),
            codec: made.codec,
            range: Range::new(made.first_ns, made.end_ns),
            frames: made.frames,
            note,
        }),
        segments: fetched.iter().map(|f| bundle_segment(out, f)).collect(),
        manifests: log,
        receipt,
        exporter: s.who.clone(),
        files: Vec::new(),
    };
    std::fs::write(out.join(CA_FILE), &s.ca_pem)?;
    std::fs::write(out.join(README), readme(&bundle))?;
    let mut paths: Vec<String> = bundle
        .segments
        .iter()
        .flat_map(|s| [s.master.clone(), s.decrypted.clone()])
        .collect();
    paths.extend([WORKING_COPY, CA_FILE, README].map(String::from));
    paths.sort();
    for p in &paths {
        bundle.files.push(hash_file(out, p)?);
    }
    let value = serde_json::to_value(&bundle)?;
    let sig = pki::sign(&s.key_pem, &export::canonical(&value))?;
    let signed = Signed {
        bundle: value,
        signature: Signature {
            algorithm: "ecdsa-p256-sha256".into(),
            value: base64_encode(&sig),
        },
    };
    write_new(&out.join(MANIFEST), &serde_json::to_vec_pretty(&signed)?)?;
    let mut sums = bundle.files.clone();
    sums.push(hash_file(out, MANIFEST)?);
    sums.sort_by(|x, y| x.path.cmp(&y.path));
    let text: String = sums
        .iter()
        .map(|f| format!("{}  {}\n", f.sha256, f.path))
        .collect();
    std::fs::write(out.join(SUMS), text)?;
    Ok(Exported {
        dir: out.to_owned(),
        segments: bundle.segments.len(),
        from: bundle.requested.from.clone(),
        to: bundle.requested.to.clone(),
        gaps: bundle.gaps.len(),
        receipt_seq: bundle.receipt.seq,
        ca: s.ca_path.clone(),
    })
}

/// The refusal of a range with no footage, saying what the unit has near it.
/// What the unit's status says of `camera`.
pub(crate) fn camera_status<'a>(
    status: &'a rdc_uplink::protocol::StatusAnswer,
    camera: &Id,
) -> Option<&'a rdc_format::CameraStatus> {
    status
        .store
        .cameras
        .iter()
        .find(|c| c.camera == camera.as_str())
}

async fn nothing_there(
    client: &Client,
    status: &rdc_uplink::protocol::StatusAnswer,
    camera: &Id,
    (from_ns, to_ns): (i64, i64),
    just: &Justification,
) -> anyhow::Error {
    const HOUR: i64 = 3_600_000_000_000;
    let t = rdc_format::time::rfc3339;
    let mut msg = format!(
        "no footage from {camera} between {} and {}: nothing exported.",
        t(from_ns),
        t(to_ns)
    );
    match camera_status(status, camera) {
        Some(c) => {
            if let (Some(o), Some(n)) = (c.oldest_start_ns, c.newest_end_ns) {
                msg.push_str(&format!(
                    " The unit has {camera}'s footage from {} to {} ({} segments).",
                    t(o),
                    t(n),
                    c.segments
                ));
            }
        }
        None => msg.push_str(&format!(" The unit has no footage of {camera} at all.")),
    }
    let (before, after) = tokio::join!(
        client.list(camera, from_ns - HOUR, from_ns, just),
        client.list(camera, to_ns, to_ns + HOUR, just)
    );
    if let Some(b) = before
        .ok()
        .and_then(|v| v.into_iter().max_by_key(|e| e.segment.end_ns))
    {
        msg.push_str(&format!(
            " Nearest before: footage ending {}.",
            t(b.segment.end_ns)
        ));
    }
    if let Some(a) = after
        .ok()
        .and_then(|v| v.into_iter().min_by_key(|e| e.segment.start_ns))
    {
        msg.push_str(&format!(
            " Nearest after: footage starting {}.",
            t(a.segment.start_ns)
        ));
    }
    anyhow!(msg)
}

fn bundle_segment(out: &Path, f: &Fetched) -> BundleSegment {
    let rel = |p: &Path| {
        p.strip_prefix(out)
            .unwrap_or(p)
            .to_string_lossy()
            .into_owned()
    };
    BundleSegment {
        seq: f.manifest.seq,
        master: rel(&f.age),
        decrypted: f.ts.as_deref().map(rel).unwrap_or_default(),
    }
}

pub(crate) fn hash_file(dir: &Path, rel: &str) -> anyhow::Result<FileHash> {
    let p = dir.join(rel);
    let bytes = std::fs::metadata(&p)
        .with_context(|| format!("reading {}", p.display()))?
        .len();
    Ok(FileHash {
        path: rel.to_owned(),
        bytes,
        sha256: crate::fetch::sha256_file(&p)?,
    })
}

pub(crate) fn base64_encode(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// Writes a file that must not exist yet.
pub(crate) fn write_new(p: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(p)
        .with_context(|| format!("creating {}", p.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// The bundle's README.txt: for whoever receives the disc.
fn readme(b: &Bundle) -> String {
    let t = rdc_format::time::rfc3339;
    let mut gaps = String::new();
    for g in &b.gaps {
        gaps.push_str(&format!(
            "  - {} to {}: {}\n",
            g.range.from, g.range.to, g.cause
        ));
    }
    if gaps.is_empty() {
        gaps.push_str("  none: footage is continuous over the requested range\n");
    }
    let wc = b.working_copy.as_ref();
    format!(
        "CCTV EVIDENCE EXPORT
====================

Unit {unit}{operator}{site}, camera {camera}.
Requested:  {from} to {to} (UTC)
Footage:    {ffrom} to {fto} (whole segments, as recorded)
Case:       {case}
Reason:     {reason}
Exported by {who} ({fp}) at {at}.
Clock:      {clock}

Gaps in the requested range:
{gaps}
FILES
  master/*.age        The footage exactly as the unit recorded, encrypted (age format) and
                      signed it: the master exhibit. Do not alter.
  master/*.ts         The same footage decrypted (MPEG transport stream), bit for bit.
  {wc_file:<19} A working copy: the range as one MP4 file, not re-encoded, with a
                      subtitle track showing each second's date and time (UTC and UK local)
                      and the camera.{wc_note}
  manifest.json       What this export contains: the unit's signed record of every segment,
                      the gaps and their causes, the unit's signed audit entry for this
                      export, the SHA-256 of every file; signed by the exporter.
  scheme-ca.crt       The certificate authority that issued the exporter's certificate.
  SHA256SUMS          The SHA-256 of every file.

TO PLAY
  Open {wc_file} in VLC, a web browser, or: ffplay {wc_file}
  (turn subtitles on to see the time). Each master/*.ts also plays in VLC or ffplay.

TO VERIFY
  That no file was changed since the export:   sha256sum -c SHA256SUMS
  Everything (signatures, the unit's records, the gaps, the audit entry), offline:
      rdc verify THIS-FOLDER --ca <the scheme's CA certificate>
  That a .ts is the decryption of its .age (needs a key the footage was encrypted to):
      age -d -i KEY master/FILE.age | sha256sum      (compare with SHA256SUMS)
",
        unit = b.unit.id,
        operator = b
            .unit
            .operator
            .as_deref()
            .map(|o| format!(", operated by {o}"))
            .unwrap_or_default(),
        site = b
            .unit
            .site
            .as_deref()
            .map(|s| format!(", at {s}"))
            .unwrap_or_default(),
        camera = b.camera,
        from = b.requested.from,
        to = b.requested.to,
        ffrom = b.footage.from,
        fto = b.footage.to,
        case = b.case_ref,
        reason = b.reason,
        who = b.exporter.name,
        fp = b.exporter.fingerprint,
        at = t(b.exported_at_ns),
        clock = if b.clock.synchronized_throughout {
            "the unit's clock was synchronised (NTP) throughout".to_owned()
        } else {
            format!(
                "NOT synchronised throughout: segments {:?} were recorded while the unit's clock was unsynchronised, their times may be off",
                b.clock.unsynchronized_segments
            )
        },
        gaps = gaps,
        wc_file = wc.map_or(WORKING_COPY, |w| w.file.as_str()),
        wc_note = wc
            .and_then(|w| w.note.as_ref())
            .map(|n| format!("\n                      It {n}."))
            .unwrap_or_default(),
    )
}

/// Who runs the unit, where and why, as its status said.
pub(crate) fn unit_facts(status: &rdc_uplink::protocol::StatusAnswer) -> UnitFacts {
    let about = status.about.as_ref();
    UnitFacts {
        id: status.unit.clone(),
        public_key: status.unit_public_key.clone(),
        retired_keys: status.retired_keys.clone(),
        operator: about.map(|u| u.operator.clone()),
        contact: about.map(|u| u.contact.clone()),
        purpose: about.map(|u| u.purpose.clone()),
        site: about.map(|u| u.site.clone()),
    }
}
