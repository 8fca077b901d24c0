//! Human-friendly sizes (`"200 GiB"`) and durations (`"1s"`, `"500ms"`).

use std::time::Duration;

/// `"1.5 TiB"` -> (1.5, "TiB"); `None` when it does not start with a number.
fn number_and_unit(s: &str) -> Option<(f64, &str)> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    Some((num.parse().ok()?, unit.trim()))
}

/// Why a size or a duration was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("{0:?} is not a size: write e.g. \"200 GiB\" or a number of bytes")]
    NotASize(String),
    #[error("unknown size unit {0:?}: use B, KiB, MiB, GiB, TiB (or kB, MB, GB, TB)")]
    SizeUnit(String),
    #[error("{0:?} is not a duration: write e.g. \"1s\" or \"500ms\"")]
    NotADuration(String),
    #[error("unknown duration unit {0:?}: use ms, s, m or h")]
    DurationUnit(String),
    #[error("{0:?} is out of range")]
    OutOfRange(String),
}

/// Parses a byte count: `1024`, `"64 MiB"`, `"200GB"`, `"1.5 TiB"`.
pub fn parse_size(s: &str) -> Result<u64, UnitError> {
    let (n, unit) = number_and_unit(s).ok_or_else(|| UnitError::NotASize(s.to_owned()))?;
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        other => return Err(UnitError::SizeUnit(other.to_owned())),
    };
    let v = n * mult as f64;
    if !(0.0..1.8e19).contains(&v) {
        return Err(UnitError::OutOfRange(s.to_owned()));
    }
    Ok(v as u64)
}

/// Parses a duration: `"1s"`, `"500ms"`, `"2m"`.
pub fn parse_duration(s: &str) -> Result<Duration, UnitError> {
    let (n, unit) = number_and_unit(s).ok_or_else(|| UnitError::NotADuration(s.to_owned()))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        other => return Err(UnitError::DurationUnit(other.to_owned())),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| UnitError::OutOfRange(s.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64 MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("200GB").unwrap(), 200_000_000_000);
        assert_eq!(parse_size("1.5 GiB").unwrap(), 3 << 29);
        assert!(parse_size("lots").is_err());
        assert_eq!(
            parse_size("5 furlongs").unwrap_err(),
            UnitError::SizeUnit("furlongs".into())
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1s").unwrap(), Duration::from_secs(1));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert!(parse_duration("soon").is_err());
    }
}
