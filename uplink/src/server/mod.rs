//! The unit's side of the uplink: accepts QUIC connections from the scheme's users, one request
//! per bidirectional stream.
//!
//! A connection whose certificate does not chain to the scheme CA fails the handshake; one that
//! chains but is not in the unit's user list is closed before any request is read. Every
//! footage request is checked (justification, role) and audited — durably, before the first byte
//! of footage leaves — and so is every refusal. A bad request fails its own stream only.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use std::sync::Mutex;

use rdc_config::{Role, User};
use rdc_storage::{AuditRecord, Store};
use tokio::io::AsyncReadExt as _;

mod handle;
mod sar;
mod stills;

use handle::{Handled, handle};

use crate::limits::{Admit, Limits};
use crate::pki;
use crate::protocol::{
    self, Answer, CheckLine, LiveState, Refusal, Request, Response, Track, UnitInfo,
};
use crate::strangers::{Attempt, Strangers};
use crate::tls::{PresentedLog, ServerTls};

/// Who is on the other end of a connection.
#[derive(Debug, Clone)]
pub struct Peer {
    pub name: String,
    pub role: Role,
    pub fingerprint: String,
    pub addr: SocketAddr,
}

/// A running uplink server.
pub struct Server {
    endpoint: quinn::Endpoint,
    users: Arc<Vec<User>>,
    store: Store,
    extra: Extra,
    refused: Arc<Refused>,
}

/// What the daemon adds to every status answer, and does for requests beyond the store.
#[derive(Clone, Default)]
struct Extra {
    live: Option<LiveStatus>,
    about: Option<UnitInfo>,
    hooks: Option<Arc<dyn UnitHooks>>,
    gate: Arc<Gate>,
    /// A still's request or approval older than this is refused.
    still_max_age: Option<Duration>,
}

/// What stands between a person's requests and the unit's disk: each identity's request rate,
/// and the log space (a request is refused, and counted, rather than audited into a full log).
#[derive(Debug, Default)]
struct Gate {
    limits: Mutex<Limits>,
    /// When the log space was last measured, and (used, allowance) then.
    log_space: Mutex<Option<(std::time::Instant, u64, u64)>>,
}

/// How long a measure of the log space stands.
const LOG_SPACE_EVERY: Duration = Duration::from_secs(5);

impl Gate {
    /// (used, allowance) when the logs have used their allowance, else None.
    fn log_space_full(&self, store: &Store) -> Option<(u64, u64)> {
        let mut m = self.log_space.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = m.filter(|(at, ..)| at.elapsed() < LOG_SPACE_EVERY);
        let (used, allowance) = match fresh {
            Some((_, u, a)) => (u, a),
            None => {
                let (u, a) = store.log_space().ok()?;
                *m = Some((std::time::Instant::now(), u, a));
                (u, a)
            }
        };
        (used >= allowance).then_some((used, allowance))
    }

    /// Whether `who` may make a request now; the refusal to answer with and the audit entry
    /// to write (the identity's first refusal in an hour) if not.
    fn admit(
        &self,
        store: &Store,
        who: &str,
        role: rdc_format::Actor,
    ) -> Result<(), Box<(Refusal, Option<AuditRecord>)>> {
        let now = store.now_ns();
        let mut limits = self.limits.lock().unwrap_or_else(|e| e.into_inner());
        if let Admit::Throttled {
            retry_after_secs,
            audit,
        } = limits.admit(now, who, role)
        {
            return Err(Box::new((
                Refusal::Throttled {
                    per_minute: (crate::limits::PER_SECOND * 60.0) as u64,
                    retry_after_secs,
                },
                audit.map(|a| *a),
            )));
        }
        drop(limits);
        if let Some((used_bytes, allowance_bytes)) = self.log_space_full(store) {
            let audit = self
                .limits
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .log_full(now, who, role);
            return Err(Box::new((
                Refusal::LogSpaceFull {
                    used_bytes,
                    allowance_bytes,
                },
                audit,
            )));
        }
        Ok(())
    }

    /// Writes the summary of refused requests that is due (all of it with `flush_all`).
    async fn flush(&self, store: &Store, flush_all: bool) {
        let due = self
            .limits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .due(store.now_ns(), flush_all);
        if let Some(rec) = due {
            write_audit(store, rec).await;
        }
    }
}

