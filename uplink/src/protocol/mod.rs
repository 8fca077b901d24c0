//! The `rdc/1` protocol, without I/O: one request per QUIC bidirectional stream, a
//! length-prefixed JSON header each way, then (for a fetch) raw ciphertext bytes.
//!
//! ```text
//! client -> unit   u32 BE length | Request (JSON)            then the client finishes its side
//! unit -> client   u32 BE length | Response (JSON)           then, for Fetch, the bytes
//! ```
//!
//! Everything here is checked before the unit acts: the size of a header, that it parses, that
//! a footage request says why (purpose, case reference, reason), and that the caller's role
//! allows it. A bad request gets an error on its own stream; the connection carries on.

use serde::Serialize;

mod answer;
mod authorisation;
mod refusal;
mod request;

pub use answer::*;
pub use authorisation::authorize;
pub use rdc_format::Track;
pub use refusal::Refusal;
pub use request::*;

/// The ALPN protocol name.
pub const ALPN: &[u8] = b"rdc/1";
/// The QUIC close code for a connection whose certificate the unit does not list.
pub const CLOSE_UNKNOWN_USER: u32 = 0x101;
/// The largest header either side accepts.
pub const MAX_HEADER: usize = 64 * 1024;
/// The most buckets one activity answer holds (a week of minutes).
pub const MAX_ACTIVITY_BUCKETS: i64 = 7 * 24 * 60;
/// Longest case reference and reason accepted.
pub const MAX_CASE_REF: usize = 100;
pub const MAX_REASON: usize = 1000;
/// Encodes a header: u32 big-endian length, then JSON. Every protocol type serialises (the
/// property tests check each one), so this cannot fail for them.
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    let json = serde_json::to_vec(msg).unwrap_or_else(|e| {
        // Unreachable for rdc/1's types; a refusal that names the fault beats a panic.
        serde_json::to_vec(&Response::Refused {
            refusal: Refusal::Failed {
                detail: format!("the unit could not encode its answer: {e}"),
            },
        })
        .unwrap_or_default()
    });
    let mut out = Vec::with_capacity(4 + json.len());
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&json);
    out
}

/// The header length announced by the first four bytes, refused if over the limit.
pub fn header_len(prefix: [u8; 4]) -> Result<usize, Refusal> {
    let n = u32::from_be_bytes(prefix) as usize;
    if n > MAX_HEADER {
        return Err(Refusal::TooLarge {
            size: n,
            limit: MAX_HEADER,
        });
    }
    Ok(n)
}

/// The most an answer's header may announce: a week of one-minute segments listed is about
/// 3 MB, a day's manifests about 1.5 MB. The client reads answers only from a unit it has
/// authenticated, so the bound is against a broken unit, not an attacker's request.
pub const MAX_ANSWER: usize = 32 * 1024 * 1024;

/// Parses and checks a request header (without the length prefix).
pub fn decode_request(json: &[u8]) -> Result<Request, Refusal> {
    let req = parse_request(json)?;
    check_request(&req)?;
    Ok(req)
}

