//! Times on the command line: RFC 3339, `now`, `now-10m`.

use crate::*;

/// Parses `2026-11-23T18:00:00Z` (any RFC 3339 time), `now`, `now-10m`, `now+1d`.
pub(crate) fn parse_time(s: &str) -> anyhow::Result<i64> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as i64;
    if s == "now" {
        return Ok(now);
    }
    if let Some(rest) = s.strip_prefix("now+") {
        return Ok(2 * now - parse_time(&format!("now-{rest}"))?);
    }
    if let Some(rest) = s.strip_prefix("now-") {
        let (num, unit) = rest.split_at(
            rest.find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len()),
        );
        let n: i64 = num
            .parse()
            .with_context(|| format!("{s:?}: write e.g. now-10m"))?;
        let secs = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => bail!("{s:?}: the unit must be s, m, h or d"),
        };
        return Ok(now - n * secs * 1_000_000_000);
    }
    rdc_format::time::parse_rfc3339(s).ok_or_else(|| {
        anyhow!("{s:?} is not a time: use RFC 3339 like 2026-11-23T18:00:00Z, or now-10m")
    })
}
