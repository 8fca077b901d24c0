//! The value checks of a configuration: turns the file as written ([`crate::raw`]) into a
//! [`Config`], reporting every problem at once.

use super::*;

/// The size of the file system that holds `path` (or its nearest existing ancestor).
fn filesystem_size(path: &Path) -> Option<(PathBuf, u64)> {
    let existing = path.ancestors().find(|p| p.exists())?;
    let st = rustix::fs::statvfs(existing).ok()?;
    Some((existing.to_owned(), st.f_blocks.saturating_mul(st.f_frsize)))
}

/// Collects every problem in a configuration, each with its key, its value and what is allowed.
#[derive(Default)]
pub(crate) struct Validator {
    pub(crate) problems: Vec<Problem>,
    pub(crate) warnings: Vec<Problem>,
}

impl Validator {
    fn err(
        &mut self,
        key: impl Into<String>,
        value: impl fmt::Display,
        message: impl fmt::Display,
    ) {
        self.problems.push(Problem {
            key: key.into(),
            value: value.to_string(),
            message: message.to_string(),
        });
    }

    fn warn(
        &mut self,
        key: impl Into<String>,
        value: impl fmt::Display,
        message: impl fmt::Display,
    ) {
        self.warnings.push(Problem {
            key: key.into(),
            value: value.to_string(),
            message: message.to_string(),
        });
    }

    pub(crate) fn file(&mut self, mut f: raw::File) -> Option<Config> {
        let unit = self.unit(&mut f.unit);
        let storage = self.storage(&mut f.storage);
        let cameras = self.cameras(&f.camera);
        let recipients = self.recipients(&f.recipient);
        let uplink = f.uplink.as_ref().and_then(|u| self.uplink(u));
        let logging = self.logging(&mut f.logging);
        Some(Config {
            unit: unit?,
            cameras: cameras?,
            storage: storage?,
            recipients: recipients?,
            uplink: match (&f.uplink, uplink) {
                (Some(_), None) => return None,
                (_, u) => u,
            },
            logging: logging?,
            effective: f,
        })
    }

    fn text(&mut self, key: &str, value: &str, max: usize) -> Option<String> {
        let t = value.trim();
        if t.is_empty() {
            self.err(key, "\"\"", "must not be empty");
            None
        } else if t.len() > max {
            self.err(
                key,
                format!("({} characters)", t.len()),
                format!("at most {max} characters"),
            );
            None
        } else {
            Some(t.to_owned())
        }
    }

    fn absolute(&mut self, key: &str, p: &Path) -> Option<PathBuf> {
        if p.is_absolute() {
            Some(p.to_owned())
        } else {
            self.err(
                key,
                p.display(),
                "must be an absolute path (starting with /)",
            );
            None
        }
    }

