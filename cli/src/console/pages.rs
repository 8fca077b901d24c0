//! The console's pages but the timeline and the jobs: units, selftest, audit log, holds, and
//! the case every look at footage is made under.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Extension;
use axum::extract::{Form, Path as UrlPath, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use rdc_config::Role;
use rdc_uplink::protocol::{Answer, Refusal, StatusAnswer};

use super::{Console, SessionId, Shared, refuse};
use crate::time::parse_time;
use crate::units::connect;
use anyhow::{Context as _, anyhow};
use rdc_config::Id;
use rdc_uplink::client::ClientError;
use rdc_uplink::protocol::Request;

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

pub(crate) async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "private, max-age=3600"),
        ],
        CSS,
    )
        .into_response()
}

pub(crate) async fn js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "private, max-age=3600"),
        ],
        JS,
    )
        .into_response()
}

/// Text made safe to put in HTML (content or a quoted attribute).
pub(crate) fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// A time as the console shows it: UTC, and UK local time beside it.
pub(crate) fn both_times(ns: i64) -> String {
    format!(
        "{} ({})",
        rdc_format::time::utc_plain(ns),
        rdc_format::time::uk_local(ns)
    )
}

/// A whole page: the console's header and navigation around `body`.
pub(crate) fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{t} · rdc console</title>
<link rel="stylesheet" href="/assets/console.css">
<script src="/assets/console.js" defer></script>
</head>
<body>
<a class="skip" href="#main">Skip to the content</a>
<header><nav aria-label="Console"><a href="/">Units</a> <a href="/jobs">Exports and fetches</a> <a href="/sars">Subject access requests</a></nav></header>
<main id="main">
<h1>{t}</h1>
{body}
</main>
</body>
</html>
"##,
        t = esc(title)
    ))
}

/// The hidden field every form carries.
pub(crate) fn csrf_field(c: &Console, sid: &SessionId) -> String {
    format!(
        r#"<input type="hidden" name="csrf" value="{}">"#,
        esc(&c.session(sid).csrf)
    )
}

/// A unit of the units file, or a page saying it is not one.
pub(crate) fn known_unit(c: &Console, unit: &str) -> Result<(), Response> {
    if c.units.iter().any(|u| u == unit) {
        Ok(())
    } else {
        Err(refuse(
            StatusCode::NOT_FOUND,
            &format!(
                "There is no unit {unit:?} in the units file {}.",
                c.units_file.display()
            ),
        ))
    }
}

/// What this officer may see of `unit`: a page saying so if `allowed` refuses their role.
pub(crate) async fn may(
    c: &Console,
    unit: &str,
    allowed: fn(Role) -> bool,
    what: &str,
    who: &str,
) -> Result<Role, Response> {
    known_unit(c, unit)?;
    let role = c
        .role(unit)
        .await
        .map_err(|e| refuse(StatusCode::BAD_GATEWAY, &e))?;
    if allowed(role) {
        Ok(role)
    } else {
        Err(refuse(
            StatusCode::FORBIDDEN,
            &format!("Your role on unit {unit} ({role}) may not {what}: ask a {who}."),
        ))
    }
}

fn sees_footage(r: Role) -> bool {
    r.may_see_footage()
}

/// [`may`] for the pages that show or fetch footage (`what`: "see footage", "export footage").
pub(crate) async fn may_see_footage(c: &Console, unit: &str, what: &str) -> Result<Role, Response> {
    may(
        c,
        unit,
        sees_footage,
        what,
        "case support officer or manager",
    )
    .await
}

fn reads_audit(r: Role) -> bool {
    r.may_read_audit()
}

fn manages_holds(r: Role) -> bool {
    r.may_manage_holds()
}

fn runs_selftest(r: Role) -> bool {
    matches!(r, Role::Engineer | Role::Manager)
}

/// What came of asking a unit for its status.
pub(crate) enum Reach {
    Up(Box<StatusAnswer>),
    /// It answered, but this role (an auditor) may read only its audit log.
    AuditOnly,
    Down(String),
}

