//! What a DER certificate says of itself: its fingerprint, its subject, its expiry. Beneath both
//! [`crate::pki`] (which issues and checks certificates) and [`crate::tls`] (which presents them).

/// The SHA-256 fingerprint of a DER certificate: how a unit's configuration names a user.
pub fn fingerprint(der: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, der);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// `sha256:…` as written in `uplink.user[].fingerprint`.
pub fn fingerprint_text(der: &[u8]) -> String {
    format!("sha256:{}", hex::encode(fingerprint(der)))
}

/// A certificate's subject common name, if it has one.
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    cert.subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()
        .map(str::to_owned)
}

/// When a certificate (DER) stops being valid: seconds since the epoch.
pub fn not_after(der: &[u8]) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// A certificate's subject, as `CN=…` or the whole distinguished name.
pub fn subject(der: &[u8]) -> Option<String> {
    if let Some(cn) = common_name(der) {
        return Some(format!("CN={cn}"));
    }
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.subject().to_string())
}
