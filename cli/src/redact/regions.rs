//! Regions a person draws over footage (never found by face recognition: R17), and what
//! obscuring does to a 4:2:0 picture's planes.

use serde::{Deserialize, Serialize};

use crate::time::parse_time;
use anyhow::{Context as _, bail};

/// Pixels of the block grid: x264's macroblocks, so a block is coded on its own.
pub(crate) const GRID: usize = 16;

/// `REGIONS.toml`: `[[region]]` sections.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    region: Vec<Spec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    #[serde(default)]
    label: String,
    from: String,
    to: String,
    keyframes: Vec<KeySpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeySpec {
    at: String,
    x: i64,
    y: i64,
    w: i64,
    h: i64,
}

/// A region: from `from_ns` to `to_ns`, a rectangle moving linearly between its keyframes
/// (held before the first and after the last).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Region {
    pub(crate) label: String,
    pub(crate) from_ns: i64,
    pub(crate) to_ns: i64,
    /// `(time, [x, y, w, h])` in the picture's pixels.
    pub(crate) keys: Vec<(i64, [i64; 4])>,
}

/// A rectangle in pixels, `x0..x1`, `y0..y1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rect {
    pub(crate) x0: usize,
    pub(crate) y0: usize,
    pub(crate) x1: usize,
    pub(crate) y1: usize,
}

impl Rect {
    pub(crate) fn is_empty(&self) -> bool {
        self.x0 >= self.x1 || self.y0 >= self.y1
    }
}

impl Region {
    /// The rectangle at `t`, if the region is in force then.
    pub(crate) fn at(&self, t: i64) -> Option<[i64; 4]> {
        if t < self.from_ns || t > self.to_ns {
            return None;
        }
        let k = &self.keys;
        let i = k.iter().position(|(kt, _)| *kt > t);
        Some(match i {
            Some(0) => k[0].1,
            None => k[k.len() - 1].1,
            Some(i) => {
                let ((t0, a), (t1, b)) = (k[i - 1], k[i]);
                let f = (t - t0) as f64 / (t1 - t0).max(1) as f64;
                let mut r = [0i64; 4];
                for j in 0..4 {
                    r[j] = (a[j] as f64 + (b[j] - a[j]) as f64 * f).round() as i64;
                }
                r
            }
        })
    }
}

/// Reads and checks a regions file: every problem named with its region and keyframe.
pub(crate) fn parse(text: &str, what: &str) -> anyhow::Result<Vec<Region>> {
    let f: File = toml::from_str(text).with_context(|| format!("{what} is not a regions file"))?;
    if f.region.is_empty() {
        bail!("{what} has no [[region]]: nothing would be redacted");
    }
    let mut out = Vec::new();
    for (i, r) in f.region.into_iter().enumerate() {
        let name = if r.label.is_empty() {
            format!("region {}", i + 1)
        } else {
            format!("region {} ({})", i + 1, r.label)
        };
        let from_ns = parse_time(&r.from).with_context(|| format!("{what}: {name}: from"))?;
        let to_ns = parse_time(&r.to).with_context(|| format!("{what}: {name}: to"))?;
        if to_ns <= from_ns {
            bail!("{what}: {name}: `to` must be after `from`");
        }
        if r.keyframes.is_empty() {
            bail!("{what}: {name} has no keyframes (at, x, y, w, h)");
        }
        let mut keys = Vec::new();
        for (j, k) in r.keyframes.iter().enumerate() {
            let at = parse_time(&k.at)
                .with_context(|| format!("{what}: {name}, keyframe {}: at", j + 1))?;
            if k.w <= 0 || k.h <= 0 || k.x < 0 || k.y < 0 {
                bail!(
                    "{what}: {name}, keyframe {}: x and y must be 0 or more and w and h more than 0",
                    j + 1
                );
            }
            if keys.last().is_some_and(|(t, _)| *t >= at) {
                bail!("{what}: {name}: keyframes must be in time order");
            }
            keys.push((at, [k.x, k.y, k.w, k.h]));
        }
        out.push(Region {
            label: r.label,
            from_ns,
            to_ns,
            keys,
        });
    }
    Ok(out)
}

