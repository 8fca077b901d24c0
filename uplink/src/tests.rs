//! Real QUIC on loopback against a real store: who may do what, what is audited, and that a bad
//! stream leaves the others alone.

use std::sync::Arc;

use rdc_config::{Role, User};
use rdc_storage::{Budget, Frame, RealClocks, Store, StoreConfig, UnitKey};

use crate::client::{Client, ClientError};
use crate::pki::{self, Kind, Pem};
use crate::protocol::{Justification, Purpose, Refusal, Request};
use crate::server::Server;
use crate::tls::{self, Identity};
use rustls::pki_types::pem::PemObject as _;

struct Scheme {
    _dir: tempfile::TempDir,
    ca: Pem,
    store: Store,
    addr: std::net::SocketAddr,
    officer: Pem,
    engineer: Pem,
    unlisted: Pem,
}

fn der(p: &Pem) -> Vec<u8> {
    Identity::from_pem(&p.cert, &p.key).unwrap().chain[0].to_vec()
}

async fn scheme() -> Scheme {
    scheme_revoking(false).await
}

/// A scheme whose unit has a CRL revoking the officer's certificate, if `revoke_officer`.
async fn scheme_revoking(revoke_officer: bool) -> Scheme {
    let dir = tempfile::tempdir().unwrap();
    let ca = pki::new_ca("Test Housing", 3650).unwrap();
    let unit = pki::issue(&ca, "unit-0001", Kind::Unit, 365).unwrap();
    let officer = pki::issue(&ca, "j.smith", Kind::User, 365).unwrap();
    let engineer = pki::issue(&ca, "f.engineer", Kind::User, 365).unwrap();
    let unlisted = pki::issue(&ca, "someone.else", Kind::User, 365).unwrap();
    let crl = revoke_officer.then(|| pki::revoke(&ca, &[der(&officer)], None).unwrap());
    let cfg = StoreConfig {
        budget: Budget::MaxBytes(1 << 30),
        segment_ns: 2_000_000_000,
        index_cache_bytes: 1 << 20,
        ..StoreConfig::new(dir.path().join("store"), "unit-0001", vec![[9u8; 32]])
    };
    let (store, _) =
        Store::open(cfg, Arc::new(UnitKey::ephemeral()), Arc::new(RealClocks)).unwrap();
    let mut w = store.writer("front").unwrap();
    let base = 1_800_000_000_000_000_000i64;
    for i in 0..150u64 {
        let data = vec![(i % 251) as u8; 30_000];
        w.push(&Frame {
            data: &data,
            keyframe: i % 25 == 0,
            wall_ns: base + i as i64 * 40_000_000,
            mono_ns: i * 40_000_000,
        })
        .unwrap();
    }
    w.close("test").unwrap();
    drop(w);
    let users = vec![
        User {
            name: "J. Smith".into(),
            role: Role::Officer,
            fingerprint: Some(pki::fingerprint(&der(&officer))),
            common_name: None,
        },
        User {
            name: "F. Engineer".into(),
            role: Role::Engineer,
            fingerprint: None,
            common_name: Some("f.engineer".into()),
        },
    ];
    let server_cfg = tls::server_config(
        &Identity::from_pem(&unit.cert, &unit.key).unwrap(),
        &ca.cert,
        crl.as_deref(),
    )
    .unwrap();
    let server = Server::bind(
        "127.0.0.1:0".parse().unwrap(),
        server_cfg,
        users,
        store.clone(),
    )
    .unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(server.serve());
    Scheme {
        _dir: dir,
        ca,
        store,
        addr,
        officer,
        engineer,
        unlisted,
    }
}

async fn connect(s: &Scheme, who: &Pem, ca: &Pem) -> Result<Client, ClientError> {
    let cfg =
        tls::client_config(&Identity::from_pem(&who.cert, &who.key).unwrap(), &ca.cert).unwrap();
    Client::connect(s.addr, "unit-0001", cfg).await
}

fn why(case: &str) -> Justification {
    Justification {
        purpose: Purpose::View,
        case_ref: case.into(),
        reason: "neighbour reported damage to the door".into(),
    }
}