/// Asks unit `name` for its status (within 15 s), remembering the role it gives this officer.
pub(crate) async fn reach(c: &Console, name: &str) -> Reach {
    let ask = async {
        let client = connect(&c.target(name)).await?;
        let st = client.status().await;
        client.close();
        anyhow::Ok(st?)
    };
    match tokio::time::timeout(Duration::from_secs(15), ask).await {
        Err(_) => Reach::Down(format!(
            "Unit {name} did not answer within 15 seconds: its link may be down or very slow."
        )),
        Ok(Ok(st)) => {
            if let Some(r) = st.your_role {
                c.remember_role(name, r);
            }
            Reach::Up(Box::new(st))
        }
        Ok(Err(e)) => match e.downcast_ref::<ClientError>() {
            Some(ClientError::Refused(Refusal::Forbidden {
                role: Role::Auditor,
                ..
            })) => {
                c.remember_role(name, Role::Auditor);
                Reach::AuditOnly
            }
            _ => Reach::Down(format!("Unit {name} is unreachable: {e:#}")),
        },
    }
}

/// `/`: every unit of the units file, reachable or not, with what this officer may open.
pub(crate) async fn units(State(c): State<Shared>) -> Response {
    let rows =
        futures_util::future::join_all(c.units.iter().map(|u| unit_row(&c, u.as_str()))).await;
    let body = if rows.is_empty() {
        format!(
            "<p>The units file {} names no units: add a <code>[unit.NAME]</code> section.</p>",
            esc(&c.units_file.display().to_string())
        )
    } else {
        rows.concat()
    };
    page("Units", &body).into_response()
}

async fn unit_row(c: &Console, name: &str) -> String {
    let h = |s: &str| esc(s);
    let mut o = format!(
        r#"<section class="unit" aria-labelledby="unit-{n}"><h2 id="unit-{n}">Unit {n}</h2>"#,
        n = h(name)
    );
    let st = match reach(c, name).await {
        Reach::Down(why) => {
            o.push_str(&format!(
                r#"<p class="bad" role="status">{}</p></section>"#,
                h(&why)
            ));
            return o;
        }
        Reach::AuditOnly => {
            o.push_str(&format!(
                r#"<p>Your role here is <strong>auditor</strong>: the audit log and the stills register only.</p><p><a href="/unit/{n}/audit">Audit log of {n}</a> <a href="/unit/{n}/stills">Stills of {n}</a></p></section>"#,
                n = h(name)
            ));
            return o;
        }
        Reach::Up(st) => st,
    };
    let role = st.your_role;
    let now = crate::time::now_ns();
    let skew_s = (st.time_ns - now) as f64 / 1e9;
    let clock = st.live.as_ref().map(|l| &l.clock);
    o.push_str("<dl>");
    let mut dd = |k: &str, v: String| o.push_str(&format!("<dt>{}</dt><dd>{v}</dd>", h(k)));
    dd("Reachable", "yes".into());
    dd(
        "Your role",
        role.map_or("not said (an older unit)".into(), |r| r.to_string()),
    );
    if let Some(a) = &st.about {
        dd(
            "Site",
            h(&format!("{} ({}, {})", a.site, a.operator, a.contact)),
        );
    }
    dd(
        "Unit's clock",
        h(&format!(
            "{} — {} this machine's by {:.1} s; {}",
            both_times(st.time_ns),
            if skew_s >= 0.0 { "ahead of" } else { "behind" },
            skew_s.abs(),
            match clock {
                Some(cl) if cl.synchronized => "synchronised".to_string(),
                Some(_) => "NOT synchronised".to_string(),
                None => "its state unknown".to_string(),
            }
        )),
    );
    if let Some(t) = st.live.as_ref().and_then(|l| l.tunnel.as_ref()) {
        dd("Tunnel to the hub", h(&tunnel_words(t)));
    }
    dd(
        "Days held",
        h(&format!(
            "{:.1} days (retention {} days){}",
            st.store.effective_retention_days(),
            st.store.retention_days,
            match (st.store.oldest_ns, st.store.newest_ns) {
                (Some(a), Some(b)) =>
                    format!("; footage from {} to {}", both_times(a), both_times(b)),
                _ => "; no footage yet".into(),
            }
        )),
    );
    o.push_str("</dl>");
    let mut cams: Vec<(String, String)> = Vec::new();
    if let Some(l) = &st.live {
        for cam in &l.cameras {
            cams.push((
                cam.camera.clone(),
                if cam.recording {
                    "recording".into()
                } else {
                    format!(
                        "NOT recording{}",
                        cam.last_gap_cause
                            .as_deref()
                            .map(|c| format!(": {c}"))
                            .unwrap_or_default()
                    )
                },
            ));
        }
    }
    for cam in &st.store.cameras {
        if !cams.iter().any(|(n, _)| *n == cam.camera) {
            cams.push((cam.camera.clone(), "footage on the unit, not live".into()));
        }
    }
    let footage = role.is_some_and(sees_footage);
    o.push_str("<h3>Cameras</h3><ul>");
    for (cam, state) in &cams {
        o.push_str(&format!("<li>{}: {}", h(cam), h(state)));
        if footage {
            o.push_str(&format!(
                r#" — <a href="/unit/{}/camera/{}">timeline of {}</a>"#,
                h(name),
                h(cam),
                h(cam)
            ));
        }
        o.push_str("</li>");
    }
    o.push_str("</ul><p class=\"links\">");
    if role.is_some_and(runs_selftest) {
        o.push_str(&format!(
            r#"<a href="/unit/{n}/selftest">Selftest of {n}</a> "#,
            n = h(name)
        ));
    }
    if role.is_some_and(reads_audit) {
        o.push_str(&format!(
            r#"<a href="/unit/{n}/audit">Audit log of {n}</a> "#,
            n = h(name)
        ));
    }
    if role.is_some_and(manages_holds) {
        o.push_str(&format!(
            r#"<a href="/unit/{n}/holds">Holds on {n}</a> "#,
            n = h(name)
        ));
    }
    if role.is_some_and(|r| r != Role::Engineer) {
        o.push_str(&format!(
            r#"<a href="/unit/{n}/stills">Stills of {n}</a>"#,
            n = h(name)
        ));
    }
    o.push_str("</p></section>");
    o
}

