//! Checking a still: what the unit served (by `rdc still make`, before anything is decoded) and
//! a still's folder (by `rdc verify`, offline, months later). Both recompute: the run from the
//! signed manifest and the instant, each served piece's hash, the signed digest of all pieces.

use rdc_format::stills::{self, RegisterEntry, Run};
use rdc_uplink::protocol::StillFootage;

use super::*;
use crate::report::Report;

/// What the served footage was checked to be.
#[derive(Debug)]
pub(crate) struct Checked {
    pub(crate) manifest: Manifest,
    pub(crate) camera: String,
    pub(crate) at_ns: i64,
    pub(crate) case_ref: String,
    pub(crate) reason: String,
    pub(crate) served_sha256: String,
    /// Who the unit served it to (`sha256:…`).
    pub(crate) producer: String,
}

/// Checks what the unit served for a still before anything is decoded.
pub(crate) fn served(
    info: &StillFootage,
    bytes: &[u8],
    keys: &[[u8; 32]],
) -> anyhow::Result<Checked> {
    parts(
        (
            &info.manifest,
            &info.request,
            &info.approval,
            &info.production,
        ),
        &info.run,
        &info.leaves,
        bytes,
        keys,
    )
    .map_err(|e| CheckFailed(format!("the unit's answer for the still: {e}")).into())
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// Every part of a still's proof, checked against the others and the unit's keys.
fn parts(
    (manifest, request, approval, production): (&Entry, &Entry, &Entry, &Entry),
    run: &Run,
    leaves: &[String],
    bytes: &[u8],
    keys: &[[u8; 32]],
) -> Result<Checked, String> {
    for (e, what) in [
        (manifest, "the segment's manifest entry"),
        (request, "the register's request entry"),
        (approval, "the register's approval entry"),
        (
            production,
            "the register's production entry (the unit's receipt)",
        ),
    ] {
        chainlog::verify_entry_by(e, keys).map_err(|err| format!("{what}: {err}"))?;
    }
    let m: Manifest = serde_json::from_value(manifest.body.clone())
        .map_err(|e| format!("the manifest entry is not a manifest: {e}"))?;
    let id = request.seq;
    let Ok(RegisterEntry::Request {
        requester,
        camera,
        at_ns,
        case_ref,
        reason,
        request: doc,
        request_sha256,
        ..
    }) = serde_json::from_value::<RegisterEntry>(request.body.clone())
    else {
        return Err(format!(
            "register entry {} is not a still's request",
            request.seq
        ));
    };
    let (signer, _) =
        rdc_uplink::stills::check(&doc).map_err(|e| format!("still {id}'s signed request: {e}"))?;
    if doc.sha256() != request_sha256
        || doc.body.camera != camera
        || doc.body.at_ns != at_ns
        || doc.body.case_ref != case_ref
        || doc.body.reason != reason
        || signer != requester.fingerprint
    {
        return Err(format!(
            "still {id}'s register entry does not say what its signed request says"
        ));
    }
    let Ok(RegisterEntry::Approval {
        still,
        approver,
        approval: adoc,
    }) = serde_json::from_value::<RegisterEntry>(approval.body.clone())
    else {
        return Err(format!(
            "register entry {} is not an approval",
            approval.seq
        ));
    };
    let (asigner, _) = rdc_uplink::stills::check(&adoc)
        .map_err(|e| format!("still {id}'s signed approval: {e}"))?;
    if still != id || adoc.body.still != id || adoc.body.request_sha256 != request_sha256 {
        return Err(format!(
            "the approval (register entry {}) is of another request than still {id}'s",
            approval.seq
        ));
    }
    if asigner != approver.fingerprint {
        return Err(format!(
            "the approval is signed by {asigner}, not by the approver the unit registered ({})",
            approver.fingerprint
        ));
    }
    if approver.fingerprint == requester.fingerprint || approver.name == requester.name {
        return Err(format!(
            "still {id} was approved by the person who asked for it ({})",
            requester.name
        ));
    }
    let Ok(RegisterEntry::Production {
        still,
        producer,
        approver: approved_by,
        at_ns: served_at,
        served,
        ..
    }) = serde_json::from_value::<RegisterEntry>(production.body.clone())
    else {
        return Err(format!(
            "register entry {} is not a production",
            production.seq
        ));
    };
    if still != id || served_at != at_ns || approved_by != approver.name {
        return Err(format!(
            "the production (register entry {}) is not still {id}'s",
            production.seq
        ));
    }
    if served.manifest_hash != manifest.hash || served.camera != m.camera || m.camera != camera {
        return Err(format!(
            "the unit's receipt names another segment than manifest entry {} of camera {}",
            manifest.seq, m.camera
        ));
    }
    if &served.run != run {
        return Err("the run described is not the one the unit's receipt names".into());
    }
    let want = stills::plan(&m, at_ns).map_err(|e| e.to_string())?;
    if &want != run {
        return Err(format!(
            "the run served (chunks {}-{}) is not the one the signed manifest gives for {} (chunks {}-{})",
            run.first_chunk,
            run.last_chunk,
            rdc_format::time::rfc3339(at_ns),
            want.first_chunk,
            want.last_chunk
        ));
    }
    let digest = sha(bytes);
    if served.bytes != bytes.len() as u64 || served.sha256 != digest {
        return Err(format!(
            "the served bytes (SHA-256 {digest}, {} bytes) are not those the unit's receipt names ({}, {} bytes)",
            bytes.len(),
            served.sha256,
            served.bytes
        ));
    }
    if run.served_len(m.ciphertext_len) != bytes.len() as u64 {
        return Err(format!(
            "{} bytes were served; the run is {} bytes",
            bytes.len(),
            run.served_len(m.ciphertext_len)
        ));
    }
    // Each served piece hashes to its leaf; all leaves digest to what the manifest signs.
    let h = run.header_len as usize;
    let n = stills::chunk_count(m.plaintext_len) as usize;
    if leaves.len() != n + 1 {
        return Err(format!(
            "{} piece hashes were given for a segment of {} pieces",
            leaves.len(),
            n + 1
        ));
    }
    let mut mine = vec![hex::encode(stills::leaf(&bytes[..h]))];
    mine.extend(
        bytes[h..]
            .chunks(stills::CHUNK_CT as usize)
            .map(|c| hex::encode(stills::leaf(c))),
    );
    let expect = leaves[..1]
        .iter()
        .chain(&leaves[1 + run.first_chunk as usize..=1 + run.last_chunk as usize]);
    if !mine.iter().eq(expect) {
        return Err(format!(
            "the served bytes are not segment {}'s: a piece does not hash to the segment's",
            m.seq
        ));
    }
    let mut raw = Vec::with_capacity(leaves.len());
    for l in leaves {
        let b: [u8; 32] = hex::decode(l)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or("a piece hash is not SHA-256 hex")?;
        raw.push(b);
    }
    match &m.chunks_sha256 {
        Some(signed) if *signed == stills::leaves_digest(&raw) => {}
        Some(_) => {
            return Err(format!(
                "the piece hashes do not digest to what segment {}'s signed manifest says",
                m.seq
            ));
        }
        None if run.whole && digest == m.ciphertext_sha256 => {}
        None => {
            return Err(format!(
                "segment {}'s manifest signs no piece hashes (an older segment) and the whole segment was not served",
                m.seq
            ));
        }
    }
    if run.whole && digest != m.ciphertext_sha256 {
        return Err(format!(
            "the whole segment was served but its SHA-256 is not what manifest {} signs",
            m.seq
        ));
    }
    Ok(Checked {
        manifest: m,
        camera,
        at_ns,
        case_ref,
        reason,
        served_sha256: digest,
        producer: producer.fingerprint,
    })
}

/// The files a still's folder holds; nothing else may be there.
const FILES: [&str; 6] = [RECORD, PNG, SERVED, CA_FILE, MADE, README];

/// Checks a still's folder offline (`rdc verify DIR` when DIR holds `still.json`).
pub(crate) fn folder(dir: &Path, ca: Option<&Path>, identity: Option<&Path>) -> Report {
    let mut r = Report::default();
    if let Err(e) = run(dir, ca, identity, &mut r) {
        r.fail(format!("the still could not be checked to the end: {e:#}"));
    }
    r.verdict = if !r.failed.is_empty() {
        format!(
            "The still in {} is NOT intact: {} check(s) failed (lines marked FAILED above).",
            dir.display(),
            r.failed.len()
        )
    } else if ca.is_none() {
        format!(
            "The still in {} is self-consistent, but its ORIGIN IS UNPROVEN: its maker's certificate was checked only against the CA the folder carries. Run again with --ca and the scheme's CA certificate.",
            dir.display()
        )
    } else {
        r.intact_and_proven = true;
        format!(
            "The still in {} is complete and unaltered: every check above holds.",
            dir.display()
        )
    };
    r
}

fn run(
    dir: &Path,
    ca: Option<&Path>,
    identity: Option<&Path>,
    r: &mut Report,
) -> anyhow::Result<()> {
    closed_set(dir, r)?;
    let Some((json, signed, rec)) = read_record(dir, r) else {
        return Ok(());
    };
    // The maker's signature and certificate.
    crate::report::check_maker(
        r,
        dir,
        RECORD,
        &rec.producer,
        (&signed.record, &signed.signature.value),
        ca,
        (rec.produced_ns, &rec.produced),
    )?;
    // The picture and the served bytes are the files the record names.
    let png_sha = crate::fetch::sha256_file(&dir.join(PNG)).unwrap_or_default();
    r.check(
        png_sha == rec.picture.sha256,
        format!("{PNG} is the picture the record names (SHA-256 {png_sha})"),
        format!(
            "{PNG} has been altered: its SHA-256 is {png_sha}, the record says {}",
            rec.picture.sha256
        ),
    );
    let bytes = std::fs::read(dir.join(SERVED)).unwrap_or_default();
    let keys = match unit_keys(&rec.unit.public_key, &rec.unit.retired_keys) {
        Ok(k) => k,
        Err(e) => {
            r.fail(format!("the unit's key in {RECORD}: {e}"));
            return Ok(());
        }
    };
    let checked = match parts(
        (&rec.manifest, &rec.request, &rec.approval, &rec.production),
        &rec.served.run,
        &rec.served.leaves,
        &bytes,
        &keys,
    ) {
        Ok(c) => {
            r.ok.push(format!(
                "{SERVED} is what unit {} served for still {} ({} bytes of segment {}'s {}): each piece hashes to the segment's, whose digest its signed manifest carries",
                rec.unit.id, rec.still, bytes.len(), c.manifest.seq, c.manifest.ciphertext_len
            ));
            r.ok.push(format!(
                "still {}: requested by the case's officer, approved by another person, served as the unit's receipt says (register entries {}, {}, {}, signed by unit {})",
                rec.still, rec.request.seq, rec.approval.seq, rec.production.seq, rec.unit.id
            ));
            c
        }
        Err(e) => {
            r.fail(e);
            return Ok(());
        }
    };
    check_claims(&rec, &checked, r);
    check_made(dir, &rec, &json, &keys, r);
    if let Some(idp) = identity {
        check_picture(dir, &rec, &checked, &bytes, idp, r)?;
    }
    Ok(())
}

/// A still's folder is a closed set of regular files.
fn closed_set(dir: &Path, r: &mut Report) -> anyhow::Result<()> {
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let md = std::fs::symlink_metadata(e.path())?;
        if !FILES.contains(&name.as_str()) {
            r.fail(format!(
                "{name} is in the still's folder but is not part of a still (a still holds only {})",
                FILES.join(", ")
            ));
        } else if !md.file_type().is_file() {
            r.fail(format!(
                "{name} is not a regular file (a symbolic link or folder): a still holds only regular files"
            ));
        }
    }
    Ok(())
}

