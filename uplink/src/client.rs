//! The officer's side of the uplink: connect to a unit, make requests, fetch from an offset.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::AsyncWriteExt as _;

use rdc_config::Id;
use rdc_format::SegmentEntry;
use rdc_format::chain::Entry;

use crate::protocol::{
    self, Answer, AuditAnswer, CheckLine, Justification, Refusal, Request, Response, StatusAnswer,
    StillInfo, TrackRef,
};

/// How often a throttled request is asked again before the refusal is given up to the caller.
pub const THROTTLED_TRIES: u32 = 30;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the unit at {addr}: {detail}")]
    Connect { addr: SocketAddr, detail: String },
    #[error("the unit refused: {0}")]
    Refused(Refusal),
    /// The unit's TLS refused the officer's certificate (an alert at the handshake).
    #[error(
        "the unit refused your certificate at the handshake: {why}. Ask the scheme administrator for a valid certificate from this scheme's CA"
    )]
    CertificateRefused { why: String },
    /// The unit's own certificate does not check out against the officer's CA.
    #[error(
        "the unit's certificate does not check out ({detail}): is the unit's name in the units file right, and is its `ca` this scheme's CA certificate?"
    )]
    UnitNotTrusted { detail: String },
    #[error("the link dropped: {0}")]
    Link(String),
    #[error("the unit sent something this rdc does not understand: {0}")]
    Protocol(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A connection to one unit.
#[derive(Debug)]
pub struct Client {
    _endpoint: quinn::Endpoint,
    conn: quinn::Connection,
}

impl Client {
    /// Connects to `addr`, expecting the unit's certificate to name `unit`.
    pub async fn connect(
        addr: SocketAddr,
        unit: &str,
        cfg: quinn::ClientConfig,
    ) -> Result<Client, ClientError> {
        Self::connect_on(Self::endpoint(addr.is_ipv6())?, addr, unit, cfg).await
    }

    /// An endpoint (one UDP socket) from which many units can be reached at once: `rdc units
    /// status` asks a whole fleet through one socket, not one per unit.
    pub fn endpoint(ipv6: bool) -> Result<quinn::Endpoint, ClientError> {
        let bind: SocketAddr = if ipv6 {
            "[::]:0".parse().expect("valid")
        } else {
            "0.0.0.0:0".parse().expect("valid")
        };
        // Zero-length connection IDs on the officer's side: the unit's packets then carry no
        // connection ID at all (8 bytes less in each ~1.4 kB packet on the 4G downlink). The unit
        // keeps its own IDs, so it still finds the connection when the officer's address changes.
        let mut ep = quinn::EndpointConfig::default();
        ep.cid_generator(|| Box::new(NoConnectionIds));
        Ok(quinn::Endpoint::new(
            ep,
            None,
            std::net::UdpSocket::bind(bind)?,
            Arc::new(quinn::TokioRuntime),
        )?)
    }

    /// Connects from `endpoint` (see [`Client::endpoint`]).
    pub async fn connect_on(
        endpoint: quinn::Endpoint,
        addr: SocketAddr,
        unit: &str,
        cfg: quinn::ClientConfig,
    ) -> Result<Client, ClientError> {
        let conn = endpoint
            .connect_with(cfg, addr, unit)
            .map_err(|e| ClientError::Connect {
                addr,
                detail: e.to_string(),
            })?
            .await
            .map_err(|e| {
                classify(&e).unwrap_or_else(|| ClientError::Connect {
                    addr,
                    detail: e.to_string(),
                })
            })?;
        Ok(Client {
            _endpoint: endpoint,
            conn,
        })
    }

    /// Sends a request; returns the answer header and the stream (for the bytes of a fetch).
    pub async fn request(
        &self,
        req: &Request,
    ) -> Result<(Response, quinn::RecvStream), ClientError> {
        self.exchange(&protocol::encode(req)).await
    }

    /// Sends `bytes` on a new stream and reads the answer header. A unit that says this person
    /// is over their request rate is asked again after the wait it names (up to
    /// [`THROTTLED_TRIES`] times), so a long fetch slows down instead of failing.
    async fn exchange(&self, bytes: &[u8]) -> Result<(Response, quinn::RecvStream), ClientError> {
        let mut tries = 0;
        loop {
            let r = self.exchange_once(bytes).await?;
            match &r.0 {
                Response::Refused {
                    refusal:
                        Refusal::Throttled {
                            retry_after_secs, ..
                        },
                } if tries < THROTTLED_TRIES => {
                    tries += 1;
                    tracing::info!(
                        retry_after_secs,
                        "the unit asks this person to slow down; waiting"
                    );
                    tokio::time::sleep(std::time::Duration::from_secs(
                        (*retry_after_secs).clamp(1, 60),
                    ))
                    .await;
                }
                _ => return Ok(r),
            }
        }
    }

    async fn exchange_once(
        &self,
        bytes: &[u8],
    ) -> Result<(Response, quinn::RecvStream), ClientError> {
        let (mut send, mut recv) = self.conn.open_bi().await.map_err(|e| self.link(e))?;
        send.write_all(bytes).await.map_err(|e| self.link(e))?;
        send.finish().map_err(|e| self.link(e))?;
        let mut prefix = [0u8; 4];
        recv.read_exact(&mut prefix)
            .await
            .map_err(|e| self.link(e))?;
        // Answers are not bound by the request limit: a day's list of segments is larger.
        let n = u32::from_be_bytes(prefix) as usize;
        if n > protocol::MAX_ANSWER {
            return Err(ClientError::Protocol(format!(
                "the answer's header is {n} bytes, over the limit of {}: ask for a shorter range",
                protocol::MAX_ANSWER
            )));
        }
        let mut buf = vec![0u8; n];
        recv.read_exact(&mut buf).await.map_err(|e| self.link(e))?;
        let resp: Response =
            serde_json::from_slice(&buf).map_err(|e| ClientError::Protocol(e.to_string()))?;
        Ok((resp, recv))
    }

    /// A failed stream: what the connection's close says (a refusal at the handshake or of the
    /// user), else a dropped link.
    fn link(&self, e: impl std::fmt::Display) -> ClientError {
        link_error(&self.conn, e)
    }

    /// A request, answered.
    pub async fn call(&self, req: &Request) -> Result<Answer, ClientError> {
        match self.request(req).await? {
            (Response::Ok { answer, .. }, _) => Ok(answer),
            (Response::Refused { refusal }, _) => Err(ClientError::Refused(refusal)),
        }
    }

    /// A request whose answer `pick` takes (or hands back, when the unit answered something
    /// else): every typed call below is this one.
    pub async fn ask<T>(
        &self,
        req: &Request,
        pick: impl FnOnce(Answer) -> Result<T, Box<Answer>>,
    ) -> Result<T, ClientError> {
        let answer = self.call(req).await?;
        pick(answer).map_err(|other| unexpected(&req.action().replace('_', " "), &other))
    }

    /// A request answered with bytes after its header (a still, a still's footage), at most
    /// `limit` of them.
    async fn ask_bytes<T>(
        &self,
        req: &Request,
        limit: usize,
        pick: impl FnOnce(Answer) -> Result<T, Box<Answer>>,
    ) -> Result<(T, Vec<u8>), ClientError> {
        let asked = req.action().replace('_', " ");
        let (resp, mut recv) = self.request(req).await?;
        let (answer, len) = match resp {
            Response::Ok {
                answer,
                len: Some(len),
            } => (answer, len),
            Response::Ok { answer, .. } => return Err(unexpected(&asked, &answer)),
            Response::Refused { refusal } => return Err(ClientError::Refused(refusal)),
        };
        let info = pick(answer).map_err(|other| unexpected(&asked, &other))?;
        let bytes = recv.read_to_end(limit).await.map_err(|e| self.link(e))?;
        if bytes.len() as u64 != len {
            return Err(ClientError::Link(format!(
                "received {} of {len} bytes",
                bytes.len()
            )));
        }
        Ok((info, bytes))
    }

    /// The unit's status.
    pub async fn status(&self) -> Result<StatusAnswer, ClientError> {
        self.ask(&Request::Status, |a| match a {
            Answer::Status(s) => Ok(*s),
            other => Err(Box::new(other)),
        })
        .await
    }

    /// Segments of a camera's track (footage, or with [`TrackRef::previews`] its previews)
    /// overlapping `[from_ns, to_ns)`.
    pub async fn list(
        &self,
        of: impl Into<TrackRef<'_>>,
        from_ns: i64,
        to_ns: i64,
        why: &Justification,
    ) -> Result<Vec<SegmentEntry>, ClientError> {
        let of = of.into();
        let req = Request::List {
            camera: of.camera.clone(),
            track: of.track,
            from_ns,
            to_ns,
            why: why.clone(),
        };
        self.ask(&req, |a| match a {
            Answer::Segments(v) => Ok(v),
            other => Err(Box::new(other)),
        })
        .await
    }

    /// Signed manifest entries of `camera` for `from_seq <= seq < to_seq`.
    pub async fn manifests(
        &self,
        of: impl Into<TrackRef<'_>>,
        from_seq: u64,
        to_seq: u64,
        why: &Justification,
    ) -> Result<Vec<Entry>, ClientError> {
        let of = of.into();
        let req = Request::Manifests {
            camera: of.camera.clone(),
            track: of.track,
            from_seq,
            to_seq,
            why: why.clone(),
        };
        self.ask(&req, |a| match a {
            Answer::Manifests(v) => Ok(v),
            other => Err(Box::new(other)),
        })
        .await
    }

    /// The audit log from `from_seq`.
    pub async fn audit(&self, from_seq: u64) -> Result<AuditAnswer, ClientError> {
        self.ask(&Request::Audit { from_seq }, |a| match a {
            Answer::Audit(a) => Ok(a),
            other => Err(Box::new(other)),
        })
        .await
    }

    /// A live still from `camera` while the unit is being commissioned: what it is, and the
    /// keyframe's bytes.
    pub async fn still(&self, camera: &Id) -> Result<(StillInfo, Vec<u8>), ClientError> {
        let req = Request::Still {
            camera: camera.clone(),
        };
        self.ask_bytes(&req, 16 << 20, |a| match a {
            Answer::Still(info) => Ok(info),
            other => Err(Box::new(other)),
        })
        .await
    }

    /// A register entry the unit appended for `req` (a still's request, approval, report or
    /// release).
    pub async fn register(&self, req: &Request) -> Result<Entry, ClientError> {
        self.ask(req, |a| match a {
            Answer::StillRegistered(e) => Ok(e),
            other => Err(Box::new(other)),
        })
        .await
    }

    /// The unit's stills register, with the key that signs it.
    pub async fn stills(&self) -> Result<AuditAnswer, ClientError> {
        self.ask(&Request::Stills, |a| match a {
            Answer::Register(a) => Ok(a),
            other => Err(Box::new(other)),
        })
        .await
    }

    /// The footage that holds an approved still's frame: what proves it, and the bytes (the
    /// segment's header, then the run's chunks).
    pub async fn still_footage(
        &self,
        still: u64,
    ) -> Result<(crate::protocol::StillFootage, Vec<u8>), ClientError> {
        let (info, bytes) = self
            .ask_bytes(&Request::StillMake { still }, 256 << 20, |a| match a {
                Answer::StillFootage(info) => Ok(info),
                other => Err(Box::new(other)),
            })
            .await?;
        Ok((*info, bytes))
    }

    /// Marks the unit in service; returns since when (ns).
    pub async fn commission_done(&self, reason: &str) -> Result<i64, ClientError> {
        self.ask(
            &Request::CommissionDone {
                reason: reason.to_owned(),
            },
            |a| match a {
                Answer::InService { since_ns } => Ok(since_ns),
                other => Err(Box::new(other)),
            },
        )
        .await
    }

    /// Bytes `camera` recorded in each `bucket_ns` of `[from_ns, to_ns)`.
    pub async fn activity(
        &self,
        camera: &Id,
        (from_ns, to_ns): (i64, i64),
        bucket_ns: i64,
        why: &Justification,
    ) -> Result<Vec<u64>, ClientError> {
        let req = Request::Activity {
            camera: camera.clone(),
            from_ns,
            to_ns,
            bucket_ns,
            why: why.clone(),
        };
        self.ask(&req, |a| match a {
            Answer::Activity { bytes, .. } => Ok(bytes),
            other => Err(Box::new(other)),
        })
        .await
    }

    /// The unit's selftest.
    pub async fn selftest(&self) -> Result<Vec<CheckLine>, ClientError> {
        self.ask(&Request::SelfTest, |a| match a {
            Answer::SelfTest(lines) => Ok(lines),
            other => Err(Box::new(other)),
        })
        .await
    }

    /// Asks the unit to record an export in its audit log; returns the signed entry (the
    /// receipt). `req` must be a [`Request::ExportReceipt`].
    pub async fn export_receipt(&self, req: &Request) -> Result<Entry, ClientError> {
        self.ask(req, |a| match a {
            Answer::Receipt(e) => Ok(e),
            other => Err(Box::new(other)),
        })
        .await
    }

    /// Fetches a segment's ciphertext from `offset`, appending to `out`. Returns the bytes
    /// written; on a dropped link, what arrived is already in `out`, so the caller resumes
    /// from `offset + written`.
    pub async fn fetch(
        &self,
        of: impl Into<TrackRef<'_>>,
        seq: u64,
        offset: u64,
        why: &Justification,
        out: &mut (impl tokio::io::AsyncWrite + Unpin),
    ) -> Result<u64, ClientError> {
        let of = of.into();
        let req = Request::Fetch {
            camera: of.camera.clone(),
            track: of.track,
            seq,
            offset,
            why: why.clone(),
        };
        let (resp, recv) = self.request(&req).await?;
        let (_, body) = self.body(resp, recv)?;
        body.copy_to(out).await
    }

    /// Fetches the first segment of `of` overlapping `from_ns..to_ns`, whole, before its number
    /// is known: its entry, and its bytes to read. Sent with [`Client::list`], it saves a round
    /// trip before the first footage arrives.
    pub async fn fetch_first(
        &self,
        of: impl Into<TrackRef<'_>>,
        from_ns: i64,
        to_ns: i64,
        why: &Justification,
    ) -> Result<(SegmentEntry, Body), ClientError> {
        let of = of.into();
        let req = Request::FetchFirst {
            camera: of.camera.clone(),
            track: of.track,
            from_ns,
            to_ns,
            why: why.clone(),
        };
        let (resp, recv) = self.request(&req).await?;
        match self.body(resp, recv)? {
            (Some(entry), body) => Ok((entry, body)),
            (None, _) => Err(ClientError::Protocol(
                "a fetch answer without the segment's entry".into(),
            )),
        }
    }

    /// The bytes that follow a fetch's answer.
    fn body(
        &self,
        resp: Response,
        recv: quinn::RecvStream,
    ) -> Result<(Option<SegmentEntry>, Body), ClientError> {
        match resp {
            Response::Ok {
                len: Some(len),
                answer,
            } => Ok((
                match answer {
                    Answer::Segment(e) => Some(e),
                    _ => None,
                },
                Body {
                    conn: self.conn.clone(),
                    recv,
                    len,
                },
            )),
            Response::Ok { len: None, .. } => Err(ClientError::Protocol(
                "a fetch answer without a length".into(),
            )),
            Response::Refused { refusal } => Err(ClientError::Refused(refusal)),
        }
    }

    /// Sends raw bytes as a request (tests of the unit's handling of garbage).
    #[cfg(test)]
    pub(crate) async fn raw(&self, bytes: &[u8]) -> Result<Refusal, ClientError> {
        match self.exchange_once(bytes).await? {
            (Response::Refused { refusal }, _) => Ok(refusal),
            (other, _) => Err(ClientError::Protocol(format!("{other:?}"))),
        }
    }

    pub fn close(&self) {
        self.conn.close(0u32.into(), b"done");
    }
}

/// A segment's bytes, as a fetch's answer announced them.
#[derive(Debug)]
pub struct Body {
    conn: quinn::Connection,
    recv: quinn::RecvStream,
    len: u64,
}

impl Body {
    /// Bytes the answer announced.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the answer announced no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes the bytes to `out` as they arrive; an error if fewer arrive than were announced.
    pub async fn copy_to(
        mut self,
        out: &mut (impl tokio::io::AsyncWrite + Unpin),
    ) -> Result<u64, ClientError> {
        let mut got = 0u64;
        while let Some(chunk) = self
            .recv
            .read_chunk(64 * 1024, true)
            .await
            .map_err(|e| link_error(&self.conn, e))?
        {
            out.write_all(&chunk.bytes).await?;
            got += chunk.bytes.len() as u64;
        }
        out.flush().await?;
        if got != self.len {
            return Err(ClientError::Link(format!(
                "received {got} of {} bytes",
                self.len
            )));
        }
        Ok(got)
    }
}

/// A failed stream of `conn`: what the connection's close says, else a dropped link.
fn link_error(conn: &quinn::Connection, e: impl std::fmt::Display) -> ClientError {
    conn.close_reason()
        .and_then(|c| classify(&c))
        .unwrap_or_else(|| ClientError::Link(e.to_string()))
}

fn unexpected(asked: &str, got: &Answer) -> ClientError {
    let kind = serde_json::to_value(got)
        .ok()
        .and_then(|v| v["answer"].as_str().map(str::to_owned))
        .unwrap_or_default();
    ClientError::Protocol(format!("asked for {asked}, the unit answered {kind}"))
}

/// What a closed connection means for the officer, when it means more than a dropped link.
fn classify(e: &quinn::ConnectionError) -> Option<ClientError> {
    match e {
        quinn::ConnectionError::ApplicationClosed(c)
            if c.error_code == quinn::VarInt::from_u32(crate::protocol::CLOSE_UNKNOWN_USER) =>
        {
            Some(ClientError::Refused(Refusal::UnknownUser))
        }
        // The unit sent a TLS alert: it refused the certificate this machine presented.
        quinn::ConnectionError::ConnectionClosed(c) => {
            let code = u64::from(c.error_code);
            (0x100..=0x1ff)
                .contains(&code)
                .then(|| ClientError::CertificateRefused {
                    why: alert_meaning((code & 0xff) as u8),
                })
        }
        // This side refused the unit's certificate.
        quinn::ConnectionError::TransportError(t)
            if u64::from(t.code) & !0xff == 0x100
                || t.to_string().to_lowercase().contains("certificate") =>
        {
            Some(ClientError::UnitNotTrusted {
                detail: t.to_string(),
            })
        }
        _ => None,
    }
}

/// The TLS alerts a unit sends when it refuses a certificate (RFC 8446 section 6.2).
fn alert_meaning(alert: u8) -> String {
    match alert {
        44 => "your certificate has been revoked by the scheme".into(),
        45 => {
            "your certificate has expired (or is not valid yet: check this machine's clock)".into()
        }
        48 => "your certificate is not issued by this scheme's CA".into(),
        42 | 43 | 46 => "your certificate is not acceptable to the unit".into(),
        49 => "access denied".into(),
        116 => "the unit requires a certificate and none was presented".into(),
        a => format!("TLS alert {a}"),
    }
}

/// Zero-length connection IDs (the officer's endpoint has one connection, found by address).
struct NoConnectionIds;

impl quinn::ConnectionIdGenerator for NoConnectionIds {
    fn generate_cid(&mut self) -> quinn::ConnectionId {
        quinn::ConnectionId::new(&[])
    }

    fn cid_len(&self) -> usize {
        0
    }

    fn cid_lifetime(&self) -> Option<std::time::Duration> {
        None
    }
}
