//! The unit's Ed25519 key: it signs segment manifests and log entries, so an auditor can tell
//! what the unit wrote from what someone edited later. It cannot decrypt anything.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair as _};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the unit signing key {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cannot create the unit signing key {path}: {source} (is its directory writable by the daemon?)"
    )]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is not an Ed25519 PKCS#8 key; move it aside and a new key is created at start (manifests already signed stay verifiable with the old public key)"
    )]
    Invalid { path: PathBuf },
}

pub struct UnitKey {
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for UnitKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UnitKey(public {})", self.public_hex())
    }
}

impl UnitKey {
    /// Loads the key at `path`, creating it (mode 600) when missing.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        match std::fs::read(path) {
            Ok(der) => Self::from_pkcs8(&der).ok_or_else(|| KeyError::Invalid {
                path: path.to_owned(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let create = |source| KeyError::Create {
                    path: path.to_owned(),
                    source,
                };
                let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                    .map_err(|_| create(std::io::Error::other("no randomness")))?;
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(create)?;
                }
                let mut f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(create)?;
                f.write_all(doc.as_ref()).map_err(create)?;
                f.sync_all().map_err(create)?;
                tracing::info!(path = %path.display(), "created the unit signing key");
                Self::from_pkcs8(doc.as_ref()).ok_or_else(|| KeyError::Invalid {
                    path: path.to_owned(),
                })
            }
            Err(source) => Err(KeyError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// A key that lives only in memory (tests, benchmarks).
    pub fn ephemeral() -> Self {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("system randomness");
        Self::from_pkcs8(doc.as_ref()).expect("ring produced this PKCS#8 document")
    }

    fn from_pkcs8(der: &[u8]) -> Option<Self> {
        Ed25519KeyPair::from_pkcs8(der)
            .ok()
            .map(|pair| UnitKey { pair })
    }

    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        let mut out = [0u8; 64];
        out.copy_from_slice(self.pair.sign(msg).as_ref());
        out
    }

    pub fn public(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.pair.public_key().as_ref());
        out
    }

    pub fn public_hex(&self) -> String {
        hex::encode(self.public())
    }
}

pub use rdc_format::verify_signature as verify;