/// What the daemon does for the uplink beyond the store: stills while the unit is being
/// commissioned, the in-service mark, the selftest.
pub trait UnitHooks: Send + Sync {
    /// The latest keyframe of `camera`: its codec (`h264`, `h265`), its bytes (Annex B, with
    /// parameter sets) and when it was captured (ns).
    fn still(&self, camera: &str) -> Option<(String, Vec<u8>, i64)>;
    /// Since when the unit is in service (ns), if it is.
    fn in_service(&self) -> Option<i64>;
    /// Marks the unit in service now (an earlier mark stands); returns since when.
    fn mark_in_service(&self, by: &str, reason: &str) -> Result<i64, String>;
    /// The unit's selftest.
    fn selftest(&self) -> Vec<CheckLine>;
    /// Asks for `camera`'s open preview segment to be cut at its next preview, so the previews
    /// it holds can be served; how long that may take (the preview interval), or None when the
    /// camera is not recording previews now.
    fn cut_previews(&self, camera: &str) -> Option<Duration>;
}

/// The longest a preview request waits for the open preview segment to be cut.
const PREVIEW_CUT_WAIT: Duration = Duration::from_secs(15);

/// Before a preview request is answered: when it reaches past the newest closed preview
/// segment and the camera is recording previews, has the open segment cut at the next
/// preview and waits (at most one preview interval and a second, or [`PREVIEW_CUT_WAIT`]) for
/// it, so the newest previews are served, not only those of segments closed by length.
async fn wait_for_previews(req: &Request, store: &Store, extra: &Extra) {
    let (camera, from_ns, to_ns) = match req {
        Request::List {
            camera,
            from_ns,
            to_ns,
            track: Track::Preview,
            ..
        }
        | Request::FetchFirst {
            camera,
            from_ns,
            to_ns,
            track: Track::Preview,
            ..
        } => (camera, *from_ns, *to_ns),
        _ => return,
    };
    let Some(hooks) = &extra.hooks else { return };
    let name = Track::Preview.store_name(camera.as_str());
    let newest = || {
        store
            .list(&name, from_ns, i64::MAX)
            .ok()
            .and_then(|v| v.last().map(|e| e.segment.end_ns))
    };
    let before = newest();
    if before.is_some_and(|n| n >= to_ns) {
        return;
    }
    let Some(interval) = hooks.cut_previews(camera.as_str()) else {
        return;
    };
    // The cut comes with the next preview: within the interval, or a keyframe later for a
    // camera whose keyframes are further apart (a few seconds).
    let limit = (interval + Duration::from_secs(1))
        .max(Duration::from_secs(6))
        .min(PREVIEW_CUT_WAIT);
    let t = tokio::time::Instant::now();
    while t.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if newest() != before {
            return;
        }
    }
}

/// Refused connections: the certificates they presented and the per-source tallies.
#[derive(Debug)]
struct Refused {
    presented: Arc<PresentedLog>,
    strangers: Mutex<Strangers>,
}

impl Refused {
    /// Counts a refused connection and audits it if it is the first from its source lately.
    async fn attempt(&self, store: &Store, a: Attempt) {
        let rec = self
            .strangers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .attempt(store.now_ns(), &a);
        if let Some(rec) = rec {
            write_audit(store, rec).await;
        }
    }

    /// Writes the tallies that are due (all of them with `flush_all`).
    async fn flush(&self, store: &Store, flush_all: bool) {
        let due = self
            .strangers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .due(store.now_ns(), flush_all);
        if let Some(rec) = due {
            write_audit(store, rec).await;
        }
    }
}

async fn write_audit(store: &Store, rec: AuditRecord) {
    if let Err(e) = audit(store, &rec).await {
        tracing::error!(error = %e, "cannot write the audit log");
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("endpoint", &self.endpoint)
            .field("users", &self.users.len())
            .finish_non_exhaustive()
    }
}

/// What the daemon knows and the store does not (cameras recording now, the clock's sync
/// state), added to every status answer.
pub type LiveStatus = Arc<dyn Fn() -> LiveState + Send + Sync>;

pub use crate::protocol::CLOSE_UNKNOWN_USER;

