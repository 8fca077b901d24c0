//! Exports started from the console. Each is a job that runs in the console's process (the
//! same `export_bundle` as `rdc export`), is written to `<state>/jobs/<id>.json` as it goes,
//! and carries on where it stopped when the console is started again: the bundle's folder
//! keeps what was fetched, and the export resumes from it. The browser follows a job through
//! server-sent events; closing the page changes nothing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Extension;
use axum::extract::{Form, Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::pages::{csrf_field, esc, may_see_footage, page};
use super::{SessionId, Shared, lock, refuse};
use crate::events::{Event, Events};
use crate::export::{ExportArgs, Exported};
use crate::report::Report;
use crate::select::{Footage, Why};
use crate::time::parse_time;
use anyhow::{Context as _, anyhow, bail};
use rdc_config::Id;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum JobState {
    Running,
    Done,
    Failed,
}

/// What a job makes: an evidence bundle (`rdc export`), or the segments themselves, checked and
/// decrypted, to look at (`rdc fetch`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum JobKind {
    #[default]
    Export,
    Fetch,
}

/// An export or fetch the console runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Job {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) kind: JobKind,
    pub(crate) unit: String,
    pub(crate) args: ExportArgs,
    pub(crate) created: String,
    pub(crate) state: JobState,
    pub(crate) done: u64,
    pub(crate) total: u64,
    /// Bytes fetched by this run (not resumed from an earlier one), and its time: the rate.
    pub(crate) this_run: u64,
    pub(crate) elapsed_ms: u64,
    /// What the export is doing, in words.
    pub(crate) note: String,
    /// Times the link dropped and the fetch resumed.
    pub(crate) drops: u32,
    pub(crate) result: Option<Exported>,
    #[serde(default)]
    pub(crate) fetched: Option<crate::fetch::Fetch>,
    pub(crate) verify: Option<Report>,
    pub(crate) error: Option<String>,
}

impl Job {
    /// Share, bytes, rate and time left, in words.
    pub(crate) fn progress_words(&self) -> String {
        if self.total == 0 {
            return "asking the unit what the range holds".into();
        }
        let secs = self.elapsed_ms as f64 / 1000.0;
        let rate = if secs > 0.0 {
            self.this_run as f64 / secs
        } else {
            0.0
        };
        let left = if self.done >= self.total {
            "all fetched".to_string()
        } else if rate > 0.0 {
            let s = ((self.total - self.done) as f64 / rate).round() as u64;
            format!("{}:{:02} left", s / 60, s % 60)
        } else {
            "time left not known yet".to_string()
        };
        format!(
            "{:.0} % — {:.1} of {:.1} MB — {:.1} Mbit/s — {left}",
            Event::percent(self.done, self.total),
            self.done as f64 / 1e6,
            self.total as f64 / 1e6,
            rate * 8.0 / 1e6
        )
    }
}

/// What the browser is sent of a job.
#[derive(Serialize)]
struct Seen<'a> {
    state: JobState,
    percent: f64,
    progress: String,
    note: &'a str,
}

/// The console's jobs, on disk and followed.
#[derive(Debug)]
pub(crate) struct Jobs {
    dir: PathBuf,
    jobs: Mutex<BTreeMap<String, watch::Sender<Job>>>,
    running: Mutex<HashSet<String>>,
    saved: Mutex<HashMap<String, Instant>>,
}

impl Jobs {
    pub(crate) fn open(dir: &Path) -> anyhow::Result<Arc<Jobs>> {
        super::private_dir(dir)?;
        let mut jobs = BTreeMap::new();
        for e in std::fs::read_dir(dir)? {
            let p = e?.path();
            if p.extension().is_none_or(|x| x != "json") {
                continue;
            }
            let job: Job = serde_json::from_slice(&std::fs::read(&p)?).with_context(|| {
                format!(
                    "the console's job {} is damaged: move it aside",
                    p.display()
                )
            })?;
            jobs.insert(job.id.clone(), watch::Sender::new(job));
        }
        Ok(Arc::new(Jobs {
            dir: dir.to_owned(),
            jobs: Mutex::new(jobs),
            running: Default::default(),
            saved: Default::default(),
        }))
    }

