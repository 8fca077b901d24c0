//! What every check of a folder reports, a line each, and the check every signed folder shares:
//! its maker's signature and certificate. Beneath `rdc verify` and the folders it recognises
//! (bundles, stills, disclosures).

use std::path::Path;

use anyhow::Context as _;
use rdc_format::export;
use rdc_uplink::{pki, tls};

use crate::export::CA_FILE;

/// The outcome of the checks, a line each.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct Report {
    pub ok: Vec<String>,
    pub failed: Vec<String>,
    pub notes: Vec<String>,
    /// What the lines add up to, in a sentence.
    pub verdict: String,
    /// Every check held and the exporter's certificate was checked against the scheme's CA.
    pub intact_and_proven: bool,
}

impl Report {
    pub(crate) fn check(
        &mut self,
        good: bool,
        ok: impl Into<String>,
        bad: impl Into<String>,
    ) -> bool {
        if good {
            self.ok.push(ok.into());
        } else {
            self.failed.push(bad.into());
        }
        good
    }
    pub(crate) fn fail(&mut self, what: impl Into<String>) {
        self.failed.push(what.into());
    }
}

/// Checks the signed record `file` of a folder made by a person (a still, a disclosure): their
/// signature over the canonical JSON of `value` (`sig`, base64) with the certificate `who`
/// names, and that certificate issued by the scheme CA (`ca`; without it the folder's own CA,
/// noted) and valid when the folder was made (`made`: ns, and as people read it).
pub(crate) fn check_maker(
    r: &mut Report,
    dir: &Path,
    file: &str,
    who: &rdc_format::export::Exporter,
    (value, sig): (&serde_json::Value, &str),
    ca: Option<&Path>,
    made: (i64, &str),
) -> anyhow::Result<()> {
    let der = tls::cert_der(&who.certificate);
    let sig = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.decode(sig)
    };
    let (der, sig) = match (der, sig) {
        (Some(d), Ok(s)) => (d, s),
        (None, _) => {
            r.fail(format!(
                "{file}: its maker's certificate is not a PEM certificate"
            ));
            return Ok(());
        }
        (_, Err(e)) => {
            r.fail(format!("{file}: its signature is not base64: {e}"));
            return Ok(());
        }
    };
    let good = pki::verify(&der, &export::canonical(value), &sig).is_ok()
        && pki::fingerprint_text(&der) == who.fingerprint;
    r.check(
        good,
        format!("{file} is signed by {} ({})", who.name, who.fingerprint),
        format!(
            "{file}: its maker's signature does not match what it says (edited after it was made?)"
        ),
    );
    check_issued(
        r,
        (dir, "folder"),
        ca,
        (&der, "the maker"),
        ("when it was made", made.0, made.1),
    )
}

/// That `maker`'s certificate (DER) was issued by the scheme CA (`ca`; without it the CA the
/// folder carries, noted) and valid at the time given (ns, and as people read it).
pub(crate) fn check_issued(
    r: &mut Report,
    (dir, folder): (&Path, &str),
    ca: Option<&Path>,
    (der, maker): (&[u8], &str),
    (when, at_ns, at): (&str, i64, &str),
) -> anyhow::Result<()> {
    let (ca_pem, whose) = match ca {
        Some(p) => (
            std::fs::read_to_string(p)
                .with_context(|| format!("reading the CA {}", p.display()))?,
            format!("the scheme CA {}", p.display()),
        ),
        None => {
            let pem = std::fs::read_to_string(dir.join(CA_FILE)).unwrap_or_default();
            let fp = tls::cert_der(&pem)
                .map(|d| pki::fingerprint_text(&d))
                .unwrap_or_else(|| "none".into());
            r.notes.push(format!(
                "{maker}'s certificate was checked against the CA in the {folder} ({CA_FILE}, {fp}); give --ca with the scheme's CA certificate to check it is the scheme's"
            ));
            (pem, format!("the {folder}'s {CA_FILE}"))
        }
    };
    let trusted = pki::verify_person(&ca_pem, der, at_ns);
    r.check(
        trusted.is_ok(),
        format!("{maker}'s certificate was issued by {whose} and valid {when} ({at})"),
        format!(
            "{maker}'s certificate: {}",
            trusted.err().map(|e| e.to_string()).unwrap_or_default()
        ),
    );
    Ok(())
}

/// A folder's signed document (a bundle's manifest, a still's record, a disclosure), read.
pub(crate) struct SignedDoc<T> {
    /// The file's bytes.
    pub(crate) bytes: Vec<u8>,
    /// The document as signed (its canonical JSON is what the signature covers).
    pub(crate) value: serde_json::Value,
    pub(crate) signature: export::Signature,
    pub(crate) doc: T,
}

/// Reads `dir/file`, a signed document whose `field` holds a `T` that says its `format`, and
/// checks it is `want`; `kind` says what the file should be ("a still's record"). Each way it
/// can fail is a line of the report, and then `None`: nothing else can be checked.
pub(crate) fn read_signed<T: serde::de::DeserializeOwned>(
    (dir, file, field): (&Path, &str, &str),
    kind: &str,
    (want, format): (&str, impl Fn(&T) -> &str),
    r: &mut Report,
) -> Option<SignedDoc<T>> {
    let path = dir.join(file);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) => {
            r.fail(format!(
                "{}: cannot be read ({e}); without it nothing can be checked",
                path.display()
            ));
            return None;
        }
    };
    #[derive(serde::Deserialize)]
    struct Wrapper {
        signature: export::Signature,
        #[serde(flatten)]
        rest: serde_json::Map<String, serde_json::Value>,
    }
    let (signature, value) = match serde_json::from_slice::<Wrapper>(&bytes) {
        Ok(mut w) => match w.rest.remove(field) {
            Some(v) => (w.signature, v),
            None => {
                r.fail(format!("{file} is not {kind}: it has no {field:?}"));
                return None;
            }
        },
        Err(e) => {
            r.fail(format!("{file} is not {kind}: {e}"));
            return None;
        }
    };
    let doc: T = match serde_json::from_value(value.clone()) {
        Ok(d) => d,
        Err(e) => {
            r.fail(format!("{file}: the {field} is not readable: {e}"));
            return None;
        }
    };
    if format(&doc) != want {
        r.fail(format!(
            "{file} is format {:?}; this rdc reads {want:?}",
            format(&doc)
        ));
        return None;
    }
    Some(SignedDoc {
        bytes,
        value,
        signature,
        doc,
    })
}
