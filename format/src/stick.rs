//! On-site export to a memory stick (R12; issue 29, in progress): the request an officer signs
//! onto a stick, and the checks of its terms that need no keys. Pure. The signer's certificate
//! and role are checked by `rdc_uplink::stick`, and whether the request was used already by the
//! unit, from its audit log.

use serde::{Deserialize, Serialize};

/// The request's file on the stick (a plain name every FAT and exFAT driver takes).
pub const REQUEST_FILE: &str = "RDC-REQUEST.json";
/// What the unit writes on the stick for people: what it wrote and whether it is complete.
pub const STATUS_FILE: &str = "STATUS.txt";
/// The request's format.
pub const FORMAT: &str = "rdc-stick-request/1";
/// How long a request is valid unless the officer says otherwise: 72 hours.
pub const DEFAULT_VALID_NS: i64 = 72 * 3_600 * 1_000_000_000;
/// The longest a request may be valid: a week.
pub const MAX_VALID_NS: i64 = 7 * 86_400 * 1_000_000_000;
/// A request signed this far in the unit's future is still taken (laptops' clocks drift).
pub const SKEW_NS: i64 = 10 * 60 * 1_000_000_000;

/// What an officer signs onto a stick: which unit, which cameras and range, why, until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StickRequest {
    pub format: String,
    pub unit: String,
    pub cameras: Vec<String>,
    pub from_ns: i64,
    pub to_ns: i64,
    pub case_ref: String,
    pub reason: String,
    /// When it was signed and until when the unit honours it (ns since the epoch).
    pub made_ns: i64,
    pub expires_ns: i64,
    /// Random: two requests with the same terms are two requests.
    pub nonce: String,
}

/// What is wrong with a request's terms for unit `unit` at `now_ns`, in words for the stick's
/// STATUS.txt; `Ok` when nothing is.
pub fn check_terms(r: &StickRequest, unit: &str, now_ns: i64) -> Result<(), String> {
    if r.format != FORMAT {
        return Err(format!(
            "the request is format {:?}; this unit reads {FORMAT:?}: prepare it again with this rdc",
            r.format
        ));
    }
    if r.unit != unit {
        return Err(format!(
            "the request is for unit {:?}; this is unit {unit:?}",
            r.unit
        ));
    }
    if r.made_ns - now_ns > SKEW_NS {
        return Err(format!(
            "the request says it was signed at {}, after the unit's time {}: check the officer's clock",
            crate::time::rfc3339(r.made_ns),
            crate::time::rfc3339(now_ns)
        ));
    }
    if now_ns > r.expires_ns {
        return Err(format!(
            "the request expired at {}: prepare a new one",
            crate::time::rfc3339(r.expires_ns)
        ));
    }
    if r.expires_ns - r.made_ns > MAX_VALID_NS {
        return Err("a request is valid for a week at most".into());
    }
    if r.cameras.is_empty() {
        return Err("the request names no camera".into());
    }
    if r.from_ns >= r.to_ns {
        return Err("the request's range ends before it starts".into());
    }
    if r.case_ref.trim().is_empty() || r.reason.trim().is_empty() {
        return Err("the request needs a case reference and a reason".into());
    }
    Ok(())
}

/// The file in the store where the daemon keeps its [`KeyBinding`], and its name on the stick
/// (`rdc/<unit>/unit.json`, with the unit's operator and site beside it).
pub const KEY_BINDING_FILE: &str = "unit-key-binding.json";

/// The unit's signing keys, bound to its scheme certificate: the daemon signs them with its
/// uplink (TLS) key each time it starts, so that whoever reads footage off a stick can tell the
/// keys that signed it are this unit's, as the TLS session tells them over the link. Without
/// it, anyone could make a stick whose manifests and receipt are signed by a key of their own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyBinding {
    pub unit: String,
    /// Ed25519, hex: the key that signs manifests and the audit log now.
    pub public_key: String,
    #[serde(default)]
    pub retired_keys: Vec<String>,
    /// The unit's uplink certificate (PEM), issued by the scheme CA for the unit's name.
    pub certificate: String,
    /// ECDSA P-256 SHA-256 (ASN.1 DER, hex) by the certificate's key over [`binding_message`].
    pub signature: String,
}

/// What the unit's uplink key signs in a [`KeyBinding`].
pub fn binding_message(unit: &str, public_key: &str, retired_keys: &[String]) -> Vec<u8> {
    format!(
        "rdc-unit-key-binding/1\nunit {unit}\nkey {public_key}\nretired {}\n",
        retired_keys.join(",")
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_796_000_000_000_000_000;

    fn req() -> StickRequest {
        StickRequest {
            format: FORMAT.into(),
            unit: "unit-0001".into(),
            cameras: vec!["front".into()],
            from_ns: NOW - 86_400_000_000_000,
            to_ns: NOW,
            case_ref: "ASB/1".into(),
            reason: "on site, the link is down".into(),
            made_ns: NOW - 60_000_000_000,
            expires_ns: NOW - 60_000_000_000 + DEFAULT_VALID_NS,
            nonce: "00".into(),
        }
    }

    #[test]
    fn a_request_is_taken_only_by_its_unit_while_valid() {
        assert_eq!(check_terms(&req(), "unit-0001", NOW), Ok(()));
        let bad = |f: &dyn Fn(&mut StickRequest), says: &str, now: i64| {
            let mut r = req();
            f(&mut r);
            let e = check_terms(&r, "unit-0001", now).unwrap_err();
            assert!(e.contains(says), "{e}");
        };
        bad(&|r| r.unit = "unit-0002".into(), "this is unit", NOW);
        bad(&|_| {}, "expired", NOW + DEFAULT_VALID_NS);
        bad(
            &|r| r.expires_ns = r.made_ns + MAX_VALID_NS + 1,
            "a week at most",
            NOW,
        );
        bad(
            &|r| r.made_ns = NOW + 3_600_000_000_000,
            "officer's clock",
            NOW,
        );
        bad(&|r| r.cameras.clear(), "no camera", NOW);
        bad(&|r| r.to_ns = r.from_ns, "ends before", NOW);
        bad(&|r| r.reason = " ".into(), "a reason", NOW);
        bad(&|r| r.format = "x".into(), "format", NOW);
    }
}
