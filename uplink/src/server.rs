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

use rdc_config::{Role, User};
use rdc_storage::{AuditRecord, HoldRequest, Store};
use tokio::io::AsyncReadExt as _;

use crate::pki;
use crate::protocol::{self, Refusal, Request, Response};

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
    live: Option<LiveStatus>,
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
pub type LiveStatus = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// Close codes sent to a refused connection.
pub const CLOSE_UNKNOWN_USER: u32 = 0x101;

impl Server {
    /// Binds the UDP port. The only socket the unit opens.
    pub fn bind(
        addr: SocketAddr,
        cfg: quinn::ServerConfig,
        users: Vec<User>,
        store: Store,
    ) -> std::io::Result<Server> {
        let endpoint = quinn::Endpoint::server(cfg, addr)?;
        Ok(Server {
            endpoint,
            users: Arc::new(users),
            store,
            live: None,
        })
    }

    /// Adds the daemon's live state to status answers.
    pub fn with_live_status(mut self, live: LiveStatus) -> Self {
        self.live = Some(live);
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
        while let Some(incoming) = self.endpoint.accept().await {
            let (users, store, live) = (self.users.clone(), self.store.clone(), self.live.clone());
            tokio::spawn(async move {
                let addr = incoming.remote_address();
                match incoming.await {
                    Ok(conn) => serve_connection(conn, &users, store, live).await,
                    Err(e) => {
                        tracing::warn!(%addr, error = %e, "uplink handshake refused");
                        audit_refusal(
                            &store,
                            &format!("unknown peer at {addr}"),
                            "-",
                            "connect",
                            &format!("TLS handshake failed: {e}"),
                        );
                    }
                }
            });
        }
    }

    /// Stops accepting and closes every connection.
    pub fn close(&self) {
        self.endpoint.close(0u32.into(), b"unit shutting down");
    }
}

fn identify(conn: &quinn::Connection, users: &[User]) -> Result<Peer, String> {
    let certs = conn
        .peer_identity()
        .and_then(|id| {
            id.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
                .ok()
        })
        .ok_or("no client certificate")?;
    let leaf = certs.first().ok_or("empty certificate chain")?;
    let fp = pki::fingerprint(leaf);
    let cn = common_name(leaf);
    let user = users
        .iter()
        .find(|u| {
            u.fingerprint == Some(fp)
                || (u.fingerprint.is_none() && u.common_name.is_some() && u.common_name == cn)
        })
        .ok_or_else(|| {
            format!(
                "certificate {} (CN {}) is not in this unit's user list",
                pki::fingerprint_text(leaf),
                cn.as_deref().unwrap_or("?")
            )
        })?;
    Ok(Peer {
        name: user.name.clone(),
        role: user.role,
        fingerprint: pki::fingerprint_text(leaf),
        addr: conn.remote_address(),
    })
}

fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    cert.subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()
        .map(str::to_owned)
}

fn audit_refusal(store: &Store, who: &str, role: &str, action: &str, why: &str) {
    let rec = AuditRecord {
        who: who.into(),
        role: role.into(),
        action: action.into(),
        outcome: format!("refused: {why}"),
        ..Default::default()
    };
    if let Err(e) = store.audit(&rec) {
        tracing::error!(error = %e, "cannot write the audit log");
    }
}