/// The still's signed record, read: (its bytes, the signed record, the record); `None`
/// (failed in the report) when it cannot be.
fn read_record(dir: &Path, r: &mut Report) -> Option<(Vec<u8>, SignedRecord, Record)> {
    let d = crate::report::read_signed(
        (dir, RECORD, "record"),
        "a still's record",
        (stills::FORMAT, |x: &Record| x.format.as_str()),
        r,
    )?;
    let signed = SignedRecord {
        record: d.value,
        signature: d.signature,
    };
    Some((d.bytes, signed, d.doc))
}

/// What the record says of the still agrees with what the unit signed.
fn check_claims(rec: &Record, checked: &Checked, r: &mut Report) {
    let mut wrong = Vec::new();
    if rec.still != rec.request.seq {
        wrong.push(format!("it calls itself still {}", rec.still));
    }
    if rec.camera != checked.camera
        || rec.case_ref != checked.case_ref
        || rec.reason != checked.reason
    {
        wrong.push("its camera, case or reason differ from the request's".into());
    }
    if rec.frame.asked_ns != checked.at_ns
        || rec.frame.segment != checked.manifest.seq
        || rec.frame.time_ns > checked.at_ns
        || rec.frame.time_ns < checked.manifest.start_ns
    {
        wrong.push("its frame is not the one shown at the instant asked for".into());
    }
    if checked.producer != rec.producer.fingerprint {
        wrong.push(format!(
            "the unit served {} but the record is signed by {}",
            checked.producer, rec.producer.fingerprint
        ));
    }
    r.check(
        wrong.is_empty(),
        format!(
            "the frame shown at {} ({}) of camera {}, case {}",
            rec.frame.utc, rec.frame.uk_local, rec.camera, rec.case_ref
        ),
        format!(
            "{RECORD} does not match what the unit signed: {}",
            wrong.join("; ")
        ),
    );
}

