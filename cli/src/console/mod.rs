//! `rdc console`: the officer's console, a web application that `rdc` itself serves on
//! 127.0.0.1 for the browser on the same machine. It is a second front end over the same
//! operations as the terminal's (`fetch`, `export`, `verify`, `read_audit`, previews): no
//! second implementation, and the officer's certificate key and age identity never leave this
//! process; the browser only sees pages, pictures and progress.
//!
//! `guard` checks every request (Host, session, Origin, CSRF); `pages` makes the units,
//! selftest, audit, holds and case pages; `timeline` a camera's day; `jobs` the exports, which
//! run in this process, are kept on disk and carry on after a restart. Everything the browser
//! loads is embedded here (`assets/`): it works with no internet.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, Request as HttpRequest, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use rdc_config::Role;

use crate::select::Target;
use crate::units;
use crate::units::connect;
use anyhow::Context as _;
use rdc_uplink::protocol::Request;
use std::path::{Path, PathBuf};

pub mod guard;
mod jobs;
mod pages;
mod stills;
mod timeline;

/// `rdc console`'s options.
#[derive(clap::Args, Debug)]
pub(crate) struct ConsoleArgs {
    /// Open the console in the desktop's browser (xdg-open).
    #[arg(long)]
    pub(crate) open: bool,
    /// The port on 127.0.0.1 (default: any free one).
    #[arg(long, default_value_t = 0)]
    pub(crate) port: u16,
    /// The units file (default: $XDG_CONFIG_HOME/rdc/units.toml or ~/.config/rdc/units.toml).
    #[arg(long)]
    pub(crate) units: Option<PathBuf>,
    /// The officer's age identity (AGE-SECRET-KEY-…): decrypts previews and exports.
    #[arg(long)]
    pub(crate) identity: Option<PathBuf>,
    /// Where exports go, a folder each (default: ~/rdc-exports).
    #[arg(long)]
    pub(crate) exports: Option<PathBuf>,
    /// The console's own files: export jobs, fetched previews (default:
    /// $XDG_STATE_HOME/rdc/console or ~/.local/state/rdc/console).
    #[arg(long)]
    pub(crate) state: Option<PathBuf>,
}

/// A signed-in browser.
#[derive(Debug, Clone, Default)]
pub(crate) struct Session {
    pub(crate) csrf: String,
    /// The case and reason the officer gave for what they look at now.
    pub(crate) case_ref: String,
    pub(crate) reason: String,
}

/// The session a request came with (put there by [`check_request`]).
#[derive(Debug, Clone)]
pub(crate) struct SessionId(pub(crate) String);

/// A camera of a unit, and the start of a UTC day.
pub(crate) type DayOf = (String, String, i64);
type PreviewLock = Arc<tokio::sync::Mutex<()>>;

/// The running console.
pub(crate) struct Console {
    pub(crate) port: u16,
    pub(crate) units_file: PathBuf,
    pub(crate) units: Vec<String>,
    pub(crate) identity: Option<PathBuf>,
    pub(crate) exports: PathBuf,
    pub(crate) state: PathBuf,
    /// The sign-in token, until it is used.
    token: Mutex<Option<String>>,
    sessions: Mutex<HashMap<String, Session>>,
    roles: Mutex<HashMap<String, Role>>,
    /// Bytes per minute of (unit, camera, UTC day start), and when they were asked for.
    pub(crate) activity: Mutex<HashMap<DayOf, (Vec<u64>, Instant)>>,
    /// One fetch of previews at a time per unit and camera (they share a folder).
    pub(crate) preview_locks: Mutex<HashMap<(String, String), PreviewLock>>,
    pub(crate) jobs: Arc<jobs::Jobs>,
    /// Each unit's audit entries checked on earlier visits: a visit fetches only what follows.
    pub(crate) audit_seen: Mutex<HashMap<String, Vec<rdc_format::chain::Entry>>>,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console").field("port", &self.port).finish()
    }
}

