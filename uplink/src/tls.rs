//! TLS for the uplink: TLS 1.3 only, mutual authentication against the scheme CA, ALPN
//! `rdc/1`, ChaCha20-Poly1305 preferred (units' ARM cores lack AES instructions; AES-128-GCM
//! stays available because QUIC's Initial packets use it).

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::crypto::ring as ring_provider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::protocol::ALPN;
use crate::strangers::Presented;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} from {path}: {detail}")]
    Read {
        what: &'static str,
        path: String,
        detail: String,
    },
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client verifier: {0}")]
    Verifier(String),
    #[error("QUIC crypto: {0}")]
    Quic(String),
}

/// The crypto provider: ring, TLS 1.3 suites with ChaCha20-Poly1305 first.
pub fn provider() -> Arc<CryptoProvider> {
    let mut p = ring_provider::default_provider();
    p.cipher_suites = vec![
        ring_provider::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        ring_provider::cipher_suite::TLS13_AES_128_GCM_SHA256,
        ring_provider::cipher_suite::TLS13_AES_256_GCM_SHA384,
    ];
    Arc::new(p)
}

/// PEM material for one side.
#[derive(Debug, Clone)]
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: Arc<PrivateKeyDer<'static>>,
}

impl Identity {
    pub fn from_pem(cert: &str, key: &str) -> Result<Self, TlsError> {
        let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::Read {
                what: "a certificate",
                path: "<memory>".into(),
                detail: e.to_string(),
            })?;
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|e| TlsError::Read {
            what: "a private key",
            path: "<memory>".into(),
            detail: e.to_string(),
        })?;
        Ok(Identity {
            chain,
            key: Arc::new(key),
        })
    }

    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let read = |p: &Path, what| {
            std::fs::read_to_string(p).map_err(|e| TlsError::Read {
                what,
                path: p.display().to_string(),
                detail: e.to_string(),
            })
        };
        Self::from_pem(&read(cert, "a certificate")?, &read(key, "a private key")?)
    }
}

/// The scheme CA's certificates.
pub fn roots_from_pem(pem: &str) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let c = c.map_err(|e| TlsError::Read {
            what: "the CA certificate",
            path: "<memory>".into(),
            detail: e.to_string(),
        })?;
        roots.add(c)?;
    }
    Ok(roots)
}

/// QUIC transport tuned for 4G: keep-alive under carrier NAT timeouts, an idle timeout that
/// rides out short outages, and windows for 20 Mbit/s at 150 ms RTT.
pub fn transport() -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.keep_alive_interval(Some(std::time::Duration::from_secs(10)));
    t.max_idle_timeout(Some(
        quinn::IdleTimeout::try_from(std::time::Duration::from_secs(60))
            .expect("60 s is a valid idle timeout"),
    ));
    // Bandwidth-delay product at 20 Mbit/s x 150 ms is 375 kB; allow 4x for loss recovery.
    t.stream_receive_window(quinn::VarInt::from_u32(1_500_000));
    t.receive_window(quinn::VarInt::from_u32(3_000_000));
    t.send_window(3_000_000);
    t.max_concurrent_bidi_streams(quinn::VarInt::from_u32(32));
    t.max_concurrent_uni_streams(quinn::VarInt::from_u32(0));
    // 4G loses packets to radio, not only to queues: a loss-based controller (Cubic) reads 1 %
    // random loss as congestion and collapses; quinn's BBR overfills small queues when the
    // unit's CPU is busy. `congestion::RateWindow` keeps the bandwidth-delay product and a
    // short standing queue, measured as delay (see its module).
    t.congestion_controller_factory(Arc::new(crate::congestion::RateWindowConfig));
    // ACKs stay at QUIC's default (every second packet): asking the officer to acknowledge only
    // every tenth (the ACK-frequency extension) saved 1.7 % of the bytes on the air but cost 2 %
    // in time through an emulated 4G link, and time is what the officer waits for.
    t
}

/// The unit's TLS: the QUIC server configuration, and what refused peers presented.
#[derive(Debug)]
pub struct ServerTls {
    pub quic: quinn::ServerConfig,
    pub presented: Arc<PresentedLog>,
}