impl Server {
    /// Binds the UDP port. The only socket the unit opens.
    pub fn bind(
        addr: SocketAddr,
        tls: ServerTls,
        users: Vec<User>,
        store: Store,
    ) -> std::io::Result<Server> {
        let endpoint = quinn::Endpoint::server(tls.quic, addr)?;
        Ok(Self::with_endpoint(endpoint, users, store, tls.presented))
    }

    /// Binds the UDP port on a tunnel address that may not exist yet (IP_FREEBIND): at boot
    /// the recorder may start before systemd-networkd has brought the WireGuard interface up,
    /// and the uplink must listen on the tunnel address only, never on the 4G side.
    pub fn bind_tunnel(
        addr: SocketAddr,
        tls: ServerTls,
        users: Vec<User>,
        store: Store,
    ) -> std::io::Result<Server> {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )?;
        if addr.is_ipv4() {
            socket.set_freebind_v4(true)?;
        } else {
            socket.set_freebind_v6(true)?;
        }
        socket.bind(&addr.into())?;
        let runtime = quinn::default_runtime()
            .ok_or_else(|| std::io::Error::other("no async runtime for the uplink"))?;
        let endpoint = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            Some(tls.quic),
            socket.into(),
            runtime,
        )?;
        Ok(Self::with_endpoint(endpoint, users, store, tls.presented))
    }

    fn with_endpoint(
        endpoint: quinn::Endpoint,
        users: Vec<User>,
        store: Store,
        presented: Arc<PresentedLog>,
    ) -> Server {
        Server {
            endpoint,
            users: Arc::new(users),
            store,
            extra: Extra::default(),
            refused: Arc::new(Refused {
                presented,
                strangers: Mutex::new(Strangers::default()),
            }),
        }
    }

    /// Refuses stills whose request or approval is older than `age` (default 7 days).
    pub fn with_still_max_age(mut self, age: Duration) -> Self {
        self.extra.still_max_age = Some(age);
        self
    }

    /// Adds the daemon's live state to status answers.
    pub fn with_live_status(mut self, live: LiveStatus) -> Self {
        self.extra.live = Some(live);
        self
    }

    /// Serves stills, the in-service mark and the selftest through `hooks`.
    pub fn with_hooks(mut self, hooks: Arc<dyn UnitHooks>) -> Self {
        self.extra.hooks = Some(hooks);
        self
    }

    /// Adds who runs the unit, where and why, to status answers.
    pub fn with_unit_info(mut self, about: UnitInfo) -> Self {
        self.extra.about = Some(about);
        self
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// Serves until [`Server::close`], sharing the server with whoever closes it.
    pub async fn serve_shared(self: Arc<Self>) {
        self.accept_loop().await
    }

    /// Serves until the endpoint is closed.
    pub async fn serve(self) {
        self.accept_loop().await
    }

    async fn accept_loop(&self) {
        // The per-source tallies of refused connections are written once a minute.
        let flusher = {
            let (refused, store, gate) = (
                self.refused.clone(),
                self.store.clone(),
                self.extra.gate.clone(),
            );
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(5));
                loop {
                    tick.tick().await;
                    refused.flush(&store, false).await;
                    gate.flush(&store, false).await;
                }
            })
        };
        while let Some(incoming) = self.endpoint.accept().await {
            let (users, store, extra, refused) = (
                self.users.clone(),
                self.store.clone(),
                self.extra.clone(),
                self.refused.clone(),
            );
            tokio::spawn(async move {
                let addr = incoming.remote_address();
                match incoming.await {
                    Ok(conn) => serve_connection(conn, &users, store, extra, &refused).await,
                    Err(e) => {
                        tracing::warn!(%addr, error = %e, "uplink handshake refused");
                        let attempt = Attempt {
                            addr: addr.ip(),
                            reason: format!("TLS handshake failed: {e}"),
                            presented: refused.presented.take_recent(),
                        };
                        refused.attempt(&store, attempt).await;
                    }
                }
            });
        }
        flusher.abort();
        self.refused.flush(&self.store, true).await;
        self.extra.gate.flush(&self.store, true).await;
    }

    /// Stops accepting and closes every connection. The tallies of refused connections are
    /// written when the accept loop ends.
    pub fn close(&self) {
        self.endpoint.close(0u32.into(), b"unit shutting down");
    }

    /// Writes every pending tally of refused connections and requests now.
    pub async fn flush_refusals(&self) {
        self.refused.flush(&self.store, true).await;
        self.extra.gate.flush(&self.store, true).await;
    }
}

