//! Configuration of an rdc unit: one TOML file turned into a validated [`Config`].
//!
//! Parse, don't validate: [`raw`] mirrors the file (unknown keys rejected), and
//! [`Config::from_toml`] turns it into types that cannot hold a bad value. Every problem found is
//! reported at once, each naming the key, the value and what is allowed, so a field engineer on
//! a ladder fixes the file in one go. Secrets (camera passwords, the unit's TLS key) are held by
//! reference to a file or a systemd credential and are never printed.

#![forbid(unsafe_code)]

pub mod raw;
mod schema;
#[cfg(feature = "shell")]
pub mod shell;
mod units;
mod validator;

use validator::Validator;

use std::fmt;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use units::{UnitError, parse_duration, parse_size};

/// The default location of the configuration file.
pub const DEFAULT_PATH: &str = "/etc/rdc/recorder.toml";

/// Retention the guidance asks for when none is configured (police guidance: 31 days).
pub const DEFAULT_RETENTION_DAYS: u32 = 31;
/// Hard cap on retention: no policy in `seeds/` allows more than six weeks.
pub const MAX_RETENTION_DAYS: u32 = 42;
/// The normal band: the Lend-A-Cam kit keeps 28 days, the redeployable camera 35.
pub const NORMAL_RETENTION_DAYS: std::ops::RangeInclusive<u32> = 28..=35;

/// A validated unit configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub unit: Unit,
    pub cameras: Vec<Camera>,
    pub storage: Storage,
    pub recipients: Vec<Recipient>,
    pub uplink: Option<Uplink>,
    pub logging: Logging,
    /// The normalised file, defaults filled in; what `check-config` prints.
    effective: raw::File,
}

/// Who runs the unit and why (R17: the unit identifies the operator and the purpose).
#[derive(Debug, Clone)]
pub struct Unit {
    pub id: Id,
    pub operator: String,
    pub contact: String,
    pub purpose: String,
    pub site: String,
    /// The unit's Ed25519 signing key (PKCS#8). Created at first start when missing.
    pub signing_key: PathBuf,
}

/// An identifier safe to use in a file name: `[a-z0-9_-]`, 1 to 32 characters.
///
/// Camera and unit ids are this type wherever they enter (the configuration, every `rdc/1`
/// request, the `rdc` command line), so no id that could reach a path (`../audit`, `a/b`, `.`)
/// gets past the point where it is parsed.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct Id(String);

impl TryFrom<String> for Id {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Id::parse(&s).map_err(|m| format!("{s:?} is not a valid id: {m}"))
    }
}

impl From<Id> for String {
    fn from(id: Id) -> String {
        id.0
    }
}

impl std::str::FromStr for Id {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Id::parse(s)
    }
}

impl AsRef<str> for Id {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for Id {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

/// Why a string is not an [`Id`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("1 to 32 characters of a-z, 0-9, '-' and '_', not starting with '-'")]
pub struct IdError;

impl Id {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let ok = !s.is_empty()
            && s.len() <= 32
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            && !s.starts_with('-');
        if ok {
            Ok(Id(s.to_owned()))
        } else {
            Err(IdError)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a camera's RTSP session carries its media.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Udp,
    /// The recorder chooses: TCP (interleaved), which passes any NAT and loses nothing to
    /// reordering.
    Auto,
}

/// One RTSP camera.
#[derive(Debug, Clone)]
pub struct Camera {
    pub id: Id,
    /// `rtsp://host[:port]/path`, without credentials.
    pub url: String,
    pub transport: Transport,
    pub username: Option<String>,
    pub password: Option<SecretRef>,
}

/// Where a secret lives. The value is read only when needed and never printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// A file readable by the daemon and nobody else.
    File(PathBuf),
    /// A systemd credential (`LoadCredential=NAME:...`), read from `$CREDENTIALS_DIRECTORY/NAME`.
    Credential(String),
}

impl SecretRef {
    /// Where the secret is on disk now, if that can be known.
    pub fn path(&self) -> Option<PathBuf> {
        match self {
            SecretRef::File(p) => Some(p.clone()),
            SecretRef::Credential(name) => {
                std::env::var_os("CREDENTIALS_DIRECTORY").map(|d| Path::new(&d).join(name))
            }
        }
    }

