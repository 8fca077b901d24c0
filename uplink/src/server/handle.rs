//! What the unit does for each request, once the person is known and allowed: the one match
//! over [`Request`], after [`Request::scope`] has recorded what it touches and refused a camera
//! the unit never had.

use std::sync::Arc;
use std::time::Duration;

use rdc_storage::{AuditRecord, HoldRequest, Store};

use super::{Extra, Peer, UnitHooks, sar, stills};
use crate::protocol::{self, Answer, AuditAnswer, Refusal, Request, StatusAnswer, StillInfo};

pub(crate) enum Handled {
    Answer(Answer),
    /// An answer and bytes from memory (a still).
    Blob(Answer, Vec<u8>),
    /// Answered with the audit entry of the request itself (an export receipt).
    Receipt,
    Bytes {
        entry: rdc_storage::SegmentEntry,
        file: std::fs::File,
        offset: u64,
        len: u64,
    },
}

/// The refusal that tells the officer what a store error means for them.
pub(crate) fn refusal(e: rdc_storage::Error) -> Refusal {
    use rdc_storage::Error as E;
    match e {
        E::NoSuchSegment(camera, seq) => Refusal::NoSuchSegment { camera, seq },
        E::NoSuchHold(id) => Refusal::NoSuchHold { id },
        E::HoldRefused(detail) => Refusal::HoldRefused { detail },
        E::BadCamera(camera, m) => Refusal::Malformed {
            detail: format!("camera {camera:?}: {m}"),
        },
        other => Refusal::Failed {
            detail: other.to_string(),
        },
    }
}

pub(crate) fn retired_hex(store: &Store) -> Vec<String> {
    store
        .retired_public_keys()
        .iter()
        .map(hex::encode)
        .collect()
}

/// A segment's bytes from `offset`, for a fetch of a camera known to the unit, audited as a
/// fetch of that segment.
fn segment_bytes(
    store: &Store,
    rec: &mut AuditRecord,
    camera: &rdc_config::Id,
    track: crate::protocol::Track,
    seq: u64,
    offset: u64,
) -> Result<Handled, Refusal> {
    rec.seq = Some(seq);
    let name = track.store_name(camera.as_str());
    let r = store.open_segment(&name, seq).map_err(refusal)?;
    if offset > r.len() {
        return Err(Refusal::OffsetPastEnd {
            camera: camera.to_string(),
            seq,
            offset,
            len: r.len(),
        });
    }
    let len = r.len() - offset;
    let entry = r.entry.clone();
    rec.from_ns = Some(entry.segment.start_ns);
    rec.to_ns = Some(entry.segment.end_ns);
    let file = r.into_file_at(offset).map_err(|e| Refusal::Failed {
        detail: format!("cannot read segment {camera}/{seq}: {e}"),
    })?;
    Ok(Handled::Bytes {
        entry,
        file,
        offset,
        len,
    })
}

/// Refuses a request for a camera the unit has never had.
pub(crate) fn known_camera(store: &Store, camera: &rdc_config::Id) -> Result<(), Refusal> {
    // Cameras, not their preview tracks (which are asked for by camera and track).
    let mut known = store.known_cameras().map_err(refusal)?;
    known.retain(|c| rdc_format::track::parse_store_name(c).is_some_and(|(_, t)| t.is_footage()));
    if known.iter().any(|c| camera == c.as_str()) {
        Ok(())
    } else {
        Err(Refusal::NoSuchCamera {
            camera: camera.to_string(),
            known,
        })
    }
}

