//! The unit's side: every check the policy asks for is made here, on the unit, whatever
//! the officer's machine says; every refusal is audited by the caller.

use std::time::Duration;

use rdc_format::chain::Entry;
use rdc_format::stills::{
    self, Asked, Person, RegisterEntry, Served, Signed, StillApproval, StillRequest, StillState,
};
use rdc_format::time::rfc3339;
use rdc_storage::{AuditRecord, Store};

use super::Peer;
use super::handle::{Handled, refusal};
use crate::protocol::{Answer, Refusal, StillFootage};

const DAY_NS: i64 = 86_400_000_000_000;
/// A signed time this far in the unit's future is still accepted (laptops' clocks drift).
const SKEW_NS: i64 = 10 * 60 * 1_000_000_000;

fn person(peer: &Peer) -> Person {
    Person {
        name: peer.name.clone(),
        fingerprint: peer.fingerprint.clone(),
    }
}

fn days(d: Duration) -> String {
    let n = d.as_secs() / 86_400;
    format!("{n} day{}", if n == 1 { "" } else { "s" })
}

/// The signature holds and the signer is the person on this connection.
fn signed_by_peer<T: serde::Serialize>(doc: &Signed<T>, peer: &Peer) -> Result<(), Refusal> {
    let (fp, _) = crate::stills::check(doc).map_err(|detail| Refusal::BadSignature { detail })?;
    if fp != peer.fingerprint {
        return Err(Refusal::BadSignature {
            detail: format!(
                "it is signed by the holder of certificate {fp}, but you connected as {} ({}): each person signs their own",
                peer.name, peer.fingerprint
            ),
        });
    }
    Ok(())
}

fn register(store: &Store) -> Result<Vec<(u64, i64, RegisterEntry)>, Refusal> {
    Ok(store
        .stills_register()
        .map_err(refusal)?
        .into_iter()
        .map(|(e, b)| (e.seq, e.time_ns, b))
        .collect())
}

fn entry_of(store: &Store, seq: u64) -> Result<Entry, Refusal> {
    store
        .stills_register()
        .map_err(refusal)?
        .into_iter()
        .find(|(e, _)| e.seq == seq)
        .map(|(e, _)| e)
        .ok_or(Refusal::NoSuchStill { still: seq })
}

fn state(store: &Store, still: u64) -> Result<StillState, Refusal> {
    let all = register(store)?;
    stills::fold(&all)
        .remove(&still)
        .filter(|s| s.request.is_some())
        .ok_or(Refusal::NoSuchStill { still })
}

fn refused(still: u64, why: impl Into<String>) -> Refusal {
    Refusal::StillRefused {
        still: Some(still),
        why: why.into(),
    }
}

fn request_refused(why: String) -> Refusal {
    Refusal::StillRefused { still: None, why }
}

/// The finished segment that holds `at_ns`, or a refusal naming the nearest footage.
pub(crate) fn footage_at(
    store: &Store,
    camera: &str,
    at_ns: i64,
) -> Result<rdc_storage::SegmentEntry, Refusal> {
    let around = store
        .list(
            camera,
            at_ns.saturating_sub(DAY_NS),
            at_ns.saturating_add(DAY_NS),
        )
        .map_err(refusal)?;
    let has = |e: &&rdc_storage::SegmentEntry| e.frames > 0 && e.segment.bytes > 0;
    if let Some(e) = around
        .iter()
        .filter(has)
        .find(|e| e.segment.start_ns <= at_ns && at_ns < e.segment.end_ns)
    {
        return Ok(e.clone());
    }
    let before = around
        .iter()
        .filter(has)
        .filter(|e| e.segment.end_ns <= at_ns)
        .map(|e| e.segment.end_ns)
        .max();
    let after = around
        .iter()
        .filter(has)
        .filter(|e| e.segment.start_ns > at_ns)
        .map(|e| e.segment.start_ns)
        .min();
    Err(Refusal::NoFootageAt {
        camera: camera.to_owned(),
        at: rfc3339(at_ns),
        before: before.map(rfc3339),
        after: after.map(rfc3339),
    })
}

