//! The scheme's certificates: a CA, the units' certificates and the users' (for `rdc keys`).
//!
//! ECDSA P-256 keys, PEM files. A unit's certificate names the unit id (the name officers
//! connect to); a user's names the person. Roles are not in certificates: each unit's
//! configuration maps a certificate (by SHA-256 fingerprint or common name) to a role, so a
//! role is withdrawn on the unit, not by reissuing.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

pub use crate::cert::{common_name, fingerprint, fingerprint_text, not_after, subject};

/// A certificate and its private key, PEM.
#[derive(Clone)]
pub struct Pem {
    pub cert: String,
    pub key: String,
}

impl std::fmt::Debug for Pem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pem")
            .field("cert", &self.cert)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// What a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A unit: serves the uplink.
    Unit,
    /// A person: connects to units.
    User,
}

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("{0} is not a PEM certificate")]
    NotPem(String),
}

fn validity(p: &mut CertificateParams, days: i64) {
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::hours(1);
    p.not_after = now + Duration::days(days);
}

/// A new scheme CA, valid for `days`.
pub fn new_ca(scheme: &str, days: i64) -> Result<Pem, PkiError> {
    let key = KeyPair::generate()?;
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("rdc scheme CA: {scheme}"));
    dn.push(DnType::OrganizationName, scheme);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut p, days);
    let cert = p.self_signed(&key)?;
    Ok(Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// Issues a certificate for a unit (`name` is its id, also the TLS server name) or a user.
pub fn issue(ca: &Pem, name: &str, kind: Kind, days: i64) -> Result<Pem, PkiError> {
    let now = OffsetDateTime::now_utc();
    issue_valid(
        ca,
        name,
        kind,
        now - Duration::hours(1),
        now + Duration::days(days),
    )
}

/// Issues a certificate valid from `not_before` to `not_after` (tests use a past window).
pub fn issue_valid(
    ca: &Pem,
    name: &str,
    kind: Kind,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<Pem, PkiError> {
    let ca_key = KeyPair::from_pem(&ca.key)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert, ca_key)?;
    let key = KeyPair::generate()?;
    let sans = if kind == Kind::Unit {
        vec![name.to_owned()]
    } else {
        Vec::new()
    };
    let mut p = CertificateParams::new(sans)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    p.distinguished_name = dn;
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![match kind {
        Kind::Unit => ExtendedKeyUsagePurpose::ServerAuth,
        Kind::User => ExtendedKeyUsagePurpose::ClientAuth,
    }];
    p.not_before = not_before;
    p.not_after = not_after;
    let cert = p.signed_by(&key, &issuer)?;
    Ok(Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// A unit's TLS key, made on the unit, and its certificate request naming the unit: the key
/// never leaves the unit; the request goes to the scheme's machine ([`sign_request`]).
/// With `existing` (the unit's TLS key, PEM), a new request for the same key.
pub fn unit_request(unit: &str, existing: Option<&str>) -> Result<Pem, PkiError> {
    let key = match existing {
        Some(pem) => KeyPair::from_pem(pem)?,
        None => KeyPair::generate()?,
    };
    let mut p = CertificateParams::new(vec![unit.to_owned()])?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, unit);
    p.distinguished_name = dn;
    let csr = p.serialize_request(&key)?;
    Ok(Pem {
        cert: csr.pem()?,
        key: key.serialize_pem(),
    })
}

/// The unit a request made by [`unit_request`] is for (its common name).
pub fn request_unit(csr_pem: &str) -> Result<String, PkiError> {
    request_name(&rcgen::CertificateSigningRequestParams::from_pem(csr_pem)?)
}

fn request_name(req: &rcgen::CertificateSigningRequestParams) -> Result<String, PkiError> {
    req.params
        .distinguished_name
        .get(&DnType::CommonName)
        .and_then(|v| match v {
            rcgen::DnValue::Utf8String(s) => Some(s.clone()),
            rcgen::DnValue::PrintableString(s) => Some(s.as_str().to_owned()),
            _ => None,
        })
        .ok_or_else(|| PkiError::NotPem("the request names no unit (no common name)".into()))
}

/// Issues a unit's certificate for a request made by [`unit_request`], valid for `days`. Only
/// the request's public key and unit name are taken from it; what the certificate allows (a
/// server, for this name, not a CA) is the scheme's choice. Returns the unit id and the PEM.
pub fn sign_request(ca: &Pem, csr_pem: &str, days: i64) -> Result<(String, String), PkiError> {
    let req = rcgen::CertificateSigningRequestParams::from_pem(csr_pem)?;
    let name = request_name(&req)?;
    let now = OffsetDateTime::now_utc();
    let mut p = CertificateParams::new(vec![name.clone()])?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name.as_str());
    p.distinguished_name = dn;
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.not_before = now - Duration::hours(1);
    p.not_after = now + Duration::days(days);
    let issuer = Issuer::from_ca_cert_pem(&ca.cert, KeyPair::from_pem(&ca.key)?)?;
    let signed = rcgen::CertificateSigningRequestParams {
        params: p,
        public_key: req.public_key,
    }
    .signed_by(&issuer)?;
    Ok((name, signed.pem()))
}

/// A certificate revocation list, signed by the CA, revoking the `revoked` certificates (DER)
/// and everything the `previous` CRL (DER) revoked. PEM.
pub fn revoke(ca: &Pem, revoked: &[Vec<u8>], previous: Option<&[u8]>) -> Result<String, PkiError> {
    use rcgen::{
        CertificateRevocationListParams, KeyIdMethod, RevocationReason, RevokedCertParams,
        SerialNumber,
    };
    let now = OffsetDateTime::now_utc();
    let mut serials: Vec<Vec<u8>> = Vec::new();
    if let Some(der) = previous {
        let (_, crl) = x509_parser::parse_x509_crl(der)
            .map_err(|e| PkiError::NotPem(format!("the previous CRL ({e})")))?;
        serials.extend(
            crl.iter_revoked_certificates()
                .map(|r| r.raw_serial().to_vec()),
        );
    }
    for der in revoked {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| PkiError::NotPem(format!("a certificate to revoke ({e})")))?;
        let s = cert.tbs_certificate.raw_serial().to_vec();
        if !serials.contains(&s) {
            serials.push(s);
        }
    }
    let params = CertificateRevocationListParams {
        this_update: now - Duration::minutes(5),
        next_update: now + Duration::days(30),
        crl_number: SerialNumber::from(now.unix_timestamp() as u64),
        issuing_distribution_point: None,
        revoked_certs: serials
            .iter()
            .map(|s| RevokedCertParams {
                serial_number: SerialNumber::from_slice(s),
                revocation_time: now,
                reason_code: Some(RevocationReason::Unspecified),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let issuer = Issuer::from_ca_cert_pem(&ca.cert, KeyPair::from_pem(&ca.key)?)?;
    Ok(params.signed_by(&issuer)?.pem()?)
}

/// Why a signature or a certificate does not check out.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("the private key is not a PEM PKCS#8 ECDSA P-256 key (as `rdc keys user` makes): {0}")]
    Key(String),
    #[error("the certificate cannot be read: {0}")]
    Certificate(String),
    #[error(
        "the signature does not match: the signed content was changed, or another key signed it"
    )]
    Mismatch,
    #[error(
        "the certificate was not issued by the scheme's CA for a person, or was not valid at {at}: {detail}"
    )]
    Untrusted { at: String, detail: String },
}