    fn save(&self, job: &Job) {
        let p = self.dir.join(format!("{}.json", job.id));
        let tmp = p.with_extension("json.new");
        let r = serde_json::to_vec_pretty(job)
            .map_err(std::io::Error::other)
            .and_then(|b| std::fs::write(&tmp, b))
            .and_then(|()| std::fs::rename(&tmp, &p));
        if let Err(e) = r {
            eprintln!(
                "rdc console: cannot keep job {} in {}: {e}",
                job.id,
                p.display()
            );
        }
        lock(&self.saved).insert(job.id.clone(), Instant::now());
    }

    fn add(&self, job: Job) {
        self.save(&job);
        lock(&self.jobs).insert(job.id.clone(), watch::Sender::new(job));
    }

    pub(crate) fn get(&self, id: &str) -> Option<Job> {
        lock(&self.jobs).get(id).map(|t| t.borrow().clone())
    }

    fn all(&self) -> Vec<Job> {
        lock(&self.jobs)
            .values()
            .map(|t| t.borrow().clone())
            .collect()
    }

    fn subscribe(&self, id: &str) -> Option<watch::Receiver<Job>> {
        lock(&self.jobs).get(id).map(|t| t.subscribe())
    }

    /// Changes job `id`; written to disk at once if `keep`, else at most every two seconds.
    fn update(&self, id: &str, keep: bool, f: impl FnOnce(&mut Job)) {
        let Some(tx) = lock(&self.jobs).get(id).cloned() else {
            return;
        };
        tx.send_modify(f);
        let due = lock(&self.saved)
            .get(id)
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(2));
        if keep || due {
            self.save(&tx.borrow());
        }
    }

    fn on_event(&self, id: &str, e: &Event) {
        match e {
            Event::Progress {
                done,
                total,
                this_run,
                elapsed_ms,
                ..
            } => self.update(id, false, |j| {
                (j.done, j.total, j.this_run, j.elapsed_ms) = (*done, *total, *this_run, *elapsed_ms);
                if j.note.starts_with("Asking the unit") {
                    j.note = "Fetching the footage; each segment is checked against the unit's signed manifest as it arrives.".into();
                }
                if j.drops > 0 && j.note.starts_with("The link dropped") && *this_run > 0 {
                    j.note = format!(
                        "Fetching again after the link dropped ({} time{}).",
                        j.drops,
                        if j.drops == 1 { "" } else { "s" }
                    );
                }
            }),
            Event::SegmentVerified { seq, .. } => self.update(id, false, |j| {
                j.note = format!(
                    "Segment {seq} arrived and matches the unit's signed manifest.{}",
                    if j.drops > 0 {
                        format!(" The link dropped {} time(s); each time the fetch resumed where it stopped.", j.drops)
                    } else {
                        String::new()
                    }
                )
            }),
            Event::LinkDropped { .. } => self.update(id, true, |j| {
                j.drops += 1;
                j.note = e.dropped_note().unwrap_or_default();
            }),
            Event::Step { what } => self.update(id, true, |j| j.note = format!("{what} …")),
            Event::Finished { .. } => {}
        }
    }
}

/// Carries on every job that was running when the console stopped.
pub(crate) fn resume_all(c: &Shared) {
    for j in c.jobs.all() {
        if j.state == JobState::Running {
            spawn_run(c, j.id);
        }
    }
}