pub(crate) fn request(
    store: &Store,
    peer: &Peer,
    max_age: Duration,
    doc: &Signed<StillRequest>,
    rec: &mut AuditRecord,
) -> Result<Handled, Refusal> {
    let r = &doc.body;
    rec.camera = Some(r.camera.clone());
    rec.from_ns = Some(r.at_ns);
    rec.to_ns = Some(r.at_ns);
    rec.purpose = Some(rdc_format::Purpose::Still);
    rec.case_ref = Some(r.case_ref.clone());
    rec.reason = Some(r.reason.clone());
    signed_by_peer(doc, peer)?;
    let unit = &store.config().unit_id;
    if &r.unit != unit {
        return Err(Refusal::BadSignature {
            detail: format!(
                "the request is for unit {:?}; this is unit {unit:?}",
                r.unit
            ),
        });
    }
    let camera = rdc_config::Id::parse(&r.camera).map_err(|e| Refusal::Malformed {
        detail: format!("camera {:?}: {e}", r.camera),
    })?;
    super::handle::known_camera(store, &camera)?;
    let now = store.now_ns();
    let age = now - r.requested_ns;
    if age > max_age.as_nanos() as i64 {
        return Err(request_refused(format!(
            "the request was signed at {}, more than {} ago (the scheme's limit): make a new request",
            rfc3339(r.requested_ns),
            days(max_age)
        )));
    }
    if age < -SKEW_NS {
        return Err(request_refused(format!(
            "the request says it was signed at {}, after the unit's time {}: check your computer's clock",
            rfc3339(r.requested_ns),
            rfc3339(now)
        )));
    }
    let seg = footage_at(store, camera.as_str(), r.at_ns)?;
    let entry = store
        .register_still(&RegisterEntry::Request {
            requester: person(peer),
            camera: r.camera.clone(),
            at_ns: r.at_ns,
            case_ref: r.case_ref.clone(),
            reason: r.reason.clone(),
            segment: seg.segment.seq,
            request: doc.clone(),
            request_sha256: doc.sha256(),
        })
        .map_err(refusal)?;
    rec.detail = Some(format!("still {} requested (pending approval)", entry.seq));
    Ok(Handled::Answer(Answer::StillRegistered(entry)))
}

pub(crate) fn approve(
    store: &Store,
    peer: &Peer,
    max_age: Duration,
    doc: &Signed<StillApproval>,
    rec: &mut AuditRecord,
) -> Result<Handled, Refusal> {
    let a = &doc.body;
    rec.detail = Some(format!("still {}", a.still));
    signed_by_peer(doc, peer)?;
    let s = state(store, a.still)?;
    let Asked {
        requester,
        request_sha256,
        ..
    } = asked(&s, a.still, rec)?;
    if a.unit != store.config().unit_id {
        return Err(refused(
            a.still,
            format!("the approval is for unit {:?}", a.unit),
        ));
    }
    if let Some((_, RegisterEntry::Approval { approver, .. })) = &s.approved {
        return Err(refused(
            a.still,
            format!("it was already approved by {}", approver.name),
        ));
    }
    if a.request_sha256 != request_sha256 {
        return Err(refused(
            a.still,
            format!(
                "the approval is of a different or edited request (SHA-256 {}); the unit registered {request_sha256}: approve the request as the unit holds it (`rdc still approve` shows it)",
                a.request_sha256
            ),
        ));
    }
    if requester.fingerprint == peer.fingerprint || requester.name == peer.name {
        return Err(refused(
            a.still,
            format!(
                "{} asked for it and may not approve their own request: another manager must sign off its necessity",
                requester.name
            ),
        ));
    }
    let now = store.now_ns();
    let limit = max_age.as_nanos() as i64;
    if now - s.requested_ns > limit {
        return Err(refused(
            a.still,
            format!(
                "the request was registered at {}, more than {} ago: the officer must ask again",
                rfc3339(s.requested_ns),
                days(max_age)
            ),
        ));
    }
    if now - a.approved_ns > limit || a.approved_ns - now > SKEW_NS {
        return Err(refused(
            a.still,
            format!(
                "the approval was signed at {}, not within {} of the unit's time {}: sign it again",
                rfc3339(a.approved_ns),
                days(max_age),
                rfc3339(now)
            ),
        ));
    }
    let entry = store
        .register_still(&RegisterEntry::Approval {
            still: a.still,
            approver: person(peer),
            approval: doc.clone(),
        })
        .map_err(refusal)?;
    rec.detail = Some(format!("still {} approved", a.still));
    Ok(Handled::Answer(Answer::StillRegistered(entry)))
}

