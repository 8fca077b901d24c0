//! `rdc audit`: the unit's audit log, every entry checked, and the anchor that notices a log
//! cut or rewritten since the last reading.

use crate::CheckFailed;
use crate::keys::write_private;
use crate::select::Target;
use crate::time::parse_time;
use crate::units::{Anchor, anchors_path, connect};
use anyhow::{Context as _, anyhow};
use rdc_format::chain::{self as chainlog, Entry};

/// Every entry signed by the unit and matching its hash, consecutive, each linked to the one
/// before it.
pub(crate) fn check_chain(es: &[Entry], keys: &[[u8; 32]], what: &str) -> anyhow::Result<()> {
    for (i, e) in es.iter().enumerate() {
        chainlog::verify_entry_by(e, keys).map_err(|m| CheckFailed(format!("{what} {m}")))?;
        if i == 0 {
            continue;
        }
        let p = &es[i - 1];
        if p.seq + 1 != e.seq {
            check_failed!(
                "{what} {} follows {what} {}: the entries between are missing",
                e.seq,
                p.seq
            );
        }
        if p.hash != e.prev {
            check_failed!(
                "{what} {} does not follow {what} {}: the chain is broken",
                e.seq,
                p.seq
            );
        }
    }
    Ok(())
}

/// The unit's signing key and the keys it retired deliberately (hex, from its answers).
pub(crate) fn unit_keys(current: &str, retired: &[String]) -> anyhow::Result<Vec<[u8; 32]>> {
    let mut keys = vec![unit_key(current)?];
    for r in retired {
        keys.push(unit_key(r)?);
    }
    Ok(keys)
}

/// The unit's signing key (hex, from its status or audit answer).
pub(crate) fn unit_key(hex_key: &str) -> anyhow::Result<[u8; 32]> {
    hex::decode(hex_key)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| anyhow!("the unit gave no valid signing key ({hex_key:?})"))
}

/// `rdc audit`: prints what [`read_audit`] returns. It fetches the unit's audit log from the last anchor (or `from_seq`, whichever is
/// older), checks it, prints the entries from `from_seq`, and moves the anchor to the newest.
pub(crate) async fn audit(
    target: &Target,
    from_seq: u64,
    accept_new_key: bool,
) -> anyhow::Result<()> {
    let r = read_audit(target, from_seq, accept_new_key).await?;
    for e in &r.entries {
        outln!("{}", serde_json::to_string(e)?);
    }
    eprintln!("{}", r.summary);
    Ok(())
}

/// The unit's audit log, checked and anchored as `rdc audit` does.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditRead {
    /// The entries from the sequence number asked for.
    pub entries: Vec<Entry>,
    /// What was checked, in a sentence.
    pub summary: String,
}

/// Fetches the unit's audit log from the last anchor (or `from_seq`, whichever is older),
/// checks every signature, the chain and the anchor, moves the anchor to the newest entry, and
/// returns the entries from `from_seq`.
pub async fn read_audit(
    target: &Target,
    from_seq: u64,
    accept_new_key: bool,
) -> anyhow::Result<AuditRead> {
    let path = anchors_path();
    let mut anchors: std::collections::BTreeMap<String, Anchor> = match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b)
            .with_context(|| format!("{} is damaged; move it aside", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Default::default(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let c = connect(target).await?;
    // From the anchor on (or `from_seq`, whichever is older). The key comes with the answer;
    // the anchor is checked against it before anything else.
    let anchor = anchors.get(&target.unit).cloned();
    let start = anchor.as_ref().map_or(from_seq, |a| a.seq.min(from_seq));
    let answer = c.audit(start).await?;
    c.close();
    let key = unit_key(&answer.unit_public_key)?;
    let keys = unit_keys(&answer.unit_public_key, &answer.retired_keys)?;
    let key_hex = hex::encode(key);
    let anchor = match anchor {
        Some(a) if a.unit_key != key_hex => {
            if !accept_new_key {
                check_failed!(
                    "unit {} signs with a different key than when you last read its audit log ({}): its store was replaced or the unit re-provisioned. If that is expected, run again with --accept-new-key",
                    target.unit,
                    a.seen
                );
            }
            None
        }
        a => a,
    };
    let entries = answer.entries;
    check_chain(&entries, &keys, "audit entry")?;
    if entries.first().is_some_and(|e| e.seq != start) {
        check_failed!(
            "the unit's audit log starts at entry {} where {start} was asked for: entries are missing",
            entries[0].seq
        );
    }
    if let Some(a) = &anchor {
        match entries.iter().find(|e| e.seq == a.seq) {
            Some(e) if e.hash == a.hash => {}
            Some(_) => check_failed!(
                "audit entry {} is not the one you saw on {}: the unit's audit log was rewritten",
                a.seq,
                a.seen
            ),
            _ => check_failed!(
                "the unit's audit log no longer has entry {}, which you saw on {}: entries were removed",
                a.seq,
                a.seen
            ),
        }
    }
    if let Some(last) = entries.last() {
        anchors.insert(
            target.unit.clone(),
            Anchor {
                unit_key: key_hex,
                seq: last.seq,
                hash: last.hash.clone(),
                seen: rdc_format::time::rfc3339(parse_time("now")?),
            },
        );
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // Replaced whole (a new file renamed over the old), so a crash leaves one or the other.
        let tmp = path.with_extension("json.new");
        let _ = std::fs::remove_file(&tmp);
        write_private(&tmp, &serde_json::to_string_pretty(&anchors)?)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, &path)?;
    }
    let summary = format!(
        "{} audit entries checked: each signed by the unit, the chain unbroken{}",
        entries.len(),
        match &anchor {
            Some(a) => format!(", continuing from entry {} seen on {}", a.seq, a.seen),
            None =>
                " (first reading: later readings will check the log still holds its newest entry)"
                    .into(),
        }
    );
    Ok(AuditRead {
        entries: entries.into_iter().filter(|e| e.seq >= from_seq).collect(),
        summary,
    })
}
