//! Commissioning: before a unit is in service an engineer may see a live still from each
//! camera to set its view (not into homes, 001 §5.12); once it is marked in service, nobody
//! sees a still any more. The mark is a file beside the store, written once; the daemon puts it
//! in the audit log (the `rdc/1` request that makes it is audited as any request; a mark made
//! on the unit with `rdc-recorder commission --done` is logged when the daemon sees it).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// Who marked the unit in service, when, why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub since_ns: i64,
    pub by: String,
    pub reason: String,
}

/// Where the mark is: beside the store's folders, in its root.
pub fn path(cfg: &rdc_config::Config) -> PathBuf {
    cfg.storage.path.join("in-service.json")
}

/// The mark, if the unit is in service.
pub fn read(p: &Path) -> Option<Mark> {
    serde_json::from_slice(&std::fs::read(p).ok()?).ok()
}

/// Marks the unit in service now; an earlier mark stands (and is returned).
pub fn mark(p: &Path, by: &str, reason: &str, now_ns: i64) -> anyhow::Result<Mark> {
    if let Some(m) = read(p) {
        return Ok(m);
    }
    let m = Mark {
        since_ns: now_ns,
        by: by.to_owned(),
        reason: reason.to_owned(),
    };
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = p.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&m)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, p).with_context(|| format!("writing {}", p.display()))?;
    Ok(m)
}
