//! The units file (`~/.config/rdc/units.toml`) and connecting to a unit named in it.

use crate::select::Target;
use anyhow::{Context as _, anyhow, bail};
use rdc_config::Id;
use rdc_uplink::client::Client;
use rdc_uplink::tls::{self, Identity};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How to reach a unit, from the units file.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UnitEntry {
    pub(crate) address: String,
    pub(crate) ca: PathBuf,
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UnitsFile {
    /// The scheme's time zone, for times written without an offset (default Europe/London).
    #[serde(default)]
    pub(crate) timezone: Option<String>,
    #[serde(default)]
    pub(crate) unit: std::collections::BTreeMap<String, UnitEntry>,
}

/// Sets the scheme's zone from the units file the command line names (`--units F`), or the
/// default one; a missing or unreadable file leaves Europe/London (the command itself then
/// says what is wrong with it, if it needs it).
pub(crate) fn set_zone_from(args: &[std::ffi::OsString]) -> anyhow::Result<()> {
    let mut path = None;
    for (i, a) in args.iter().enumerate() {
        let a = a.to_string_lossy();
        if let Some(p) = a.strip_prefix("--units=") {
            path = Some(PathBuf::from(p));
        } else if a == "--units" {
            path = args.get(i + 1).map(PathBuf::from);
        }
    }
    let path = units_path(&Target {
        unit: String::new(),
        units: path,
    });
    let zone = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| parse_units(&t).ok())
        .and_then(|f| f.timezone);
    crate::time::set_zone(zone.as_deref().unwrap_or(crate::time::DEFAULT_ZONE))
        .with_context(|| format!("in {}", path.display()))
}

/// For the fuzz targets: parses a units file, says whether it is valid. Not an API.
#[doc(hidden)]
pub fn fuzz_units_file(text: &str) -> bool {
    parse_units(text).is_ok()
}

/// Parses a units file: `[unit.NAME]` sections with `address`, `ca`, `cert`, `key`.
pub(crate) fn parse_units(text: &str) -> Result<UnitsFile, toml::de::Error> {
    toml::from_str(text)
}

pub(crate) fn units_path(t: &Target) -> PathBuf {
    t.units.clone().unwrap_or_else(|| {
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".config")
            });
        base.join("rdc/units.toml")
    })
}

/// The units file's entry for `t`.
pub(crate) fn entry(t: &Target) -> anyhow::Result<UnitEntry> {
    let path = units_path(t);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the units file {}", path.display()))?;
    let mut file = parse_units(&text)
        .with_context(|| format!("{} is not a valid units file", path.display()))?;
    let u = file.unit.remove(&t.unit).ok_or_else(|| {
        anyhow!(
            "no unit {:?} in {}: add a [unit.{}] section",
            t.unit,
            path.display(),
            t.unit
        )
    })?;
    Ok(u)
}

pub(crate) async fn connect(t: &Target) -> anyhow::Result<Client> {
    let u = entry(t)?;
    let addr = tokio::net::lookup_host(&u.address)
        .await
        .with_context(|| format!("unit {}: cannot resolve {}", t.unit, u.address))?
        .next()
        .ok_or_else(|| anyhow!("unit {}: {} resolves to nothing", t.unit, u.address))?;
    let id = Identity::from_files(&u.cert, &u.key)?;
    let ca = std::fs::read_to_string(&u.ca)
        .with_context(|| format!("reading the CA certificate {}", u.ca.display()))?;
    let cfg = tls::client_config(&id, &ca)?;
    Ok(Client::connect(addr, &t.unit, cfg).await?)
}

/// One unit's line in `rdc units status`.
#[derive(Debug, serde::Serialize)]
pub(crate) struct FleetLine {
    pub(crate) unit: String,
    pub(crate) reachable: bool,
    /// Why not, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) problem: Option<String>,
    /// Seconds since the unit's tunnel last shook hands with the hub (units behind a hub).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) handshake_age_s: Option<u64>,
    /// The unit's clock less this machine's, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) clock_offset_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) clock_synchronized: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cameras_recording: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cameras: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) days_held: Option<f64>,
    /// The newest audit entry this machine has checked from the unit, and when.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) audit_anchor_seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) audit_anchor_seen: Option<String>,
    /// How long the unit took to answer, in seconds.
    pub(crate) seconds: f64,
}

/// TLS configurations by (CA, certificate, key) files: a fleet usually shares one.
type Credentials =
    Arc<Mutex<std::collections::HashMap<(PathBuf, PathBuf, PathBuf), quinn::ClientConfig>>>;