/// Signs `msg` with a person's private key (PEM, PKCS#8 ECDSA P-256, as `rdc keys user`
/// makes): an ASN.1 DER ECDSA-P256-SHA256 signature.
pub fn sign(key_pem: &str, msg: &[u8]) -> Result<Vec<u8>, SignError> {
    use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
    use rustls::pki_types::PrivatePkcs8KeyDer;
    use rustls::pki_types::pem::PemObject as _;
    let der = PrivatePkcs8KeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| SignError::Key(e.to_string()))?;
    let rng = ring::rand::SystemRandom::new();
    let kp = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_ASN1_SIGNING,
        der.secret_pkcs8_der(),
        &rng,
    )
    .map_err(|e| SignError::Key(e.to_string()))?;
    Ok(kp
        .sign(&rng, msg)
        .map_err(|e| SignError::Key(e.to_string()))?
        .as_ref()
        .to_vec())
}

/// Checks that the key of `cert_der` made `sig` over `msg` ([`sign`]).
pub fn verify(cert_der: &[u8], msg: &[u8], sig: &[u8]) -> Result<(), SignError> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| SignError::Certificate(e.to_string()))?;
    let spki = cert.public_key();
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P256_SHA256_ASN1,
        spki.subject_public_key.data.as_ref(),
    )
    .verify(msg, sig)
    .map_err(|_| SignError::Mismatch)
}