/// The unit's tunnel to the scheme's hub, in words (R18): what an officer needs to know when a
/// unit behind carrier NAT goes quiet.
pub(crate) fn tunnel_words(t: &rdc_uplink::protocol::TunnelState) -> String {
    if !t.up {
        return format!("{} is down", t.interface);
    }
    match t.handshake_age_s {
        Some(a) if a <= rdc_uplink::vpn::HANDSHAKE_STALE_SECS => {
            format!("{} up; the hub answered {a} s ago", t.interface)
        }
        Some(a) => format!(
            "{} up, but the hub last answered {a} s ago: check the hub and the 4G link",
            t.interface
        ),
        None => format!(
            "{} up; {}",
            t.interface,
            t.note.as_deref().unwrap_or("no handshake with the hub")
        ),
    }
}

/// `/unit/{unit}/selftest`: the unit's own checks, a line each.
pub(crate) async fn selftest(State(c): State<Shared>, UrlPath(unit): UrlPath<String>) -> Response {
    if let Err(r) = may(
        &c,
        &unit,
        runs_selftest,
        "run the selftest",
        "field engineer or manager",
    )
    .await
    {
        return r;
    }
    let lines = match c.call(&unit, &Request::SelfTest).await {
        Ok(Answer::SelfTest(l)) => Ok(l),
        Ok(other) => Err(anyhow!("the unit answered the selftest with {other:?}")),
        Err(e) => Err(e),
    };
    let body = match lines {
        Err(e) => format!(r#"<p class="bad">{}</p>"#, esc(&format!("{e:#}"))),
        Ok(lines) => {
            let failed = lines.iter().filter(|l| !l.pass).count();
            let mut b = format!(
                r#"<p role="status">{}</p><table><thead><tr><th scope="col">Check</th><th scope="col">Result</th><th scope="col">Found</th></tr></thead><tbody>"#,
                if failed == 0 {
                    format!("All {} checks passed.", lines.len())
                } else {
                    format!("{failed} of {} checks FAILED.", lines.len())
                }
            );
            for l in &lines {
                b.push_str(&format!(
                    r#"<tr class="{}"><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                    if l.pass { "pass" } else { "fail" },
                    esc(&l.check),
                    if l.pass { "PASS" } else { "FAIL" },
                    esc(&l.detail)
                ));
            }
            b.push_str("</tbody></table>");
            b
        }
    };
    page(&format!("Selftest of unit {unit}"), &body).into_response()
}

/// `/unit/{unit}/audit?case=&person=&action=`: the unit's audit log, checked and anchored as
/// `rdc audit` does, filtered.
pub(crate) async fn audit(
    State(c): State<Shared>,
    UrlPath(unit): UrlPath<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    if let Err(r) = may(
        &c,
        &unit,
        reads_audit,
        "read the audit log",
        "manager or auditor",
    )
    .await
    {
        return r;
    }
    let f = |k: &str| q.get(k).map(|s| s.trim().to_owned()).unwrap_or_default();
    let (case, person, action) = (f("case"), f("person"), f("action"));
    let mut body = format!(
        r#"<form method="get" class="filters"><label>Case <input name="case" value="{}"></label> <label>Person <input name="person" value="{}"></label> <label>Action <input name="action" value="{}"></label> <button>Filter</button></form>"#,
        esc(&case),
        esc(&person),
        esc(&action)
    );
    // Entries checked on an earlier visit stay checked: only those from the newest of them on
    // are fetched (over 4G a long log is megabytes), and `read_audit` checks that the newest
    // is still the entry seen then, so the log was neither cut nor rewritten in between.
    let seen = super::lock(&c.audit_seen)
        .get(&unit)
        .cloned()
        .unwrap_or_default();
    let from = seen.last().map_or(0, |e| e.seq);
    let read = crate::audit::read_audit(&c.target(&unit), from, false)
        .await
        .map(|mut read| {
            let earlier = seen.iter().filter(|e| e.seq < from).count();
            if earlier > 0 {
                read.summary.push_str(&format!(
                    "; {earlier} earlier entries were checked on an earlier visit"
                ));
            }
            let mut all: Vec<_> = seen.into_iter().filter(|e| e.seq < from).collect();
            all.append(&mut read.entries);
            super::lock(&c.audit_seen).insert(unit.clone(), all.clone());
            read.entries = all;
            read
        });
    match read {
        Err(e) => body.push_str(&format!(
            r#"<p class="bad" role="alert">The audit log did not check out or could not be read: {}</p>"#,
            esc(&format!("{e:#}"))
        )),
        Ok(read) => {
            body.push_str(&format!(
                r#"<p class="good" role="status">{}</p>"#,
                esc(&read.summary)
            ));
            body.push_str(r#"<table class="audit"><thead><tr><th scope="col">#</th><th scope="col">When</th><th scope="col">Who</th><th scope="col">Role</th><th scope="col">Action</th><th scope="col">Camera</th><th scope="col">Case</th><th scope="col">Reason</th><th scope="col">Outcome</th><th scope="col">Detail</th></tr></thead><tbody>"#);
            let mut shown = 0;
            for e in read.entries.iter().rev() {
                let Ok(r) = serde_json::from_value::<rdc_format::AuditRecord>(e.body.clone())
                else {
                    continue;
                };
                let has = |v: &str, want: &str| {
                    want.is_empty() || v.to_lowercase().contains(&want.to_lowercase())
                };
                if !(has(r.case_ref.as_deref().unwrap_or(""), &case)
                    && has(&r.who, &person)
                    && has(&r.action, &action))
                {
                    continue;
                }
                shown += 1;
                body.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    e.seq,
                    esc(&both_times(e.time_ns)),
                    esc(&r.who),
                    esc(&r.role.to_string()),
                    esc(&r.action),
                    esc(r.camera.as_deref().unwrap_or("")),
                    esc(r.case_ref.as_deref().unwrap_or("")),
                    esc(r.reason.as_deref().unwrap_or("")),
                    esc(&r.outcome.to_string()),
                    esc(r.detail.as_deref().unwrap_or("")),
                ));
            }
            body.push_str("</tbody></table>");
            body.push_str(&format!("<p>{shown} entries shown, newest first.</p>"));
        }
    }
    page(&format!("Audit log of unit {unit}"), &body).into_response()
}

