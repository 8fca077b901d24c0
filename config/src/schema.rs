//! The shape of `recorder.toml`, checked before serde sees it, so every wrong type, missing
//! key and unknown key is reported at once (serde stops at the first), each with its full key
//! (`camera[1].url`) and what is allowed there. Offending values are replaced by placeholders
//! so that the value checks of [`crate::validator::Validator`] still run on everything else in the same
//! pass; their complaints about the placeholders are dropped.

use crate::Problem;

/// What a key holds.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Str,
    Int,
    /// A byte count: an integer or text such as "200 GiB".
    Size,
    Table(&'static [Field]),
    Tables(&'static [Field]),
}

#[derive(Debug)]
struct Field {
    name: &'static str,
    kind: Kind,
    required: bool,
    /// What is allowed, in words.
    help: &'static str,
}

const fn req(name: &'static str, kind: Kind, help: &'static str) -> Field {
    Field {
        name,
        kind,
        required: true,
        help,
    }
}

const fn opt(name: &'static str, kind: Kind, help: &'static str) -> Field {
    Field {
        name,
        kind,
        required: false,
        help,
    }
}

const UNIT: &[Field] = &[
    req(
        "id",
        Kind::Str,
        "the unit's id: 1 to 32 of a-z, 0-9, '-', '_'",
    ),
    req(
        "operator",
        Kind::Str,
        "who operates the unit (the data controller)",
    ),
    req("contact", Kind::Str, "how the public contacts the operator"),
    req(
        "purpose",
        Kind::Str,
        "why the unit records, as the operator's policy says",
    ),
    req("site", Kind::Str, "where the unit is installed"),
    opt(
        "signing_key",
        Kind::Str,
        "an absolute path to the unit's Ed25519 key",
    ),
];

const STORAGE: &[Field] = &[
    req(
        "path",
        Kind::Str,
        "an absolute path to the store's directory",
    ),
    opt(
        "max_bytes",
        Kind::Size,
        "a size such as \"200 GiB\" (at least 64 MiB)",
    ),
    opt(
        "reserve_free",
        Kind::Size,
        "a size to keep free, such as \"1 GiB\"",
    ),
    opt(
        "retention_days",
        Kind::Int,
        "days to keep footage, 1 to 42 (usually 28 to 35)",
    ),
    opt("segment_secs", Kind::Int, "seconds per segment, 10 to 600"),
    opt(
        "sync_interval",
        Kind::Str,
        "a duration such as \"1s\" or \"500ms\" (100 ms to 10 s)",
    ),
    opt(
        "preview_interval",
        Kind::Str,
        "a duration such as \"10s\" (1 s to 10 min), or \"off\"",
    ),
];

const CAMERA: &[Field] = &[
    req(
        "id",
        Kind::Str,
        "the camera's id: 1 to 32 of a-z, 0-9, '-', '_'",
    ),
    req(
        "url",
        Kind::Str,
        "rtsp://host[:port]/path, without credentials",
    ),
    opt("transport", Kind::Str, "\"tcp\", \"udp\" or \"auto\""),
    opt("username", Kind::Str, "the camera's RTSP user name"),
    opt(
        "password_file",
        Kind::Str,
        "an absolute path to a file (mode 600) holding the password",
    ),
    opt(
        "password_credential",
        Kind::Str,
        "the name of a systemd credential holding the password",
    ),
];

const RECIPIENT: &[Field] = &[
    req("name", Kind::Str, "who holds the matching identity"),
    req(
        "public_key",
        Kind::Str,
        "an age X25519 public key (age1...)",
    ),
];

const USER: &[Field] = &[
    req(
        "name",
        Kind::Str,
        "the person's name, as the audit log shows it",
    ),
    req(
        "role",
        Kind::Str,
        "\"officer\", \"manager\", \"engineer\" or \"auditor\"",
    ),
    opt(
        "fingerprint",
        Kind::Str,
        "\"sha256:\" and the certificate's 64 hex digits (rdc keys user prints it)",
    ),
    opt(
        "common_name",
        Kind::Str,
        "the certificate subject's common name",
    ),
];

const UPLINK: &[Field] = &[
    req(
        "listen",
        Kind::Str,
        "an address and UDP port such as \"0.0.0.0:4433\"",
    ),
    req(
        "cert",
        Kind::Str,
        "an absolute path to the unit's certificate (PEM)",
    ),
    opt(
        "key_file",
        Kind::Str,
        "an absolute path to the unit's TLS key (mode 600)",
    ),
    opt(
        "key_credential",
        Kind::Str,
        "the name of a systemd credential holding the TLS key",
    ),
    req(
        "ca",
        Kind::Str,
        "an absolute path to the scheme CA's certificate (PEM)",
    ),
    opt(
        "crl",
        Kind::Str,
        "an absolute path to the scheme's CRL (PEM)",
    ),
    opt(
        "still_max_age_days",
        Kind::Int,
        "days a still's request or approval stays valid, 1 to 31 (default 7)",
    ),
    opt("user", Kind::Tables(USER), "[[uplink.user]] sections"),
    opt(
        "vpn",
        Kind::Table(VPN),
        "an [uplink.vpn] section (the unit reaches the scheme through a WireGuard hub)",
    ),
];

const VPN: &[Field] = &[req(
    "interface",
    Kind::Str,
    "the WireGuard interface `rdc-recorder init --vpn-*` made, e.g. \"rdc-vpn\"",
)];

const LOGGING: &[Field] = &[
    opt(
        "level",
        Kind::Str,
        "a tracing filter such as \"info\" or \"info,rdc_storage=debug\"",
    ),
    opt(
        "format",
        Kind::Str,
        "\"auto\", \"journald\", \"pretty\" or \"json\"",
    ),
];

const FILE: &[Field] = &[
    req("unit", Kind::Table(UNIT), "a [unit] section"),
    req("storage", Kind::Table(STORAGE), "a [storage] section"),
    opt("camera", Kind::Tables(CAMERA), "[[camera]] sections"),
    opt(
        "recipient",
        Kind::Tables(RECIPIENT),
        "[[recipient]] sections",
    ),
    opt("uplink", Kind::Table(UPLINK), "an [uplink] section"),
    opt("logging", Kind::Table(LOGGING), "a [logging] section"),
];

fn type_name(v: &toml::Value) -> &'static str {
    match v {
        toml::Value::String(_) => "text",
        toml::Value::Integer(_) => "a whole number",
        toml::Value::Float(_) => "a decimal number",
        toml::Value::Boolean(_) => "true/false",
        toml::Value::Datetime(_) => "a date",
        toml::Value::Array(_) => "a list",
        toml::Value::Table(_) => "a section",
    }
}

