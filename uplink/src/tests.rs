//! Real QUIC on loopback against a real store: who may do what, what is audited, and that a bad
//! stream leaves the others alone.

use std::sync::Arc;

use rdc_config::{Role, User};
use rdc_storage::{Budget, Frame, RealClocks, Store, StoreConfig, UnitKey};

use crate::client::{Client, ClientError};
use crate::pki::{self, Kind, Pem};
use crate::protocol::{Answer, Justification, Purpose, Refusal, Request, Track};
use crate::server::Server;
use crate::tls::{self, Identity};
use rdc_config::Id;
use rustls::pki_types::pem::PemObject as _;

struct Scheme {
    _dir: tempfile::TempDir,
    ca: Pem,
    store: Store,
    server: Arc<Server>,
    addr: std::net::SocketAddr,
    officer: Pem,
    engineer: Pem,
    manager: Pem,
    unlisted: Pem,
}

/// Polls the audit log until `pred` holds for it (the server audits on its own tasks).
async fn wait_audit(
    store: &Store,
    what: &str,
    pred: impl Fn(&[(rdc_storage::chainlog::Entry, rdc_storage::AuditRecord)]) -> bool,
) -> Vec<(rdc_storage::chainlog::Entry, rdc_storage::AuditRecord)> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let audit = store.audit_entries(0).unwrap();
        if pred(&audit) {
            return audit;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the audit log never showed {what}: {audit:#?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn der(p: &Pem) -> Vec<u8> {
    Identity::from_pem(&p.cert, &p.key).unwrap().chain[0].to_vec()
}

async fn scheme() -> Scheme {
    scheme_revoking(false).await
}

/// A scheme whose unit has a CRL revoking the officer's certificate, if `revoke_officer`.
async fn scheme_revoking(revoke_officer: bool) -> Scheme {
    scheme_in(revoke_officer, tempfile::tempdir().unwrap()).await
}

/// A scheme whose unit keeps its store in `dir`.
async fn scheme_in(revoke_officer: bool, dir: tempfile::TempDir) -> Scheme {
    let ca = pki::new_ca("Test Housing", 3650).unwrap();
    let unit = pki::issue(&ca, "unit-0001", Kind::Unit, 365).unwrap();
    let officer = pki::issue(&ca, "j.smith", Kind::User, 365).unwrap();
    let engineer = pki::issue(&ca, "f.engineer", Kind::User, 365).unwrap();
    let manager = pki::issue(&ca, "m.manager", Kind::User, 365).unwrap();
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
            name: "M. Manager".into(),
            role: Role::Manager,
            fingerprint: Some(pki::fingerprint(&der(&manager))),
            common_name: None,
        },
        User {
            name: "F. Engineer".into(),
            role: Role::Engineer,
            fingerprint: None,
            common_name: Some("f.engineer".into()),
        },
    ];
    let server_tls = tls::server_config(
        &Identity::from_pem(&unit.cert, &unit.key).unwrap(),
        &ca.cert,
        crl.as_deref(),
    )
    .unwrap();
    let server = Server::bind(
        "127.0.0.1:0".parse().unwrap(),
        server_tls,
        users,
        store.clone(),
    )
    .unwrap();
    let addr = server.local_addr().unwrap();
    let server = Arc::new(server);
    tokio::spawn(server.clone().serve_shared());
    Scheme {
        _dir: dir,
        ca,
        store,
        server,
        addr,
        officer,
        engineer,
        manager,
        unlisted,
    }
}

async fn connect(s: &Scheme, who: &Pem, ca: &Pem) -> Result<Client, ClientError> {
    let cfg =
        tls::client_config(&Identity::from_pem(&who.cert, &who.key).unwrap(), &ca.cert).unwrap();
    Client::connect(s.addr, "unit-0001", cfg).await
}

