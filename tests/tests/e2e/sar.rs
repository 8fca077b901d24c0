//! Subject access requests (R15, 002 §43): `rdc sar open` holds the footage and records the
//! deadline on the unit; the hold outlives retention (on simulated time) until `rdc sar close`,
//! after which retention deletes the footage and the destruction log says so; an extension only
//! within the first month; `rdc sar list` overdue first; every change audited.

use std::sync::Arc;
use std::time::Duration;

use rdc_storage::{Budget, Clocks as _, SimulatedClocks, Store, StoreConfig, UnitKey};

use crate::harness::*;

const S: i64 = 1_000_000_000;
const DAY: i64 = 86_400 * S;

fn out(o: std::process::Output) -> (bool, String) {
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

#[test]
fn a_subject_access_request_holds_its_footage_past_retention_until_it_is_closed() {
    let s = Scheme::new();
    s.add_user("m.jones", "manager");
    // The unit's store on simulated time, its uplink served in-process on the scheme's port.
    let dir = tempfile::tempdir().unwrap();
    let start = now_ns() / S * S;
    let clocks = Arc::new(SimulatedClocks::new(start));
    let cfg = StoreConfig {
        budget: Budget::MaxBytes(1 << 30),
        segment_ns: 10 * S as u64,
        retention_days: 7,
        ..StoreConfig::new(dir.path().join("store"), "e2e", vec![[5u8; 32]])
    };
    let key = Arc::new(UnitKey::load_or_create(&dir.path().join("unit.key")).unwrap());
    let (store, _) = Store::open(cfg, key, clocks.clone()).unwrap();
    // A minute of footage: 0-60 s of the simulated clock, ten-second segments.
    {
        let mut w = store.writer("front").unwrap();
        for i in 0..1500u64 {
            let data = vec![(i % 251) as u8; 2000];
            w.push(&rdc_storage::Frame {
                data: &data,
                keyframe: i % 25 == 0,
                wall_ns: clocks.wall_ns(),
                mono_ns: clocks.mono_ns(),
            })
            .unwrap();
            clocks.advance(Duration::from_millis(40));
        }
        w.close("the test's recording ended").unwrap();
    }
    let users = vec![
        rdc_config::User {
            name: "J. Smith".into(),
            role: rdc_config::Role::Officer,
            fingerprint: None,
            common_name: Some("j.smith".into()),
        },
        rdc_config::User {
            name: "M. Jones".into(),
            role: rdc_config::Role::Manager,
            fingerprint: None,
            common_name: Some("m.jones".into()),
        },
    ];
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tls = rdc_uplink::tls::server_config(
        &rdc_uplink::tls::Identity::from_files(
            std::path::Path::new(&s.path("unit/e2e.crt")),
            std::path::Path::new(&s.path("unit/e2e.key")),
        )
        .unwrap(),
        &std::fs::read_to_string(s.path("ca/ca.crt")).unwrap(),
        None,
    )
    .unwrap();
    rt.block_on(async {
        let srv = rdc_uplink::server::Server::bind(
            format!("127.0.0.1:{}", s.port).parse().unwrap(),
            tls,
            users,
            store.clone(),
        )
        .unwrap();
        tokio::spawn(srv.serve());
    });
    let t = |ns: i64| rdc_format::time::rfc3339(ns);
    let today = rdc_format::sar::date_text(rdc_format::sar::uk_date(clocks.wall_ns()));
    let units_of = |who: &str| {
        if who == "j.smith" {
            s.path("units.toml")
        } else {
            s.path(&format!("units-{who}.toml"))
        }
    };
    let open = |who: &str, reference: &str, from: i64, to: i64, received: &str| {
        out(rdc(&[
            "sar",
            "open",
            "--unit",
            "e2e",
            "--units",
            &units_of(who),
            "--camera",
            "front",
            "--from",
            &t(from),
            "--to",
            &t(to),
            "--received",
            received,
            "--requester-ref",
            reference,
        ]))
    };
    let manager = |args: &[&str]| {
        let mut a = vec!["sar"];
        a.extend_from_slice(args);
        let units = s.path("units-m.jones.toml");
        let mut all = vec![a[0], a[1], "--unit", "e2e", "--units", &units];
        all.extend_from_slice(&a[2..]);
        out(rdc(&all))
    };

    // Only a manager opens one (it places a hold).
    let (ok, text) = open("j.smith", "SAR-1", start, start + 20 * S, &today);
    assert!(!ok && text.contains("may not sar open"), "{text}");
    // The first 20 s of footage, received today.
    let (ok, text) = open("m.jones", "SAR-1", start, start + 20 * S, &today);
    assert!(ok, "{text}");
    let received = rdc_format::sar::parse_date(&today).unwrap();
    let due = rdc_format::sar::date_text(rdc_format::sar::due(received, 0));
    assert!(text.contains(&format!("due {due}")), "{text}");
    // Received 40 days ago: overdue, and too late to extend.
    let old = rdc_format::sar::date_text(received - ::time::Duration::days(40));
    let (ok, text) = open("m.jones", "SAR-2", start + 30 * S, start + 40 * S, &old);
    assert!(ok, "{text}");
    let (ok, text) = manager(&["extend", "SAR-2", "--months", "2", "--reason", "complex"]);
    assert!(!ok && text.contains("within the first month"), "{text}");
    // A date in the future is refused.
    let tomorrow = rdc_format::sar::date_text(received + ::time::Duration::days(2));
    let (ok, text) = open("m.jones", "SAR-3", start, start + S, &tomorrow);
    assert!(!ok && text.contains("cannot have been received"), "{text}");
    // Within the first month: extended by two months.
    let (ok, text) = manager(&[
        "extend",
        "SAR-1",
        "--months",
        "2",
        "--reason",
        "many people in the footage",
    ]);
    assert!(ok, "{text}");
    let due2 = rdc_format::sar::date_text(rdc_format::sar::due(received, 2));
    assert!(text.contains(&format!("due {due2}")), "{text}");

    // Every unit's requests, overdue first.
    let (ok, list) = out(rdc(&["sar", "list", "--units", &s.path("units.toml")]));
    assert!(ok, "{list}");
    let lines: Vec<&str> = list.lines().collect();
    assert!(
        lines[0].starts_with("OVERDUE") && lines[0].contains("SAR-2"),
        "{list}"
    );
    assert!(
        lines[1].contains("SAR-1")
            && lines[1].contains(&format!("due {due2}"))
            && lines[1].contains("extended 2"),
        "{list}"
    );

    // Ten days on (retention is 7): the held footage stays, the rest goes.
    clocks.advance(Duration::from_secs(10 * 86_400));
    store.enforce_retention().unwrap();
    let left = store.list("front", start - DAY, start + DAY).unwrap();
    let held: Vec<u64> = left.iter().map(|e| e.segment.seq).collect();
    assert!(
        left.iter().all(|e| e.segment.start_ns < start + 20 * S
            || (e.segment.start_ns < start + 40 * S && e.segment.end_ns > start + 30 * S)),
        "only held footage is left: {held:?}"
    );
    assert!(left.iter().any(|e| e.segment.start_ns == start), "{held:?}");
    assert!(
        store
            .list("front", start + 45 * S, start + 60 * S)
            .unwrap()
            .is_empty()
    );

    // Closed: the hold released, and retention deletes the footage, logged.
    let (ok, text) = manager(&[
        "close",
        "SAR-1",
        "--refused",
        "the requester is not in the footage",
    ]);
    assert!(ok, "{text}");
    store.enforce_retention().unwrap();
    assert!(
        store
            .list("front", start, start + 20 * S)
            .unwrap()
            .is_empty()
    );
    let destroyed = store.destructions().unwrap();
    assert!(
        destroyed
            .iter()
            .any(|(_, d)| d.segment.start_ns == start && d.why.contains("retention")),
        "{destroyed:#?}"
    );
    let (_, list) = out(rdc(&[
        "sar",
        "list",
        "--all",
        "--units",
        &s.path("units.toml"),
    ]));
    assert!(
        list.contains("closed: refused") && list.contains("SAR-1"),
        "{list}"
    );

    // Every change is in the unit's audit log.
    let audit = store.audit_entries(0).unwrap();
    for action in ["sar_open", "sar_extend", "sar_close"] {
        assert!(
            audit
                .iter()
                .any(|(_, a)| a.action == action && a.outcome.is_granted()),
            "{action}"
        );
    }
    assert!(audit.iter().any(|(_, a)| a.action == "sar_extend"
        && a.outcome.to_string().contains("within the first month")));
    assert!(store.verify(false).unwrap().is_empty());
    rt.shutdown_timeout(Duration::from_secs(2));
}
