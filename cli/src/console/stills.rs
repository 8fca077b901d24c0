//! The stills register in the console (R14): every still of a unit with its request, approval,
//! production and release; a manager sees each pending request with the preview nearest its
//! instant and approves it here, signed with the key the console runs with.

use std::collections::BTreeMap;

use axum::Extension;
use axum::extract::{Form, Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use rdc_config::Role;
use rdc_format::stills::RegisterEntry;

use super::pages::{both_times, csrf_field, esc, may, page};
use super::{SessionId, Shared, refuse};
use crate::units::connect;
use anyhow::anyhow;

fn reads_register(r: Role) -> bool {
    r != Role::Engineer
}

fn approves(r: Role) -> bool {
    r == Role::Manager
}

/// `GET /unit/{unit}/stills`.
pub(crate) async fn register(
    State(c): State<Shared>,
    Extension(sid): Extension<SessionId>,
    UrlPath(unit): UrlPath<String>,
) -> Response {
    let role = match may(
        &c,
        &unit,
        reads_register,
        "read the stills register",
        "officer, manager or auditor",
    )
    .await
    {
        Ok(r) => r,
        Err(r) => return r,
    };
    let read = async {
        let client = connect(&c.target(&unit)).await?;
        let r = crate::exhibit::read_register(&client).await;
        client.close();
        r
    }
    .await;
    let (reg, unit_id) = match read {
        Ok(r) => r,
        Err(e) => {
            return page(
                &format!("Stills of unit {unit}"),
                &format!(r#"<p class="bad">{}</p>"#, esc(&format!("{e:#}"))),
            )
            .into_response();
        }
    };
    let states = crate::exhibit::states(&reg);
    let s = c.session(&sid);
    let csrf = csrf_field(&c, &sid);
    let u = esc(&unit);
    let mut body = format!(
        "<p>The register of unit {}: every still with who asked, who approved, who made it and to whom it was released; {} entries, each signed by the unit, the chain checked. A still is requested by the case's officer (<code>rdc still request</code>), approved by another manager, then made by its officer (<code>rdc still make</code>).</p>",
        esc(&unit_id),
        reg.len()
    );
    let pending: Vec<_> = states
        .values()
        .filter(|x| x.status() == "pending")
        .collect();
    if approves(role) {
        body.push_str("<h2>Waiting for a manager's approval</h2>");
        if pending.is_empty() {
            body.push_str("<p>No requests are waiting.</p>");
        }
        for st in &pending {
            let Some(q) = st.asked() else {
                continue;
            };
            let (requester, camera, at_ns) = (q.requester, q.camera, q.at_ns);
            let (case_ref, reason, request) = (q.case_ref, q.reason, q.request);
            let police = request
                .body
                .police
                .as_ref()
                .map(|p| {
                    format!(
                        "<dt>For the police</dt><dd>{} ({}), authorised by {}; authorisation {} (SHA-256 <code>{}</code>)</dd>",
                        esc(&p.officer),
                        esc(&p.id),
                        esc(&p.authorised_by),
                        esc(&p.authorisation_file),
                        esc(&p.authorisation_sha256)
                    )
                })
                .unwrap_or_default();
            let preview = if s.case_ref.is_empty() {
                format!(
                    r#"<p><a href="/case?back=/unit/{u}/stills">Give a case and reason</a> to see the preview nearest the instant.</p>"#
                )
            } else {
                // The first preview from 10 s before the instant: the camera keeps one every
                // 10 s, so this is the one nearest before it.
                let from = at_ns - at_ns.rem_euclid(1_000_000_000) - 10_000_000_000;
                format!(
                    r#"<img class="still-preview" alt="The camera's preview nearest {t}" src="/unit/{u}/camera/{cam}/tile?at={from}&amp;window=20000000000">"#,
                    t = esc(&both_times(at_ns)),
                    cam = esc(camera)
                )
            };
            body.push_str(&format!(
                r#"<section class="still"><h3>Still {id}</h3><dl>
<dt>Camera</dt><dd>{cam}</dd><dt>Instant</dt><dd>{t}</dd><dt>Case</dt><dd>{case}</dd><dt>Reason</dt><dd>{reason}</dd>
<dt>Asked by</dt><dd>{who} ({fp}), {when}</dd>{police}</dl>{preview}
<form method="post" action="/unit/{u}/stills/{id}/approve" class="stack">{csrf}
<label>Note for the register (optional) <input name="note"></label>
<button>Approve still {id}</button></form></section>"#,
                id = st.id,
                cam = esc(camera),
                t = esc(&both_times(at_ns)),
                case = esc(case_ref),
                reason = esc(reason),
                who = esc(&requester.name),
                fp = esc(&requester.fingerprint),
                when = esc(&both_times(st.requested_ns)),
            ));
        }
    }
    body.push_str(r#"<h2>Register</h2><table><thead><tr><th scope="col">Entry</th><th scope="col">Time</th><th scope="col">Still</th><th scope="col">What</th></tr></thead><tbody>"#);
    for (e, b) in &reg {
        let what = describe(b);
        body.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            e.seq,
            esc(&both_times(e.time_ns)),
            b.still(e.seq),
            esc(&what)
        ));
    }
    body.push_str("</tbody></table>");
    page(&format!("Stills of unit {unit}"), &body).into_response()
}

/// What a register entry records, in a line.
fn describe(b: &RegisterEntry) -> String {
    match b {
        RegisterEntry::Request {
            requester,
            camera,
            at_ns,
            case_ref,
            reason,
            ..
        } => format!(
            "requested by {} of camera {} at {}, case {}: {}",
            requester.name,
            camera,
            both_times(*at_ns),
            case_ref,
            reason
        ),
        RegisterEntry::Approval { approver, .. } => format!("approved by {}", approver.name),
        RegisterEntry::Production {
            producer, served, ..
        } => format!(
            "footage served to {} (segment {}, {} bytes)",
            producer.name, served.run.seq, served.bytes
        ),
        RegisterEntry::Made {
            producer,
            png_sha256,
            ..
        } => format!("made by {}: PNG SHA-256 {png_sha256}", producer.name),
        RegisterEntry::Release { by, to, .. } => format!("released by {} to {to}", by.name),
    }
}

/// `POST /unit/{unit}/stills/{id}/approve`: the manager's approval, signed over the request
/// exactly as the unit registered it.
pub(crate) async fn approve(
    State(c): State<Shared>,
    UrlPath((unit, id)): UrlPath<(String, u64)>,
    Form(f): Form<BTreeMap<String, String>>,
) -> Response {
    if let Err(r) = may(&c, &unit, approves, "approve stills", "manager").await {
        return r;
    }
    let note = f
        .get("note")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let target = c.target(&unit);
    let done = async {
        let client = connect(&target).await?;
        let (reg, unit_id) = crate::exhibit::read_register(&client).await?;
        let request = reg
            .iter()
            .find_map(|(e, b)| match b {
                RegisterEntry::Request { request, .. } if e.seq == id => Some(request.clone()),
                _ => None,
            })
            .ok_or_else(|| anyhow!("unit {unit_id} has no still {id}"))?;
        let r =
            crate::exhibit::sign_approval(&target, &client, (&unit_id, id), &request, &note).await;
        client.close();
        r
    }
    .await;
    match done {
        Ok(_) => Redirect::to(&format!("/unit/{unit}/stills")).into_response(),
        Err(e) => refuse(
            StatusCode::BAD_REQUEST,
            &format!("Still {id} was not approved: {e:#}"),
        ),
    }
}

/// `GET /sars`: the open subject access requests of every unit in the units file, overdue
/// first (002 §43), as `rdc sar list` shows them.
pub(crate) async fn sars(State(c): State<Shared>) -> Response {
    let got = crate::sar::rows(Some(c.units_file.clone()), false).await;
    let mut body = String::from(
        "<p>Each request holds its footage on the unit until it is closed; its deadline is a calendar month from receipt, moved to the next working day (England and Wales), extended by up to two months when recorded within the first. Opened, extended and closed with <code>rdc sar</code> (managers).</p>",
    );
    match got {
        Err(e) => body.push_str(&format!(r#"<p class="bad">{}</p>"#, esc(&format!("{e:#}")))),
        Ok((rows, problems)) => {
            if rows.is_empty() {
                body.push_str("<p>No open requests.</p>");
            } else {
                body.push_str(r#"<table><thead><tr><th scope="col">Days left</th><th scope="col">Unit</th><th scope="col">Reference</th><th scope="col">Camera</th><th scope="col">Received</th><th scope="col">Due</th></tr></thead><tbody>"#);
                for r in &rows {
                    let left = if r.days_left < 0 {
                        format!(
                            r#"<strong class="bad">overdue by {} days</strong>"#,
                            -r.days_left
                        )
                    } else {
                        format!("{}", r.days_left)
                    };
                    body.push_str(&format!(
                        "<tr><td>{left}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}{}</td></tr>",
                        esc(&r.unit),
                        esc(&r.reference),
                        esc(&r.camera),
                        esc(&r.received),
                        esc(&r.due),
                        if r.extended_months > 0 {
                            format!(" (extended {} month(s))", r.extended_months)
                        } else {
                            String::new()
                        }
                    ));
                }
                body.push_str("</tbody></table>");
            }
            for p in problems {
                body.push_str(&format!(r#"<p class="bad">Not reached: {}</p>"#, esc(&p)));
            }
        }
    }
    page("Subject access requests", &body).into_response()
}