#[tokio::test]
async fn officer_lists_and_fetches_and_it_is_audited() {
    let s = scheme().await;
    let c = connect(&s, &s.officer, &s.ca).await.unwrap();
    let list = c
        .call(&Request::List {
            camera: "front".into(),
            from_ns: 0,
            to_ns: i64::MAX,
            why: why("ASB/114"),
        })
        .await
        .unwrap();
    let entries = list.as_array().unwrap();
    assert_eq!(entries.len(), 3);
    for e in entries {
        let seq = e["seq"].as_u64().unwrap();
        let on_disk = std::fs::read(s.store.segment_path("front", seq).unwrap()).unwrap();
        let mut got = Vec::new();
        let n = c
            .fetch("front", seq, 0, &why("ASB/114"), &mut got)
            .await
            .unwrap();
        assert_eq!(n as usize, on_disk.len());
        assert_eq!(got, on_disk, "segment {seq} bytes differ");
        // Resuming from an offset gives exactly the rest.
        let mut rest = Vec::new();
        c.fetch("front", seq, 1000, &why("ASB/114"), &mut rest)
            .await
            .unwrap();
        assert_eq!(rest, on_disk[1000..]);
    }
    let audit = s.store.audit_entries(0).unwrap();
    let fetches: Vec<_> = audit
        .iter()
        .filter(|(_, a)| a.action == "fetch" && a.outcome == "granted")
        .collect();
    assert_eq!(fetches.len(), 6);
    let (_, a) = fetches[0];
    assert_eq!(a.case_ref.as_deref(), Some("ASB/114"));
    assert_eq!(
        a.reason.as_deref(),
        Some("neighbour reported damage to the door")
    );
    assert_eq!(a.purpose.as_deref(), Some("view"));
    assert!(a.who.starts_with("J. Smith (sha256:"));
    assert!(a.bytes.unwrap() > 0);
}