/// Checks that `cert_der` is a person's certificate (client authentication) issued by the CA in
/// `ca_pem` and valid at `at_ns` (ns since the epoch): whether the exporter of a bundle was one
/// of the scheme's people when they signed it.
pub fn verify_person(ca_pem: &str, cert_der: &[u8], at_ns: i64) -> Result<(), SignError> {
    use rustls::pki_types::{CertificateDer, UnixTime};
    let at = rdc_format::time::rfc3339(at_ns);
    let untrusted = |detail: String| SignError::Untrusted {
        at: at.clone(),
        detail,
    };
    let roots = crate::tls::roots_from_pem(ca_pem).map_err(|e| untrusted(e.to_string()))?;
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        std::sync::Arc::new(roots),
        crate::tls::provider(),
    )
    .build()
    .map_err(|e| untrusted(e.to_string()))?;
    let when = UnixTime::since_unix_epoch(std::time::Duration::from_nanos(
        u64::try_from(at_ns).unwrap_or(0),
    ));
    verifier
        .verify_client_cert(&CertificateDer::from(cert_der.to_vec()), &[], when)
        .map(|_| ())
        .map_err(|e| untrusted(e.to_string()))
}

/// Checks that `cert_der` is unit `unit`'s certificate (server authentication for its name)
/// issued by the CA in `ca_pem` and valid at `at_ns`: whether keys a unit's certificate
/// vouches for (a stick's [`rdc_format::stick::KeyBinding`]) are that unit's.
pub fn verify_unit(ca_pem: &str, cert_der: &[u8], unit: &str, at_ns: i64) -> Result<(), SignError> {
    use rustls::client::danger::ServerCertVerifier as _;
    use rustls::pki_types::{CertificateDer, UnixTime};
    let at = rdc_format::time::rfc3339(at_ns);
    let untrusted = |detail: String| SignError::Untrusted {
        at: at.clone(),
        detail,
    };
    let roots = crate::tls::roots_from_pem(ca_pem).map_err(|e| untrusted(e.to_string()))?;
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        std::sync::Arc::new(roots),
        crate::tls::provider(),
    )
    .build()
    .map_err(|e| untrusted(e.to_string()))?;
    let name = crate::tls::server_name(unit).map_err(|e| untrusted(e.to_string()))?;
    let when = UnixTime::since_unix_epoch(std::time::Duration::from_nanos(
        u64::try_from(at_ns).unwrap_or(0),
    ));
    verifier
        .verify_server_cert(
            &CertificateDer::from(cert_der.to_vec()),
            &[],
            &name,
            &[],
            when,
        )
        .map(|_| ())
        .map_err(|e| untrusted(e.to_string()))
}

/// The daemon's [`rdc_format::stick::KeyBinding`]: its signing keys signed with its uplink key.
pub fn bind_keys(
    unit: &str,
    public_key: &str,
    retired_keys: &[String],
    cert_pem: &str,
    key_pem: &str,
) -> Result<rdc_format::stick::KeyBinding, SignError> {
    let msg = rdc_format::stick::binding_message(unit, public_key, retired_keys);
    Ok(rdc_format::stick::KeyBinding {
        unit: unit.to_owned(),
        public_key: public_key.to_owned(),
        retired_keys: retired_keys.to_vec(),
        certificate: cert_pem.to_owned(),
        signature: hex::encode(sign(key_pem, &msg)?),
    })
}

/// Checks a [`rdc_format::stick::KeyBinding`] against the scheme CA at `at_ns`: the certificate
/// is unit `unit`'s and its key signed these keys.
pub fn check_binding(
    b: &rdc_format::stick::KeyBinding,
    ca_pem: &str,
    unit: &str,
    at_ns: i64,
) -> Result<(), SignError> {
    let der = crate::tls::cert_der(&b.certificate)
        .ok_or_else(|| SignError::Certificate("no certificate".into()))?;
    verify_unit(ca_pem, &der, unit, at_ns)?;
    let sig = hex::decode(&b.signature).map_err(|_| SignError::Mismatch)?;
    verify(
        &der,
        &rdc_format::stick::binding_message(&b.unit, &b.public_key, &b.retired_keys),
        &sig,
    )
}