/// The unit's register entry for the picture made names this picture and this record.
fn check_made(dir: &Path, rec: &Record, json: &[u8], keys: &[[u8; 32]], r: &mut Report) {
    match std::fs::read(dir.join(MADE)) {
        Err(_) => r.notes.push(format!(
            "{MADE} is not in the folder: the unit's register entry for this picture is not checked here (`rdc stills` shows it)"
        )),
        Ok(b) => {
            let made: Result<Entry, _> = serde_json::from_slice(&b);
            let good = made.ok().and_then(|e| {
                chainlog::verify_entry_by(&e, keys).ok()?;
                match serde_json::from_value::<RegisterEntry>(e.body.clone()).ok()? {
                    RegisterEntry::Made {
                        still,
                        png_sha256,
                        record_sha256,
                        producer,
                        ..
                    } => Some(
                        still == rec.still
                            && png_sha256 == rec.picture.sha256
                            && record_sha256 == sha(json)
                            && producer.fingerprint == rec.producer.fingerprint,
                    ),
                    _ => Some(false),
                }
            });
            r.check(
                good == Some(true),
                format!("the unit's register records this picture and this record ({MADE})"),
                format!("{MADE} is not the unit's register entry for this picture and record"),
            );
        }
    }
}

/// With the officer's identity: the picture is the served frame's decode, pixel for pixel.
fn check_picture(
    dir: &Path,
    rec: &Record,
    checked: &Checked,
    bytes: &[u8],
    idp: &Path,
    r: &mut Report,
) -> anyhow::Result<()> {
    let ids = read_identities(idp)?;
    let m = &checked.manifest;
    let pic = frame::decrypt_run(bytes, m, &rec.served.run, &ids)
        .and_then(|plain| frame::find_frame(&plain, m, &rec.served.run, checked.at_ns))
        .and_then(|found| {
            let f = &found.units[found.index];
            if f.pts != rec.frame.pts || found.frame_ns != rec.frame.time_ns {
                bail!(
                    "the frame shown at the instant is the one at {}, not the record's",
                    rdc_format::time::rfc3339(found.frame_ns)
                );
            }
            frame::decode(&found)
        });
    match pic {
        Err(e) => r.fail(format!("decoding the served footage: {e:#}")),
        Ok(pic) => {
            let dsha = sha(&pic.i420);
            r.check(
                dsha == rec.picture.decoded_sha256,
                format!("the frame decodes to the planes the record names (SHA-256 {dsha})"),
                format!(
                    "the frame decodes to planes with SHA-256 {dsha}, not {}",
                    rec.picture.decoded_sha256
                ),
            );
            let rgb = frame::to_rgb(&pic);
            let (img, h) = frame::with_caption(&rgb, pic.width, pic.height, &rec.picture.caption);
            let same = frame::png_pixels(&dir.join(PNG))
                .map(|(w, ph, px)| w == pic.width && ph == h && px == img);
            r.check(
                matches!(same, Ok(true)),
                format!(
                    "{PNG} is that frame's decode, pixel for pixel ({}×{}, {} {} range), with its caption",
                    pic.width,
                    pic.height,
                    pic.matrix,
                    if pic.full_range { "full" } else { "limited" }
                ),
                format!("{PNG} is not that frame's decode with its caption"),
            );
        }
    }
    Ok(())
}