async fn serve_connection(
    conn: quinn::Connection,
    users: &[User],
    store: Store,
    live: Option<LiveStatus>,
) {
    let peer = match identify(&conn, users) {
        Ok(p) => p,
        Err(why) => {
            tracing::warn!(addr = %conn.remote_address(), %why, "uplink user refused");
            audit_refusal(
                &store,
                &format!("unknown user at {}", conn.remote_address()),
                "-",
                "connect",
                &why,
            );
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
                let (peer, store, live) = (peer.clone(), store.clone(), live.clone());
                tokio::spawn(async move {
                    if let Err(e) = serve_stream(send, recv, &peer, &store, live.as_ref()).await {
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
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .map_err(|_| Refusal::Malformed {
            detail: "no request within 30 s".into(),
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
    live: Option<&LiveStatus>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let who = format!("{} ({})", peer.name, peer.fingerprint);
    let req = match read_request(&mut recv).await {
        Ok(r) => r,
        Err(refusal) => {
            audit_refusal(
                store,
                &who,
                &peer.role.to_string(),
                "request",
                &refusal.to_string(),
            );
            respond(&mut send, &Response::Refused { refusal }).await?;
            send.finish()?;
            return Ok(());
        }
    };
    let mut rec = AuditRecord {
        who: who.clone(),
        role: peer.role.to_string(),
        action: req.action().into(),
        ..Default::default()
    };
    if let Some(why) = req.justification() {
        rec.purpose = Some(format!("{:?}", why.purpose).to_lowercase());
        rec.case_ref = Some(why.case_ref.clone());
        rec.reason = Some(why.reason.clone());
    }
    if let Err(refusal) =
        protocol::check_request(&req).and_then(|()| protocol::authorize(peer.role, &req))
    {
        rec.outcome = format!("refused: {refusal}");
        audit(store, &rec).await?;
        respond(&mut send, &Response::Refused { refusal }).await?;
        send.finish()?;
        return Ok(());
    }
    // The store's work (index reads, hashing, fdatasync of the audit log) runs on the
    // blocking pool, so a slow SD card never stalls the QUIC connections.
    let (result, mut rec) = {
        let (req, peer, store, live) = (req, peer.clone(), store.clone(), live.cloned());
        tokio::task::spawn_blocking(move || {
            let r = handle(&req, &peer, &store, live.as_ref(), &mut rec);
            (r, rec)
        })
        .await?
    };
    match result {
        Err(refusal) => {
            rec.outcome = format!("refused: {refusal}");
            audit(store, &rec).await?;
            respond(&mut send, &Response::Refused { refusal }).await?;
        }
        Ok(Answer::Json(body)) => {
            rec.outcome = "granted".into();
            audit(store, &rec).await?;
            respond(&mut send, &Response::Ok { body, len: None }).await?;
        }
        Ok(Answer::Bytes {
            body,
            file,
            offset,
            len,
        }) => {
            rec.outcome = "granted".into();
            rec.bytes = Some(len);
            // Durable before the first byte of footage leaves the unit.
            audit(store, &rec).await?;
            respond(
                &mut send,
                &Response::Ok {
                    body,
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

enum Answer {
    Json(serde_json::Value),
    Bytes {
        body: serde_json::Value,
        file: std::fs::File,
        offset: u64,
        len: u64,
    },
}

fn failed(e: impl std::fmt::Display) -> Refusal {
    Refusal::Failed(e.to_string())
}

fn handle(
    req: &Request,
    peer: &Peer,
    store: &Store,
    live: Option<&LiveStatus>,
    rec: &mut AuditRecord,
) -> Result<Answer, Refusal> {
    let json = |v: &dyn erased::Ser| v.to_json().map(Answer::Json).map_err(failed);
    match req {
        Request::Status => Ok(Answer::Json(serde_json::json!({
            "unit": store.config().unit_id,
            "unit_public_key": store.unit_key().public_hex(),
            "time_ns": store.now_ns(),
            "store": store.status().map_err(failed)?,
            "live": live.map(|f| f()),
        }))),
        Request::List {
            camera,
            from_ns,
            to_ns,
            ..
        } => {
            rec.camera = Some(camera.clone());
            rec.from_ns = Some(*from_ns);
            rec.to_ns = Some(*to_ns);
            json(&store.list(camera, *from_ns, *to_ns).map_err(failed)?)
        }
        Request::Manifests {
            camera,
            from_seq,
            to_seq,
            ..
        } => {
            rec.camera = Some(camera.clone());
            json(
                &store
                    .manifests(camera, *from_seq, *to_seq)
                    .map_err(failed)?,
            )
        }
        Request::Fetch {
            camera,
            seq,
            offset,
            ..
        } => {
            rec.camera = Some(camera.clone());
            rec.seq = Some(*seq);
            let r = store.open_segment(camera, *seq).map_err(failed)?;
            if *offset > r.len() {
                return Err(Refusal::Failed(format!(
                    "offset {offset} is past the end of segment {camera}/{seq} ({} bytes)",
                    r.len()
                )));
            }
            let (len, body) = (
                r.len() - offset,
                serde_json::to_value(&r.entry).map_err(failed)?,
            );
            rec.from_ns = Some(r.entry.start_ns);
            rec.to_ns = Some(r.entry.end_ns);
            let file = r.into_file_at(*offset).map_err(failed)?;
            Ok(Answer::Bytes {
                body,
                file,
                offset: *offset,
                len,
            })
        }
        Request::HoldCreate {
            cameras,
            from_ns,
            to_ns,
            case_ref,
            reason,
            review_ns,
        } => {
            rec.case_ref = Some(case_ref.clone());
            rec.reason = Some(reason.clone());
            let h = store
                .create_hold(HoldRequest {
                    cameras: cameras.clone(),
                    from_ns: *from_ns,
                    to_ns: *to_ns,
                    case_ref: case_ref.clone(),
                    reason: reason.clone(),
                    who: peer.name.clone(),
                    review_ns: *review_ns,
                })
                .map_err(failed)?;
            json(&h)
        }
        Request::HoldList => json(&store.holds().map_err(failed)?),
        Request::HoldRelease { id, reason } => {
            rec.reason = Some(reason.clone());
            json(
                &store
                    .release_hold(*id, &peer.name, reason)
                    .map_err(failed)?,
            )
        }
        // With the unit's signing key, so an auditor (who may not ask for the status) can check
        // every entry.
        Request::Audit { from_seq } => Ok(Answer::Json(serde_json::json!({
            "unit": store.config().unit_id,
            "unit_public_key": store.unit_key().public_hex(),
            "entries": store
                .audit_entries(*from_seq)
                .map_err(failed)?
                .into_iter()
                .map(|(e, _)| e)
                .collect::<Vec<_>>(),
        }))),
    }
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

/// Serialising heterogeneous answers through one closure.
mod erased {
    pub trait Ser {
        fn to_json(&self) -> Result<serde_json::Value, serde_json::Error>;
    }
    impl<T: serde::Serialize> Ser for T {
        fn to_json(&self) -> Result<serde_json::Value, serde_json::Error> {
            serde_json::to_value(self)
        }
    }
}
