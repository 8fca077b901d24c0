//! Stills as exhibits (R14): the documents people sign (a request, a manager's approval) and
//! how anyone checks them. The unit's side of the workflow is `serve` (feature `server`).

use rdc_format::stills::Signed;
use serde::Serialize;

use crate::{pki, tls};

/// Signs `body` with a person's key (PEM) and certificate (PEM): the document a request or an
/// approval travels as.
pub fn sign<T: Serialize + Clone>(
    body: &T,
    cert_pem: &str,
    key_pem: &str,
) -> Result<Signed<T>, pki::SignError> {
    use base64::Engine as _;
    let doc = Signed {
        body: body.clone(),
        certificate: cert_pem.to_owned(),
        signature: String::new(),
    };
    let sig = pki::sign(key_pem, &doc.message())?;
    Ok(Signed {
        signature: base64::engine::general_purpose::STANDARD.encode(sig),
        ..doc
    })
}

/// Checks a signed document's signature against the certificate in it; the signer's
/// fingerprint (`sha256:…`) and common name when it holds.
pub fn check<T: Serialize>(doc: &Signed<T>) -> Result<(String, String), String> {
    use base64::Engine as _;
    let der = tls::cert_der(&doc.certificate)
        .ok_or("its certificate is not a PEM certificate".to_owned())?;
    let sig = base64::engine::general_purpose::STANDARD
        .decode(&doc.signature)
        .map_err(|e| format!("its signature is not base64: {e}"))?;
    pki::verify(&der, &doc.message(), &sig).map_err(|e| {
        format!("its signature does not match what it says (edited after signing?): {e}")
    })?;
    Ok((
        pki::fingerprint_text(&der),
        pki::common_name(&der).unwrap_or_default(),
    ))
}
