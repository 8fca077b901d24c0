//! Which unit, which footage, and why: the arguments most commands share.

use std::path::PathBuf;

use anyhow::bail;
use rdc_config::Id;
use rdc_uplink::protocol::{Justification, Purpose};

#[derive(clap::Args, Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Target {
    /// The unit, as named in the units file.
    #[arg(long, short)]
    pub(crate) unit: String,
    /// The units file (default: $XDG_CONFIG_HOME/rdc/units.toml or ~/.config/rdc/units.toml).
    #[arg(long)]
    pub(crate) units: Option<PathBuf>,
}

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct Why {
    /// Why the footage is accessed: view, export or still.
    #[arg(long, default_value = "view")]
    pub(crate) purpose: String,
    /// The case reference (required for footage).
    #[arg(long = "case")]
    pub(crate) case_ref: String,
    /// The reason (required for footage).
    #[arg(long)]
    pub(crate) reason: String,
}

impl Why {
    pub(crate) fn justification(&self) -> anyhow::Result<Justification> {
        let purpose = match self.purpose.as_str() {
            "view" => Purpose::View,
            "export" => Purpose::Export,
            "still" => Purpose::Still,
            p => bail!("--purpose {p:?}: use view, export or still"),
        };
        Ok(Justification {
            purpose,
            case_ref: self.case_ref.clone(),
            reason: self.reason.clone(),
        })
    }
}

/// Which footage, and why.
#[derive(clap::Args, Debug)]
pub(crate) struct Footage {
    /// The camera's id (a-z, 0-9, '-', '_').
    #[arg(long)]
    pub(crate) camera: Id,
    /// Start: a local time in the scheme's zone (2026-11-23T18:00), one with an offset
    /// (2026-11-23T18:00:00Z), or now-10m, now-2h, now-1d.
    #[arg(long, default_value = "now-1h")]
    pub(crate) from: String,
    /// End: as --from.
    #[arg(long, default_value = "now")]
    pub(crate) to: String,
    #[command(flatten)]
    pub(crate) why: Why,
}

/// Where footage comes from: the unit over its link, or a memory stick it wrote.
#[derive(clap::Args, Debug)]
pub(crate) struct Source {
    /// The unit, as named in the units file (with --from-stick: the stick names it).
    #[arg(long, short, required_unless_present = "from_stick")]
    pub(crate) unit: Option<String>,
    /// The units file (default: $XDG_CONFIG_HOME/rdc/units.toml or ~/.config/rdc/units.toml).
    #[arg(long)]
    pub(crate) units: Option<PathBuf>,
    /// Where a memory stick the unit wrote is mounted: the footage comes from it, not over the
    /// link, each segment checked against the unit's signed manifests (no case and reason: the
    /// stick's request carries them, with its cameras and range).
    #[arg(long, value_name = "STICK")]
    pub(crate) from_stick: Option<PathBuf>,
}

/// A time range as people give it.
#[derive(clap::Args, Debug)]
pub(crate) struct Span {
    /// Start: a local time (2026-06-01T18:00), one with an offset, or now-10m, now-1d.
    #[arg(long)]
    pub(crate) from: String,
    /// End: as --from.
    #[arg(long)]
    pub(crate) to: String,
}

/// The case a request is for, and why: both recorded by the unit in its audit log.
#[derive(clap::Args, Debug)]
pub(crate) struct Case {
    /// The case reference.
    #[arg(long = "case")]
    pub(crate) case_ref: String,
    /// Why (recorded by the unit in its audit log).
    #[arg(long)]
    pub(crate) reason: String,
}