/// Certificates that failed verification lately, for the audit entry of the refused handshake
/// (quinn reports a failed handshake without the certificate).
#[derive(Debug, Default)]
pub struct PresentedLog {
    recent: std::sync::Mutex<std::collections::VecDeque<(std::time::Instant, Presented)>>,
}

impl PresentedLog {
    fn push(&self, p: Presented) {
        let mut q = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() >= 64 {
            q.pop_front();
        }
        q.push_back((std::time::Instant::now(), p));
    }

    /// The newest certificate refused within the last few seconds, taken out of the log.
    pub fn take_recent(&self) -> Option<Presented> {
        let mut q = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let (at, _) = q.back()?;
        if at.elapsed() > std::time::Duration::from_secs(5) {
            q.clear();
            return None;
        }
        q.pop_back().map(|(_, p)| p)
    }
}

/// Delegates to webpki's verifier; remembers each certificate it refuses.
#[derive(Debug)]
struct RecordingVerifier {
    inner: Arc<dyn rustls::server::danger::ClientCertVerifier>,
    log: Arc<PresentedLog>,
}

impl rustls::server::danger::ClientCertVerifier for RecordingVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        let r = self
            .inner
            .verify_client_cert(end_entity, intermediates, now);
        if r.is_err() {
            self.log.push(Presented {
                fingerprint: crate::cert::fingerprint_text(end_entity),
                subject: crate::cert::subject(end_entity)
                    .unwrap_or_else(|| "(unreadable certificate)".into()),
            });
        }
        r
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The unit's side: its certificate, and every client must present one chaining to the CA and
/// not revoked by `crl_pem` (the scheme's CRL, if any).
pub fn server_config(
    id: &Identity,
    ca_pem: &str,
    crl_pem: Option<&str>,
) -> Result<ServerTls, TlsError> {
    let provider = provider();
    let crls = match crl_pem {
        Some(pem) => {
            rustls::pki_types::CertificateRevocationListDer::pem_slice_iter(pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| TlsError::Read {
                    what: "the CRL",
                    path: "<memory>".into(),
                    detail: e.to_string(),
                })?
        }
        None => Vec::new(),
    };
    let webpki = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots_from_pem(ca_pem)?),
        provider.clone(),
    )
    .with_crls(crls)
    .build()
    .map_err(|e| TlsError::Verifier(e.to_string()))?;
    let presented = Arc::new(PresentedLog::default());
    let verifier = Arc::new(RecordingVerifier {
        inner: webpki,
        log: presented.clone(),
    });
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(id.chain.clone(), id.key.clone_key())?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    cfg.transport_config(Arc::new(transport()));
    Ok(ServerTls {
        quic: cfg,
        presented,
    })
}

/// The officer's side: the unit must chain to the CA and be named `unit`.
pub fn client_config(id: &Identity, ca_pem: &str) -> Result<quinn::ClientConfig, TlsError> {
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots_from_pem(ca_pem)?)
        .with_client_auth_cert(id.chain.clone(), id.key.clone_key())?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(crypto));
    cfg.transport_config(Arc::new(transport()));
    Ok(cfg)
}

/// Checks a unit id can be a TLS server name.
pub fn server_name(unit: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(unit.to_owned())
        .map_err(|e| TlsError::Verifier(format!("{unit:?} is not a valid unit name: {e}")))
}

/// The DER of the first certificate in `pem`.
pub fn cert_der(pem: &str) -> Option<Vec<u8>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()?
        .ok()
        .map(|c| c.to_vec())
}

/// The DER of the first certificate revocation list in `pem`.
pub fn crl_der(pem: &str) -> Option<Vec<u8>> {
    rustls::pki_types::CertificateRevocationListDer::pem_slice_iter(pem.as_bytes())
        .next()?
        .ok()
        .map(|c| c.to_vec())
}

#[cfg(test)]
mod tests {
    #[test]
    fn pem_blocks_are_read_by_kind() {
        let ca = crate::pki::new_ca("T", 30).unwrap();
        let der = super::cert_der(&ca.cert).expect("a certificate");
        assert_eq!(
            crate::cert::subject(&der).as_deref(),
            Some("CN=rdc scheme CA: T")
        );
        assert!(
            super::crl_der(&ca.cert).is_none(),
            "a certificate is not a CRL"
        );
        assert!(super::cert_der("not pem").is_none());
    }
}