fn id(s: &str) -> Id {
    Id::parse(s).unwrap()
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
    let entries = c
        .list(&id("front"), 0, i64::MAX, &why("ASB/114"))
        .await
        .unwrap();
    assert_eq!(entries.len(), 3);
    for e in &entries {
        let seq = e.segment.seq;
        let on_disk = std::fs::read(s.store.segment_path("front", seq).unwrap()).unwrap();
        let mut got = Vec::new();
        let n = c
            .fetch(&id("front"), seq, 0, &why("ASB/114"), &mut got)
            .await
            .unwrap();
        assert_eq!(n as usize, on_disk.len());
        assert_eq!(got, on_disk, "segment {seq} bytes differ");
        // Resuming from an offset gives exactly the rest.
        let mut rest = Vec::new();
        c.fetch(&id("front"), seq, 1000, &why("ASB/114"), &mut rest)
            .await
            .unwrap();
        assert_eq!(rest, on_disk[1000..]);
    }
    let audit = s.store.audit_entries(0).unwrap();
    let fetches: Vec<_> = audit
        .iter()
        .filter(|(_, a)| a.action == "fetch" && a.outcome.is_granted())
        .collect();
    assert_eq!(fetches.len(), 6);
    let (_, a) = fetches[0];
    assert_eq!(a.case_ref.as_deref(), Some("ASB/114"));
    assert_eq!(
        a.reason.as_deref(),
        Some("neighbour reported damage to the door")
    );
    assert_eq!(a.purpose, Some(rdc_format::Purpose::View));
    assert!(a.who.starts_with("J. Smith (sha256:"));
    assert!(a.bytes.unwrap() > 0);
}