pub(crate) fn make(
    store: &Store,
    peer: &Peer,
    max_age: Duration,
    still: u64,
    rec: &mut AuditRecord,
) -> Result<Handled, Refusal> {
    rec.detail = Some(format!("still {still}"));
    let s = state(store, still)?;
    let Asked {
        requester,
        camera,
        at_ns,
        case_ref,
        reason,
        ..
    } = asked(&s, still, rec)?;
    let Some((approved_at, RegisterEntry::Approval { approver, .. })) = &s.approved else {
        return Err(refused(
            still,
            "no manager has approved it yet: a still is made only once a manager has approved its necessity (`rdc still approve` on a manager's machine)",
        ));
    };
    if peer.fingerprint != requester.fingerprint && peer.role != rdc_config::Role::Manager {
        return Err(refused(
            still,
            format!(
                "only {} (who asked for it) or a manager may produce it",
                requester.name
            ),
        ));
    }
    let now = store.now_ns();
    let limit = max_age.as_nanos() as i64;
    for (what, t) in [("request", s.requested_ns), ("approval", *approved_at)] {
        if now - t > limit {
            return Err(refused(
                still,
                format!(
                    "its {what} was registered at {}, more than {} ago: ask and approve again",
                    rfc3339(t),
                    days(max_age)
                ),
            ));
        }
    }
    let seg = footage_at(store, camera, at_ns)?;
    let seq = seg.segment.seq;
    rec.seq = Some(seq);
    let manifest = store.manifest_entry(camera, seq).map_err(refusal)?;
    let m: rdc_format::Manifest =
        serde_json::from_value(manifest.body.clone()).map_err(|e| Refusal::Failed {
            detail: format!("segment {camera}/{seq}'s manifest is unreadable: {e}"),
        })?;
    let run = stills::plan(&m, at_ns).map_err(|e| Refusal::Failed {
        detail: e.to_string(),
    })?;
    let path = store.segment_path(camera, seq).map_err(refusal)?;
    let file = std::fs::read(&path).map_err(|e| Refusal::Failed {
        detail: format!("cannot read segment {camera}/{seq}: {e}"),
    })?;
    if file.len() as u64 != m.ciphertext_len {
        return Err(Refusal::Failed {
            detail: format!(
                "segment {camera}/{seq} is {} bytes on disk but {} in its manifest: ask an engineer to run `rdc-recorder store verify`",
                file.len(),
                m.ciphertext_len
            ),
        });
    }
    let h = run.header_len as usize;
    let mut leaves = vec![hex::encode(stills::leaf(&file[..h]))];
    leaves.extend(
        file[h..]
            .chunks(stills::CHUNK_CT as usize)
            .map(|c| hex::encode(stills::leaf(c))),
    );
    let (cs, ce) = run.chunk_bytes(m.ciphertext_len);
    let mut bytes = Vec::with_capacity(h + (ce - cs) as usize);
    bytes.extend_from_slice(&file[..h]);
    bytes.extend_from_slice(&file[cs as usize..ce as usize]);
    drop(file);
    let served = Served {
        camera: camera.to_owned(),
        run,
        manifest_hash: manifest.hash.clone(),
        bytes: bytes.len() as u64,
        sha256: hex::encode(ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref()),
    };
    let production = store
        .register_still(&RegisterEntry::Production {
            still,
            producer: person(peer),
            approver: approver.name.clone(),
            case_ref: case_ref.to_owned(),
            reason: reason.to_owned(),
            at_ns,
            served,
        })
        .map_err(refusal)?;
    rec.detail = Some(format!(
        "still {still}: segment {seq}, chunks {}-{} of {} ({} bytes), approved by {}",
        run.first_chunk,
        run.last_chunk,
        leaves.len() - 1,
        bytes.len(),
        approver.name
    ));
    let answer = StillFootage {
        unit: store.config().unit_id.clone(),
        unit_public_key: store.public_hex(),
        retired_keys: super::handle::retired_hex(store),
        manifest,
        request: entry_of(store, still)?,
        approval: entry_of(store, approval_seq(store, still)?)?,
        production,
        run,
        leaves,
    };
    Ok(Handled::Blob(Answer::StillFootage(Box::new(answer)), bytes))
}

