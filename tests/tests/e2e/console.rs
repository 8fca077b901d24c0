//! The officer's console in a real browser: Debian's chromium, headless, driven through
//! WebDriver (chromedriver), against the recorder serving an hour with a camera outage over
//! the real uplink, through a link that carries 1.5 Mbit/s. A manager signs in with the one-time
//! link, finds the outage on the camera's timeline with its cause, opens a picture, exports nine
//! minutes with a case and reason, closes the console mid-export and starts it again (the
//! export carries on), sees the bundle checked and the export in the audit log, fetches a
//! minute to look at, and places and releases a hold. Requests
//! without the session, with another Host or Origin, a link used twice and an engineer's
//! footage pages are refused.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use rdc_format::time::rfc3339;
use rdc_tests::browser::{Browser, ConsoleProcess};

use crate::harness::*;

const S: i64 = 1_000_000_000;
const CASE: &str = "ASB/2026/0456";
const REASON: &str = "shouting reported at the front door";

pub(crate) fn start_console(
    units: &Path,
    identity: &str,
    state: &Path,
    exports: &Path,
) -> ConsoleProcess {
    ConsoleProcess::start(
        Path::new(env!("CARGO_BIN_EXE_rdc-under-test")),
        units,
        Path::new(identity),
        state,
        exports,
    )
}

/// A raw HTTP/1.1 request to the console: its status and body.
fn http(port: u16, head: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let code = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, out)
}

