//! Stills as exhibits (R14, seed 001 §5.13-5.16): `rdc still request|approve|make|release` and
//! `rdc stills`. The unit enforces the workflow (who may ask, who may approve, how old a
//! request may be) and keeps the register; `rdc` signs what people sign, checks what the unit
//! serves against the segment's signed manifest, decodes the exact frame on this machine (in
//! memory: nothing decrypted is written) and writes the still's folder, which `rdc verify`
//! checks offline.

pub(crate) mod check;
pub(crate) mod frame;

use rdc_format::export::{Exporter, Signature, UnitFacts};
use rdc_format::stills::{
    self, Police, RegisterEntry, Run, Signed, StillApproval, StillRequest, StillState,
};
use rdc_format::time::rfc3339;
use serde::{Deserialize, Serialize};

use crate::CheckFailed;
use crate::audit::{check_chain, unit_keys};
use crate::events::Events;
use crate::export::{CA_FILE, base64_encode, write_new};
use crate::keys::{Signer, read_identities};
use crate::select::Target;
use crate::time::parse_time;
use crate::units;
use crate::units::connect;
use anyhow::{Context as _, anyhow, bail};
use rdc_config::Id;
use rdc_format::Manifest;
use rdc_format::chain::{self as chainlog, Entry};
use rdc_uplink::client::Client;
use rdc_uplink::pki;
use rdc_uplink::protocol::{Justification, Purpose, Request};
use std::path::{Path, PathBuf};

pub(crate) const RECORD: &str = "still.json";
pub(crate) const PNG: &str = "still.png";
pub(crate) const SERVED: &str = "served.age-part";
pub(crate) const MADE: &str = "register-made.json";
pub(crate) const README: &str = "README.txt";

#[derive(clap::Args, Debug)]
pub(crate) struct RequestArgs {
    /// The camera's id.
    #[arg(long)]
    pub(crate) camera: Id,
    /// The instant, to the frame: RFC 3339 (2026-11-23T18:04:05.240Z).
    #[arg(long)]
    pub(crate) at: String,
    /// The case reference.
    #[arg(long = "case")]
    pub(crate) case_ref: String,
    /// Why the still is necessary (it must be capable of justification).
    #[arg(long)]
    pub(crate) reason: String,
    /// For a police officer's request: their name.
    #[arg(long, requires_all = ["police_id", "authorised_by", "authorisation"])]
    pub(crate) police_officer: Option<String>,
    /// Their identification (warrant or collar number).
    #[arg(long)]
    pub(crate) police_id: Option<String>,
    /// The senior officer (Inspector or above) who authorised it, e.g. "Insp. Jane Smith".
    #[arg(long)]
    pub(crate) authorised_by: Option<String>,
    /// The signed authorisation (a scan or PDF): its SHA-256 goes in the request.
    #[arg(long)]
    pub(crate) authorisation: Option<PathBuf>,
    /// Also write the signed request here, to carry to the manager.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub(crate) struct ApproveArgs {
    /// The still to approve; without it, the requests pending on the unit are listed.
    pub(crate) still: Option<u64>,
    /// A copy of the request carried by the officer (`rdc still request --out`): the approval
    /// is signed over it, and the unit refuses it if it is not exactly what it registered.
    #[arg(long)]
    pub(crate) request: Option<PathBuf>,
    /// Sign the approval (without it, the request is shown and nothing is signed).
    #[arg(long)]
    pub(crate) yes: bool,
    /// A note for the register with the approval (what the manager checked).
    #[arg(long, default_value = "")]
    pub(crate) note: String,
    /// With an age identity: the preview nearest the instant is written to --preview.
    #[arg(long)]
    pub(crate) identity: Option<PathBuf>,
    /// Show the preview nearest the instant first (needs --identity).
    #[arg(long, default_value = "still-preview.png")]
    pub(crate) preview: PathBuf,
}