/// `/unit/{unit}/holds`: the holds, a form to place one, a button to release each.
pub(crate) async fn holds(
    State(c): State<Shared>,
    Extension(sid): Extension<SessionId>,
    UrlPath(unit): UrlPath<String>,
) -> Response {
    if let Err(r) = may(&c, &unit, manages_holds, "manage holds", "manager").await {
        return r;
    }
    let list = c.call(&unit, &Request::HoldList).await;
    let csrf = csrf_field(&c, &sid);
    let s = c.session(&sid);
    let mut body = String::new();
    match list {
        Err(e) => body.push_str(&format!(r#"<p class="bad">{}</p>"#, esc(&format!("{e:#}")))),
        Ok(Answer::Holds(hs)) if hs.is_empty() => {
            body.push_str("<p>No holds: all footage follows retention.</p>")
        }
        Ok(Answer::Holds(hs)) => {
            body.push_str(r#"<table><thead><tr><th scope="col">Hold</th><th scope="col">Cameras</th><th scope="col">Footage from</th><th scope="col">to</th><th scope="col">Case</th><th scope="col">Reason</th><th scope="col">By</th><th scope="col">Review by</th><th scope="col">Release</th></tr></thead><tbody>"#);
            for hd in &hs {
                let r = &hd.request;
                body.push_str(&format!(
                    r#"<tr><td>{id}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><form method="post" action="/unit/{u}/holds/{id}/release">{csrf}<label>Why release hold {id} <input name="reason" required></label> <button>Release</button></form></td></tr>"#,
                    esc(&if r.cameras.is_empty() {
                        "all".to_string()
                    } else {
                        r.cameras.join(", ")
                    }),
                    esc(&both_times(r.from_ns)),
                    esc(&both_times(r.to_ns)),
                    esc(&r.case_ref),
                    esc(&r.reason),
                    esc(&r.who),
                    esc(&both_times(r.review_ns)),
                    id = hd.id,
                    u = esc(&unit),
                ));
            }
            body.push_str("</tbody></table>");
        }
        Ok(other) => body.push_str(&format!(
            "<p class=\"bad\">The unit answered the list of holds with {}.</p>",
            esc(&format!("{other:?}"))
        )),
    }
    body.push_str(&format!(
        r#"<h2>Place a hold</h2><form method="post" action="/unit/{u}/holds" class="stack">{csrf}
<label>Cameras (comma-separated; empty: every camera) <input name="cameras"></label>
<label>Footage from (UTC, e.g. 2026-11-23T18:00:00Z) <input name="from" required></label>
<label>Footage to (UTC) <input name="to" required></label>
<label>Case reference <input name="case" required value="{case}"></label>
<label>Purpose and reason <input name="reason" required value="{reason}"></label>
<label>Review by (UTC, at most a year ahead) <input name="review" required></label>
<button>Place the hold</button></form>"#,
        u = esc(&unit),
        case = esc(&s.case_ref),
        reason = esc(&s.reason),
    ));
    page(&format!("Holds on unit {unit}"), &body).into_response()
}

pub(crate) async fn hold_create(
    State(c): State<Shared>,
    UrlPath(unit): UrlPath<String>,
    Form(f): Form<BTreeMap<String, String>>,
) -> Response {
    if let Err(r) = may(&c, &unit, manages_holds, "manage holds", "manager").await {
        return r;
    }
    let g = |k: &str| f.get(k).map(|s| s.trim().to_owned()).unwrap_or_default();
    let req = (|| {
        let cameras = g("cameras")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| Id::parse(s).map_err(|e| anyhow!("camera {s:?}: {e}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let from_ns = parse_time(&g("from")).context("footage from")?;
        let to_ns = parse_time(&g("to")).context("footage to")?;
        crate::time::check_range(from_ns, to_ns)?;
        anyhow::Ok(Request::HoldCreate {
            cameras,
            from_ns,
            to_ns,
            case_ref: g("case"),
            reason: g("reason"),
            review_ns: parse_time(&g("review")).context("review by")?,
        })
    })();
    let done = match req {
        Err(e) => Err(e),
        Ok(req) => c.call(&unit, &req).await.map(|_| ()),
    };
    match done {
        Ok(()) => Redirect::to(&format!("/unit/{unit}/holds")).into_response(),
        Err(e) => refuse(
            StatusCode::BAD_REQUEST,
            &format!("The hold was not placed: {e:#}"),
        ),
    }
}

pub(crate) async fn hold_release(
    State(c): State<Shared>,
    UrlPath((unit, id)): UrlPath<(String, u64)>,
    Form(f): Form<BTreeMap<String, String>>,
) -> Response {
    if let Err(r) = may(&c, &unit, manages_holds, "manage holds", "manager").await {
        return r;
    }
    let reason = f
        .get("reason")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let done = c.call(&unit, &Request::HoldRelease { id, reason }).await;
    match done {
        Ok(_) => Redirect::to(&format!("/unit/{unit}/holds")).into_response(),
        Err(e) => refuse(
            StatusCode::BAD_REQUEST,
            &format!("Hold {id} was not released: {e:#}"),
        ),
    }
}

/// The form that asks for a case and reason before any footage is shown.
pub(crate) fn case_form(c: &Console, sid: &SessionId, back: &str, why: &str) -> String {
    let s = c.session(sid);
    format!(
        r#"<p>{}</p><form method="post" action="/case" class="stack">{}
<input type="hidden" name="back" value="{}">
<label>Case reference <input name="case" required value="{}"></label>
<label>Reason for viewing <input name="reason" required value="{}"></label>
<button>Continue</button></form>"#,
        esc(why),
        csrf_field(c, sid),
        esc(back),
        esc(&s.case_ref),
        esc(&s.reason)
    )
}

/// `GET /case?back=`: the form, to change the case and reason.
pub(crate) async fn case_page(
    State(c): State<Shared>,
    Extension(sid): Extension<SessionId>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let back = q.get("back").map(String::as_str).unwrap_or("/");
    page(
        "Case and reason",
        &case_form(
            &c,
            &sid,
            back,
            "The unit records every look at footage with its case and reason.",
        ),
    )
    .into_response()
}

/// `POST /case`: the case and reason for what the officer looks at from now on.
pub(crate) async fn set_case(
    State(c): State<Shared>,
    Extension(sid): Extension<SessionId>,
    Form(f): Form<BTreeMap<String, String>>,
) -> Response {
    let g = |k: &str| f.get(k).map(|s| s.trim().to_owned()).unwrap_or_default();
    let (case, reason) = (g("case"), g("reason"));
    if case.is_empty() || reason.is_empty() {
        return refuse(
            StatusCode::BAD_REQUEST,
            "Both a case reference and a reason are needed to look at footage.",
        );
    }
    c.set_case(&sid, &case, &reason);
    // Back to a page of the console only.
    let back = g("back");
    let back = if back.starts_with('/') && !back.starts_with("//") && !back.contains('\\') {
        back
    } else {
        "/".into()
    };
    Redirect::to(&back).into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_tunnel_in_words() {
        let t = |up, age, note: Option<&str>| rdc_uplink::protocol::TunnelState {
            interface: "rdc-vpn".into(),
            up,
            mtu: Some(1420),
            handshake_age_s: age,
            note: note.map(str::to_owned),
        };
        assert_eq!(
            super::tunnel_words(&t(false, None, None)),
            "rdc-vpn is down"
        );
        assert_eq!(
            super::tunnel_words(&t(true, Some(12), None)),
            "rdc-vpn up; the hub answered 12 s ago"
        );
        assert!(super::tunnel_words(&t(true, Some(600), None)).contains("check the hub"));
        assert!(
            super::tunnel_words(&t(true, None, Some("cannot read the handshake: x")))
                .ends_with("cannot read the handshake: x")
        );
    }

    #[test]
    fn escaping_leaves_no_markup() {
        assert_eq!(
            super::esc(r#"<script>"a" & 'b'</script>"#),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
        );
    }
}