/// Parses a request header, without judging it.
pub fn parse_request(json: &[u8]) -> Result<Request, Refusal> {
    serde_json::from_slice(json).map_err(|e| Refusal::Malformed {
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use rdc_config::{Id, Role};

    use super::*;

    fn why(case: &str, reason: &str) -> Justification {
        Justification {
            purpose: Purpose::View,
            case_ref: case.into(),
            reason: reason.into(),
        }
    }

    #[test]
    fn round_trip() {
        let r = Request::Fetch {
            camera: Id::parse("front").unwrap(),
            seq: 7,
            offset: 1 << 20,
            why: why("ASB/2026/114", "doorstep incident"),
            track: Track::Footage,
        };
        let bytes = encode(&r);
        let n = header_len(bytes[..4].try_into().unwrap()).unwrap();
        assert_eq!(n, bytes.len() - 4);
        assert_eq!(decode_request(&bytes[4..]).unwrap(), r);
        // The footage track is not named on the wire (units before previews read it still).
        assert!(!String::from_utf8_lossy(&bytes).contains("track"));
    }

    #[test]
    fn previews_are_asked_for_to_view_and_audited_as_previews() {
        let mut r = Request::List {
            camera: Id::parse("front").unwrap(),
            from_ns: 0,
            to_ns: 1,
            why: why("ASB/1", "Tuesday evening"),
            track: Track::Preview,
        };
        assert_eq!(decode_request(&encode(&r)[4..]).unwrap(), r);
        assert_eq!(r.action(), "list_previews");
        if let Request::List { why, .. } = &mut r {
            why.purpose = Purpose::Export;
        }
        match decode_request(&encode(&r)[4..]) {
            Err(Refusal::Unjustified { missing }) => assert!(missing.contains("view"), "{missing}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode_request(br#"{"op":"fetch","camera":"front","seq":1,"offset":0,"track":"sideways","why":{"purpose":"view","case_ref":"a","reason":"b"}}"#),
            Err(Refusal::Malformed { .. })
        ));
    }

    #[test]
    fn malformed_and_oversized_are_refused() {
        assert!(matches!(
            decode_request(b"{\"op\":\"fetch\""),
            Err(Refusal::Malformed { .. })
        ));
        assert!(matches!(
            decode_request(b"\xff\x00garbage"),
            Err(Refusal::Malformed { .. })
        ));
        assert!(matches!(
            decode_request(br#"{"op":"audit","from_seq":0,"extra":1}"#),
            Err(Refusal::Malformed { .. })
        ));
        assert!(matches!(
            decode_request(br#"{"op":"format_disk"}"#),
            Err(Refusal::Malformed { .. })
        ));
        assert_eq!(
            header_len((MAX_HEADER as u32 + 1).to_be_bytes()),
            Err(Refusal::TooLarge {
                size: MAX_HEADER + 1,
                limit: MAX_HEADER
            })
        );
    }

    #[test]
    fn ids_that_could_reach_a_path_are_refused_as_they_are_parsed() {
        for cam in [
            "../audit",
            "../holds",
            "..",
            ".",
            "a/b",
            "/etc",
            "FRONT",
            "",
            "front\u{0}",
        ] {
            let json = format!(
                r#"{{"op":"manifests","camera":{},"from_seq":0,"to_seq":9,"why":{{"purpose":"view","case_ref":"C","reason":"r"}}}}"#,
                serde_json::to_string(cam).unwrap()
            );
            match decode_request(json.as_bytes()) {
                Err(Refusal::Malformed { detail }) => {
                    assert!(detail.contains("not a valid id"), "{cam:?}: {detail}")
                }
                other => panic!("{cam:?} accepted: {other:?}"),
            }
        }
        let hold = r#"{"op":"hold_create","cameras":["front","../destruction"],"from_ns":0,"to_ns":1,"case_ref":"C","reason":"r","review_ns":5}"#;
        assert!(matches!(
            decode_request(hold.as_bytes()),
            Err(Refusal::Malformed { .. })
        ));
    }

    #[test]
    fn every_refusal_serialises_and_reads_back() {
        let all = [
            Refusal::Malformed { detail: "x".into() },
            Refusal::TooLarge { size: 1, limit: 2 },
            Refusal::Timeout { secs: 30 },
            Refusal::Unjustified {
                missing: "m".into(),
            },
            Refusal::Forbidden {
                role: Role::Engineer,
                action: "fetch".into(),
                needed: "manager".into(),
            },
            Refusal::UnknownUser,
            Refusal::NoSuchCamera {
                camera: "rear".into(),
                known: vec!["front".into()],
            },
            Refusal::NoSuchSegment {
                camera: "front".into(),
                seq: 3,
            },
            Refusal::OffsetPastEnd {
                camera: "front".into(),
                seq: 3,
                offset: 9,
                len: 5,
            },
            Refusal::NoFootage {
                camera: "front".into(),
                from_ns: 1,
                to_ns: 2,
            },
            Refusal::NoSuchHold { id: 4 },
            Refusal::HoldRefused { detail: "d".into() },
            Refusal::Failed { detail: "f".into() },
            Refusal::NoSuchStill { still: 3 },
            Refusal::StillRefused {
                still: Some(3),
                why: "w".into(),
            },
            Refusal::StillRefused {
                still: None,
                why: "w".into(),
            },
            Refusal::BadSignature { detail: "d".into() },
            Refusal::NoFootageAt {
                camera: "front".into(),
                at: "t".into(),
                before: Some("b".into()),
                after: None,
            },
        ];
        for r in all {
            let bytes = encode(&Response::Refused { refusal: r.clone() });
            let back: Response = serde_json::from_slice(&bytes[4..]).unwrap();
            match back {
                Response::Refused { refusal } => assert_eq!(refusal, r),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn stills_are_asked_for_by_officers_approved_by_managers_and_never_by_engineers() {
        let make = Request::StillMake { still: 1 };
        let release = Request::StillRelease {
            still: 1,
            to: "DC A".into(),
        };
        for role in [Role::Officer, Role::Manager] {
            assert!(authorize(role, &make).is_ok());
            assert!(authorize(role, &release).is_ok());
            assert!(authorize(role, &Request::Stills).is_ok());
        }
        assert!(authorize(Role::Auditor, &Request::Stills).is_ok());
        for role in [Role::Engineer, Role::Auditor] {
            assert!(authorize(role, &make).is_err());
            assert!(authorize(role, &release).is_err());
        }
        assert!(authorize(Role::Engineer, &Request::Stills).is_err());
        let blank = Request::StillRelease {
            still: 1,
            to: " ".into(),
        };
        assert!(matches!(
            check_request(&blank),
            Err(Refusal::Unjustified { .. })
        ));
        // A gap's refusal names the footage around it.
        let r = Refusal::NoFootageAt {
            camera: "front".into(),
            at: "T".into(),
            before: Some("B".into()),
            after: Some("A".into()),
        };
        assert!(
            r.to_string()
                .contains("the nearest footage ends at B and resumes at A"),
            "{r}"
        );
    }

    #[test]
    fn footage_requests_must_say_why() {
        let r = Request::List {
            camera: Id::parse("front").unwrap(),
            from_ns: 0,
            to_ns: 1,
            why: why("", "  "),
            track: Track::Footage,
        };
        match decode_request(&encode(&r)[4..]) {
            Err(Refusal::Unjustified { missing }) => {
                assert_eq!(missing, "missing a case reference and a reason")
            }
            other => panic!("{other:?}"),
        }
        let msg = Refusal::Unjustified {
            missing: "missing a reason".into(),
        }
        .to_string();
        assert!(
            msg.contains("purpose") && msg.contains("case reference"),
            "{msg}"
        );
        // Without the `why` object at all: malformed, and says so.
        assert!(matches!(
            decode_request(br#"{"op":"fetch","camera":"front","seq":1,"offset":0}"#),
            Err(Refusal::Malformed { .. })
        ));
    }

    #[test]
    fn roles() {
        let fetch = Request::Fetch {
            camera: Id::parse("c").unwrap(),
            seq: 0,
            offset: 0,
            why: why("C1", "r"),
            track: Track::Preview,
        };
        let hold = Request::HoldList;
        let audit = Request::Audit { from_seq: 0 };
        for (role, f, h, a, s) in [
            (Role::Officer, true, false, false, true),
            (Role::Manager, true, true, true, true),
            (Role::Engineer, false, false, false, true),
            (Role::Auditor, false, false, true, false),
        ] {
            assert_eq!(authorize(role, &fetch).is_ok(), f, "{role} fetch");
            assert_eq!(authorize(role, &hold).is_ok(), h, "{role} holds");
            assert_eq!(authorize(role, &audit).is_ok(), a, "{role} audit");
            assert_eq!(
                authorize(role, &Request::Status).is_ok(),
                s,
                "{role} status"
            );
        }
        let msg = authorize(Role::Engineer, &fetch).unwrap_err().to_string();
        assert_eq!(
            msg,
            "your role (engineer) may not fetch preview: ask a case support officer or manager"
        );
    }

    /// Property tests of the parsers the unit runs on bytes from the network.
    mod props {
        use super::*;
        use proptest::prelude::*;

        fn id() -> impl Strategy<Value = Id> {
            proptest::collection::vec(
                prop_oneof![b'a'..=b'z', b'0'..=b'9', Just(b'-'), Just(b'_')],
                1..=32,
            )
            .prop_filter_map("a valid id", |v| {
                Id::parse(std::str::from_utf8(&v).expect("ascii")).ok()
            })
        }

        fn why() -> impl Strategy<Value = Justification> {
            (
                prop_oneof![
                    Just(Purpose::View),
                    Just(Purpose::Export),
                    Just(Purpose::Still)
                ],
                any::<String>(),
                any::<String>(),
            )
                .prop_map(|(purpose, case_ref, reason)| Justification {
                    purpose,
                    case_ref,
                    reason,
                })
        }

        fn track() -> impl Strategy<Value = Track> {
            prop_oneof![Just(Track::Footage), Just(Track::Preview)]
        }

        fn request() -> impl Strategy<Value = Request> {
            prop_oneof![
                Just(Request::Status),
                Just(Request::HoldList),
                (id(), any::<i64>(), any::<i64>(), why(), track()).prop_map(
                    |(camera, from_ns, to_ns, why, track)| {
                        Request::List {
                            camera,
                            from_ns,
                            to_ns,
                            why,
                            track,
                        }
                    }
                ),
                (id(), any::<u64>(), any::<u64>(), why(), track()).prop_map(
                    |(camera, seq, offset, why, track)| {
                        Request::Fetch {
                            camera,
                            seq,
                            offset,
                            why,
                            track,
                        }
                    }
                ),
                (id(), any::<u64>(), any::<u64>(), why(), track()).prop_map(
                    |(camera, from_seq, to_seq, why, track)| Request::Manifests {
                        camera,
                        from_seq,
                        to_seq,
                        why,
                        track,
                    }
                ),
                (
                    proptest::collection::vec(id(), 0..4),
                    any::<i64>(),
                    any::<i64>(),
                    any::<String>(),
                    any::<String>(),
                    any::<i64>()
                )
                    .prop_map(
                        |(cameras, from_ns, to_ns, case_ref, reason, review_ns)| {
                            Request::HoldCreate {
                                cameras,
                                from_ns,
                                to_ns,
                                case_ref,
                                reason,
                                review_ns,
                            }
                        }
                    ),
                (any::<u64>(), any::<String>())
                    .prop_map(|(id, reason)| Request::HoldRelease { id, reason }),
                any::<u64>().prop_map(|from_seq| Request::Audit { from_seq }),
                id().prop_map(|camera| Request::Still { camera }),
                any::<String>().prop_map(|reason| Request::CommissionDone { reason }),
                Just(Request::SelfTest),
                (id(), any::<(i64, i64, i64)>(), why()).prop_map(
                    |(camera, (from_ns, to_ns, bucket_ns), why)| Request::Activity {
                        camera,
                        from_ns,
                        to_ns,
                        bucket_ns,
                        why,
                    }
                ),
                (
                    id(),
                    any::<(i64, i64, u64, u64, u64)>(),
                    "[0-9a-f]{64}",
                    why()
                )
                    .prop_map(
                        |(camera, (from_ns, to_ns, first_seq, last_seq, count), digest, why)| {
                            Request::ExportReceipt {
                                camera,
                                from_ns,
                                to_ns,
                                first_seq,
                                last_seq,
                                count,
                                digest,
                                why,
                            }
                        }
                    ),
            ]
        }

        proptest! {
            #[test]
            fn any_bytes_are_refused_or_parsed_never_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
                if let Ok(req) = decode_request(&bytes) {
                    // Whatever parses is fully checked: ids valid, justification present.
                    if let Some(w) = req.justification() {
                        prop_assert!(!w.case_ref.trim().is_empty() && !w.reason.trim().is_empty());
                    }
                }
            }

            #[test]
            fn any_camera_string_is_an_id_or_refused(camera in any::<String>(), seq in any::<u64>()) {
                let json = serde_json::json!({
                    "op": "fetch", "camera": camera, "seq": seq, "offset": 0,
                    "why": {"purpose": "view", "case_ref": "C/1", "reason": "r"},
                });
                match decode_request(json.to_string().as_bytes()) {
                    Ok(Request::Fetch { camera: c, .. }) => {
                        prop_assert_eq!(c.as_str(), camera.as_str());
                        prop_assert!(!camera.contains('/') && !camera.contains('.') && !camera.is_empty());
                    }
                    Ok(other) => prop_assert!(false, "{other:?}"),
                    Err(Refusal::Malformed { .. }) => prop_assert!(Id::parse(&camera).is_err()),
                    Err(other) => prop_assert!(false, "{other:?}"),
                }
            }

            #[test]
            fn every_request_round_trips(req in request()) {
                let bytes = encode(&req);
                prop_assert_eq!(header_len(bytes[..4].try_into().unwrap()).ok(), Some(bytes.len() - 4));
                prop_assert_eq!(parse_request(&bytes[4..]).unwrap(), req);
            }

            #[test]
            fn a_header_length_is_bounded(prefix in any::<[u8; 4]>()) {
                if let Ok(n) = header_len(prefix) {
                    prop_assert!(n <= MAX_HEADER);
                }
            }

            #[test]
            fn any_answer_bytes_parse_or_fail_never_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
                let _ = serde_json::from_slice::<Response>(&bytes);
            }
        }
    }
}