    fn unit(&mut self, u: &mut raw::Unit) -> Option<Unit> {
        let id = Id::parse(&u.id)
            .map_err(|m| self.err("unit.id", format!("{:?}", u.id), m))
            .ok();
        let operator = self.text("unit.operator", &u.operator, 200);
        let contact = self.text("unit.contact", &u.contact, 200);
        let purpose = self.text("unit.purpose", &u.purpose, 1000);
        let site = self.text("unit.site", &u.site, 200);
        for (key, value) in [
            ("unit.operator", &u.operator),
            ("unit.contact", &u.contact),
            ("unit.site", &u.site),
        ] {
            if crate::EXAMPLE_PLACEHOLDERS
                .iter()
                .any(|p| value.contains(p))
            {
                self.err(
                    key,
                    format!("{value:?}"),
                    "is the example configuration's placeholder: put the scheme's own here (it is printed in every evidence export's README and on the unit's signage)",
                );
            }
        }
        let signing_key = u
            .signing_key
            .get_or_insert_with(|| PathBuf::from("/var/lib/rdc/unit-signing-key.p8"))
            .clone();
        let signing_key = self.absolute("unit.signing_key", &signing_key);
        if let Some(p) = &signing_key {
            match std::fs::metadata(p) {
                Ok(m) if m.permissions().mode() & 0o077 != 0 => self.err(
                    "unit.signing_key",
                    p.display(),
                    format!(
                        "is readable by others (mode {:o}): chmod 600 it",
                        m.permissions().mode() & 0o777
                    ),
                ),
                Ok(_) => {
                    if let Err(e) = std::fs::File::open(p) {
                        self.err(
                            "unit.signing_key",
                            p.display(),
                            format!("cannot be read: {e}"),
                        );
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => self.err(
                    "unit.signing_key",
                    p.display(),
                    format!("cannot be read: {e}"),
                ),
            }
        }
        Some(Unit {
            id: id?,
            operator: operator?,
            contact: contact?,
            purpose: purpose?,
            site: site?,
            signing_key: signing_key?,
        })
    }

    fn storage(&mut self, s: &mut raw::Storage) -> Option<Storage> {
        let path = self.absolute("storage.path", &s.path);
        let budget = match (&s.max_bytes, &s.reserve_free) {
            (Some(_), Some(_)) => {
                self.err(
                    "storage.max_bytes",
                    "",
                    "set either storage.max_bytes or storage.reserve_free, not both",
                );
                None
            }
            (Some(v), None) => match v.bytes() {
                Ok(b) if b >= 64 << 20 => {
                    if let Some((fs, size)) = path.as_deref().and_then(filesystem_size)
                        && b > size
                    {
                        self.warn(
                            "storage.max_bytes",
                            v,
                            format!(
                                "is more than the file system at {} holds ({size} bytes): the disk's free space will limit the store instead (it deletes the oldest footage before the disk fills); set max_bytes below {size}, or use reserve_free",
                                fs.display()
                            ),
                        );
                    }
                    Some(Budget::MaxBytes(b))
                }
                Ok(_) => {
                    self.err("storage.max_bytes", v, "must be at least 64 MiB");
                    None
                }
                Err(m) => {
                    self.err("storage.max_bytes", v, m);
                    None
                }
            },
            (None, reserve) => {
                let v = reserve.clone().unwrap_or(raw::Size::Text("1 GiB".into()));
                s.reserve_free = Some(v.clone());
                match v.bytes() {
                    Ok(b) => Some(Budget::ReserveFree(b)),
                    Err(m) => {
                        self.err("storage.reserve_free", &v, m);
                        None
                    }
                }
            }
        };
        let days = *s.retention_days.get_or_insert(DEFAULT_RETENTION_DAYS);
        let retention_days = if !(1..=MAX_RETENTION_DAYS).contains(&days) {
            self.err(
                "storage.retention_days",
                days,
                format!("must be 1 to {MAX_RETENTION_DAYS} (policies cap retention at six weeks; 28 for the Standard 4G kit, 35 for the redeployable camera)"),
            );
            None
        } else {
            if !NORMAL_RETENTION_DAYS.contains(&days) {
                self.warn("storage.retention_days", days, "outside the usual 28 to 35 days: check this is what the operator's policy says");
            }
            Some(days)
        };
        let secs = *s.segment_secs.get_or_insert(60);
        let segment_secs = if (10..=600).contains(&secs) {
            Some(secs)
        } else {
            self.err("storage.segment_secs", secs, "must be 10 to 600 seconds");
            None
        };
        let si = s.sync_interval.get_or_insert_with(|| "1s".into()).clone();
        let sync_interval = match parse_duration(&si) {
            Ok(d) if d >= Duration::from_millis(100) && d <= Duration::from_secs(10) => Some(d),
            Ok(_) => {
                self.err(
                    "storage.sync_interval",
                    format!("{si:?}"),
                    "must be 100ms to 10s (a power cut loses at most this much)",
                );
                None
            }
            Err(m) => {
                self.err("storage.sync_interval", format!("{si:?}"), m);
                None
            }
        };
        let pi = s
            .preview_interval
            .get_or_insert_with(|| "10s".into())
            .clone();
        let preview_interval = match parse_duration(&pi) {
            _ if pi.trim() == "off" => Some(None),
            Ok(d) if d >= Duration::from_secs(1) && d <= Duration::from_secs(600) => Some(Some(d)),
            Ok(_) => {
                self.err(
                    "storage.preview_interval",
                    format!("{pi:?}"),
                    "must be 1s to 10min (one keyframe of each camera kept this often), or \"off\"",
                );
                None
            }
            Err(m) => {
                self.err(
                    "storage.preview_interval",
                    format!("{pi:?}"),
                    format!("{m}, or \"off\""),
                );
                None
            }
        };
        Some(Storage {
            path: path?,
            budget: budget?,
            retention_days: retention_days?,
            segment_secs: segment_secs?,
            sync_interval: sync_interval?,
            preview_interval: preview_interval?,
        })
    }

    fn secret(
        &mut self,
        key: &str,
        file: &Option<PathBuf>,
        credential: &Option<String>,
        required: bool,
    ) -> Option<Option<SecretRef>> {
        match (file, credential) {
            (Some(_), Some(_)) => {
                self.err(
                    key,
                    "",
                    "give the secret as a file or as a systemd credential, not both",
                );
                None
            }
            (None, None) if required => {
                self.err(
                    key,
                    "",
                    "is required: give a file (…_file) or a systemd credential (…_credential)",
                );
                None
            }
            (None, None) => Some(None),
            (None, Some(name)) => {
                if name.is_empty() || name.contains('/') {
                    self.err(
                        key,
                        format!("{name:?}"),
                        "a credential name is a plain file name as given to LoadCredential=",
                    );
                    return None;
                }
                let r = SecretRef::Credential(name.clone());
                if let Some(p) = r.path() {
                    self.check_secret_file(key, &p);
                }
                Some(Some(r))
            }
            (Some(p), None) => {
                let p = self.absolute(key, p)?;
                if self.check_secret_file(key, &p) {
                    Some(Some(SecretRef::File(p)))
                } else {
                    None
                }
            }
        }
    }

    /// A secret file must exist, be readable, and be readable by nobody else.
    fn check_secret_file(&mut self, key: &str, p: &Path) -> bool {
        match std::fs::metadata(p) {
            Err(e) => {
                self.err(key, p.display(), format!("cannot be read: {e}"));
                false
            }
            Ok(m) if m.permissions().mode() & 0o007 != 0 => {
                self.err(
                    key,
                    p.display(),
                    format!(
                        "is world-readable (mode {:o}): a secret file must be chmod 600 or 640",
                        m.permissions().mode() & 0o777
                    ),
                );
                false
            }
            Ok(_) => match std::fs::File::open(p) {
                Ok(_) => true,
                Err(e) => {
                    self.err(key, p.display(), format!("cannot be read: {e}"));
                    false
                }
            },
        }
    }

    fn cameras(&mut self, cams: &[raw::Camera]) -> Option<Vec<Camera>> {
        if cams.is_empty() {
            self.err("camera", "", "at least one [[camera]] is required");
            return None;
        }
        if cams.len() > 16 {
            self.err("camera", cams.len(), "at most 16 cameras");
        }
        let mut out = Vec::new();
        let mut ok = true;
        for (i, c) in cams.iter().enumerate() {
            let k = |f: &str| format!("camera[{i}].{f}");
            let id = match Id::parse(&c.id) {
                Ok(id) => {
                    if out.iter().any(|o: &Camera| o.id == id)
                        || cams[..i].iter().any(|o| o.id == c.id)
                    {
                        self.err(
                            k("id"),
                            format!("{:?}", c.id),
                            "is used by another camera: camera ids must be unique",
                        );
                        None
                    } else {
                        Some(id)
                    }
                }
                Err(m) => {
                    self.err(k("id"), format!("{:?}", c.id), m);
                    None
                }
            };
            let url = self.rtsp_url(&k("url"), &c.url);
            let transport = match c.transport.as_deref().unwrap_or("tcp") {
                "tcp" => Some(Transport::Tcp),
                "udp" => Some(Transport::Udp),
                "auto" => Some(Transport::Auto),
                other => {
                    self.err(
                        k("transport"),
                        format!("{other:?}"),
                        "must be \"tcp\", \"udp\" or \"auto\"",
                    );
                    None
                }
            };
            let password = self.secret(
                &k("password_file"),
                &c.password_file,
                &c.password_credential,
                false,
            );
            if c.username.is_none() && matches!(password, Some(Some(_))) {
                self.err(k("username"), "", "a password is given but no username");
            }
            if let Some(Some(secret)) = &password {
                // Read only to compare; a secret that cannot be read yet (a systemd credential
                // outside the service) is checked when the daemon starts.
                if let Ok(pw) = secret.read()
                    && let Some(why) = crate::factory_default(c.username.as_deref(), pw.expose())
                {
                    self.err(
                        k("password_file"),
                        secret.to_string(),
                        format!("holds {why}: set a password of the camera's own on the camera, then here (no default credentials survive deployment)"),
                    );
                }
            }
            match (id, url, transport, password) {
                (Some(id), Some(url), Some(transport), Some(password)) => out.push(Camera {
                    id,
                    url,
                    transport,
                    username: c.username.clone(),
                    password,
                }),
                _ => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn rtsp_url(&mut self, key: &str, url: &str) -> Option<String> {
        let Some(rest) = url
            .strip_prefix("rtsp://")
            .or_else(|| url.strip_prefix("rtsps://"))
        else {
            self.err(
                key,
                format!("{url:?}"),
                "must start with rtsp:// or rtsps://",
            );
            return None;
        };
        let authority = rest.split('/').next().unwrap_or("");
        if authority.contains('@') {
            self.err(key, "\"rtsp://<credentials>@…\"", "must not hold credentials: put them in username and password_file (or password_credential)");
            return None;
        }
        if authority.is_empty() {
            self.err(key, format!("{url:?}"), "has no host");
            return None;
        }
        Some(url.to_owned())
    }

    fn recipients(&mut self, rs: &[raw::Recipient]) -> Option<Vec<Recipient>> {
        if rs.is_empty() {
            self.err("recipient", "", "at least one [[recipient]] (an age public key, age1…) is required: footage is encrypted to it and nothing on the unit can decrypt it");
            return None;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for (i, r) in rs.iter().enumerate() {
            let name = self.text(&format!("recipient[{i}].name"), &r.name, 100);
            if crate::SAMPLE_RECIPIENTS.contains(&r.public_key.trim()) {
                ok = false;
                self.err(
                    format!("recipient[{i}].public_key"),
                    &r.public_key,
                    "is a sample key from recorder.example.toml, whose private key is public: put the scheme's own recipients here (`rdc keys identity` prints one)",
                );
                continue;
            }
            match Recipient::parse_key(r.public_key.trim()) {
                Ok(key) => {
                    if out.iter().any(|o: &Recipient| o.key == key) {
                        self.warn(
                            format!("recipient[{i}].public_key"),
                            &r.public_key,
                            "is listed twice",
                        );
                    }
                    if let Some(name) = name {
                        out.push(Recipient {
                            name,
                            encoded: r.public_key.trim().to_owned(),
                            key,
                        });
                    } else {
                        ok = false;
                    }
                }
                Err(m) => {
                    ok = false;
                    self.err(
                        format!("recipient[{i}].public_key"),
                        format!("{:?}", r.public_key),
                        format!("is not an age X25519 public key: {m}"),
                    );
                }
            }
        }
        ok.then_some(out)
    }

    fn readable(&mut self, key: &str, p: &Path) -> Option<PathBuf> {
        let p = self.absolute(key, p)?;
        match std::fs::File::open(&p) {
            Ok(_) => Some(p),
            Err(e) => {
                self.err(key, p.display(), format!("cannot be read: {e}"));
                None
            }
        }
    }

    fn uplink(&mut self, u: &raw::Uplink) -> Option<Uplink> {
        let listen = match u.listen.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.err(
                    "uplink.listen",
                    format!("{:?}", u.listen),
                    "must be an IP address and UDP port, e.g. \"0.0.0.0:4433\" or \"[::]:4433\"",
                );
                None
            }
        };
        let vpn = match &u.vpn {
            None => Some(None),
            Some(v) => {
                let name = v.interface.trim();
                let ok = !name.is_empty()
                    && name.len() <= 15
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_=+.-".contains(c));
                if !ok {
                    self.err(
                        "uplink.vpn.interface",
                        format!("{:?}", v.interface),
                        "must be a network interface name: 1 to 15 letters, digits and _=+.-",
                    );
                    None
                } else {
                    if listen.is_some_and(|a| a.ip().is_unspecified() || !a.is_ipv4()) {
                        self.err(
                            "uplink.listen",
                            format!("{:?}", u.listen),
                            "with [uplink.vpn] the uplink listens on the unit's tunnel address only (nothing on the 4G side): give that address, e.g. \"10.77.1.7:4433\"",
                        );
                    }
                    Some(Some(Vpn {
                        interface: name.to_owned(),
                    }))
                }
            }
        };
        let cert = self.readable("uplink.cert", &u.cert);
        let ca = self.readable("uplink.ca", &u.ca);
        let crl = u.crl.as_ref().map(|p| self.readable("uplink.crl", p));
        let key = self
            .secret("uplink.key_file", &u.key_file, &u.key_credential, true)
            .flatten();
        if u.user.is_empty() {
            self.warn(
                "uplink.user",
                "",
                "no users: nobody can connect to the unit",
            );
        }
        let mut users = Vec::new();
        let mut ok = true;
        for (i, usr) in u.user.iter().enumerate() {
            let k = |f: &str| format!("uplink.user[{i}].{f}");
            let name = self.text(&k("name"), &usr.name, 100);
            let fingerprint = match &usr.fingerprint {
                None => Some(None),
                Some(f) => {
                    let hexs: String = f
                        .trim_start_matches("sha256:")
                        .chars()
                        .filter(|c| *c != ':')
                        .collect();
                    match decode_hex32(&hexs) {
                        Some(b) => Some(Some(b)),
                        None => {
                            self.err(k("fingerprint"), format!("{f:?}"), "must be the certificate's SHA-256 as 64 hex digits (\"sha256:ab12…\", colons allowed)");
                            None
                        }
                    }
                }
            };
            if usr.fingerprint.is_none() && usr.common_name.is_none() {
                self.err(
                    k("fingerprint"),
                    "",
                    "give the user's certificate fingerprint or common_name",
                );
                ok = false;
            }
            match (name, fingerprint) {
                (Some(name), Some(fingerprint)) => users.push(User {
                    name,
                    role: usr.role,
                    fingerprint,
                    common_name: usr.common_name.clone(),
                }),
                _ => ok = false,
            }
        }
        if !ok {
            return None;
        }
        let crl = match crl {
            Some(None) => return None,
            Some(Some(p)) => Some(p),
            None => None,
        };
        let still_days = u.still_max_age_days.unwrap_or(7);
        let still_max_age = if (1..=31).contains(&still_days) {
            Some(std::time::Duration::from_secs(
                u64::from(still_days) * 86_400,
            ))
        } else {
            self.err(
                "uplink.still_max_age_days",
                still_days,
                "must be 1 to 31 days (a still's request and approval are acted on within days)",
            );
            None
        };
        Some(Uplink {
            still_max_age: still_max_age?,
            vpn: vpn?,
            listen: listen?,
            cert: cert?,
            key: key?,
            ca: ca?,
            crl,
            users,
        })
    }

    fn logging(&mut self, l: &mut raw::Logging) -> Option<Logging> {
        let level = l.level.get_or_insert_with(|| "info".into()).clone();
        let format = match l.format.get_or_insert_with(|| "auto".into()).as_str() {
            "auto" => Some(LogFormat::Auto),
            "journald" => Some(LogFormat::Journald),
            "pretty" => Some(LogFormat::Pretty),
            "json" => Some(LogFormat::Json),
            other => {
                self.err(
                    "logging.format",
                    format!("{other:?}"),
                    "must be \"auto\", \"journald\", \"pretty\" or \"json\"",
                );
                None
            }
        };
        Some(Logging {
            level,
            format: format?,
        })
    }
}

fn decode_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}