/// Runs job `id` (unless it runs already): the fetch, or the export and then `rdc verify`'s
/// checks of it.
fn spawn_run(c: &Shared, id: String) {
    if !lock(&c.jobs.running).insert(id.clone()) {
        return;
    }
    let c = c.clone();
    tokio::spawn(async move {
        let Some(job) = c.jobs.get(&id) else { return };
        c.jobs.update(&id, true, |j| {
            j.state = JobState::Running;
            j.error = None;
            j.note = "Asking the unit for the range's footage …".into();
        });
        let events = {
            let (jobs, id) = (c.jobs.clone(), id.clone());
            Events::new(move |e| jobs.on_event(&id, e))
        };
        if job.kind == JobKind::Fetch {
            let a = &job.args;
            let footage = Footage {
                camera: a.camera.clone(),
                from: a.from.clone(),
                to: a.to.clone(),
                why: Why {
                    purpose: "view".into(),
                    case_ref: a.case_ref.clone(),
                    reason: a.reason.clone(),
                },
            };
            let r = crate::fetch::fetch(
                &c.target(&job.unit),
                &footage,
                Some(a.identity.as_path()),
                &a.out,
                &events,
            )
            .await;
            c.jobs.update(&id, true, |j| match r {
                Ok(f) => {
                    j.state = JobState::Done;
                    j.done = j.total;
                    j.note = if f.segments == 0 {
                        "The range holds no footage of this camera.".into()
                    } else {
                        format!(
                            "Fetched: {} segments, each checked against the unit's signed manifest and decrypted.",
                            f.segments
                        )
                    };
                    j.fetched = Some(f);
                }
                Err(e) => {
                    j.state = JobState::Failed;
                    j.error = Some(format!("{e:#}"));
                    j.note = "The fetch stopped. What was fetched is kept: resume it to carry on from there.".into();
                }
            });
            lock(&c.jobs.running).remove(&id);
            return;
        }
        let r = crate::export::export_bundle(&c.target(&job.unit), &job.args, &events).await;
        match r {
            Ok(x) => {
                c.jobs.update(&id, true, |j| {
                    j.note = "Checking the bundle as rdc verify does …".into()
                });
                let (dir, ca, identity) = (x.dir.clone(), x.ca.clone(), job.args.identity.clone());
                let checked = tokio::task::spawn_blocking(move || {
                    crate::verify::check_bundle(&dir, Some(&ca), Some(&identity))
                })
                .await;
                let report = match checked {
                    Ok((mut r, result)) => {
                        if let Err(e) = result {
                            r.failed.push(format!("the checks stopped: {e:#}"));
                        }
                        r
                    }
                    Err(e) => Report {
                        failed: vec![format!("the checks stopped: {e}")],
                        ..Report::default()
                    },
                };
                c.jobs.update(&id, true, |j| {
                    j.state = JobState::Done;
                    j.done = j.total;
                    j.note = if report.intact_and_proven {
                        "Exported and checked: the bundle is complete and unaltered.".into()
                    } else {
                        "Exported, but the bundle's checks did NOT all hold: see below.".into()
                    };
                    j.result = Some(x);
                    j.verify = Some(report);
                });
            }
            Err(e) => c.jobs.update(&id, true, |j| {
                j.state = JobState::Failed;
                j.error = Some(format!("{e:#}"));
                j.note = "The export stopped. What was fetched is kept: resume it to carry on from there.".into();
            }),
        }
        lock(&c.jobs.running).remove(&id);
    });
}