/// The first segment of a range, asked for before its number is known: the bytes of the
/// segment the list names first, audited as a fetch of that segment; an empty range or an
/// engineer is refused and nothing leaves.
#[tokio::test]
async fn the_first_segment_of_a_range_is_fetched_with_the_list() {
    let s = scheme().await;
    let c = connect(&s, &s.officer, &s.ca).await.unwrap();
    let entries = c
        .list(&id("front"), 0, i64::MAX, &why("ASB/114"))
        .await
        .unwrap();
    // From inside the second segment: that one comes first.
    let second = &entries[1].segment;
    let from = (second.start_ns + second.end_ns) / 2;
    let (front, w) = (id("front"), why("ASB/114"));
    let (list, first) = tokio::join!(
        c.list(&front, from, i64::MAX, &w),
        c.fetch_first(&front, from, i64::MAX, &w)
    );
    assert_eq!(list.unwrap()[0].segment.seq, second.seq);
    let (entry, body) = first.unwrap();
    assert_eq!(entry.segment.seq, second.seq);
    let on_disk = std::fs::read(s.store.segment_path("front", second.seq).unwrap()).unwrap();
    assert_eq!(body.len() as usize, on_disk.len());
    let mut got = Vec::new();
    body.copy_to(&mut got).await.unwrap();
    assert_eq!(got, on_disk);
    let audit = s.store.audit_entries(0).unwrap();
    let (_, a) = audit
        .iter()
        .rfind(|(_, a)| a.action == "fetch")
        .expect("the fetch is audited");
    assert_eq!(a.outcome, rdc_format::Outcome::Granted);
    assert_eq!(a.seq, Some(second.seq));
    assert_eq!(a.case_ref.as_deref(), Some("ASB/114"));
    assert_eq!(a.bytes, Some(on_disk.len() as u64));

    // A range with nothing in it says so.
    let last = &entries.last().unwrap().segment;
    match c
        .fetch_first(&id("front"), last.end_ns + 1, i64::MAX, &why("ASB/114"))
        .await
    {
        Err(ClientError::Refused(Refusal::NoFootage { camera, .. })) => assert_eq!(camera, "front"),
        other => panic!("{other:?}"),
    }
    // And the refusal is audited with the camera and the range asked for.
    let audit = s.store.audit_entries(0).unwrap();
    let (_, a) = audit
        .iter()
        .rfind(|(_, a)| a.action == "fetch")
        .expect("the refusal is audited");
    assert!(
        a.outcome.to_string().starts_with("refused"),
        "{}",
        a.outcome
    );
    assert_eq!(a.camera.as_deref(), Some("front"));
    assert_eq!(
        (a.from_ns, a.to_ns),
        (Some(last.end_ns + 1), Some(i64::MAX))
    );
    // An engineer sees no footage this way either.
    let e = connect(&s, &s.engineer, &s.ca).await.unwrap();
    match e.fetch_first(&id("front"), 0, i64::MAX, &why("X/1")).await {
        Err(ClientError::Refused(Refusal::Forbidden {
            role: Role::Engineer,
            ..
        })) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn refusals_are_clear_and_audited() {
    let s = scheme().await;
    // An engineer sees no footage.
    let e = connect(&s, &s.engineer, &s.ca).await.unwrap();
    match e.list(&id("front"), 0, i64::MAX, &why("X/1")).await {
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
    match o.fetch(&id("front"), 0, 0, &why(""), &mut sink).await {
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
    assert!(
        err.to_string().contains("not in this unit's user list"),
        "{err}"
    );
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
    // Both bad certificates come from one source (127.0.0.1): the first is audited at once,
    // the second is tallied and written when the tallies are flushed.
    s.server.flush_refusals().await;
    let audit = wait_audit(&s.store, "both handshake refusals", |a| {
        a.iter()
            .filter(|(_, a)| {
                a.action == "connect" && a.outcome.to_string().contains("TLS handshake failed")
            })
            .map(|(_, a)| a.attempts.unwrap_or(1))
            .sum::<u64>()
            >= 2
    })
    .await;
    let refused = |action: &str, needle: &str| {
        audit.iter().any(|(_, a)| {
            a.action == action
                && a.outcome.to_string().starts_with("refused")
                && a.outcome.to_string().contains(needle)
        })
    };
    assert!(refused("list", "engineer"), "{audit:#?}");
    assert!(refused("fetch", "case reference"));
    assert!(refused("connect", "not in this unit's user list"));
    assert!(refused("connect", "TLS handshake failed"));
    // The refused certificates are named by fingerprint and subject.
    let stranger_fp = pki::fingerprint_text(&der(&stranger));
    let unlisted_fp = pki::fingerprint_text(&der(&s.unlisted));
    let details: String = audit
        .iter()
        .filter(|(_, a)| a.action == "connect")
        .filter_map(|(_, a)| a.detail.clone())
        .collect();
    assert!(details.contains(&stranger_fp), "{details}");
    assert!(details.contains(&unlisted_fp), "{details}");
    assert!(details.contains("CN=someone.else"), "{details}");
}

#[tokio::test]
async fn garbage_on_one_stream_leaves_a_concurrent_fetch_alone() {
    let s = scheme().await;
    let c = connect(&s, &s.officer, &s.ca).await.unwrap();
    let on_disk = std::fs::read(s.store.segment_path("front", 0).unwrap()).unwrap();
    let fetch = async {
        let mut got = Vec::new();
        c.fetch(&id("front"), 0, 0, &why("ASB/114"), &mut got)
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
    match r {
        Err(ClientError::CertificateRefused { why }) => assert!(why.contains("revoked"), "{why}"),
        other => panic!("a revoked officer was not told: {other:?}"),
    }
    // Others are unaffected.
    let e = connect(&s, &s.engineer, &s.ca).await.unwrap();
    assert!(e.call(&Request::Status).await.is_ok());
    wait_audit(&s.store, "the revoked certificate's handshake", |audit| {
        audit.iter().any(|(_, a)| {
            a.action == "connect"
                && a.outcome.to_string().contains("TLS handshake failed")
                && a.detail
                    .as_deref()
                    .is_some_and(|d| d.contains(&pki::fingerprint_text(&der(&s.officer))))
        })
    })
    .await;
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

/// What the officer's `rdc` shows for a certificate the unit refuses at the handshake.
async fn handshake_error(s: &Scheme, who: &Pem) -> ClientError {
    let cfg = tls::client_config(
        &Identity::from_pem(&who.cert, &who.key).unwrap(),
        &s.ca.cert,
    )
    .unwrap();
    match Client::connect(s.addr, "unit-0001", cfg).await {
        Ok(c) => c
            .status()
            .await
            .expect_err("a refused certificate got an answer"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn a_refused_certificate_is_told_why() {
    let s = scheme().await;
    let other_ca = pki::new_ca("Elsewhere", 365).unwrap();
    let stranger = pki::issue(&other_ca, "j.smith", Kind::User, 365).unwrap();
    let past = time::OffsetDateTime::now_utc() - time::Duration::days(30);
    let expired = pki::issue_valid(
        &s.ca,
        "j.smith",
        Kind::User,
        past - time::Duration::days(365),
        past,
    )
    .unwrap();
    for (who, expect) in [
        (&stranger, "not issued by this scheme's CA"),
        (&expired, "expired"),
    ] {
        let e = handshake_error(&s, who).await;
        assert!(matches!(e, ClientError::CertificateRefused { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains(expect), "{msg}");
        assert!(
            msg.starts_with("the unit refused your certificate at the handshake")
                && msg.contains("scheme administrator"),
            "{msg}"
        );
    }
    // A scheme certificate the unit does not list: said once, not twice.
    let msg = handshake_error(&s, &s.unlisted).await.to_string();
    assert_eq!(
        msg,
        "the unit refused: your certificate is not in this unit's user list; ask the scheme manager to add it"
    );
}

#[tokio::test]
async fn every_refusal_reaches_the_officer() {
    let s = scheme().await;
    let o = connect(&s, &s.officer, &s.ca).await.unwrap();
    let m = connect(&s, &s.manager, &s.ca).await.unwrap();
    let refused = |r: Result<Answer, ClientError>| match r {
        Err(ClientError::Refused(r)) => r,
        other => panic!("not refused: {other:?}"),
    };
    // An unknown camera.
    match refused(
        o.call(&Request::List {
            camera: id("rear"),
            from_ns: 0,
            to_ns: i64::MAX,
            why: why("C/1"),
            track: Track::Footage,
        })
        .await,
    ) {
        Refusal::NoSuchCamera { camera, known } => {
            assert_eq!((camera.as_str(), known), ("rear", vec!["front".to_owned()]))
        }
        other => panic!("{other:?}"),
    }
    // An unknown segment.
    let mut sink = Vec::new();
    match o.fetch(&id("front"), 99, 0, &why("C/1"), &mut sink).await {
        Err(ClientError::Refused(Refusal::NoSuchSegment { seq: 99, .. })) => {}
        other => panic!("{other:?}"),
    }
    // Deleted by retention between the list and the fetch.
    let listed = o
        .list(&id("front"), 0, i64::MAX, &why("C/1"))
        .await
        .unwrap();
    s.store
        .destroy("front", listed[0].segment.seq, "test", "test")
        .unwrap();
    let e = o
        .fetch(
            &id("front"),
            listed[0].segment.seq,
            0,
            &why("C/1"),
            &mut sink,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, ClientError::Refused(Refusal::NoSuchSegment { .. })),
        "{e:?}"
    );
    assert!(e.to_string().contains("list again"), "{e}");
    // An offset past the end.
    let len = listed[1].segment.bytes;
    match o
        .fetch(
            &id("front"),
            listed[1].segment.seq,
            len + 1,
            &why("C/1"),
            &mut sink,
        )
        .await
    {
        Err(ClientError::Refused(Refusal::OffsetPastEnd { offset, len: l, .. })) => {
            assert_eq!((offset, l), (len + 1, len))
        }
        other => panic!("{other:?}"),
    }
    assert!(sink.is_empty(), "no footage leaves with a refusal");
    // An unknown hold, and a hold the store refuses.
    match refused(
        m.call(&Request::HoldRelease {
            id: 42,
            reason: "done".into(),
        })
        .await,
    ) {
        Refusal::NoSuchHold { id: 42 } => {}
        other => panic!("{other:?}"),
    }
    match refused(
        m.call(&Request::HoldCreate {
            cameras: vec![id("front")],
            from_ns: 0,
            to_ns: 1,
            case_ref: "C/1".into(),
            reason: "r".into(),
            review_ns: 5,
        })
        .await,
    ) {
        Refusal::HoldRefused { detail } => assert!(detail.contains("review date"), "{detail}"),
        other => panic!("{other:?}"),
    }
    // A camera id that tries to reach another file: refused as it is parsed.
    for cam in ["../audit", "../holds", "../destruction"] {
        let json = format!(
            r#"{{"op":"manifests","camera":"{cam}","from_seq":0,"to_seq":99,"why":{{"purpose":"view","case_ref":"C/1","reason":"r"}}}}"#
        );
        let mut bytes = (json.len() as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(json.as_bytes());
        match o.raw(&bytes).await.unwrap() {
            Refusal::Malformed { detail } => assert!(detail.contains("not a valid id"), "{detail}"),
            other => panic!("{cam}: {other:?}"),
        }
    }
    // The connection still works after all of that, and every refusal is audited.
    assert!(o.status().await.is_ok());
    let audit = s.store.audit_entries(0).unwrap();
    for needle in [
        "no camera",
        "is not on the unit",
        "past the end",
        "no active hold",
        "hold was refused",
        "not a valid id",
    ] {
        assert!(
            audit
                .iter()
                .any(|(_, a)| a.outcome.to_string().starts_with("refused")
                    && a.outcome.to_string().contains(needle)),
            "{needle} not audited"
        );
    }
}

#[tokio::test]
async fn strangers_cannot_grow_the_audit_log() {
    let s = scheme().await;
    let audit_path = s._dir.path().join("store/logs/audit.jsonl");
    let before = std::fs::metadata(&audit_path).map_or(0, |m| m.len());
    // 100 real handshakes with a certificate from another CA.
    let other_ca = pki::new_ca("Elsewhere", 365).unwrap();
    let stranger = pki::issue(&other_ca, "intruder", Kind::User, 365).unwrap();
    for _ in 0..100 {
        let e = handshake_error(&s, &stranger).await;
        assert!(matches!(e, ClientError::CertificateRefused { .. }), "{e:?}");
    }
    s.server.flush_refusals().await;
    let audit = wait_audit(&s.store, "100 refused attempts", |a| {
        a.iter()
            .filter(|(_, a)| a.action == "connect")
            .map(|(_, a)| a.attempts.unwrap_or(1))
            .sum::<u64>()
            == 100
    })
    .await;
    let entries: Vec<_> = audit
        .iter()
        .filter(|(_, a)| a.action == "connect")
        .collect();
    assert!(
        entries.len() <= 2,
        "{} entries for 100 attempts",
        entries.len()
    );
    assert!(entries.iter().all(|(_, a)| {
        a.detail
            .as_deref()
            .is_some_and(|d| d.contains("CN=intruder"))
    }));
    let real_growth = std::fs::metadata(&audit_path).unwrap().len() - before;
    assert!(real_growth < 4096, "{real_growth} bytes for 100 attempts");

    // 10,000 attempts from 500 sources over 30 minutes, through the same aggregation and into
    // the same signed, synced audit log: every attempt counted, well under 1 MB.
    let before = std::fs::metadata(&audit_path).unwrap().len();
    let mut tally = crate::strangers::Strangers::default();
    let (mut counted, t0) = (0u64, s.store.now_ns());
    let mut write = |rec: rdc_storage::AuditRecord| {
        counted += rec.attempts.unwrap_or(0);
        s.store.audit(&rec).unwrap();
    };
    let step = 30 * 60 * 1_000_000_000i64 / 10_000;
    let mut next_flush = t0;
    for i in 0..10_000i64 {
        let now = t0 + i * step;
        let attempt = crate::strangers::Attempt {
            addr: std::net::IpAddr::V4(std::net::Ipv4Addr::from(0xc633_6400 + (i % 500) as u32)),
            reason: "TLS handshake failed: unknown CA".into(),
            presented: None,
        };
        if let Some(rec) = tally.attempt(now, &attempt) {
            write(rec);
        }
        if now >= next_flush {
            if let Some(rec) = tally.due(now, false) {
                write(rec);
            }
            next_flush = now + 5_000_000_000;
        }
    }
    if let Some(rec) = tally.due(i64::MAX, true) {
        write(rec);
    }
    assert_eq!(counted, 10_000, "every attempt is accounted for");
    let growth = std::fs::metadata(&audit_path).unwrap().len() - before;
    eprintln!("10,000 refused attempts from 500 sources over 30 min: {growth} bytes of audit log");
    assert!(growth < 1 << 20, "10,000 attempts added {growth} bytes");
    assert!(s.store.verify(false).unwrap().is_empty());
}

/// One identity past its request rate: refused (not audited one by one: the first refusal at
/// once, the rest in a summary), others still served, and rdc's own calls slowed, not failed.
#[tokio::test]
async fn one_identity_past_its_rate_is_refused_counted_and_slowed_down() {
    let s = scheme().await;
    let c = connect(&s, &s.officer, &s.ca).await.unwrap();
    let status = crate::protocol::encode(&Request::Status);
    let mut throttled_at = None;
    for i in 0..2000 {
        match c.raw(&status).await {
            Err(ClientError::Protocol(_)) => {} // answered
            Ok(Refusal::Throttled {
                per_minute,
                retry_after_secs,
            }) => {
                assert_eq!((per_minute, retry_after_secs), (300, 1));
                throttled_at = Some(i);
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    let at = throttled_at.expect("never refused");
    assert!(at >= crate::limits::BURST as usize, "refused after {at}");
    let audited = |a: &[(rdc_storage::chainlog::Entry, rdc_storage::AuditRecord)]| {
        a.iter()
            .filter(|(_, r)| {
                r.outcome
                    .to_string()
                    .starts_with("refused: more than 300 requests a minute")
            })
            .count()
    };
    let before = wait_audit(&s.store, "the first refusal", |a| audited(a) == 1)
        .await
        .len();
    // Fifty more: refused, and not one more entry until the summary. (The bucket refills at 5
    // a second meanwhile: a request it lets through is answered, and audited as any.)
    let (mut refused, mut granted) = (0, 0);
    for _ in 0..50 {
        match c.raw(&status).await {
            Ok(Refusal::Throttled { .. }) => refused += 1,
            Err(ClientError::Protocol(_)) => granted += 1,
            other => panic!("{other:?}"),
        }
    }
    assert!(refused >= 25, "only {refused} of 50 refused");
    let after = wait_audit(&s.store, "the granted requests", |a| {
        a.len() >= before + granted
    })
    .await
    .len();
    assert_eq!(
        after,
        before + granted,
        "refused requests were audited one by one"
    );
    // Another person is served meanwhile.
    let m = connect(&s, &s.manager, &s.ca).await.unwrap();
    m.status().await.unwrap();
    s.server.flush_refusals().await;
    let audit = s.store.audit_entries(0).unwrap();
    let (_, sum) = audit
        .iter()
        .rev()
        .find(|(_, r)| r.action == "requests_refused")
        .expect("no summary of the refused requests");
    assert!(sum.attempts.unwrap() >= refused as u64, "{sum:?}");
    assert!(sum.detail.as_deref().unwrap().contains("J. Smith"));
    // rdc's own calls wait the second the unit asks for and go on.
    c.status().await.unwrap();
}

/// A unit whose logs have filled the space set aside for them refuses requests (rather than
/// log them, and let the logs eat into the footage's space), saying why, and counts them.
#[tokio::test]
async fn a_full_log_space_refuses_requests_instead_of_costing_footage() {
    // A tmpfs of its own: the log space is a share of the file system.
    let dir = tempfile::tempdir().unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=24m,mode=0700", "rdc-small-disk"])
        .arg(dir.path())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        mounted,
        "this test mounts a small tmpfs: run it as root (as .ci/run does)"
    );
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let _unmount = Unmount(dir.path().to_owned());
    let s = scheme_in(false, dir).await;
    let c = connect(&s, &s.officer, &s.ca).await.unwrap();
    c.status().await.unwrap();
    let budget = s.store.budget_bytes().unwrap();
    let filler = rdc_storage::AuditRecord {
        who: "unit".into(),
        role: rdc_format::Actor::System,
        action: "test_filler".into(),
        outcome: rdc_format::Outcome::Done,
        detail: Some("x".repeat(400)),
        ..Default::default()
    };
    while {
        let (used, allowance) = s.store.log_space().unwrap();
        used < allowance
    } {
        s.store.audit(&filler).unwrap();
    }
    // The gate measures the log space every few seconds: asked until it says so.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        match c.list(&id("front"), 0, i64::MAX, &why("ASB/9")).await {
            Err(ClientError::Refused(Refusal::LogSpaceFull {
                used_bytes,
                allowance_bytes,
            })) => {
                assert!(used_bytes >= allowance_bytes);
                break;
            }
            Ok(_) => assert!(std::time::Instant::now() < deadline, "never refused"),
            Err(e) => panic!("{e}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let entries = wait_audit(&s.store, "the first refusal", |a| {
        a.iter().any(|(_, r)| {
            r.outcome
                .to_string()
                .contains("the unit's log space is full")
        })
    })
    .await
    .len();
    for _ in 0..20 {
        assert!(matches!(
            c.status().await,
            Err(ClientError::Refused(Refusal::LogSpaceFull { .. }))
        ));
    }
    // No entry for the rest until the summary.
    assert_eq!(s.store.audit_entries(0).unwrap().len(), entries);
    // The footage's budget is what it was before the logs grew.
    assert!(s.store.budget_bytes().unwrap().abs_diff(budget) < 64 << 10);
}