/// Asks one unit for its status from the shared endpoint, within `timeout`.
async fn ask(
    endpoint: quinn::Endpoint,
    name: String,
    u: Result<UnitEntry, String>,
    creds: Credentials,
    timeout: Duration,
) -> FleetLine {
    let t0 = std::time::Instant::now();
    let mut line = FleetLine {
        unit: name.clone(),
        reachable: false,
        problem: None,
        handshake_age_s: None,
        clock_offset_s: None,
        clock_synchronized: None,
        cameras_recording: None,
        cameras: None,
        days_held: None,
        audit_anchor_seq: None,
        audit_anchor_seen: None,
        seconds: 0.0,
    };
    let work = async {
        let u = u.map_err(|e| anyhow!(e))?;
        let addr = tokio::net::lookup_host(&u.address)
            .await
            .with_context(|| format!("cannot resolve {}", u.address))?
            .next()
            .ok_or_else(|| anyhow!("{} resolves to nothing", u.address))?;
        let key = (u.ca.clone(), u.cert.clone(), u.key.clone());
        let cached = creds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned();
        let cfg = match cached {
            Some(c) => c,
            None => {
                let id = Identity::from_files(&u.cert, &u.key)?;
                let ca = std::fs::read_to_string(&u.ca)
                    .with_context(|| format!("reading the CA certificate {}", u.ca.display()))?;
                let c = tls::client_config(&id, &ca)?;
                creds
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key, c.clone());
                c
            }
        };
        let client = Client::connect_on(endpoint, addr, &name, cfg).await?;
        let st = client.status().await;
        client.close();
        anyhow::Ok(st?)
    };
    match tokio::time::timeout(timeout, work).await {
        Err(_) => {
            line.problem = Some(format!(
                "no answer within {:.0} s: link down, unit off, or its tunnel not up",
                timeout.as_secs_f64()
            ))
        }
        Ok(Err(e)) => line.problem = Some(format!("{e:#}")),
        Ok(Ok(st)) => {
            line.reachable = true;
            line.clock_offset_s = Some((st.time_ns - crate::time::now_ns()) as f64 / 1e9);
            line.days_held = Some(st.store.effective_retention_days());
            if let Some(l) = &st.live {
                line.clock_synchronized = Some(l.clock.synchronized);
                line.cameras = Some(l.cameras.len());
                line.cameras_recording = Some(l.cameras.iter().filter(|c| c.recording).count());
                line.handshake_age_s = l.tunnel.as_ref().and_then(|t| t.handshake_age_s);
            }
        }
    }
    line.seconds = t0.elapsed().as_secs_f64();
    line
}

/// Every unit of the units file, asked at once (at most `jobs` at a time, `timeout` each).
pub(crate) async fn fleet(
    units: Option<PathBuf>,
    timeout: Duration,
    jobs: usize,
) -> anyhow::Result<Vec<FleetLine>> {
    use futures_util::StreamExt as _;
    let path = units_path(&Target {
        unit: String::new(),
        units,
    });
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the units file {}", path.display()))?;
    let file = parse_units(&text)
        .with_context(|| format!("{} is not a valid units file", path.display()))?;
    let endpoint = Client::endpoint(false)?;
    let creds = Arc::new(Mutex::new(std::collections::HashMap::new()));
    let anchors = crate::units::read_anchors();
    let asks = file.unit.into_iter().map(|(name, u)| {
        let valid = Id::parse(&name)
            .map(|_| u)
            .map_err(|m| format!("[unit.{name}]: not a unit id: {m}"));
        ask(endpoint.clone(), name, valid, creds.clone(), timeout)
    });
    let mut lines: Vec<FleetLine> = futures_util::stream::iter(asks)
        .buffer_unordered(jobs.max(1))
        .collect()
        .await;
    lines.sort_by(|a, b| a.unit.cmp(&b.unit));
    for l in &mut lines {
        if let Some(a) = anchors.get(&l.unit) {
            l.audit_anchor_seq = Some(a.seq);
            l.audit_anchor_seen = Some(a.seen.clone());
        }
    }
    Ok(lines)
}

/// `rdc units status`.
pub(crate) async fn fleet_status(
    units: Option<PathBuf>,
    json: bool,
    timeout: f64,
    jobs: usize,
) -> anyhow::Result<()> {
    if !(0.1..=600.0).contains(&timeout) {
        bail!("--timeout {timeout}: from 0.1 to 600 seconds");
    }
    let lines = fleet(units, Duration::from_secs_f64(timeout), jobs).await?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&lines)?);
        return Ok(());
    }
    let width = lines.iter().map(|l| l.unit.len()).max().unwrap_or(4).max(4);
    let up = lines.iter().filter(|l| l.reachable).count();
    for l in &lines {
        let anchor = match (&l.audit_anchor_seq, &l.audit_anchor_seen) {
            (Some(s), Some(t)) => format!("audit checked to #{s} ({t})"),
            _ => "audit never checked here".into(),
        };
        if !l.reachable {
            outln!(
                "{:width$}  UNREACHABLE  {}; {anchor}",
                l.unit,
                l.problem.as_deref().unwrap_or("")
            );
            continue;
        }
        let handshake = l
            .handshake_age_s
            .map_or("direct".into(), |s| format!("handshake {s} s ago"));
        let clock = match (l.clock_offset_s, l.clock_synchronized) {
            (Some(o), Some(true)) => format!("clock {o:+.1} s, synced"),
            (Some(o), _) => format!("clock {o:+.1} s, NOT synced"),
            _ => "clock ?".into(),
        };
        let cams = match (l.cameras_recording, l.cameras) {
            (Some(r), Some(n)) if r == n => format!("{r}/{n} cameras recording"),
            (Some(r), Some(n)) => format!("{r}/{n} cameras recording (CHECK)"),
            _ => "cameras ?".into(),
        };
        outln!(
            "{:width$}  reachable    {handshake}; {clock}; {cams}; {:.1} days held; {anchor}",
            l.unit,
            l.days_held.unwrap_or(0.0)
        );
    }
    eprintln!("{up} of {} units reachable", lines.len());
    Ok(())
}

/// The newest audit entry seen from a unit: what its log must still contain next time.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Anchor {
    pub(crate) unit_key: String,
    pub(crate) seq: u64,
    pub(crate) hash: String,
    /// When this machine checked it (RFC 3339).
    pub(crate) seen: String,
}

/// The anchors this machine holds, by unit (none when it never read an audit log).
pub(crate) fn read_anchors() -> std::collections::BTreeMap<String, Anchor> {
    std::fs::read(anchors_path())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

pub(crate) fn anchors_path() -> PathBuf {
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".local/state")
        })
        .join("rdc/audit-anchors.json")
}
