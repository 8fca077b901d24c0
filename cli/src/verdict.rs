//! `rdc verify DIR`: recognises what the folder is (an evidence bundle, a still, a redacted
//! disclosure), runs its checks, prints every line and the verdict, and exits to match.

use std::path::Path;

use crate::{CheckFailed, Unproven};

/// `rdc verify`: the report's lines, its verdict, and an exit code to match.
pub(crate) fn verify(
    dir: &Path,
    ca: Option<&Path>,
    identity: Option<&Path>,
    source: Option<&Path>,
) -> anyhow::Result<()> {
    let still = dir.join(crate::exhibit::RECORD).exists();
    let disclosure = dir.join(crate::redact::DISCLOSURE).exists();
    let (r, result) = if still {
        (crate::exhibit::check::folder(dir, ca, identity), Ok(()))
    } else if disclosure {
        (crate::redact::check(dir, ca, source), Ok(()))
    } else {
        crate::verify::check_bundle(dir, ca, identity)
    };
    let what = if still {
        "still"
    } else if disclosure {
        "disclosure"
    } else {
        "bundle"
    };
    for l in &r.ok {
        outln!("ok      {l}");
    }
    for l in &r.notes {
        outln!("note    {l}");
    }
    for l in &r.failed {
        outln!("FAILED  {l}");
    }
    result?;
    outln!("\n{}", r.verdict);
    if !r.failed.is_empty() {
        Err(CheckFailed(format!(
            "the {what} in {} is NOT intact: {} check(s) failed (lines marked FAILED above)",
            dir.display(),
            r.failed.len()
        ))
        .into())
    } else if ca.is_none() {
        Err(Unproven(format!(
            "the {what} in {} is self-consistent but not checked against the scheme's CA (give --ca)",
            dir.display()
        ))
        .into())
    } else {
        Ok(())
    }
}