pub(crate) async fn text_of(b: &Client, css: &str) -> String {
    b.find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Waits (polling the page, no fixed sleeps) until `f` holds of the text of `css`.
pub(crate) async fn wait_text(
    b: &Client,
    css: &str,
    limit: Duration,
    f: impl Fn(&str) -> bool,
) -> String {
    let t = Instant::now();
    loop {
        if let Ok(e) = b.find(Locator::Css(css)).await
            && let Ok(s) = e.text().await
            && f(&s)
        {
            return s;
        }
        assert!(
            t.elapsed() < limit,
            "timed out waiting on {css}: {}",
            b.source().await.unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What a screen reader would find nameless on the page: controls without a label, text or
/// aria-label, pictures without alt text, a page without a heading or a main landmark.
pub(crate) async fn assert_accessible(b: &Client, page: &str) {
    let nameless = b
        .execute(
            r#"const bad = [];
for (const e of document.querySelectorAll('input:not([type=hidden]), button, select, textarea, a[href]')) {
  const named = e.closest('label') || e.getAttribute('aria-label') || e.textContent.trim()
    || (e.id && document.querySelector('label[for="' + e.id + '"]'))
    || [...e.querySelectorAll('img')].some(i => i.alt);
  if (!named) bad.push(e.outerHTML.slice(0, 120));
}
for (const i of document.querySelectorAll('img')) if (!i.alt) bad.push(i.outerHTML.slice(0, 120));
if (!document.querySelector('main h1')) bad.push('no h1 in main');
if (!document.documentElement.lang) bad.push('no lang');
return bad;"#,
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(nameless, serde_json::json!([]), "on the {page} page");
}

pub(crate) async fn set_input(b: &Client, css: &str, v: &str) {
    let e = b.find(Locator::Css(css)).await.unwrap();
    e.clear().await.unwrap();
    e.send_keys(v).await.unwrap();
}

fn screenshot(name: &str, png: &[u8]) {
    if let Some(dir) = std::env::var_os("RDC_SCREENSHOTS") {
        std::fs::write(PathBuf::from(dir).join(name), png).unwrap();
    }
}

#[test]
fn an_officer_finds_the_outage_opens_a_picture_and_exports_in_a_real_browser() {
    if skip_long("an_officer_finds_the_outage_opens_a_picture_and_exports_in_a_real_browser") {
        return;
    }
    let s = Scheme::new();
    s.add_user("boss", "manager");
    s.add_user("eng", "engineer");
    // An hour of footage with a 30 s outage, written as the recorder writes it.
    let RecordedHour {
        mut unit, start, ..
    } = recorded_hour(&s, 600);
    unit.start();
    wait_for("the uplink", Duration::from_secs(30), || {
        s.rdc("status", &[]).status.success()
    });
    // The manager reaches the unit through a 1.5 Mbit/s link; the engineer directly.
    let link = rdc_tests::relay::Link {
        rate_bps: 1_500_000,
        delay: Duration::from_millis(20),
        loss: 0.0,
        queue: Duration::from_secs(1),
    };
    let relay =
        rdc_tests::relay::Relay::start(format!("127.0.0.1:{}", s.port).parse().unwrap(), link)
            .unwrap();
    let boss_units = PathBuf::from(s.path("units-boss-link.toml"));
    std::fs::write(
        &boss_units,
        std::fs::read_to_string(s.path("units-boss.toml"))
            .unwrap()
            .replace(&format!("127.0.0.1:{}", s.port), &relay.addr.to_string()),
    )
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    let (state, exports) = (work.path().join("state"), work.path().join("exports"));
    let identity = s.path("officer.key");
    let console = start_console(&boss_units, &identity, &state, &exports);
    let port = console.port;

    // Refused before any sign-in: no session; another Host (DNS rebinding), which does not
    // spend the link either.
    let (code, body) = http(
        port,
        &format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}"),
        "",
    );
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("not signed in"), "{body}");
    let (code, body) = http(
        port,
        &format!(
            "GET /login?token={} HTTP/1.1\r\nHost: rebind.example:{port}",
            console.token()
        ),
        "",
    );
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("answers only to"), "{body}");

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let browser = Browser::start(false).await;
        let b = &browser.client;
        // Sign in with the link; the units page.
        b.goto(&console.url).await.unwrap();
        let units = wait_text(b, "main", Duration::from_secs(30), |t| {
            t.contains("Unit e2e")
        })
        .await;
        assert!(units.contains("manager"), "{units}");
        assert_accessible(b, "units").await;
        assert!(units.contains("Days held"), "{units}");
        // The link is spent.
        let (code, body) = http(
            port,
            &format!(
                "GET /login?token={} HTTP/1.1\r\nHost: 127.0.0.1:{port}",
                console.token()
            ),
            "",
        );
        assert_eq!(code, 403, "{body}");
        assert!(body.contains("used already"), "{body}");
        // With the browser's session but from another site's page, or without the form's
        // token: nothing is done.
        let cookie = b
            .get_all_cookies()
            .await
            .unwrap()
            .into_iter()
            .find(|c| c.name() == "rdc_session")
            .expect("the session cookie");
        assert_eq!(cookie.http_only(), Some(true));
        let session = format!("rdc_session={}", cookie.value());
        let form = "case=X&reason=Y&back=/";
        let (code, body) = http(
            port,
            &format!(
                "POST /case HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {session}\r\nOrigin: http://evil.example\r\nContent-Type: application/x-www-form-urlencoded"
            ),
            form,
        );
        assert_eq!(code, 403, "{body}");
        assert!(body.contains("did not come from the console"), "{body}");
        let (code, body) = http(
            port,
            &format!(
                "POST /case HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {session}\r\nOrigin: http://127.0.0.1:{port}\r\nContent-Type: application/x-www-form-urlencoded"
            ),
            form,
        );
        assert_eq!(code, 403, "{body}");
        assert!(body.contains("security token"), "{body}");

        // The camera's timeline: first the case and reason.
        b.find(Locator::LinkText("timeline of front"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        set_input(b, "input[name=case]", CASE).await;
        set_input(b, "input[name=reason]", REASON).await;
        b.find(Locator::Css("form button")).await.unwrap().click().await.unwrap();
        wait_text(b, "main", Duration::from_secs(30), |t| t.contains("Bytes recorded per minute")).await;
        // The hour of footage: the outage is a gap, with its cause.
        b.goto(&format!(
            "http://127.0.0.1:{port}/unit/e2e/camera/front?end={}&span=1h",
            rfc3339(start + 3600 * S)
        ))
        .await
        .unwrap();
        let gaps = wait_text(b, "#gaps", Duration::from_secs(30), |_| true).await;
        assert!(
            gaps.contains("recording stopped: the camera closed the connection"),
            "{gaps}"
        );
        assert!(gaps.contains("30 s"), "{gaps}");
        assert_accessible(b, "timeline").await;
        let gap_rects: serde_json::Value = b
            .execute("return document.querySelectorAll('#chart rect.gap').length", vec![])
            .await
            .unwrap();
        assert!(gap_rects.as_u64().unwrap() >= 1);
        // Pictures arrive one by one: the first is the camera's 320x180 picture.
        let t = Instant::now();
        loop {
            let w = b
                .execute(
                    "const i = document.querySelector('.tiles img'); return i.complete ? i.naturalWidth : 0",
                    vec![],
                )
                .await
                .unwrap();
            if w.as_u64() == Some(320) {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(90), "no picture: width {w}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        screenshot("console-timeline.png", &b.screenshot().await.unwrap());
        // Click it: the picture, large.
        b.find(Locator::Css(".tiles a")).await.unwrap().click().await.unwrap();
        let url = b.current_url().await.unwrap();
        assert!(url.path().ends_with("/tile"), "{url}");
        let shown: serde_json::Value = b
            .execute("const i = document.querySelector('img'); return i ? i.naturalWidth : 0", vec![])
            .await
            .unwrap();
        assert_eq!(shown.as_u64(), Some(320));
        b.back().await.unwrap();

        // Export nine minutes before the outage (about 4 MB: over 20 seconds on this link).
        let (from, to) = (start + 10 * 60 * S, start + 19 * 60 * S);
        wait_text(b, "#export-heading", Duration::from_secs(30), |_| true).await;
        set_input(b, "#from", &rfc3339(from)).await;
        set_input(b, "#to", &rfc3339(to)).await;
        // The job, as the console keeps it on disk, is watched from the click on by a thread
        // of its own, so a browser slow to load the job's page (a busy machine) cannot miss it
        // under way.
        let under_way = watch_job_under_way(state.join("jobs"));
        b.find(Locator::Css("#export")).await.unwrap().click().await.unwrap();
        // The form's answer is a redirect to the job's page: wait for it to load.
        let t = Instant::now();
        let job_url = loop {
            let u = b.current_url().await.unwrap();
            if u.path().starts_with("/jobs/") {
                break u;
            }
            assert!(t.elapsed() < Duration::from_secs(30), "still at {u}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        // Part of the footage has crossed the link: the job, as the console keeps it on disk,
        // is under way (the restart below must fall mid-export).
        let job_file = state.join(format!(
            "jobs/{}.json",
            job_url.path().trim_start_matches("/jobs/")
        ));
        let t = Instant::now();
        while !under_way.is_finished() && t.elapsed() < Duration::from_secs(120) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let seen = under_way.is_finished() && under_way.join().unwrap();
        assert!(
            seen,
            "the export was not seen under way: {}",
            std::fs::read_to_string(&job_file).unwrap_or_default()
        );
        // The page follows it: its bar shows a share, the rate and the time left.
        wait_text(b, "#progress-text", Duration::from_secs(60), |t| {
            t.contains("Mbit/s") && t.contains(" % — ")
        })
        .await;
        screenshot("console-export.png", &b.screenshot().await.unwrap());
        assert_accessible(b, "export").await;
        drop(browser);
    });
    // The console is closed mid-export and started again: the export carries on.
    drop(console);
    let console = start_console(&boss_units, &identity, &state, &exports);
    let port = console.port;
    rt.block_on(async {
        let browser = Browser::start(false).await;
        let b = &browser.client;
        b.goto(&console.url).await.unwrap();
        wait_text(b, "main", Duration::from_secs(30), |t| {
            t.contains("Unit e2e")
        })
        .await;
        b.goto(&format!("http://127.0.0.1:{port}/jobs"))
            .await
            .unwrap();
        b.find(Locator::Css("main table a"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let verify = wait_text(b, "#verify", Duration::from_secs(120), |_| true).await;
        assert!(verify.contains("complete and unaltered"), "{verify}");
        let bar: serde_json::Value = b
            .execute("return document.getElementById('bar').value", vec![])
            .await
            .unwrap();
        assert_eq!(bar.as_f64(), Some(100.0));
        let folder = text_of(b, "#folder").await;
        // The stock checker agrees.
        let o = rdc(&["verify", &folder, "--ca", &s.path("ca/ca.crt")]);
        assert!(
            o.status.success(),
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        // The audit log, checked, shows the export under its case.
        b.goto(&format!(
            "http://127.0.0.1:{port}/unit/e2e/audit?case={}",
            CASE.replace('/', "%2F")
        ))
        .await
        .unwrap();
        let audit = wait_text(b, "main", Duration::from_secs(60), |t| {
            t.contains("entries shown") || t.contains("did not check out")
        })
        .await;
        assert!(audit.contains("audit entries checked"), "{audit}");
        assert_accessible(b, "audit").await;
        let rows = text_of(b, "table.audit tbody").await;
        // Again: only what follows the entries checked on the first visit is fetched, and the
        // whole log is still shown.
        b.refresh().await.unwrap();
        let again = wait_text(b, "main", Duration::from_secs(60), |t| {
            t.contains("entries shown") || t.contains("did not check out")
        })
        .await;
        assert!(again.contains("checked on an earlier visit"), "{again}");
        assert_eq!(text_of(b, "table.audit tbody").await, rows);
        assert!(
            rows.lines()
                .any(|l| l.contains("export") && l.contains("boss") && l.contains(CASE)),
            "{rows}"
        );
        // A fetch of one minute, to look at: the segments, checked and decrypted.
        b.goto(&format!(
            "http://127.0.0.1:{port}/unit/e2e/camera/front?end={}&span=10m",
            rfc3339(start + 10 * 60 * S)
        ))
        .await
        .unwrap();
        // A new session (the console was restarted): the case and reason first.
        set_input(b, "input[name=case]", CASE).await;
        set_input(b, "input[name=reason]", REASON).await;
        b.find(Locator::Css("form button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_text(b, "#export-heading", Duration::from_secs(30), |_| true).await;
        set_input(b, "#from", &rfc3339(start + 5 * 60 * S)).await;
        set_input(b, "#to", &rfc3339(start + 6 * 60 * S)).await;
        b.find(Locator::Css("#fetch"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let fetched = wait_text(b, "#result", Duration::from_secs(120), |_| true).await;
        assert!(fetched.contains("segments"), "{fetched}");
        let ts = std::fs::read_dir(exports.as_path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with("-fetch"))
            .flat_map(|e| std::fs::read_dir(e.path().join("front")).unwrap().flatten())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".ts"))
            .count();
        assert!(ts >= 1, "no decrypted segment fetched: {fetched}");
        // Holds: placed, listed, released.
        b.goto(&format!("http://127.0.0.1:{port}/unit/e2e/holds"))
            .await
            .unwrap();
        set_input(b, "input[name=cameras]", "front").await;
        set_input(b, "input[name=from]", &rfc3339(start)).await;
        set_input(b, "input[name=to]", &rfc3339(start + 600 * S)).await;
        set_input(
            b,
            "input[name=review]",
            &rfc3339(now_ns() + 30 * 86_400 * S),
        )
        .await;
        b.find(Locator::XPath("//button[text()='Place the hold']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let held = wait_text(b, "main", Duration::from_secs(30), |t| {
            t.contains("Release")
        })
        .await;
        assert!(held.contains(CASE) && held.contains("boss"), "{held}");
        assert_accessible(b, "holds").await;
        set_input(b, "table input[name=reason]", "the case is closed").await;
        b.find(Locator::XPath("//button[text()='Release']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_text(b, "main", Duration::from_secs(30), |t| {
            t.contains("No holds")
        })
        .await;
        drop(browser);
    });

    // An engineer's console: units and selftest, no footage pages.
    let eng_state = work.path().join("eng-state");
    let eng = start_console(
        Path::new(&s.path("units-eng.toml")),
        &identity,
        &eng_state,
        &exports,
    );
    let (code, body) = http(
        eng.port,
        &format!(
            "GET /login?token={} HTTP/1.1\r\nHost: localhost:{}",
            eng.token(),
            eng.port
        ),
        "",
    );
    assert_eq!(code, 303, "{body}");
    let cookie = body
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_owned();
    let get = |path: &str| {
        http(
            eng.port,
            &format!(
                "GET {path} HTTP/1.1\r\nHost: localhost:{}\r\nCookie: {cookie}",
                eng.port
            ),
            "",
        )
    };
    let (code, body) = get("/");
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("engineer") && body.contains("Selftest of e2e"),
        "{body}"
    );
    assert!(!body.contains("timeline of front"), "{body}");
    let (code, body) = get("/unit/e2e/camera/front");
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("(engineer) may not see footage"), "{body}");
    let (code, body) = get(&format!(
        "/unit/e2e/camera/front/tile?at={start}&window=10000000000"
    ));
    assert_eq!(code, 403, "{body}");
    let (code, body) = get("/unit/e2e/selftest");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("checks"), "{body}");
}

/// Watches the console's jobs folder until a job's file says it is under way (some but not
/// all of its bytes fetched): true then, false if every new job there finished first.
fn watch_job_under_way(dir: PathBuf) -> std::thread::JoinHandle<bool> {
    let names = |dir: &Path| -> Vec<std::ffi::OsString> {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name())
            .collect()
    };
    // Jobs already there are not the one about to start.
    let before = names(&dir);
    std::thread::spawn(move || {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(180) {
            let jobs: Vec<serde_json::Value> = std::fs::read_dir(&dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| !before.contains(&e.file_name()))
                .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                .filter_map(|e| std::fs::read(e.path()).ok())
                .filter_map(|b| serde_json::from_slice(&b).ok())
                .collect();
            let progress = |j: &serde_json::Value| {
                (
                    j["done"].as_u64().unwrap_or(0),
                    j["total"].as_u64().unwrap_or(0),
                )
            };
            if jobs.iter().any(|j| {
                let (done, total) = progress(j);
                done > 0 && done < total
            }) {
                return true;
            }
            if !jobs.is_empty() && jobs.iter().all(|j| j["state"] == "done") {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    })
}