/// What `still.json` holds, signed by the officer who made the still.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Record {
    pub(crate) format: String,
    pub(crate) still: u64,
    pub(crate) unit: UnitFacts,
    /// The camera's id.
    pub(crate) camera: String,
    /// The case reference.
    pub(crate) case_ref: String,
    pub(crate) reason: String,
    pub(crate) frame: FrameFacts,
    /// The segment's manifest entry, signed by the unit.
    pub(crate) manifest: Entry,
    pub(crate) served: ServedFile,
    /// The register's entries for this still (signed by the unit): the request, the approval,
    /// and the production (the unit's receipt for serving the footage).
    pub(crate) request: Entry,
    pub(crate) approval: Entry,
    pub(crate) production: Entry,
    pub(crate) picture: PictureFacts,
    pub(crate) producer: Exporter,
    pub(crate) produced_ns: i64,
    pub(crate) produced: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FrameFacts {
    /// When the frame is shown (the working copy's time), ns and RFC 3339.
    pub(crate) time_ns: i64,
    pub(crate) utc: String,
    pub(crate) uk_local: String,
    /// The instant asked for.
    pub(crate) asked_ns: i64,
    pub(crate) segment: u64,
    /// Its 90 kHz times in the segment's stream (as ffprobe shows them).
    pub(crate) pts: u64,
    pub(crate) dts: u64,
    pub(crate) keyframe: bool,
    /// Frames decoded from the keyframe to it (0: the keyframe itself).
    pub(crate) after_keyframe: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ServedFile {
    pub(crate) file: String,
    pub(crate) bytes: u64,
    pub(crate) sha256: String,
    pub(crate) run: Run,
    /// SHA-256 of every piece of the segment (header, then chunks): the served ones are
    /// recomputed from the file, and all of them digest to the manifest's `chunks_sha256`.
    pub(crate) leaves: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PictureFacts {
    pub(crate) file: String,
    pub(crate) sha256: String,
    /// The frame's size; the caption strip is below it, `caption_rows` high.
    pub(crate) width: usize,
    pub(crate) height: usize,
    pub(crate) caption_rows: usize,
    pub(crate) caption: Vec<String>,
    /// SHA-256 of the decoder's planes (I420: Y, U, V without padding), which
    /// `ffmpeg -pix_fmt yuv420p` gives for the same frame.
    pub(crate) decoded_sha256: String,
    /// How the planes became RGB: `bt601`/`bt709`, limited or full range, chroma per 2×2.
    pub(crate) matrix: String,
    pub(crate) full_range: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SignedRecord {
    pub(crate) record: serde_json::Value,
    pub(crate) signature: Signature,
}

/// The person's certificate and key from the units file.
fn me(target: &Target) -> anyhow::Result<Signer> {
    Signer::from_entry(&units::entry(target)?, "the still's documents")
}

fn body<T: serde::de::DeserializeOwned>(e: &Entry) -> anyhow::Result<T> {
    serde_json::from_value(e.body.clone())
        .map_err(|err| CheckFailed(format!("entry {} is not readable: {err}", e.seq)).into())
}

/// `rdc still request`: signs the request and registers it on the unit.
pub(crate) async fn request(target: &Target, a: &RequestArgs) -> anyhow::Result<()> {
    let me = me(target)?;
    let at_ns = parse_time(&a.at)?;
    let police = match (&a.police_officer, &a.authorisation) {
        (Some(officer), Some(file)) => Some(Police {
            officer: officer.clone(),
            id: a.police_id.clone().unwrap_or_default(),
            authorised_by: a.authorised_by.clone().unwrap_or_default(),
            authorisation_sha256: crate::fetch::sha256_file(file)?,
            authorisation_file: file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        }),
        _ => None,
    };
    let body = StillRequest {
        unit: target.unit.clone(),
        camera: a.camera.to_string(),
        at_ns,
        at: rfc3339(at_ns),
        case_ref: a.case_ref.clone(),
        reason: a.reason.clone(),
        police,
        requested_ns: crate::time::now_ns(),
    };
    let doc = rdc_uplink::stills::sign(&body, &me.cert_pem, &me.key_pem)
        .context("your key cannot sign the request")?;
    let c = connect(target).await?;
    // The unit's own name may differ from the units file's: ask it.
    let status = c.status().await?;
    let doc = if status.unit != body.unit {
        let body = StillRequest {
            unit: status.unit.clone(),
            ..body
        };
        rdc_uplink::stills::sign(&body, &me.cert_pem, &me.key_pem)?
    } else {
        doc
    };
    let entry = c
        .register(&Request::StillRequest {
            request: doc.clone(),
        })
        .await?;
    c.close();
    if let Some(out) = &a.out {
        write_new(out, &serde_json::to_vec_pretty(&doc)?)?;
    }
    outln!(
        "still {} requested on unit {}: camera {} at {} for case {}; pending a manager's approval (`rdc still approve {}`)",
        entry.seq,
        status.unit,
        a.camera,
        rfc3339(at_ns),
        a.case_ref,
        entry.seq
    );
    Ok(())
}

/// The unit's register, every entry checked (signature, chain), with each still's state.
pub(crate) async fn read_register(
    c: &Client,
) -> anyhow::Result<(Vec<(Entry, RegisterEntry)>, String)> {
    let reg = c.stills().await?;
    let keys = unit_keys(&reg.unit_public_key, &reg.retired_keys)?;
    check_chain(&reg.entries, &keys, "register entry")?;
    let mut out = Vec::new();
    for e in reg.entries {
        let b: RegisterEntry = body(&e)?;
        out.push((e, b));
    }
    Ok((out, reg.unit))
}

pub(crate) fn states(
    reg: &[(Entry, RegisterEntry)],
) -> std::collections::BTreeMap<u64, StillState> {
    let flat: Vec<(u64, i64, RegisterEntry)> = reg
        .iter()
        .map(|(e, b)| (e.seq, e.time_ns, b.clone()))
        .collect();
    stills::fold(&flat)
}

/// `rdc still approve`: lists pending requests, shows one, signs its approval.
pub(crate) async fn approve(target: &Target, a: &ApproveArgs) -> anyhow::Result<()> {
    let c = connect(target).await?;
    let (reg, unit) = read_register(&c).await?;
    let st = states(&reg);
    let Some(id) = a.still else {
        let pending: Vec<&StillState> = st.values().filter(|s| s.status() == "pending").collect();
        if pending.is_empty() {
            outln!("no still requests are pending on unit {unit}");
        }
        for s in pending {
            outln!("{}", one_line(s));
        }
        return Ok(());
    };
    let (s, asked) = st
        .get(&id)
        .and_then(|s| Some((s, s.asked()?)))
        .ok_or_else(|| anyhow!("unit {unit} has no still {id}: `rdc still approve` lists them"))?;
    let stills::Asked {
        request: registered,
        requester,
        camera,
        at_ns,
        case_ref,
        reason,
        ..
    } = asked;
    outln!("{}", one_line(s));
    outln!(
        "  requested by {} ({})",
        requester.name,
        requester.fingerprint
    );
    outln!("  reason: {reason}");
    if let Some(p) = &registered.body.police {
        outln!(
            "  for police officer {} ({}), authorised by {}: {} (SHA-256 {})",
            p.officer,
            p.id,
            p.authorised_by,
            p.authorisation_file,
            p.authorisation_sha256
        );
    }
    if let Some(idp) = &a.identity {
        let why = Justification {
            purpose: Purpose::View,
            case_ref: case_ref.to_owned(),
            reason: format!("approving still {id}: {reason}"),
        };
        let camera = Id::parse(camera).map_err(|e| anyhow!("{e}"))?;
        match nearest_preview(target, &camera, at_ns, idp, &why, &a.preview).await {
            Ok(at) => outln!(
                "  nearest preview ({}) written to {}",
                rfc3339(at),
                a.preview.display()
            ),
            Err(e) => outln!("  no preview: {e:#}"),
        }
    }
    // What is signed: the request the manager was given, or else the one the unit holds.
    let request: Signed<StillRequest> = match &a.request {
        Some(p) => serde_json::from_slice(
            &std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
        )
        .with_context(|| format!("{} is not a signed still request", p.display()))?,
        None => registered.clone(),
    };
    if !a.yes {
        outln!("nothing signed: run again with --yes to approve still {id}");
        return Ok(());
    }
    let me = me(target)?;
    let approval = StillApproval {
        unit: unit.clone(),
        still: id,
        request_sha256: request.sha256(),
        approved_ns: crate::time::now_ns(),
        note: a.note.clone(),
    };
    let doc = rdc_uplink::stills::sign(&approval, &me.cert_pem, &me.key_pem)
        .context("your key cannot sign the approval")?;
    let entry = c.register(&Request::StillApprove { approval: doc }).await?;
    c.close();
    outln!(
        "still {id} approved (register entry {}): {} may now make it (`rdc still make {id}`)",
        entry.seq,
        requester.name
    );
    Ok(())
}

/// Signs the approval of still `id` on `unit` over `request` with the person's key, and sends it.
pub(crate) async fn sign_approval(
    target: &Target,
    c: &Client,
    (unit, id): (&str, u64),
    request: &Signed<StillRequest>,
    note: &str,
) -> anyhow::Result<Entry> {
    let me = me(target)?;
    let approval = StillApproval {
        unit: unit.to_owned(),
        still: id,
        request_sha256: request.sha256(),
        approved_ns: crate::time::now_ns(),
        note: note.to_owned(),
    };
    let doc = rdc_uplink::stills::sign(&approval, &me.cert_pem, &me.key_pem)
        .context("your key cannot sign the approval")?;
    Ok(c.register(&Request::StillApprove { approval: doc }).await?)
}

pub(crate) fn one_line(s: &StillState) -> String {
    match &s.request {
        Some(RegisterEntry::Request {
            requester,
            camera,
            at_ns,
            case_ref,
            ..
        }) => format!(
            "still {:<4} {:<9} camera {} at {} case {} asked by {} on {}",
            s.id,
            s.status(),
            camera,
            rfc3339(*at_ns),
            case_ref,
            requester.name,
            rfc3339(s.requested_ns)
        ),
        _ => format!("still {} (no request in the register)", s.id),
    }
}

/// Fetches the previews around `at_ns` and writes the nearest to `out` as a PNG; its time.
async fn nearest_preview(
    target: &Target,
    camera: &Id,
    at_ns: i64,
    identity: &Path,
    why: &Justification,
    out: &Path,
) -> anyhow::Result<i64> {
    let ids = read_identities(identity)?;
    let work = tempfile_dir()?;
    let r = crate::preview::previews(
        target,
        camera,
        (at_ns - 60_000_000_000, at_ns + 60_000_000_000),
        &ids,
        why,
        &work,
        &Events::new(|_| {}),
    )
    .await;
    let result = r.and_then(|p| {
        let best = p
            .pictures
            .into_iter()
            .min_by_key(|pic| (pic.at_ns - at_ns).abs())
            .ok_or_else(|| anyhow!("no preview within a minute of the instant"))?;
        let codec = match best.codec {
            rdc_format::ts::Codec::H264 => "h264",
            rdc_format::ts::Codec::H265 => "h265",
        };
        crate::still::keyframe_to_png(codec, best.data, out)?;
        Ok(best.at_ns)
    });
    let _ = std::fs::remove_dir_all(&work);
    result
}

/// A private working folder, removed by the caller.
fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let base = std::env::temp_dir().join(format!(
        "rdc-still-{}-{}",
        std::process::id(),
        crate::time::now_ns()
    ));
    std::fs::create_dir_all(&base)?;
    Ok(base)
}

/// What `rdc still make` wrote.
#[derive(Debug)]
pub(crate) struct Made {
    pub(crate) dir: PathBuf,
    pub(crate) record: Record,
    pub(crate) served_bytes: u64,
    pub(crate) segment_bytes: u64,
}

/// `rdc still make`: the unit checks the request and approval and serves the run; this checks
/// it against the signed manifest, decodes the frame and writes the still's folder.
pub(crate) async fn make(
    target: &Target,
    still: u64,
    identity: &Path,
    out: &Path,
) -> anyhow::Result<Made> {
    if out.join(RECORD).exists() {
        bail!(
            "{} already holds a still: choose another --out (an exhibit is never overwritten)",
            out.display()
        );
    }
    let me = me(target)?;
    pki::sign(&me.key_pem, b"rdc still").context("your key cannot sign the still's record")?;
    let ids = read_identities(identity)?;
    let c = connect(target).await?;
    let (status, served) = tokio::join!(c.status(), c.still_footage(still));
    let status = status?;
    let (info, bytes) = served?;
    if info.unit_public_key != status.unit_public_key {
        check_failed!("the unit signed the still's footage with a key other than its status gives");
    }
    let keys = unit_keys(&info.unit_public_key, &info.retired_keys)?;
    let checked = check::served(&info, &bytes, &keys)?;
    let m = &checked.manifest;
    let run = info.run;
    let plain = frame::decrypt_run(&bytes, m, &run, &ids)?;
    let found = frame::find_frame(&plain, m, &run, checked.at_ns)?;
    drop(plain);
    let pic = frame::decode(&found)?;
    let rgb = frame::to_rgb(&pic);
    let about = status.about.clone();
    let caption = caption_lines(
        &status.unit,
        &checked.camera,
        about.as_ref().map(|a| a.site.as_str()),
        found.frame_ns,
        &checked.case_ref,
        still,
    );
    let (img, total_h) = frame::with_caption(&rgb, pic.width, pic.height, &caption);
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    write_new(&out.join(SERVED), &bytes)?;
    crate::preview::write_png(&img, (pic.width, total_h), &out.join(PNG))?;
    std::fs::write(out.join(CA_FILE), &me.ca_pem)?;
    let unit = crate::export::unit_facts(&status);
    let f = &found.units[found.index];
    let produced_ns = crate::time::now_ns();
    let record = Record {
        format: stills::FORMAT.into(),
        still,
        unit,
        camera: checked.camera.clone(),
        case_ref: checked.case_ref.clone(),
        reason: checked.reason.clone(),
        frame: FrameFacts {
            time_ns: found.frame_ns,
            utc: rdc_format::time::utc_ms(found.frame_ns),
            uk_local: rdc_format::time::uk_local_ms(found.frame_ns),
            asked_ns: checked.at_ns,
            segment: m.seq,
            pts: f.pts,
            dts: f.dts,
            keyframe: f.keyframe,
            after_keyframe: found.index as u64,
        },
        manifest: info.manifest.clone(),
        served: ServedFile {
            file: SERVED.into(),
            bytes: bytes.len() as u64,
            sha256: checked.served_sha256.clone(),
            run,
            leaves: info.leaves.clone(),
        },
        request: info.request.clone(),
        approval: info.approval.clone(),
        production: info.production.clone(),
        picture: PictureFacts {
            file: PNG.into(),
            sha256: crate::fetch::sha256_file(&out.join(PNG))?,
            width: pic.width,
            height: pic.height,
            caption_rows: total_h - pic.height,
            caption,
            decoded_sha256: hex::encode(
                ring::digest::digest(&ring::digest::SHA256, &pic.i420).as_ref(),
            ),
            matrix: pic.matrix.clone(),
            full_range: pic.full_range,
        },
        producer: me.who.clone(),
        produced_ns,
        produced: rfc3339(produced_ns),
    };
    let value = serde_json::to_value(&record)?;
    let sig = pki::sign(&me.key_pem, &rdc_format::export::canonical(&value))?;
    let signed = SignedRecord {
        record: value,
        signature: Signature {
            algorithm: "ecdsa-p256-sha256".into(),
            value: base64_encode(&sig),
        },
    };
    let json = serde_json::to_vec_pretty(&signed)?;
    write_new(&out.join(RECORD), &json)?;
    std::fs::write(out.join(README), readme(&record))?;
    // The register records what was made from what it served.
    let made = c
        .register(&Request::StillMade {
            still,
            frame_ns: found.frame_ns,
            png_sha256: record.picture.sha256.clone(),
            record_sha256: hex::encode(ring::digest::digest(&ring::digest::SHA256, &json).as_ref()),
        })
        .await?;
    c.close();
    write_new(&out.join(MADE), &serde_json::to_vec_pretty(&made)?)?;
    Ok(Made {
        dir: out.to_owned(),
        served_bytes: bytes.len() as u64,
        segment_bytes: m.ciphertext_len,
        record,
    })
}

/// The caption beneath the picture: camera and site, the frame's time in UTC and UK local
/// time to the millisecond, the case and the still's number.
pub(crate) fn caption_lines(
    unit: &str,
    camera: &str,
    site: Option<&str>,
    frame_ns: i64,
    case_ref: &str,
    still: u64,
) -> Vec<String> {
    vec![
        format!(
            "CAMERA {camera}  UNIT {unit}{}",
            site.map(|s| format!("  SITE {s}")).unwrap_or_default()
        ),
        rdc_format::time::utc_ms(frame_ns),
        format!("{} (UK)", rdc_format::time::uk_local_ms(frame_ns)),
        format!("CASE {case_ref}  STILL {still}"),
    ]
}

fn readme(r: &Record) -> String {
    format!(
        "A still from CCTV footage (rdc, {format}).\n\n\
         Unit {unit}, camera {camera}; the frame shown at {utc} ({uk}).\n\
         Case {case}: {reason}\n\
         Still {still}, requested, approved and served as the unit's register records.\n\
         Made by {who} ({fp}) at {produced}.\n\n\
         {png}: the frame at its full resolution, losslessly (PNG), with a caption beneath it.\n\
         {record}: what it is and how it was made, signed by its maker: the segment's signed\n\
         manifest, the bytes the unit served ({served}) and where the frame is in them,\n\
         the request, the approval and the unit's receipt.\n\
         {made}: the unit's register entry recording this picture's SHA-256.\n\n\
         Check it with: rdc verify --ca SCHEME-CA.crt THIS-FOLDER\n\
         (with --identity, also that the picture is that frame's decode).\n",
        format = r.format,
        unit = r.unit.id,
        camera = r.camera,
        utc = r.frame.utc,
        uk = r.frame.uk_local,
        case = r.case_ref,
        reason = r.reason,
        still = r.still,
        who = r.producer.name,
        fp = r.producer.fingerprint,
        produced = r.produced,
        png = PNG,
        record = RECORD,
        served = SERVED,
        made = MADE,
    )
}

/// `rdc still release`.
pub(crate) async fn release(target: &Target, still: u64, to: &str) -> anyhow::Result<()> {
    let c = connect(target).await?;
    let e = c
        .register(&Request::StillRelease {
            still,
            to: to.to_owned(),
        })
        .await?;
    c.close();
    outln!(
        "still {still} released to {to} as an exhibit (register entry {}, {})",
        e.seq,
        rfc3339(e.time_ns)
    );
    Ok(())
}

/// `rdc stills`: the register, checked, one still a line (or JSON).
pub(crate) async fn register(
    target: &Target,
    case_ref: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let c = connect(target).await?;
    let (reg, unit) = read_register(&c).await?;
    c.close();
    let st = states(&reg);
    let shown: Vec<&StillState> = st
        .values()
        .filter(|s| case_ref.is_none_or(|c| s.case_ref() == Some(c)))
        .collect();
    if json {
        let ids: std::collections::HashSet<u64> = shown.iter().map(|s| s.id).collect();
        let entries: Vec<serde_json::Value> = reg
            .iter()
            .filter(|(e, b)| ids.contains(&b.still(e.seq)))
            .map(|(e, b)| {
                serde_json::json!({
                    "seq": e.seq,
                    "time": rfc3339(e.time_ns),
                    "still": b.still(e.seq),
                    "kind": b.kind(),
                    "entry": b,
                })
            })
            .collect();
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "unit": unit,
                "checked": true,
                "stills": shown.iter().map(|s| serde_json::json!({"still": s.id, "status": s.status(), "case": s.case_ref()})).collect::<Vec<_>>(),
                "entries": entries,
            }))?
        );
        return Ok(());
    }
    outln!(
        "stills register of unit {unit}: {} entries, every one signed by the unit, the chain unbroken",
        reg.len()
    );
    for s in shown {
        outln!("{}", one_line(s));
        for (e, b) in reg.iter().filter(|(e, b)| b.still(e.seq) == s.id) {
            let what = match b {
                RegisterEntry::Request { reason, .. } => format!("requested: {reason}"),
                RegisterEntry::Approval { approver, .. } => {
                    format!("approved by {}", approver.name)
                }
                RegisterEntry::Production {
                    producer, served, ..
                } => format!(
                    "served to {}: segment {} ({} bytes, SHA-256 {})",
                    producer.name, served.run.seq, served.bytes, served.sha256
                ),
                RegisterEntry::Made {
                    producer,
                    png_sha256,
                    frame_ns,
                    ..
                } => format!(
                    "made by {} from the frame at {}: PNG SHA-256 {png_sha256}",
                    producer.name,
                    rfc3339(*frame_ns)
                ),
                RegisterEntry::Release { by, to, .. } => {
                    format!("released by {} to {to}", by.name)
                }
            };
            outln!("    {:>5}  {}  {what}", e.seq, rfc3339(e.time_ns));
        }
    }
    Ok(())
}