pub(super) fn handle(
    req: &Request,
    peer: &Peer,
    store: &Store,
    extra: &Extra,
    rec: &mut AuditRecord,
) -> Result<Handled, Refusal> {
    let answer = |a| Ok(Handled::Answer(a));
    record_scope(store, req, rec)?;
    match req {
        Request::Status => answer(status(peer, store, extra)?),
        Request::List {
            camera,
            from_ns,
            to_ns,
            track,
            ..
        } => answer(Answer::Segments(
            store
                .list(&track.store_name(camera.as_str()), *from_ns, *to_ns)
                .map_err(refusal)?,
        )),
        Request::Manifests {
            camera,
            from_seq,
            to_seq,
            track,
            ..
        } => answer(Answer::Manifests(
            store
                .manifests(&track.store_name(camera.as_str()), *from_seq, *to_seq)
                .map_err(refusal)?,
        )),
        Request::Fetch {
            camera,
            seq,
            offset,
            track,
            ..
        } => segment_bytes(store, rec, camera, *track, *seq, *offset),
        Request::FetchFirst {
            camera,
            from_ns,
            to_ns,
            track,
            ..
        } => {
            // Audited with the range asked for until the segment is known (a refusal keeps it).
            let seq = first_seq(store, camera, *track, *from_ns, *to_ns)?;
            segment_bytes(store, rec, camera, *track, seq, 0)
        }
        Request::HoldCreate { .. } => answer(Answer::Hold(create_hold(store, peer, req)?)),
        Request::HoldList => answer(Answer::Holds(store.holds().map_err(refusal)?)),
        Request::HoldRelease { id, reason } => answer(Answer::Hold(
            store
                .release_hold(*id, (&peer.name, peer.role.into()), reason)
                .map_err(refusal)?,
        )),
        Request::Still { camera } => commissioning_still(store, extra, camera, rec),
        Request::CommissionDone { reason } => {
            let since = hooks(extra)?
                .mark_in_service(&peer.name, reason)
                .map_err(|detail| Refusal::Failed { detail })?;
            rec.detail = Some(protocol::in_service_detail(since));
            answer(Answer::InService { since_ns: since })
        }
        Request::SelfTest => answer(Answer::SelfTest(hooks(extra)?.selftest())),
        Request::Activity {
            camera,
            from_ns,
            to_ns,
            bucket_ns,
            ..
        } => answer(activity(store, camera, (*from_ns, *to_ns), *bucket_ns)?),
        // What a receipt records is its scope: nothing more is served.
        Request::ExportReceipt { .. } | Request::DisclosureReceipt { .. } => Ok(Handled::Receipt),
        Request::StillRequest { request } => {
            stills::request(store, peer, max_age(extra), request, rec)
        }
        Request::StillApprove { approval } => {
            stills::approve(store, peer, max_age(extra), approval, rec)
        }
        Request::StillMake { still } => stills::make(store, peer, max_age(extra), *still, rec),
        Request::StillMade {
            still,
            frame_ns,
            png_sha256,
            record_sha256,
        } => stills::made(
            store,
            peer,
            *still,
            *frame_ns,
            png_sha256,
            record_sha256,
            rec,
        ),
        Request::StillRelease { still, to } => stills::release(store, peer, *still, to, rec),
        Request::SarOpen {
            reference,
            camera,
            from_ns,
            to_ns,
            received,
        } => sar::open(
            store,
            peer,
            (reference, camera, *from_ns, *to_ns, received),
            rec,
        ),
        Request::SarExtend {
            reference,
            months,
            reason,
        } => sar::extend(store, peer, (reference, *months, reason), rec),
        Request::SarClose { reference, outcome } => {
            sar::close(store, peer, (reference, outcome), rec)
        }
        Request::Sars => answer(Answer::Register(register(store, store.sar_register())?)),
        Request::Stills => answer(Answer::Register(register(store, store.stills_register())?)),
        // With the unit's signing key, so an auditor (who may not ask for the status) can check
        // every entry.
        Request::Audit { from_seq } => answer(Answer::Audit(register(
            store,
            store.audit_entries(*from_seq),
        )?)),
    }
}

/// Records in the audit entry what the request touches, and refuses a camera the unit never
/// had: [`Request::scope`], before any request is served.
fn record_scope(store: &Store, req: &Request, rec: &mut AuditRecord) -> Result<(), Refusal> {
    let scope = req.scope();
    if let Some(c) = scope.camera {
        rec.camera = Some(c.to_string());
    }
    rec.from_ns = scope.from_ns.or(rec.from_ns);
    rec.to_ns = scope.to_ns.or(rec.to_ns);
    rec.seq = scope.seq.or(rec.seq);
    if let Some(c) = scope.case_ref {
        rec.case_ref = Some(c.to_owned());
    }
    if let Some(r) = scope.reason {
        rec.reason = Some(r.to_owned());
    }
    rec.detail = scope.detail.or(rec.detail.take());
    scope
        .known
        .into_iter()
        .try_for_each(|c| known_camera(store, c))
}

