//! `rdc status --activity`: each camera's bytes per minute over the last hours, as a chart in
//! the terminal. A passthrough recorder writes more when more moves in front of the camera, so
//! the peaks show an officer on a slow link where to look first (R12), before fetching a byte
//! of footage.

use crate::select::Target;
use crate::units::connect;
use anyhow::bail;
use rdc_config::Id;
use rdc_uplink::protocol::Justification;

const MINUTE: i64 = 60_000_000_000;
const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// One chart line for `minutes` (bytes a minute; 0 where nothing was recorded), squeezed
/// into `width` columns: each column the busiest minute it covers, scaled to the busiest of
/// all; a column with no footage is blank.
pub fn chart(minutes: &[u64], width: usize) -> String {
    if minutes.is_empty() || width == 0 {
        return String::new();
    }
    let per = minutes.len().div_ceil(width);
    let cols: Vec<u64> = minutes
        .chunks(per)
        .map(|c| c.iter().copied().max().unwrap_or(0))
        .collect();
    let peak = cols.iter().copied().max().unwrap_or(0).max(1);
    cols.iter()
        .map(|&b| {
            if b == 0 {
                ' '
            } else {
                BARS[((b as f64 / peak as f64) * (BARS.len() - 1) as f64).round() as usize]
            }
        })
        .collect()
}

pub(crate) async fn activity(
    target: &Target,
    cameras: &[Id],
    hours: u32,
    why: &Justification,
) -> anyhow::Result<()> {
    if !(1..=168).contains(&hours) {
        bail!("--hours {hours}: from 1 to 168 (a week)");
    }
    let c = connect(target).await?;
    let cameras: Vec<Id> = if cameras.is_empty() {
        // The cameras recording now and every camera with footage on the unit.
        let st = c.status().await?;
        let mut names: Vec<String> = st
            .live
            .map(|l| l.cameras.into_iter().map(|c| c.camera).collect())
            .unwrap_or_default();
        names.extend(st.store.cameras.into_iter().map(|c| c.camera));
        names.sort();
        names.dedup();
        names.iter().filter_map(|n| Id::parse(n).ok()).collect()
    } else {
        cameras.to_vec()
    };
    let now = ::time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64;
    // Whole minutes, the last one ending now.
    let to = (now / MINUTE + 1) * MINUTE;
    let from = to - i64::from(hours) * 60 * MINUTE;
    let width = 72usize;
    let w = cameras.iter().map(|c| c.as_str().len()).max().unwrap_or(0);
    outln!(
        "bytes per minute, {} to {} (UTC); each column {} min, the busiest minute in it",
        rdc_format::time::rfc3339(from),
        rdc_format::time::rfc3339(to),
        (i64::from(hours) * 60).div_euclid(width as i64).max(1)
    );
    for cam in &cameras {
        let bytes = c.activity(cam, (from, to), MINUTE, why).await?;
        let peak = bytes.iter().copied().max().unwrap_or(0);
        let busiest = bytes
            .iter()
            .enumerate()
            .max_by_key(|(_, b)| **b)
            .map(|(i, _)| from + i as i64 * MINUTE);
        outln!(
            "{cam:<w$}  |{}|  peak {:.1} MB/min{}",
            chart(&bytes, width),
            peak as f64 / 1e6,
            busiest
                .filter(|_| peak > 0)
                .map(|t| format!(" at {}", rdc_format::time::rfc3339(t)))
                .unwrap_or_default()
        );
    }
    c.close();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::chart;

    #[test]
    fn a_chart_shows_peaks_and_blanks_for_no_footage() {
        let mut m = vec![100u64; 60];
        m[10] = 800;
        m[30..40].fill(0);
        let c = chart(&m, 60);
        assert_eq!(c.chars().count(), 60);
        assert_eq!(c.chars().nth(10), Some('█'));
        assert_eq!(c.chars().nth(35), Some(' '));
        assert_eq!(c.chars().next(), Some('▂'));
        // Squeezed: 1440 minutes into 72 columns keep the peak.
        let mut day = vec![5u64; 1440];
        day[700] = 50;
        let c = chart(&day, 72);
        assert_eq!(c.chars().count(), 72);
        assert_eq!(c.chars().nth(35), Some('█'));
        assert_eq!(chart(&[], 72), "");
    }
}