pub(crate) type Shared = Arc<Console>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Console {
    /// How `rdc` reaches unit `name` (one of the units file's).
    pub(crate) fn target(&self, name: &str) -> Target {
        Target {
            unit: name.to_owned(),
            units: Some(self.units_file.clone()),
        }
    }

    pub(crate) fn session(&self, sid: &SessionId) -> Session {
        lock(&self.sessions)
            .get(&sid.0)
            .cloned()
            .unwrap_or_default()
    }

    pub(crate) fn set_case(&self, sid: &SessionId, case_ref: &str, reason: &str) {
        if let Some(s) = lock(&self.sessions).get_mut(&sid.0) {
            s.case_ref = case_ref.trim().to_owned();
            s.reason = reason.trim().to_owned();
        }
    }

    pub(crate) fn remember_role(&self, unit: &str, role: Role) {
        lock(&self.roles).insert(unit.to_owned(), role);
    }

    /// The role unit `name` gives this officer's certificate (asked once, then remembered).
    pub(crate) async fn role(&self, name: &str) -> Result<Role, String> {
        if let Some(r) = lock(&self.roles).get(name) {
            return Ok(*r);
        }
        match pages::reach(self, name).await {
            pages::Reach::Up(st) => st.your_role.ok_or_else(|| {
                format!("unit {name} does not say which role it gives you: it runs an older rdc")
            }),
            pages::Reach::AuditOnly => Ok(Role::Auditor),
            pages::Reach::Down(why) => Err(why),
        }
    }

    /// One request to unit `name` on a connection of its own.
    pub(crate) async fn call(
        &self,
        name: &str,
        req: &Request,
    ) -> anyhow::Result<rdc_uplink::protocol::Answer> {
        let client = connect(&self.target(name)).await?;
        let a = client.call(req).await;
        client.close();
        Ok(a?)
    }

    pub(crate) fn preview_lock(&self, unit: &str, camera: &str) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.preview_locks)
            .entry((unit.to_owned(), camera.to_owned()))
            .or_default()
            .clone()
    }
}

/// `rdc console`: serves until Ctrl-C.
pub(crate) async fn run(a: ConsoleArgs) -> anyhow::Result<()> {
    let units_file = units::units_path(&Target {
        unit: String::new(),
        units: a.units.clone(),
    });
    let text = std::fs::read_to_string(&units_file).with_context(|| {
        format!(
            "cannot read the units file {}: it names the units the console reaches",
            units_file.display()
        )
    })?;
    let units: Vec<String> = units::parse_units(&text)
        .with_context(|| format!("{} is not a valid units file", units_file.display()))?
        .unit
        .into_keys()
        .collect();
    if let Some(id) = &a.identity {
        crate::keys::read_identities(id)?;
    }
    let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
    let state = a.state.clone().unwrap_or_else(|| {
        std::env::var_os("XDG_STATE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(".local/state"))
            .join("rdc/console")
    });
    private_dir(&state)?;
    let exports = a
        .exports
        .clone()
        .unwrap_or_else(|| home.join("rdc-exports"));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", a.port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{}", a.port))?;
    let port = listener.local_addr()?.port();
    let token = guard::secret();
    let jobs = jobs::Jobs::open(&state.join("jobs"))?;
    let console = Arc::new(Console {
        port,
        units_file,
        units,
        identity: a.identity.clone(),
        exports,
        state,
        token: Mutex::new(Some(token.clone())),
        sessions: Default::default(),
        roles: Default::default(),
        activity: Default::default(),
        preview_locks: Default::default(),
        jobs,
        audit_seen: Default::default(),
    });
    // Exports that were running when the console last stopped carry on.
    jobs::resume_all(&console);
    let url = format!("http://127.0.0.1:{port}/login?token={token}");
    outln!("rdc console: open {url}");
    eprintln!(
        "the link works once, on this machine only; the console runs until Ctrl-C (exports carry on when it is started again)"
    );
    if a.open
        && let Err(e) = std::process::Command::new("xdg-open").arg(&url).spawn()
    {
        eprintln!("cannot open a browser ({e}): open the link above");
    }
    axum::serve(listener, router(console))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

/// A folder only this user may read (previews, jobs).
fn private_dir(p: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(p).with_context(|| format!("cannot make {}", p.display()))?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700))?;
    Ok(())
}

fn router(c: Shared) -> Router {
    Router::new()
        .route("/login", get(login))
        .route("/", get(pages::units))
        .route("/assets/console.css", get(pages::css))
        .route("/assets/console.js", get(pages::js))
        .route("/case", get(pages::case_page).post(pages::set_case))
        .route("/unit/{unit}/selftest", get(pages::selftest))
        .route("/unit/{unit}/audit", get(pages::audit))
        .route(
            "/unit/{unit}/holds",
            get(pages::holds).post(pages::hold_create),
        )
        .route("/unit/{unit}/holds/{id}/release", post(pages::hold_release))
        .route("/unit/{unit}/stills", get(stills::register))
        .route("/unit/{unit}/stills/{id}/approve", post(stills::approve))
        .route("/unit/{unit}/camera/{camera}", get(timeline::view))
        .route("/unit/{unit}/camera/{camera}/tile", get(timeline::tile))
        .route("/unit/{unit}/camera/{camera}/export", post(jobs::start))
        .route("/jobs", get(jobs::list))
        .route("/sars", get(stills::sars))
        .route("/jobs/{id}", get(jobs::job_page))
        .route("/jobs/{id}/events", get(jobs::events))
        .route("/jobs/{id}/resume", post(jobs::resume))
        .layer(middleware::from_fn_with_state(c.clone(), check_request))
        .with_state(c)
}