    /// Reads the secret, trimming one trailing newline.
    pub fn read(&self) -> Result<Secret, SecretError> {
        let path = self
            .path()
            .ok_or_else(|| SecretError::NoCredentials(self.to_string()))?;
        let mut s = std::fs::read_to_string(&path).map_err(|source| SecretError::Unreadable {
            what: self.to_string(),
            path: path.clone(),
            source,
        })?;
        if s.ends_with('\n') {
            s.pop();
        }
        Ok(Secret(s))
    }
}

/// Why a secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "{0} is a systemd credential but $CREDENTIALS_DIRECTORY is not set: start the daemon with LoadCredential= or use password_file"
    )]
    NoCredentials(String),
    #[error("cannot read {what} at {}: {source}", path.display())]
    Unreadable {
        what: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::File(p) => write!(f, "file {}", p.display()),
            SecretRef::Credential(n) => write!(f, "systemd credential {n}"),
        }
    }
}

/// The example configuration's placeholder operator, contact and site (and its phone number,
/// from Ofcom's range for drama): refused, as they would end up in every evidence README.
pub const EXAMPLE_PLACEHOLDERS: [&str; 4] = [
    "Example Housing Association, Community Safety Team",
    "cctv@example.org",
    "0161 496 0000",
    "10 Example Road",
];

/// The recipients in `recorder.example.toml`: samples, refused in a real configuration.
pub const SAMPLE_RECIPIENTS: [&str; 2] = [
    "age1v4jwpt5lvysp3e632nr3kefzx0g4zama65ca47ghsuldkuwmw5yqsmv420",
    "age1lekw923ffg2rk6azghd4hleagkltqchf6tgy87zlk4qk8wv0t93sedalle",
];

/// Passwords cameras ship with (and the ones people type first): a unit must not record with
/// one, since anyone on the camera's network could take the camera over (R11).
const FACTORY_PASSWORDS: &[&str] = &[
    "", "admin", "12345", "123456", "1234", "1111", "111111", "888888", "666666", "54321",
    "password", "pass", "root", "system", "ubnt", "meinsm", "4321", "9999", "admin123", "camera",
    "default",
];

/// Why a camera's credentials are a factory default, if they are.
pub fn factory_default(username: Option<&str>, password: &str) -> Option<String> {
    let pw = password.trim();
    if FACTORY_PASSWORDS.iter().any(|d| d.eq_ignore_ascii_case(pw)) {
        return Some(if pw.is_empty() {
            "an empty password".to_owned()
        } else {
            "a factory-default password".to_owned()
        });
    }
    if username.is_some_and(|u| u.eq_ignore_ascii_case(pw)) {
        return Some("a password equal to the username".to_owned());
    }
    None
}

/// A secret value. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// How much disk the store may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// At most this many bytes of segments.
    MaxBytes(u64),
    /// Use the file system's space but keep this many bytes free.
    ReserveFree(u64),
}

/// The encrypted ring buffer.
#[derive(Debug, Clone)]
pub struct Storage {
    pub path: PathBuf,
    pub budget: Budget,
    pub retention_days: u32,
    /// A segment is cut at the first keyframe after this many seconds.
    pub segment_secs: u32,
    /// Written footage is made durable (fdatasync) at least this often.
    pub sync_interval: Duration,
    /// Each camera's preview track keeps one keyframe this often; `None`: no previews.
    pub preview_interval: Option<Duration>,
}

/// The preview track's default spacing.
pub const DEFAULT_PREVIEW_INTERVAL: Duration = Duration::from_secs(10);

/// An age X25519 recipient: every segment is encrypted to all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub name: String,
    /// The `age1...` string.
    pub encoded: String,
    /// The X25519 public key.
    pub key: [u8; 32],
}

impl Recipient {
    /// Parses an `age1...` X25519 recipient.
    pub fn parse_key(s: &str) -> Result<[u8; 32], KeyError> {
        let (hrp, data) = bech32::decode(s).map_err(|e| KeyError::NotBech32(e.to_string()))?;
        if hrp.as_str() != "age" {
            return Err(KeyError::Prefix(hrp.as_str().to_owned()));
        }
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(KeyError::UpperCase);
        }
        data.try_into()
            .map_err(|d: Vec<u8>| KeyError::Length(d.len()))
    }
}

/// Why a string is not an age X25519 recipient.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not a bech32 string ({0})")]
    NotBech32(String),
    #[error("prefix is {0:?}, an age X25519 public key starts with age1")]
    Prefix(String),
    #[error("age public keys are lower case")]
    UpperCase,
    #[error("holds {0} bytes, an X25519 key has 32")]
    Length(usize),
}

pub use rdc_format::Role;

