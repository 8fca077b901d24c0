//! The units file (`~/.config/rdc/units.toml`) and connecting to a unit named in it.

use crate::*;

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
    #[serde(default)]
    pub(crate) unit: std::collections::BTreeMap<String, UnitEntry>,
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