/// A rectangle grown by `margin` on each side and out to the block grid, clipped to the picture:
/// what is obscured for a region (the margin keeps the encoder's filters, which reach a few
/// pixels across block edges, outside the region itself).
pub(crate) fn grown(r: [i64; 4], margin: usize, (w, h): (usize, usize)) -> Rect {
    let m = margin as i64;
    let x0 = (r[0] - m).max(0) as usize / GRID * GRID;
    let y0 = (r[1] - m).max(0) as usize / GRID * GRID;
    let x1 = ((r[0] + r[2] + m).max(0) as usize).div_ceil(GRID) * GRID;
    let y1 = ((r[1] + r[3] + m).max(0) as usize).div_ceil(GRID) * GRID;
    Rect {
        x0,
        y0,
        x1: x1.min(w),
        y1: y1.min(h),
    }
}

/// A rectangle shrunk in to the block grid: what is kept of a region with `--keep-only`.
pub(crate) fn shrunk(r: [i64; 4], (w, h): (usize, usize)) -> Rect {
    let x0 = (r[0].max(0) as usize).div_ceil(GRID) * GRID;
    let y0 = (r[1].max(0) as usize).div_ceil(GRID) * GRID;
    let x1 = (r[0] + r[2]).max(0) as usize / GRID * GRID;
    let y1 = (r[1] + r[3]).max(0) as usize / GRID * GRID;
    Rect {
        x0,
        y0,
        x1: x1.min(w),
        y1: y1.min(h),
    }
}

/// How obscured pixels are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Mode {
    /// Black: nothing of the picture is left.
    Solid,
    /// Blocks of the grid's size (at least 16 px), each its pixels' average.
    Pixelate,
}

/// One 8-bit plane of a picture: its pixels, row stride, size.
pub(crate) struct Plane<'a> {
    pub(crate) data: &'a mut [u8],
    pub(crate) stride: usize,
    pub(crate) w: usize,
    pub(crate) h: usize,
}

/// Which 16×16 blocks (of the luma grid) are obscured in a picture of `w`×`h`.
pub(crate) fn blocks(
    regions: &[Region],
    t: i64,
    keep_only: bool,
    (w, h): (usize, usize),
) -> Vec<bool> {
    let (bw, bh) = (w.div_ceil(GRID), h.div_ceil(GRID));
    let mut mark = vec![keep_only; bw * bh];
    for r in regions {
        let Some(rect) = r.at(t) else { continue };
        let (rr, value) = if keep_only {
            (shrunk(rect, (w, h)), false)
        } else {
            (grown(rect, GRID, (w, h)), true)
        };
        if rr.is_empty() {
            continue;
        }
        for by in rr.y0 / GRID..rr.y1.div_ceil(GRID) {
            for bx in rr.x0 / GRID..rr.x1.div_ceil(GRID) {
                mark[by * bw + bx] = value;
            }
        }
    }
    mark
}

