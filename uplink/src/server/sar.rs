//! The unit's side of subject access requests (002 §43, R15): a request holds the footage it
//! names and records its deadline in the unit's signed register; an extension is recorded
//! within the first month; closing releases the hold. Every change is audited by the caller.

use rdc_format::sar::{self, Outcome, SarEntry};
use rdc_format::time::rfc3339;
use rdc_storage::{AuditRecord, HoldRequest, Store};

use super::Peer;
use super::handle::{Handled, known_camera, refusal};
use crate::protocol::{Answer, Refusal};

fn refused(reference: &str, why: impl Into<String>) -> Refusal {
    Refusal::SarRefused {
        reference: reference.to_owned(),
        why: why.into(),
    }
}

fn requests(store: &Store) -> Result<Vec<sar::Sar>, Refusal> {
    let entries: Vec<SarEntry> = store
        .sar_register()
        .map_err(refusal)?
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    Ok(sar::fold(&entries))
}

fn open_one(store: &Store, reference: &str) -> Result<sar::Sar, Refusal> {
    requests(store)?
        .into_iter()
        .rev()
        .find(|s| s.reference == reference)
        .filter(|s| s.closed.is_none())
        .ok_or_else(|| {
            refused(
                reference,
                "there is no open request with this reference: `rdc sar list` shows them",
            )
        })
}

/// The end of a UK calendar day, as ns since the epoch (23:59:59 UTC, an hour early in summer:
/// a review on that day, never after it).
fn end_of(d: time::Date) -> i64 {
    let t = d.with_hms(23, 59, 59).map(|t| t.assume_utc());
    t.map(|t| t.unix_timestamp_nanos() as i64).unwrap_or(0) - 3_600_000_000_000
}

pub(crate) fn open(
    store: &Store,
    peer: &Peer,
    (reference, camera, from_ns, to_ns, received): (&str, &rdc_config::Id, i64, i64, &str),
    rec: &mut AuditRecord,
) -> Result<Handled, Refusal> {
    rec.camera = Some(camera.to_string());
    rec.from_ns = Some(from_ns);
    rec.to_ns = Some(to_ns);
    rec.case_ref = Some(reference.to_owned());
    rec.purpose = Some(rdc_format::Purpose::SubjectAccess);
    known_camera(store, camera)?;
    let day = sar::parse_date(received).ok_or_else(|| {
        refused(
            reference,
            format!("{received:?} is not a date (YYYY-MM-DD)"),
        )
    })?;
    let today = sar::uk_date(store.now_ns());
    if day > today {
        return Err(refused(
            reference,
            format!(
                "it cannot have been received on {received}, after today ({})",
                sar::date_text(today)
            ),
        ));
    }
    if requests(store)?
        .iter()
        .any(|s| s.reference == reference && s.closed.is_none())
    {
        return Err(refused(
            reference,
            "a request with this reference is already open",
        ));
    }
    let due = sar::due(day, 0);
    // Held until the latest the deadline can be extended to, and a month more to disclose.
    let review_ns = end_of(sar::add_months(sar::due(day, sar::MAX_EXTENSION_MONTHS), 1));
    let hold = store
        .create_hold(
            HoldRequest {
                cameras: vec![camera.to_string()],
                from_ns,
                to_ns,
                case_ref: reference.to_owned(),
                reason: format!(
                    "subject access request {reference}, received {received}, due {}",
                    sar::date_text(due)
                ),
                who: peer.name.clone(),
                review_ns,
            },
            peer.role.into(),
        )
        .map_err(refusal)?;
    let entry = store
        .register_sar(&SarEntry::Opened {
            reference: reference.to_owned(),
            camera: camera.to_string(),
            from_ns,
            to_ns,
            received: sar::date_text(day),
            due: sar::date_text(due),
            hold: hold.id,
            who: peer.name.clone(),
        })
        .map_err(refusal)?;
    rec.reason = Some(format!("subject access request received {received}"));
    rec.detail = Some(format!(
        "due {} (hold {}, reviewed by {})",
        sar::date_text(due),
        hold.id,
        rfc3339(review_ns)
    ));
    Ok(Handled::Answer(Answer::SarRegistered(entry)))
}

pub(crate) fn extend(
    store: &Store,
    peer: &Peer,
    (reference, months, reason): (&str, u8, &str),
    rec: &mut AuditRecord,
) -> Result<Handled, Refusal> {
    rec.case_ref = Some(reference.to_owned());
    rec.reason = Some(reason.to_owned());
    let s = open_one(store, reference)?;
    let received = sar::parse_date(&s.received)
        .ok_or_else(|| refused(reference, "its received date is unreadable"))?;
    let first = sar::due(received, 0);
    let today = sar::uk_date(store.now_ns());
    if today > first {
        return Err(refused(
            reference,
            format!(
                "an extension must be recorded within the first month (by {}); it is {}",
                sar::date_text(first),
                sar::date_text(today)
            ),
        ));
    }
    if months <= s.extended_months {
        return Err(refused(
            reference,
            format!("it is already extended by {} month(s)", s.extended_months),
        ));
    }
    let due = sar::due(received, months);
    let entry = store
        .register_sar(&SarEntry::Extended {
            reference: reference.to_owned(),
            months,
            reason: reason.to_owned(),
            due: sar::date_text(due),
            who: peer.name.clone(),
        })
        .map_err(refusal)?;
    rec.detail = Some(format!(
        "extended by {months} month(s): due {}",
        sar::date_text(due)
    ));
    Ok(Handled::Answer(Answer::SarRegistered(entry)))
}

pub(crate) fn close(
    store: &Store,
    peer: &Peer,
    (reference, outcome): (&str, &Outcome),
    rec: &mut AuditRecord,
) -> Result<Handled, Refusal> {
    rec.case_ref = Some(reference.to_owned());
    let s = open_one(store, reference)?;
    let why = match outcome {
        Outcome::Disclosed { disclosure_sha256 } => format!("disclosed ({disclosure_sha256})"),
        Outcome::Refused { reason } => format!("refused: {reason}"),
    };
    // The hold may have lapsed at its review already; the request closes all the same.
    match store.release_hold(
        s.hold,
        (&peer.name, peer.role.into()),
        &format!("subject access request {reference} closed: {why}"),
    ) {
        Ok(_) | Err(rdc_storage::Error::NoSuchHold(_)) => {}
        Err(e) => return Err(refusal(e)),
    }
    let entry = store
        .register_sar(&SarEntry::Closed {
            reference: reference.to_owned(),
            outcome: outcome.clone(),
            who: peer.name.clone(),
        })
        .map_err(refusal)?;
    rec.reason = Some(why);
    rec.detail = Some(format!("hold {} released", s.hold));
    Ok(Handled::Answer(Answer::SarRegistered(entry)))
}