fn approval_seq(store: &Store, still: u64) -> Result<u64, Refusal> {
    register(store)?
        .into_iter()
        .find(|(_, _, e)| matches!(e, RegisterEntry::Approval { still: s, .. } if *s == still))
        .map(|(seq, _, _)| seq)
        .ok_or(Refusal::NoSuchStill { still })
}

pub(crate) fn made(
    store: &Store,
    peer: &Peer,
    still: u64,
    frame_ns: i64,
    png_sha256: &str,
    record_sha256: &str,
    rec: &mut AuditRecord,
) -> Result<Handled, Refusal> {
    rec.detail = Some(format!("still {still}: PNG {png_sha256}"));
    let all = register(store)?;
    let produced_by_peer = all.iter().any(|(_, _, e)| {
        matches!(e, RegisterEntry::Production { still: s, producer, .. } if *s == still && producer.fingerprint == peer.fingerprint)
    });
    if !produced_by_peer {
        return Err(refused(
            still,
            "the unit served its footage to someone else, or not yet: `rdc still make` reports what it made",
        ));
    }
    let entry = store
        .register_still(&RegisterEntry::Made {
            still,
            producer: person(peer),
            frame_ns,
            png_sha256: png_sha256.to_owned(),
            record_sha256: record_sha256.to_owned(),
        })
        .map_err(refusal)?;
    Ok(Handled::Answer(Answer::StillRegistered(entry)))
}

pub(crate) fn release(
    store: &Store,
    peer: &Peer,
    still: u64,
    to: &str,
    rec: &mut AuditRecord,
) -> Result<Handled, Refusal> {
    rec.detail = Some(format!("still {still} released to {to}"));
    let s = state(store, still)?;
    if let Some(RegisterEntry::Request { case_ref, .. }) = &s.request {
        rec.case_ref = Some(case_ref.clone());
    }
    if s.made.is_none() {
        return Err(refused(
            still,
            format!(
                "it has not been made yet ({}): only a made still is released",
                s.status()
            ),
        ));
    }
    let entry = store
        .register_still(&RegisterEntry::Release {
            still,
            by: person(peer),
            to: to.trim().to_owned(),
        })
        .map_err(refusal)?;
    Ok(Handled::Answer(Answer::StillRegistered(entry)))
}

/// A still's request, recorded in the audit entry of what is done with it (its camera,
/// instant, case and reason); refused if the register has no such still.
fn asked<'a>(s: &'a StillState, still: u64, rec: &mut AuditRecord) -> Result<Asked<'a>, Refusal> {
    let q = s.asked().ok_or(Refusal::NoSuchStill { still })?;
    rec.camera = Some(q.camera.to_owned());
    rec.from_ns = Some(q.at_ns);
    rec.to_ns = Some(q.at_ns);
    rec.purpose = Some(rdc_format::Purpose::Still);
    rec.case_ref = Some(q.case_ref.to_owned());
    rec.reason = Some(q.reason.to_owned());
    Ok(q)
}