fn identify(
    conn: &quinn::Connection,
    users: &[User],
) -> Result<Peer, (String, Option<crate::strangers::Presented>)> {
    let certs = conn
        .peer_identity()
        .and_then(|id| {
            id.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
                .ok()
        })
        .ok_or(("no client certificate".to_owned(), None))?;
    let leaf = certs
        .first()
        .ok_or(("empty certificate chain".to_owned(), None))?;
    let fp = pki::fingerprint(leaf);
    let cn = pki::common_name(leaf);
    let user = users
        .iter()
        .find(|u| {
            u.fingerprint == Some(fp)
                || (u.fingerprint.is_none() && u.common_name.is_some() && u.common_name == cn)
        })
        .ok_or_else(|| {
            (
                "certificate not in this unit's user list".to_owned(),
                Some(crate::strangers::Presented {
                    fingerprint: pki::fingerprint_text(leaf),
                    subject: pki::subject(leaf).unwrap_or_else(|| "?".into()),
                }),
            )
        })?;
    Ok(Peer {
        name: user.name.clone(),
        role: user.role,
        fingerprint: pki::fingerprint_text(leaf),
        addr: conn.remote_address(),
    })
}

async fn serve_connection(
    conn: quinn::Connection,
    users: &[User],
    store: Store,
    extra: Extra,
    refused: &Refused,
) {
    let peer = match identify(&conn, users) {
        Ok(p) => p,
        Err((why, presented)) => {
            tracing::warn!(addr = %conn.remote_address(), %why, "uplink user refused");
            refused
                .attempt(
                    &store,
                    Attempt {
                        addr: conn.remote_address().ip(),
                        reason: why,
                        presented,
                    },
                )
                .await;
            conn.close(
                CLOSE_UNKNOWN_USER.into(),
                Refusal::UnknownUser.to_string().as_bytes(),
            );
            return;
        }
    };
    tracing::info!(user = %peer.name, role = %peer.role, addr = %peer.addr, "uplink connection");
    loop {
        match conn.accept_bi().await {
            Ok((send, recv)) => {
                let (peer, store, extra) = (peer.clone(), store.clone(), extra.clone());
                tokio::spawn(async move {
                    if let Err(e) = serve_stream(send, recv, &peer, &store, &extra).await {
                        tracing::debug!(user = %peer.name, error = %e, "stream ended early");
                    }
                });
            }
            Err(e) => {
                tracing::info!(user = %peer.name, reason = %e, "uplink connection closed");
                return;
            }
        }
    }
}

async fn read_request(recv: &mut quinn::RecvStream) -> Result<Request, Refusal> {
    let mut prefix = [0u8; 4];
    let read = async {
        recv.read_exact(&mut prefix)
            .await
            .map_err(|e| Refusal::Malformed {
                detail: format!("no request header: {e}"),
            })?;
        let n = protocol::header_len(prefix)?;
        let mut buf = vec![0u8; n];
        recv.read_exact(&mut buf)
            .await
            .map_err(|e| Refusal::Malformed {
                detail: format!("short request header: {e}"),
            })?;
        protocol::parse_request(&buf)
    };
    const WAIT: Duration = Duration::from_secs(30);
    tokio::time::timeout(WAIT, read)
        .await
        .map_err(|_| Refusal::Timeout {
            secs: WAIT.as_secs(),
        })?
}

async fn respond(send: &mut quinn::SendStream, r: &Response) -> Result<(), quinn::WriteError> {
    send.write_all(&protocol::encode(r)).await
}