/// `POST /unit/{unit}/camera/{camera}/export`: a new export job.
pub(crate) async fn start(
    State(c): State<Shared>,
    Extension(sid): Extension<SessionId>,
    UrlPath((unit, camera)): UrlPath<(String, String)>,
    Form(f): Form<BTreeMap<String, String>>,
) -> Response {
    if let Err(r) = may_see_footage(&c, &unit, "export footage").await {
        return r;
    }
    let g = |k: &str| f.get(k).map(|s| s.trim().to_owned()).unwrap_or_default();
    let id = super::guard::secret()[..16].to_owned();
    let kind = if g("kind") == "fetch" {
        JobKind::Fetch
    } else {
        JobKind::Export
    };
    let args = (|| {
        let camera = Id::parse(&camera).map_err(|e| anyhow!("camera {camera:?}: {e}"))?;
        let from = parse_time(&g("from")).context("From")?;
        let to = parse_time(&g("to")).context("To")?;
        if from >= to {
            bail!("From must be before To");
        }
        let (case_ref, reason) = (g("case"), g("reason"));
        if case_ref.is_empty() || reason.is_empty() {
            bail!("an export needs a case reference and a reason");
        }
        let identity = c.identity.clone().ok_or_else(|| {
            anyhow!("the console was started without --identity, which decrypts the footage")
        })?;
        let stamp = rdc_format::time::rfc3339(from).replace([':', '-'], "");
        let safe_case: String = case_ref
            .chars()
            .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '_' })
            .take(40)
            .collect();
        Ok(ExportArgs {
            out: c.exports.join(format!(
                "{safe_case}-{camera}-{stamp}-{}{}",
                &id[..8],
                if kind == JobKind::Fetch { "-fetch" } else { "" }
            )),
            camera,
            // Fixed times: a job resumed tomorrow exports the same range.
            from: rdc_format::time::rfc3339(from),
            to: rdc_format::time::rfc3339(to),
            case_ref,
            reason,
            identity,
        })
    })();
    let args = match args {
        Ok(a) => a,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                &format!("Nothing was fetched or exported: {e:#}."),
            );
        }
    };
    c.set_case(&sid, &args.case_ref, &args.reason);
    c.jobs.add(Job {
        id: id.clone(),
        kind,
        unit,
        args,
        created: rdc_format::time::rfc3339(crate::time::now_ns()),
        state: JobState::Running,
        done: 0,
        total: 0,
        this_run: 0,
        elapsed_ms: 0,
        note: "Starting …".into(),
        drops: 0,
        result: None,
        fetched: None,
        verify: None,
        error: None,
    });
    spawn_run(&c, id.clone());
    Redirect::to(&format!("/jobs/{id}")).into_response()
}