/// The QUIC uplink through which officers reach the unit.
#[derive(Debug, Clone)]
pub struct Uplink {
    pub listen: SocketAddr,
    pub cert: PathBuf,
    pub key: SecretRef,
    pub ca: PathBuf,
    /// Certificates revoked by the scheme (a PEM CRL), refused at the handshake.
    pub crl: Option<PathBuf>,
    pub users: Vec<User>,
    /// A still's request or approval older than this is refused (default 7 days).
    pub still_max_age: Duration,
    /// The WireGuard interface through which the scheme reaches the unit; `listen` is then an
    /// address of that tunnel and nothing listens on the 4G side.
    pub vpn: Option<Vpn>,
}

/// `[uplink.vpn]`: the unit dials out to the scheme's hub over WireGuard (R18).
#[derive(Debug, Clone)]
pub struct Vpn {
    pub interface: String,
}

/// A person allowed to connect, matched by certificate fingerprint or subject common name.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// SHA-256 of the user's DER certificate.
    pub fingerprint: Option<[u8; 32]>,
    /// The certificate subject's common name.
    pub common_name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// journald-friendly when started by systemd (`$JOURNAL_STREAM` set), pretty on a terminal.
    Auto,
    Journald,
    Pretty,
    Json,
}

#[derive(Debug, Clone)]
pub struct Logging {
    /// A tracing `EnvFilter` directive, e.g. `info` or `info,rdc_storage=debug`.
    pub level: String,
    pub format: LogFormat,
}

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key, as a TOML path: `storage.retention_days`, `camera[1].id`.
    pub key: String,
    /// The offending value as written, or empty when the key is missing.
    pub value: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.is_empty() {
            write!(f, "{}: {}", self.key, self.message)
        } else {
            write!(f, "{} = {}: {}", self.key, self.value, self.message)
        }
    }
}

/// Why a configuration was refused: every problem found, not just the first.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{source_name} is not valid TOML: {message}")]
    Syntax {
        source_name: String,
        message: String,
    },
    #[error("{source_name} has {} problem(s):\n{}", problems.len(), problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        source_name: String,
        problems: Vec<Problem>,
    },
}

impl Problem {
    /// Whether this is a sample key or a default credential (R11): what `init` refuses before
    /// it makes a unit's identity, when other problems (a certificate not issued yet) are
    /// expected.
    pub fn is_sample_or_default(&self) -> bool {
        self.message
            .contains("sample key from recorder.example.toml")
            || self
                .message
                .contains("no default credentials survive deployment")
            || self
                .message
                .contains("the example configuration's placeholder")
    }
}

impl ConfigError {
    /// The individual problems (empty for read and syntax errors).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid { problems, .. } => problems,
            _ => &[],
        }
    }
}

/// A valid configuration and the warnings it raised.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Problem>,
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Validates configuration text. `source_name` names it in messages.
    pub fn from_toml(text: &str, source_name: &str) -> Result<Loaded, ConfigError> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            source_name: source_name.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        // Every wrong type, missing and unknown key first, all at once; then the values.
        let (mut problems, repaired) = schema::check_file(&mut table);
        let file: raw::File = match toml::Value::Table(table).try_into() {
            Ok(f) => f,
            Err(e) => {
                problems.push(Problem {
                    key: "(file)".into(),
                    value: String::new(),
                    message: e.to_string().trim_end().to_owned(),
                });
                return Err(ConfigError::Invalid {
                    source_name: source_name.to_owned(),
                    problems,
                });
            }
        };
        let mut v = Validator::default();
        let config = v.file(file);
        // What the value checks say about a placeholder is already said better above.
        let placeholder = |key: &str| {
            repaired.iter().any(|r| {
                key == r || key.starts_with(&format!("{r}.")) || key.starts_with(&format!("{r}["))
            })
        };
        problems.extend(v.problems.into_iter().filter(|p| !placeholder(&p.key)));
        match config {
            Some(config) if problems.is_empty() => Ok(Loaded {
                config,
                warnings: v.warnings,
            }),
            _ => Err(ConfigError::Invalid {
                source_name: source_name.to_owned(),
                problems,
            }),
        }
    }

    /// The effective configuration, defaults filled in, as TOML. Secrets appear only as the
    /// file or credential that holds them.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(&self.effective).unwrap_or_else(|e| format!("# cannot print: {e}\n"))
    }

    pub fn camera(&self, id: &str) -> Option<&Camera> {
        self.cameras.iter().find(|c| c.id.as_str() == id)
    }
}

#[cfg(test)]
mod tests;