fn create_hold(store: &Store, peer: &Peer, req: &Request) -> Result<rdc_format::Hold, Refusal> {
    let Request::HoldCreate {
        cameras,
        from_ns,
        to_ns,
        case_ref,
        reason,
        review_ns,
    } = req
    else {
        return Err(Refusal::Malformed {
            detail: format!("{} is not a hold", req.action()),
        });
    };
    store
        .create_hold(
            HoldRequest {
                cameras: cameras.iter().map(|c| c.to_string()).collect(),
                from_ns: *from_ns,
                to_ns: *to_ns,
                case_ref: case_ref.clone(),
                reason: reason.clone(),
                who: peer.name.clone(),
                review_ns: *review_ns,
            },
            peer.role.into(),
        )
        .map_err(refusal)
}

/// How many bytes `camera` recorded in each bucket of a range: the activity strip.
fn activity(
    store: &Store,
    camera: &rdc_config::Id,
    (from_ns, to_ns): (i64, i64),
    bucket_ns: i64,
) -> Result<Answer, Refusal> {
    let segments = store
        .list(camera.as_str(), from_ns, to_ns)
        .map_err(refusal)?;
    Ok(Answer::Activity {
        camera: camera.to_string(),
        from_ns,
        bucket_ns,
        bytes: rdc_format::activity(&segments, from_ns, to_ns, bucket_ns),
    })
}

fn status(peer: &Peer, store: &Store, extra: &Extra) -> Result<Answer, Refusal> {
    Ok(Answer::Status(Box::new(StatusAnswer {
        unit: store.config().unit_id.clone(),
        unit_public_key: store.public_hex(),
        retired_keys: retired_hex(store),
        time_ns: store.now_ns(),
        store: store.status().map_err(refusal)?,
        live: extra.live.as_ref().map(|f| f()),
        about: extra.about.clone(),
        your_role: Some(peer.role),
    })))
}

/// The first segment of `camera`'s `track` in a range.
fn first_seq(
    store: &Store,
    camera: &rdc_config::Id,
    track: protocol::Track,
    from_ns: i64,
    to_ns: i64,
) -> Result<u64, Refusal> {
    let first = store
        .list(&track.store_name(camera.as_str()), from_ns, to_ns)
        .map_err(refusal)?
        .into_iter()
        .next()
        .ok_or_else(|| Refusal::NoFootage {
            camera: camera.to_string(),
            from_ns,
            to_ns,
        })?;
    Ok(first.segment.seq)
}

/// A camera's latest keyframe, for the engineer commissioning it (before it goes into service).
fn commissioning_still(
    store: &Store,
    extra: &Extra,
    camera: &rdc_config::Id,
    rec: &mut AuditRecord,
) -> Result<Handled, Refusal> {
    let h = hooks(extra)?;
    if let Some(since) = h.in_service() {
        return Err(Refusal::InService {
            since: rdc_format::time::rfc3339(since),
        });
    }
    let Some((codec, bytes, wall_ns)) = h.still(camera.as_str()) else {
        // A camera the unit does not have is named as such, with the ones it has.
        known_camera(store, camera)?;
        return Err(Refusal::NoStill {
            camera: camera.to_string(),
        });
    };
    rec.from_ns = Some(wall_ns);
    Ok(Handled::Blob(
        Answer::Still(StillInfo {
            camera: camera.to_string(),
            codec,
            wall_ns,
        }),
        bytes,
    ))
}

/// A signed log's entries, with the keys that sign them, so whoever asks (an auditor may not
/// ask for the status) can check every entry.
fn register<T>(
    store: &Store,
    entries: Result<Vec<(rdc_format::chain::Entry, T)>, rdc_storage::Error>,
) -> Result<AuditAnswer, Refusal> {
    Ok(AuditAnswer {
        unit: store.config().unit_id.clone(),
        unit_public_key: store.public_hex(),
        retired_keys: retired_hex(store),
        entries: entries
            .map_err(refusal)?
            .into_iter()
            .map(|(e, _)| e)
            .collect(),
    })
}

fn max_age(extra: &Extra) -> Duration {
    extra
        .still_max_age
        .unwrap_or(Duration::from_secs(7 * 86_400))
}

fn hooks(extra: &Extra) -> Result<&Arc<dyn UnitHooks>, Refusal> {
    extra.hooks.as_ref().ok_or_else(|| Refusal::Failed {
        detail: "this unit's uplink serves no stills, commissioning or selftest (it runs without its recorder)".into(),
    })
}