#[tokio::test]
async fn refusals_are_clear_and_audited() {
    let s = scheme().await;
    // An engineer sees no footage.
    let e = connect(&s, &s.engineer, &s.ca).await.unwrap();
    match e
        .call(&Request::List {
            camera: "front".into(),
            from_ns: 0,
            to_ns: i64::MAX,
            why: why("X/1"),
        })
        .await
    {
        Err(ClientError::Refused(Refusal::Forbidden {
            role: Role::Engineer,
            ..
        })) => {}
        other => panic!("{other:?}"),
    }
    assert!(
        e.call(&Request::Status).await.is_ok(),
        "an engineer may check the unit"
    );
    // No case reference.
    let o = connect(&s, &s.officer, &s.ca).await.unwrap();
    let mut sink = Vec::new();
    match o.fetch("front", 0, 0, &why(""), &mut sink).await {
        Err(ClientError::Refused(Refusal::Unjustified { missing })) => {
            assert!(missing.contains("case reference"))
        }
        other => panic!("{other:?}"),
    }
    assert!(sink.is_empty(), "no footage leaves without a justification");
    // A scheme certificate the unit does not list: closed before any request is read.
    let u = connect(&s, &s.unlisted, &s.ca).await;
    let err = match u {
        Ok(c) => c.call(&Request::Status).await.unwrap_err(),
        Err(e) => e,
    };
    assert!(err.to_string().contains("not in its user list"), "{err}");
    // A certificate from another CA: the handshake fails.
    let other_ca = pki::new_ca("Elsewhere", 365).unwrap();
    let stranger = pki::issue(&other_ca, "j.smith", Kind::User, 365).unwrap();
    let cfg = tls::client_config(
        &Identity::from_pem(&stranger.cert, &stranger.key).unwrap(),
        &s.ca.cert,
    )
    .unwrap();
    let r = match Client::connect(s.addr, "unit-0001", cfg).await {
        Ok(c) => c.call(&Request::Status).await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(r.is_err(), "a stranger got an answer");
    // An expired certificate from the right CA: the handshake fails too.
    let past = time::OffsetDateTime::now_utc() - time::Duration::days(30);
    let expired = pki::issue_valid(
        &s.ca,
        "j.smith",
        Kind::User,
        past - time::Duration::days(365),
        past,
    )
    .unwrap();
    let cfg = tls::client_config(
        &Identity::from_pem(&expired.cert, &expired.key).unwrap(),
        &s.ca.cert,
    )
    .unwrap();
    let r = match Client::connect(s.addr, "unit-0001", cfg).await {
        Ok(c) => c.call(&Request::Status).await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(r.is_err(), "an expired certificate got an answer");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let audit = s.store.audit_entries(0).unwrap();
    let refused = |action: &str, needle: &str| {
        audit.iter().any(|(_, a)| {
            a.action == action && a.outcome.starts_with("refused") && a.outcome.contains(needle)
        })
    };
    assert!(refused("list", "engineer"), "{audit:#?}");
    assert!(refused("fetch", "case reference"));
    assert!(refused("connect", "not in this unit's user list"));
    assert!(refused("connect", "TLS handshake failed"));
    assert!(
        audit
            .iter()
            .filter(|(_, a)| a.action == "connect" && a.outcome.contains("TLS handshake failed"))
            .count()
            >= 2,
        "both bad certificates audited"
    );
}

#[tokio::test]
async fn garbage_on_one_stream_leaves_a_concurrent_fetch_alone() {
    let s = scheme().await;
    let c = connect(&s, &s.officer, &s.ca).await.unwrap();
    let on_disk = std::fs::read(s.store.segment_path("front", 0).unwrap()).unwrap();
    let fetch = async {
        let mut got = Vec::new();
        c.fetch("front", 0, 0, &why("ASB/114"), &mut got)
            .await
            .map(|_| got)
    };
    let garbage = async {
        // Raw bytes that are not a request, then an oversized header.
        let conn = &c;
        let mut answers = Vec::new();
        for junk in [b"\x00\x00\x00\x05hello".to_vec(), vec![0xff; 16]] {
            let r = conn.raw(&junk).await;
            answers.push(r);
        }
        answers
    };
    let (got, answers) = tokio::join!(fetch, garbage);
    assert_eq!(got.unwrap(), on_disk);
    assert!(
        matches!(&answers[0], Ok(Refusal::Malformed { .. })),
        "{answers:?}"
    );
    assert!(
        matches!(&answers[1], Ok(Refusal::TooLarge { .. })),
        "{answers:?}"
    );
    // And the connection still works.
    assert!(c.call(&Request::Status).await.is_ok());
}

#[tokio::test]
async fn a_revoked_certificate_is_refused() {
    let s = scheme_revoking(true).await;
    let r = match connect(&s, &s.officer, &s.ca).await {
        Ok(c) => c.call(&Request::Status).await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(r.is_err(), "a revoked officer got an answer");
    // Others are unaffected.
    let e = connect(&s, &s.engineer, &s.ca).await.unwrap();
    assert!(e.call(&Request::Status).await.is_ok());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let audit = s.store.audit_entries(0).unwrap();
    assert!(
        audit
            .iter()
            .any(|(_, a)| a.action == "connect" && a.outcome.contains("TLS handshake failed")),
        "{audit:#?}"
    );
}

#[test]
fn a_crl_accumulates_revocations() {
    let ca = pki::new_ca("T", 30).unwrap();
    let a = pki::issue(&ca, "a", Kind::User, 30).unwrap();
    let b = pki::issue(&ca, "b", Kind::User, 30).unwrap();
    let first = pki::revoke(&ca, &[der(&a)], None).unwrap();
    let first_der =
        rustls::pki_types::CertificateRevocationListDer::from_pem_slice(first.as_bytes()).unwrap();
    let both = pki::revoke(&ca, &[der(&b)], Some(&first_der)).unwrap();
    let both_der =
        rustls::pki_types::CertificateRevocationListDer::from_pem_slice(both.as_bytes()).unwrap();
    let (_, crl) = x509_parser::parse_x509_crl(&both_der).unwrap();
    assert_eq!(crl.iter_revoked_certificates().count(), 2);
}