#[cfg(test)]
mod sign_tests {
    use super::*;

    #[test]
    fn a_unit_request_becomes_a_server_certificate_for_that_unit() {
        let ca = new_ca("Test", 30).unwrap();
        let req = unit_request("unit-0007", None).unwrap();
        assert!(req.cert.contains("CERTIFICATE REQUEST"));
        let (name, cert) = sign_request(&ca, &req.cert, 400).unwrap();
        assert_eq!(name, "unit-0007");
        let der = crate::tls::cert_der(&cert).unwrap();
        assert_eq!(common_name(&der).as_deref(), Some("unit-0007"));
        // It pairs with the key that stayed on the unit, and serves TLS as that unit.
        crate::tls::Identity::from_pem(&cert, &req.key).unwrap();
        let days = (not_after(&der).unwrap() - OffsetDateTime::now_utc().unix_timestamp()) / 86_400;
        assert!((399..=400).contains(&days), "{days}");
        // Not usable as a person's certificate.
        let now = OffsetDateTime::now_utc().unix_timestamp_nanos() as i64;
        assert!(verify_person(&ca.cert, &der, now).is_err());
        assert!(sign_request(&ca, "not a request", 10).is_err());
        // A second request for the same key.
        let again = unit_request("unit-0007", Some(&req.key)).unwrap();
        assert_eq!(again.key, req.key);
    }

    #[test]
    fn a_units_key_binding_checks_only_for_that_unit_and_its_keys() {
        let ca = new_ca("Test", 30).unwrap();
        let unit = issue(&ca, "unit-0007", Kind::Unit, 30).unwrap();
        let now = OffsetDateTime::now_utc().unix_timestamp_nanos() as i64;
        let b = bind_keys("unit-0007", "ab", &["cd".into()], &unit.cert, &unit.key).unwrap();
        check_binding(&b, &ca.cert, "unit-0007", now).unwrap();
        // Another unit's name, another key, another scheme: refused.
        assert!(check_binding(&b, &ca.cert, "unit-0008", now).is_err());
        let mut forged = b.clone();
        forged.public_key = "ef".into();
        assert!(matches!(
            check_binding(&forged, &ca.cert, "unit-0007", now),
            Err(SignError::Mismatch)
        ));
        let other = new_ca("Other", 30).unwrap();
        assert!(check_binding(&b, &other.cert, "unit-0007", now).is_err());
        // A person's certificate does not vouch for a unit's keys.
        let officer = issue(&ca, "unit-0007", Kind::User, 30).unwrap();
        let p = bind_keys("unit-0007", "ab", &[], &officer.cert, &officer.key).unwrap();
        assert!(check_binding(&p, &ca.cert, "unit-0007", now).is_err());
    }

    #[test]
    fn a_persons_signature_checks_and_a_changed_one_does_not() {
        let ca = new_ca("Test", 30).unwrap();
        let officer = issue(&ca, "officer-1", Kind::User, 30).unwrap();
        let der = crate::tls::cert_der(&officer.cert).unwrap();
        let sig = sign(&officer.key, b"bundle").unwrap();
        verify(&der, b"bundle", &sig).unwrap();
        assert!(matches!(
            verify(&der, b"bundle!", &sig),
            Err(SignError::Mismatch)
        ));
        let now = OffsetDateTime::now_utc().unix_timestamp_nanos() as i64;
        verify_person(&ca.cert, &der, now).unwrap();
        // Another scheme's CA, a unit's certificate, and a time outside the validity.
        let other = new_ca("Other", 30).unwrap();
        assert!(verify_person(&other.cert, &der, now).is_err());
        let unit = issue(&ca, "unit-1", Kind::Unit, 30).unwrap();
        let unit_der = crate::tls::cert_der(&unit.cert).unwrap();
        assert!(verify_person(&ca.cert, &unit_der, now).is_err());
        let later = now + 40 * 86_400 * 1_000_000_000;
        assert!(verify_person(&ca.cert, &der, later).is_err());
    }
}