/// `/jobs`: every export, newest first.
pub(crate) async fn list(State(c): State<Shared>) -> Response {
    let mut jobs = c.jobs.all();
    jobs.sort_by(|a, b| b.created.cmp(&a.created));
    let mut body = String::new();
    if jobs.is_empty() {
        body.push_str("<p>No exports or fetches yet: choose a range on a camera's timeline.</p>");
    } else {
        body.push_str(r#"<table><thead><tr><th scope="col">Started</th><th scope="col">What</th><th scope="col">Unit</th><th scope="col">Camera</th><th scope="col">Range</th><th scope="col">Case</th><th scope="col">State</th></tr></thead><tbody>"#);
        for j in &jobs {
            body.push_str(&format!(
                r#"<tr><td><a href="/jobs/{id}">{}</a></td><td>{:?}</td><td>{}</td><td>{}</td><td>{} to {}</td><td>{}</td><td>{}</td></tr>"#,
                esc(&j.created),
                j.kind,
                esc(&j.unit),
                esc(j.args.camera.as_str()),
                esc(&j.args.from),
                esc(&j.args.to),
                esc(&j.args.case_ref),
                state_words(j),
                id = esc(&j.id),
            ));
        }
        body.push_str("</tbody></table>");
    }
    page("Exports and fetches", &body).into_response()
}

fn state_words(j: &Job) -> String {
    match j.state {
        JobState::Running => format!("running, {:.0} %", Event::percent(j.done, j.total)),
        JobState::Done => "done".into(),
        JobState::Failed => "stopped".into(),
    }
}

/// `/jobs/{id}`: a job's progress, live, and when it is done, the bundle and its checks.
pub(crate) async fn job_page(
    State(c): State<Shared>,
    Extension(sid): Extension<SessionId>,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let Some(j) = c.jobs.get(&id) else {
        return refuse(StatusCode::NOT_FOUND, "There is no such export.");
    };
    let pct = Event::percent(j.done, j.total);
    let mut body = format!(
        r#"<dl><dt>Unit</dt><dd>{}</dd><dt>Camera</dt><dd>{}</dd><dt>Range</dt><dd>{} to {}</dd><dt>Case</dt><dd>{}</dd><dt>Reason</dt><dd>{}</dd><dt>Folder</dt><dd><code id="folder">{}</code></dd></dl>
<div id="job" data-events="/jobs/{id}/events" data-state="{state:?}">
<label for="bar">Progress</label> <progress id="bar" max="100" value="{pct:.1}">{pct:.0} %</progress>
<p id="progress-text" aria-live="polite">{}</p>
<p id="note" role="status">{}</p>
</div>"#,
        esc(&j.unit),
        esc(j.args.camera.as_str()),
        esc(&j.args.from),
        esc(&j.args.to),
        esc(&j.args.case_ref),
        esc(&j.args.reason),
        esc(&j.args.out.display().to_string()),
        esc(&j.progress_words()),
        esc(&j.note),
        id = esc(&j.id),
        state = j.state,
    );
    if let Some(e) = &j.error {
        body.push_str(&format!(
            r#"<p class="bad" role="alert" id="error">{}</p><form method="post" action="/jobs/{}/resume">{}<button id="resume">Resume the export</button></form>"#,
            esc(e),
            esc(&j.id),
            csrf_field(&c, &sid)
        ));
    }
    if let Some(f) = &j.fetched {
        body.push_str(&format!(
            r#"<h2>The footage</h2><p id="result">{} segments ({:.1} MB) in <code>{}</code>: each <code>.age</code> file as the unit signed it, checked against its signed manifest, and its decryption beside it (<code>.ts</code>, plays in VLC or mpv).</p>"#,
            f.segments,
            f.bytes as f64 / 1e6,
            esc(&f.dir.display().to_string())
        ));
    }
    if let Some(x) = &j.result {
        body.push_str(&format!(
            r#"<h2>The bundle</h2><p id="result">{} segments in <code>{}</code>, {} gap(s); the unit recorded the export as its audit entry {}.</p>"#,
            x.segments,
            esc(&x.dir.display().to_string()),
            x.gaps,
            x.receipt_seq
        ));
    }
    if let Some(r) = &j.verify {
        body.push_str(r#"<h2>rdc verify</h2><pre id="verify">"#);
        for l in &r.ok {
            body.push_str(&format!("ok      {}\n", esc(l)));
        }
        for l in &r.notes {
            body.push_str(&format!("note    {}\n", esc(l)));
        }
        for l in &r.failed {
            body.push_str(&format!("FAILED  {}\n", esc(l)));
        }
        body.push_str(&format!("\n{}</pre>", esc(&r.verdict)));
    }
    page(
        &format!(
            "{} of {} from unit {}",
            match j.kind {
                JobKind::Export => "Export",
                JobKind::Fetch => "Fetch",
            },
            j.args.camera,
            j.unit
        ),
        &body,
    )
    .into_response()
}

/// `/jobs/{id}/events`: the job as it changes (server-sent events).
pub(crate) async fn events(State(c): State<Shared>, UrlPath(id): UrlPath<String>) -> Response {
    let Some(rx) = c.jobs.subscribe(&id) else {
        return refuse(StatusCode::NOT_FOUND, "There is no such export.");
    };
    let stream = futures_util::stream::unfold((rx, true), |(mut rx, first)| async move {
        if !first && rx.changed().await.is_err() {
            return None;
        }
        let data = {
            let j = rx.borrow_and_update();
            serde_json::to_string(&Seen {
                state: j.state,
                percent: Event::percent(j.done, j.total),
                progress: j.progress_words(),
                note: &j.note,
            })
            .unwrap_or_default()
        };
        Some((
            Ok::<_, Infallible>(SseEvent::default().data(data)),
            (rx, false),
        ))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// `POST /jobs/{id}/resume`: carries on a stopped export.
pub(crate) async fn resume(State(c): State<Shared>, UrlPath(id): UrlPath<String>) -> Response {
    let Some(j) = c.jobs.get(&id) else {
        return refuse(StatusCode::NOT_FOUND, "There is no such export.");
    };
    if let Err(r) = may_see_footage(&c, &j.unit, "export footage").await {
        return r;
    }
    if j.state != JobState::Done {
        spawn_run(&c, id.clone());
    }
    Redirect::to(&format!("/jobs/{id}")).into_response()
}