fn expected(kind: Kind) -> &'static str {
    match kind {
        Kind::Str => "text in quotes",
        Kind::Int => "a whole number (no quotes)",
        Kind::Size => "a whole number of bytes or text such as \"200 GiB\"",
        Kind::Table(_) => "a section",
        Kind::Tables(_) => "a list of sections ([[...]])",
    }
}

fn placeholder(kind: Kind) -> toml::Value {
    match kind {
        Kind::Str => toml::Value::String(String::new()),
        Kind::Int | Kind::Size => toml::Value::Integer(0),
        Kind::Table(_) => toml::Value::Table(toml::Table::new()),
        Kind::Tables(_) => toml::Value::Array(Vec::new()),
    }
}

fn short(v: &toml::Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}...", s.chars().take(57).collect::<String>())
    } else {
        s
    }
}

/// Checks `table` against `fields` under `prefix`, recording problems and repairing the table
/// with placeholders. Returns the keys that were repaired.
fn check(
    table: &mut toml::Table,
    fields: &'static [Field],
    prefix: &str,
    problems: &mut Vec<Problem>,
    repaired: &mut Vec<String>,
) {
    let key_of = |name: &str| {
        if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}.{name}")
        }
    };
    let unknown: Vec<String> = table
        .keys()
        .filter(|k| !fields.iter().any(|f| f.name == k.as_str()))
        .cloned()
        .collect();
    for k in unknown {
        let v = table.remove(&k).expect("listed above");
        problems.push(Problem {
            key: key_of(&k),
            value: short(&v),
            message: format!(
                "unknown key; {} allowed here: {}",
                if prefix.is_empty() {
                    "sections"
                } else {
                    "keys"
                },
                fields.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
            ),
        });
    }
    for f in fields {
        let key = key_of(f.name);
        let Some(v) = table.get_mut(f.name) else {
            if f.required {
                problems.push(Problem {
                    key: key.clone(),
                    value: String::new(),
                    message: format!("missing: add {}", f.help),
                });
                table.insert(f.name.to_owned(), placeholder(f.kind));
                repaired.push(key.clone());
                if let (Kind::Table(sub), Some(toml::Value::Table(t))) =
                    (f.kind, table.get_mut(f.name))
                {
                    check(t, sub, &key, problems, repaired);
                }
            }
            continue;
        };
        let ok = match (f.kind, &mut *v) {
            (Kind::Str, toml::Value::String(_)) => true,
            (Kind::Int, toml::Value::Integer(i)) => *i >= 0 && *i <= i64::from(u32::MAX),
            (Kind::Size, toml::Value::Integer(i)) => *i >= 0,
            (Kind::Size, toml::Value::String(_)) => true,
            (Kind::Table(sub), toml::Value::Table(t)) => {
                check(t, sub, &key, problems, repaired);
                true
            }
            (Kind::Tables(sub), toml::Value::Array(items)) => {
                let mut all_tables = true;
                for (i, item) in items.iter_mut().enumerate() {
                    match item {
                        toml::Value::Table(t) => {
                            check(t, sub, &format!("{key}[{i}]"), problems, repaired)
                        }
                        other => {
                            problems.push(Problem {
                                key: format!("{key}[{i}]"),
                                value: short(other),
                                message: format!("is {}, must be a section", type_name(other)),
                            });
                            all_tables = false;
                        }
                    }
                }
                if !all_tables {
                    items.retain(|i| i.is_table());
                    repaired.push(key.clone());
                }
                true
            }
            _ => false,
        };
        if !ok {
            let got = match &*v {
                toml::Value::Integer(i) if *i < 0 => "a negative number",
                toml::Value::Integer(_) if matches!(f.kind, Kind::Int) => "too large a number",
                other => type_name(other),
            };
            problems.push(Problem {
                key: key.clone(),
                value: short(v),
                message: format!("is {got}, must be {}: {}", expected(f.kind), f.help),
            });
            *v = placeholder(f.kind);
            repaired.push(key);
        }
    }
}

/// Checks the file's shape. Returns the problems found and the keys replaced by placeholders
/// (whose value-check complaints are noise), leaving `table` in a shape serde accepts.
pub(crate) fn check_file(table: &mut toml::Table) -> (Vec<Problem>, Vec<String>) {
    let (mut problems, mut repaired) = (Vec::new(), Vec::new());
    check(table, FILE, "", &mut problems, &mut repaired);
    (problems, repaired)
}
