//! A stick request's signer (issue 29, in progress): the signature, the scheme CA at the time it
//! was signed, and the role the unit's user list gives the certificate. No I/O.

use rdc_config::{Role, User};
use rdc_format::stick::StickRequest;
use rdc_format::stills::Signed;

use crate::{pki, tls};

/// Who signed a request, as the unit knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    pub name: String,
    pub role: Role,
    pub fingerprint: String,
}

/// Checks that `doc` is signed by a person of the scheme (`ca_pem`, at the time it says it was
/// signed) whom `users` lists as an officer or a manager; who they are, or why not in words.
pub fn check_signer(
    doc: &Signed<StickRequest>,
    ca_pem: &str,
    users: &[User],
) -> Result<Signer, String> {
    let (fingerprint, cn) = crate::stills::check(doc)?;
    let der = tls::cert_der(&doc.certificate).ok_or("its certificate is unreadable")?;
    pki::verify_person(ca_pem, &der, doc.body.made_ns)
        .map_err(|e| format!("its signer's certificate is not the scheme's: {e}"))?;
    let fp = pki::fingerprint(&der);
    let user = users
        .iter()
        .find(|u| {
            u.fingerprint == Some(fp)
                || (u.fingerprint.is_none() && u.common_name.as_deref() == Some(cn.as_str()))
        })
        .ok_or_else(|| {
            format!("its signer ({cn}, {fingerprint}) is not in this unit's user list")
        })?;
    if !user.role.may_see_footage() {
        return Err(format!(
            "its signer, {}, is a {} on this unit: only case support officers and managers take footage away",
            user.name, user.role
        ));
    }
    Ok(Signer {
        name: user.name.clone(),
        role: user.role,
        fingerprint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::Kind;

    #[test]
    fn only_an_officer_or_manager_of_the_scheme_signs_a_request() {
        let ca = pki::new_ca("Test", 30).unwrap();
        let other_ca = pki::new_ca("Other", 30).unwrap();
        let officer = pki::issue(&ca, "j.smith", Kind::User, 30).unwrap();
        let engineer = pki::issue(&ca, "e.lee", Kind::User, 30).unwrap();
        let stranger = pki::issue(&other_ca, "j.smith", Kind::User, 30).unwrap();
        let users = vec![
            User {
                name: "J. Smith".into(),
                role: Role::Officer,
                fingerprint: None,
                common_name: Some("j.smith".into()),
            },
            User {
                name: "E. Lee".into(),
                role: Role::Engineer,
                fingerprint: None,
                common_name: Some("e.lee".into()),
            },
        ];
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64;
        let body = StickRequest {
            format: rdc_format::stick::FORMAT.into(),
            unit: "u".into(),
            cameras: vec!["front".into()],
            from_ns: 0,
            to_ns: 1,
            case_ref: "c".into(),
            reason: "r".into(),
            made_ns: now,
            expires_ns: now + 1,
            nonce: "n".into(),
        };
        let signed = |p: &pki::Pem| crate::stills::sign(&body, &p.cert, &p.key).unwrap();
        let ok = check_signer(&signed(&officer), &ca.cert, &users).unwrap();
        assert_eq!((ok.name.as_str(), ok.role), ("J. Smith", Role::Officer));
        let e = check_signer(&signed(&engineer), &ca.cert, &users).unwrap_err();
        assert!(e.contains("only case support officers and managers"), "{e}");
        let e = check_signer(&signed(&stranger), &ca.cert, &users).unwrap_err();
        assert!(e.contains("not the scheme's"), "{e}");
        let mut edited = signed(&officer);
        edited.body.to_ns = 99;
        let e = check_signer(&edited, &ca.cert, &users).unwrap_err();
        assert!(e.contains("does not match"), "{e}");
    }
}