async fn serve_stream(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    peer: &Peer,
    store: &Store,
    extra: &Extra,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let who = format!("{} ({})", peer.name, peer.fingerprint);
    // Past the identity's request rate, or with the log space full: refused and counted, not
    // audited one by one (even a malformed request counts).
    if let Err(refused) = extra.gate.admit(store, &who, peer.role.into()) {
        let (refusal, first) = *refused;
        if let Some(rec) = first {
            write_audit(store, rec).await;
        }
        respond(&mut send, &Response::Refused { refusal }).await?;
        send.finish()?;
        return Ok(());
    }
    let req = match read_request(&mut recv).await {
        Ok(r) => r,
        Err(refusal) => {
            let rec = AuditRecord {
                who,
                role: peer.role.into(),
                action: "request".into(),
                outcome: rdc_format::Outcome::refused(&refusal),
                ..Default::default()
            };
            audit(store, &rec).await?;
            respond(&mut send, &Response::Refused { refusal }).await?;
            send.finish()?;
            return Ok(());
        }
    };
    let mut rec = AuditRecord {
        who: who.clone(),
        role: peer.role.into(),
        action: req.action().into(),
        ..Default::default()
    };
    if let Some(why) = req.justification() {
        rec.purpose = Some(why.purpose);
        rec.case_ref = Some(why.case_ref.clone());
        rec.reason = Some(why.reason.clone());
    }
    if let Err(refusal) =
        protocol::check_request(&req).and_then(|()| protocol::authorize(peer.role, &req))
    {
        rec.outcome = rdc_format::Outcome::refused(&refusal);
        audit(store, &rec).await?;
        respond(&mut send, &Response::Refused { refusal }).await?;
        send.finish()?;
        return Ok(());
    }
    wait_for_previews(&req, store, extra).await;
    // The store's work (index reads, hashing, fdatasync of the audit log) runs on the
    // blocking pool, so a slow SD card never stalls the QUIC connections.
    let (result, mut rec) = {
        let (req, peer, store, extra) = (req, peer.clone(), store.clone(), extra.clone());
        tokio::task::spawn_blocking(move || {
            let r = handle(&req, &peer, &store, &extra, &mut rec);
            (r, rec)
        })
        .await?
    };
    match result {
        Err(refusal) => {
            rec.outcome = rdc_format::Outcome::refused(&refusal);
            audit(store, &rec).await?;
            respond(&mut send, &Response::Refused { refusal }).await?;
        }
        Ok(Handled::Answer(answer)) => {
            rec.outcome = rdc_format::Outcome::Granted;
            audit(store, &rec).await?;
            respond(&mut send, &Response::Ok { answer, len: None }).await?;
        }
        Ok(Handled::Blob(answer, bytes)) => {
            rec.outcome = rdc_format::Outcome::Granted;
            rec.bytes = Some(bytes.len() as u64);
            audit(store, &rec).await?;
            respond(
                &mut send,
                &Response::Ok {
                    answer,
                    len: Some(bytes.len() as u64),
                },
            )
            .await?;
            send.write_all(&bytes).await?;
        }
        Ok(Handled::Receipt) => {
            // The audit entry is the answer: written durably, then sent as it was signed.
            rec.outcome = rdc_format::Outcome::Granted;
            let (st, r) = (store.clone(), rec.clone());
            let entry = tokio::task::spawn_blocking(move || st.audit_receipt(&r)).await??;
            respond(
                &mut send,
                &Response::Ok {
                    answer: Answer::Receipt(entry),
                    len: None,
                },
            )
            .await?;
        }
        Ok(Handled::Bytes {
            entry,
            file,
            offset,
            len,
        }) => {
            rec.outcome = rdc_format::Outcome::Granted;
            rec.bytes = Some(len);
            // Durable before the first byte of footage leaves the unit.
            audit(store, &rec).await?;
            respond(
                &mut send,
                &Response::Ok {
                    answer: Answer::Segment(entry),
                    len: Some(len),
                },
            )
            .await?;
            send_file(&mut send, file, offset, len).await?;
        }
    }
    send.finish()?;
    Ok(())
}

/// Appends `rec` to the audit log and syncs it, on the blocking pool.
async fn audit(
    store: &Store,
    rec: &AuditRecord,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let (store, rec) = (store.clone(), rec.clone());
    tokio::task::spawn_blocking(move || store.audit(&rec)).await??;
    Ok(())
}

async fn send_file(
    send: &mut quinn::SendStream,
    file: std::fs::File,
    _offset: u64,
    len: u64,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut f = tokio::fs::File::from_std(file);
    let mut left = len;
    let mut buf = vec![0u8; 64 * 1024];
    while left > 0 {
        let want = buf.len().min(left as usize);
        let n = f.read(&mut buf[..want]).await?;
        if n == 0 {
            return Err("segment shorter than its index entry".into());
        }
        send.write_all(&buf[..n]).await?;
        left -= n as u64;
    }
    Ok(())
}