/// Obscures the marked blocks of the three planes of a 4:2:0 picture: black (limited range),
/// or each block its average.
#[cfg(test)]
pub(crate) fn obscure(planes: [Plane<'_>; 3], marked: &[bool], mode: Mode) {
    let bw = planes[0].w.div_ceil(GRID);
    for (i, p) in planes.into_iter().enumerate() {
        obscure_plane(p, i > 0, bw, marked, mode);
    }
}

/// [`obscure`] for one plane (`chroma`: a half-size plane whose blocks are 8×8).
pub(crate) fn obscure_plane(p: Plane<'_>, chroma: bool, bw: usize, marked: &[bool], mode: Mode) {
    let (g, fill) = if chroma {
        (GRID / 2, 128u8)
    } else {
        (GRID, 16u8)
    };
    for (b, _) in marked.iter().enumerate().filter(|(_, m)| **m) {
        let (bx, by) = (b % bw, b / bw);
        let (x0, y0) = (bx * g, by * g);
        let (x1, y1) = ((x0 + g).min(p.w), (y0 + g).min(p.h));
        if x0 >= x1 || y0 >= y1 {
            continue;
        }
        let value = match mode {
            Mode::Solid => fill,
            Mode::Pixelate => {
                let mut sum = 0u64;
                for row in y0..y1 {
                    sum += p.data[row * p.stride + x0..row * p.stride + x1]
                        .iter()
                        .map(|&x| u64::from(x))
                        .sum::<u64>();
                }
                (sum / ((x1 - x0) * (y1 - y0)) as u64) as u8
            }
        };
        for row in y0..y1 {
            p.data[row * p.stride + x0..row * p.stride + x1].fill(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn a_region_moves_between_its_keyframes_and_only_while_in_force() {
        let r = parse(
            r#"
[[region]]
label = "neighbour"
from = "2026-11-23T18:00:00Z"
to = "2026-11-23T18:00:10Z"
keyframes = [
  { at = "2026-11-23T18:00:02Z", x = 0, y = 100, w = 50, h = 50 },
  { at = "2026-11-23T18:00:06Z", x = 400, y = 100, w = 50, h = 50 },
]
"#,
            "r.toml",
        )
        .unwrap();
        let t0 = rdc_format::time::parse_rfc3339("2026-11-23T18:00:00Z").unwrap();
        assert_eq!(r[0].at(t0 + S), Some([0, 100, 50, 50]));
        assert_eq!(r[0].at(t0 + 4 * S), Some([200, 100, 50, 50]));
        assert_eq!(r[0].at(t0 + 9 * S), Some([400, 100, 50, 50]));
        assert_eq!(r[0].at(t0 + 11 * S), None);
        for bad in [
            "",
            "[[region]]\nfrom = \"2026-11-23T18:00:10Z\"\nto = \"2026-11-23T18:00:00Z\"\nkeyframes = []",
            "[[region]]\nfrom = \"2026-11-23T18:00:00Z\"\nto = \"2026-11-23T18:00:10Z\"\nkeyframes = [{ at = \"2026-11-23T18:00:02Z\", x = 0, y = 0, w = 0, h = 5 }]",
        ] {
            assert!(parse(bad, "r.toml").is_err(), "{bad}");
        }
    }

    #[test]
    fn obscured_blocks_cover_the_region_and_its_margin_on_the_grid() {
        let g = grown([20, 20, 10, 10], GRID, (640, 360));
        assert_eq!((g.x0, g.y0, g.x1, g.y1), (0, 0, 48, 48));
        let k = shrunk([20, 20, 40, 40], (640, 360));
        assert_eq!((k.x0, k.y0, k.x1, k.y1), (32, 32, 48, 48));
        // Solid: every pixel under the region black; pixelate: 16 px blocks of one value.
        let (w, h) = (64usize, 32usize);
        let mut y: Vec<u8> = (0..w * h).map(|i| (i * 7 % 251) as u8).collect();
        let mut u = vec![100u8; w * h / 4];
        let mut v = vec![150u8; w * h / 4];
        let r = Region {
            label: String::new(),
            from_ns: 0,
            to_ns: 10,
            keys: vec![(0, [20, 4, 4, 4])],
        };
        let marked = blocks(std::slice::from_ref(&r), 5, false, (w, h));
        obscure(
            [
                Plane {
                    data: &mut y,
                    stride: w,
                    w,
                    h,
                },
                Plane {
                    data: &mut u,
                    stride: w / 2,
                    w: w / 2,
                    h: h / 2,
                },
                Plane {
                    data: &mut v,
                    stride: w / 2,
                    w: w / 2,
                    h: h / 2,
                },
            ],
            &marked,
            Mode::Pixelate,
        );
        for by in 0..2 {
            for bx in 0..4 {
                let first = y[by * 16 * w + bx * 16];
                let same = (0..16)
                    .all(|dy| (0..16).all(|dx| y[(by * 16 + dy) * w + bx * 16 + dx] == first));
                assert_eq!(same, marked[by * 4 + bx], "block {bx},{by}");
            }
        }
    }
}