/// A refusal, in words, as a small page.
pub(crate) fn refuse(code: StatusCode, why: &str) -> Response {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Refused</title></head><body><main><h1>Refused</h1><p id=\"refusal\">{}</p></main></body></html>",
        pages::esc(why)
    );
    (code, Html(body)).into_response()
}

/// Every request: the Host, the session, and for anything that changes something the Origin
/// and the CSRF token. Every answer: headers that keep other sites out.
async fn check_request(State(c): State<Shared>, req: HttpRequest, next: Next) -> Response {
    let r = checked(&c, req, next).await;
    harden(r)
}

async fn checked(c: &Console, mut req: HttpRequest, next: Next) -> Response {
    let header = |req: &HttpRequest, h| {
        req.headers()
            .get(h)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    let host = header(&req, header::HOST);
    if !guard::host_ok(host.as_deref(), c.port) {
        return refuse(
            StatusCode::FORBIDDEN,
            &format!(
                "This console answers only to http://127.0.0.1:{0}, http://localhost:{0} or http://[::1]:{0}; the request named the host {1:?}.",
                c.port,
                host.unwrap_or_default()
            ),
        );
    }
    let host = host.unwrap_or_default();
    if req.uri().path() == "/login" {
        return next.run(req).await;
    }
    let cookies = header(&req, header::COOKIE);
    let sid = guard::cookie(cookies.as_deref(), "rdc_session")
        .filter(|s| lock(&c.sessions).contains_key(*s))
        .map(str::to_owned);
    let Some(sid) = sid else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "You are not signed in to this console: open the link `rdc console` printed when it started (each link works once; run `rdc console` again for a new one).",
        );
    };
    let origin = header(&req, header::ORIGIN);
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        if !guard::origin_ok(origin.as_deref(), &host) {
            return refuse(
                StatusCode::FORBIDDEN,
                &format!(
                    "This request did not come from the console's own page (its origin was {:?}): nothing was done.",
                    origin.unwrap_or_default()
                ),
            );
        }
        let csrf = lock(&c.sessions)
            .get(&sid)
            .map(|s| s.csrf.clone())
            .unwrap_or_default();
        let (parts, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "The form is larger than the console accepts (64 KiB).",
            );
        };
        let given = url::form_urlencoded::parse(&bytes)
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.into_owned());
        if !given.is_some_and(|t| guard::same_secret(&t, &csrf)) {
            return refuse(
                StatusCode::FORBIDDEN,
                "The form's security token is missing or out of date: reload the page and try again. Nothing was done.",
            );
        }
        req = HttpRequest::from_parts(parts, Body::from(bytes));
    } else if origin
        .as_deref()
        .is_some_and(|o| !guard::origin_ok(Some(o), &host))
    {
        // Event streams and scripts' requests name their origin: only the console's own.
        return refuse(
            StatusCode::FORBIDDEN,
            "This request came from another site's page: refused.",
        );
    }
    req.extensions_mut().insert(SessionId(sid));
    next.run(req).await
}

fn harden(mut r: Response) -> Response {
    let h = r.headers_mut();
    let keep_cache = h.contains_key(header::CACHE_CONTROL);
    let mut set = |k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set("content-security-policy", guard::CSP);
    set("x-content-type-options", "nosniff");
    set("x-frame-options", "DENY");
    // Not no-referrer: with it, Chromium sends `Origin: null` on the console's own forms.
    set("referrer-policy", "same-origin");
    set("cross-origin-opener-policy", "same-origin");
    set("cross-origin-resource-policy", "same-origin");
    if !keep_cache {
        set("cache-control", "no-store");
    }
    r
}

/// `/login?token=…`: the one-time token becomes a session cookie.
async fn login(State(c): State<Shared>, Query(q): Query<BTreeMap<String, String>>) -> Response {
    let given = q.get("token").map(String::as_str).unwrap_or_default();
    let mut token = lock(&c.token);
    match token.as_deref() {
        Some(t) if guard::same_secret(t, given) => {
            *token = None;
            drop(token);
            let sid = guard::secret();
            lock(&c.sessions).insert(
                sid.clone(),
                Session {
                    csrf: guard::secret(),
                    ..Session::default()
                },
            );
            let mut r = Redirect::to("/").into_response();
            r.headers_mut().insert(
                header::SET_COOKIE,
                HeaderValue::from_str(&format!(
                    "rdc_session={sid}; HttpOnly; SameSite=Strict; Path=/"
                ))
                .expect("hex is a valid header value"),
            );
            r
        }
        None => refuse(
            StatusCode::FORBIDDEN,
            "This sign-in link has been used already (each works once): run `rdc console` again for a new one.",
        ),
        Some(_) => refuse(
            StatusCode::FORBIDDEN,
            "This sign-in link is not the one `rdc console` printed: copy the whole link.",
        ),
    }
}
