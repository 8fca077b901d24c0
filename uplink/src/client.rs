//! The officer's side of the uplink: connect to a unit, make requests, fetch from an offset.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::AsyncWriteExt as _;

use crate::protocol::{self, Justification, Refusal, Request, Response};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the unit at {addr}: {detail}")]
    Connect { addr: SocketAddr, detail: String },
    #[error("the unit refused: {0}")]
    Refused(Refusal),
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
        let bind: SocketAddr = if addr.is_ipv6() {
            "[::]:0".parse().expect("valid")
        } else {
            "0.0.0.0:0".parse().expect("valid")
        };
        // Zero-length connection IDs on the officer's side: the unit's packets then carry no
        // connection ID at all (8 bytes less in each ~1.4 kB packet on the 4G downlink). The unit
        // keeps its own IDs, so it still finds the connection when the officer's address changes.
        let mut ep = quinn::EndpointConfig::default();
        ep.cid_generator(|| Box::new(NoConnectionIds));
        let mut endpoint = quinn::Endpoint::new(
            ep,
            None,
            std::net::UdpSocket::bind(bind)?,
            Arc::new(quinn::TokioRuntime),
        )?;
        endpoint.set_default_client_config(cfg);
        let conn = endpoint
            .connect(addr, unit)
            .map_err(|e| ClientError::Connect {
                addr,
                detail: e.to_string(),
            })?
            .await
            .map_err(|e| ClientError::Connect {
                addr,
                detail: explain(&e),
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

    /// Sends `bytes` on a new stream and reads the answer header.
    async fn exchange(&self, bytes: &[u8]) -> Result<(Response, quinn::RecvStream), ClientError> {
        let (mut send, mut recv) = self
            .conn
            .open_bi()
            .await
            .map_err(|e| ClientError::Link(explain(&e)))?;
        send.write_all(bytes)
            .await
            .map_err(|e| ClientError::Link(e.to_string()))?;
        send.finish()
            .map_err(|e| ClientError::Link(e.to_string()))?;
        let mut prefix = [0u8; 4];
        recv.read_exact(&mut prefix)
            .await
            .map_err(|e| self.link_or_refusal(e))?;
        let n = protocol::header_len(prefix).map_err(|r| ClientError::Protocol(r.to_string()))?;
        let mut buf = vec![0u8; n];
        recv.read_exact(&mut buf)
            .await
            .map_err(|e| ClientError::Link(e.to_string()))?;
        let resp: Response =
            serde_json::from_slice(&buf).map_err(|e| ClientError::Protocol(e.to_string()))?;
        Ok((resp, recv))
    }

    fn link_or_refusal(&self, e: quinn::ReadExactError) -> ClientError {
        if let Some(quinn::ConnectionError::ApplicationClosed(c)) = self.conn.close_reason()
            && c.error_code == quinn::VarInt::from_u32(crate::server::CLOSE_UNKNOWN_USER)
        {
            return ClientError::Refused(Refusal::UnknownUser);
        }
        ClientError::Link(e.to_string())
    }

    /// A request answered with JSON.
    pub async fn call(&self, req: &Request) -> Result<serde_json::Value, ClientError> {
        match self.request(req).await? {
            (Response::Ok { body, .. }, _) => Ok(body),
            (Response::Refused { refusal }, _) => Err(ClientError::Refused(refusal)),
        }
    }

    /// Fetches a segment's ciphertext from `offset`, appending to `out`. Returns the bytes
    /// written; on a dropped link, what arrived is already in `out`, so the caller resumes
    /// from `offset + written`.
    pub async fn fetch(
        &self,
        camera: &str,
        seq: u64,
        offset: u64,
        why: &Justification,
        out: &mut (impl tokio::io::AsyncWrite + Unpin),
    ) -> Result<u64, ClientError> {
        let req = Request::Fetch {
            camera: camera.into(),
            seq,
            offset,
            why: why.clone(),
        };
        let (resp, mut recv) = self.request(&req).await?;
        let len = match resp {
            Response::Ok { len: Some(len), .. } => len,
            Response::Ok { len: None, .. } => {
                return Err(ClientError::Protocol(
                    "a fetch answer without a length".into(),
                ));
            }
            Response::Refused { refusal } => return Err(ClientError::Refused(refusal)),
        };
        let mut got = 0u64;
        while let Some(chunk) = recv
            .read_chunk(64 * 1024, true)
            .await
            .map_err(|e| ClientError::Link(e.to_string()))?
        {
            out.write_all(&chunk.bytes).await?;
            got += chunk.bytes.len() as u64;
        }
        out.flush().await?;
        if got != len {
            return Err(ClientError::Link(format!("received {got} of {len} bytes")));
        }
        Ok(got)
    }

    /// Sends raw bytes as a request (tests of the unit's handling of garbage).
    #[cfg(test)]
    pub(crate) async fn raw(&self, bytes: &[u8]) -> Result<Refusal, ClientError> {
        match self.exchange(bytes).await? {
            (Response::Refused { refusal }, _) => Ok(refusal),
            (other, _) => Err(ClientError::Protocol(format!("{other:?}"))),
        }
    }

    pub fn close(&self) {
        self.conn.close(0u32.into(), b"done");
    }
}

fn explain(e: &quinn::ConnectionError) -> String {
    match e {
        quinn::ConnectionError::ApplicationClosed(c)
            if c.error_code == quinn::VarInt::from_u32(crate::server::CLOSE_UNKNOWN_USER) =>
        {
            Refusal::UnknownUser.to_string()
        }
        quinn::ConnectionError::TransportError(t)
            if t.to_string().contains("certificate") || t.to_string().contains("Certificate") =>
        {
            format!(
                "the certificates do not match ({t}): is your certificate issued by this scheme's CA, and the unit name right?"
            )
        }
        other => other.to_string(),
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
