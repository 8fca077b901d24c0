//! Reading the video of a segment's MPEG-TS: access units with their 90 kHz times, as the
//! recorder's muxer wrote them. No I/O; an export reads the decrypted `.ts` into memory a
//! segment at a time (10-60 s, a few MB) and hands the access units to a muxer.
//!
//! It reads any single-program TS with one H.264 or H.265 stream (the PMT's first video
//! stream), not only the recorder's: PES packets of the video PID, each an access unit, with
//! the PTS and DTS from their headers and the keyframe flag from the adaptation field's random
//! access indicator. Anything else (other PIDs, audio) is skipped; damage is an error that
//! says where.

/// The video codec of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    H264,
    H265,
}

impl Codec {
    fn from_stream_type(t: u8) -> Option<Codec> {
        match t {
            0x1B => Some(Codec::H264),
            0x24 => Some(Codec::H265),
            _ => None,
        }
    }
}

/// One access unit: Annex B bytes, 90 kHz times (33 bits, as in the stream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    pub data: Vec<u8>,
    pub pts: u64,
    pub dts: u64,
    pub keyframe: bool,
}

/// The video of one TS file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Video {
    pub codec: Codec,
    pub units: Vec<AccessUnit>,
}

/// Why a TS could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TsError {
    #[error("byte {offset}: not an MPEG-TS packet (no 0x47 sync byte)")]
    Sync { offset: usize },
    #[error("the file ends inside a packet ({len} bytes is not a multiple of 188)")]
    Truncated { len: usize },
    #[error("packet at byte {offset}: {what}")]
    Damaged { offset: usize, what: &'static str },
    #[error("no H.264 or H.265 video stream (no PMT naming one)")]
    NoVideo,
}

const PACKET: usize = 188;
/// 33-bit timestamps wrap here.
pub const TS_WRAP: u64 = 1 << 33;

/// Ticks from `earlier` to `later` of a 33-bit clock that may have wrapped in between.
pub fn ticks_since(later: u64, earlier: u64) -> u64 {
    later.wrapping_sub(earlier) & (TS_WRAP - 1)
}

/// How far the time a segment's frames span may be from its signed range before the two are
/// said to disagree: a camera clock switched for the unit's mid-segment moves a frame's wall
/// time by up to a second.
pub const SPAN_TOLERANCE_NS: i64 = 2_000_000_000;

/// What is wrong with the frame times of `video`, if anything: a decode time that does not
/// increase strictly (frames sharing a time, or going back), a presentation time before its
/// decode time, or, given the segment's signed duration (`end_ns - start_ns`), decode times
/// spanning a different length of time (beyond [`SPAN_TOLERANCE_NS`] and a frame).
pub fn frame_time_problem(video: &Video, signed_ns: Option<i64>) -> Option<String> {
    let units = &video.units;
    let mut bad = 0usize;
    let mut first_bad = None;
    for (i, w) in units.windows(2).enumerate() {
        let step = ticks_since(w[1].dts, w[0].dts);
        // A step of more than half the 33-bit clock is a step back.
        if step == 0 || step >= TS_WRAP / 2 {
            bad += 1;
            first_bad.get_or_insert(i + 1);
        }
    }
    if let Some(i) = first_bad {
        return Some(format!(
            "its frame times do not increase strictly: {bad} of {} frames have a decode time at or before the previous frame's (first: frame {i})",
            units.len()
        ));
    }
    if let Some(i) = units
        .iter()
        .position(|u| ticks_since(u.pts, u.dts) >= TS_WRAP / 2)
    {
        return Some(format!(
            "frame {i} is presented before it is decoded (PTS before DTS)"
        ));
    }
    let (Some(signed), Some(first), Some(last)) = (signed_ns, units.first(), units.last()) else {
        return None;
    };
    let span = ticks_since(last.dts, first.dts) as i64 * 100_000 / 9;
    let frame = if units.len() > 1 {
        span / (units.len() as i64 - 1)
    } else {
        0
    };
    if signed < 0 {
        return Some(format!(
            "its signed range is negative ({:.3} s)",
            signed as f64 / 1e9
        ));
    }
    ((span - signed).abs() > SPAN_TOLERANCE_NS + frame).then(|| {
        format!(
            "its frames span {:.3} s, but its signed range is {:.3} s",
            span as f64 / 1e9,
            signed as f64 / 1e9
        )
    })
}

/// Demuxes the video access units of `ts`.
pub fn read_video(ts: &[u8]) -> Result<Video, TsError> {
    if !ts.len().is_multiple_of(PACKET) {
        return Err(TsError::Truncated { len: ts.len() });
    }
    let mut pmt_pid: Option<u16> = None;
    let mut video: Option<(u16, Codec)> = None;
    let mut units = Vec::new();
    // The PES being gathered: its header's times and keyframe flag, and its payload.
    let mut cur: Option<(bool, Vec<u8>)> = None;
    for (i, p) in ts.chunks_exact(PACKET).enumerate() {
        let offset = i * PACKET;
        let damaged = |what| TsError::Damaged { offset, what };
        if p[0] != 0x47 {
            return Err(TsError::Sync { offset });
        }
        let pusi = p[1] & 0x40 != 0;
        let pid = u16::from(p[1] & 0x1F) << 8 | u16::from(p[2]);
        let afc = (p[3] >> 4) & 0x03;
        let mut pos = 4;
        let mut random_access = false;
        if afc & 0x02 != 0 {
            let len = usize::from(p[4]);
            if 5 + len > PACKET {
                return Err(damaged("adaptation field longer than the packet"));
            }
            if len > 0 {
                random_access = p[5] & 0x40 != 0;
            }
            pos = 5 + len;
        }
        if afc & 0x01 == 0 {
            continue;
        }
        let payload = &p[pos..];
        if pid == 0 && pusi {
            pmt_pid = Some(pat_pmt_pid(payload).ok_or_else(|| damaged("unreadable PAT"))?);
        } else if Some(pid) == pmt_pid && pusi && video.is_none() {
            video = pmt_video(payload).ok_or_else(|| damaged("unreadable PMT"))?;
        } else if video.is_some_and(|(v, _)| v == pid) {
            if pusi {
                if let Some((key, data)) = cur.take() {
                    units.push(pes_unit(&data, key).ok_or_else(|| damaged("unreadable PES"))?);
                }
                cur = Some((random_access, payload.to_vec()));
            } else if let Some((_, data)) = &mut cur {
                data.extend_from_slice(payload);
            }
        }
    }
    let Some((_, codec)) = video else {
        return Err(TsError::NoVideo);
    };
    if let Some((key, data)) = cur.take() {
        units.push(pes_unit(&data, key).ok_or(TsError::Damaged {
            offset: ts.len() - PACKET,
            what: "unreadable PES",
        })?);
    }
    Ok(Video { codec, units })
}

/// The PMT PID of the first program in a PAT section.
fn pat_pmt_pid(payload: &[u8]) -> Option<u16> {
    let s = section(payload)?;
    // After the 8-byte header: program_number (2), PMT PID (2) per program; skip program 0.
    let body = s.get(8..s.len().checked_sub(4)?)?;
    body.chunks_exact(4)
        .find(|c| u16::from_be_bytes([c[0], c[1]]) != 0)
        .map(|c| u16::from(c[2] & 0x1F) << 8 | u16::from(c[3]))
}

/// The first H.264/H.265 stream of a PMT section, if any.
fn pmt_video(payload: &[u8]) -> Option<Option<(u16, Codec)>> {
    let s = section(payload)?;
    let end = s.len().checked_sub(4)?;
    let info_len = usize::from(u16::from_be_bytes([*s.get(10)?, *s.get(11)?]) & 0x0FFF);
    let mut i = 12 + info_len;
    while i + 5 <= end {
        let t = s[i];
        let pid = u16::from(s[i + 1] & 0x1F) << 8 | u16::from(s[i + 2]);
        let es_len = usize::from(u16::from_be_bytes([s[i + 3], s[i + 4]]) & 0x0FFF);
        if let Some(c) = Codec::from_stream_type(t) {
            return Some(Some((pid, c)));
        }
        i += 5 + es_len;
    }
    Some(None)
}

/// A PSI section from a payload that starts one (pointer field first).
fn section(payload: &[u8]) -> Option<&[u8]> {
    let ptr = usize::from(*payload.first()?);
    let s = payload.get(1 + ptr..)?;
    let len = usize::from(u16::from_be_bytes([*s.get(1)?, *s.get(2)?]) & 0x0FFF);
    s.get(..3 + len)
}

fn pes_unit(pes: &[u8], keyframe: bool) -> Option<AccessUnit> {
    if pes.get(..3)? != [0, 0, 1] {
        return None;
    }
    let flags = *pes.get(7)?;
    let hdr_len = usize::from(*pes.get(8)?);
    let data = pes.get(9 + hdr_len..)?.to_vec();
    let pts = if flags & 0x80 != 0 {
        timestamp(pes.get(9..14)?)
    } else {
        return None;
    };
    let dts = if flags & 0x40 != 0 {
        timestamp(pes.get(14..19)?)
    } else {
        pts
    };
    Some(AccessUnit {
        data,
        pts,
        dts,
        keyframe,
    })
}

fn timestamp(b: &[u8]) -> u64 {
    (u64::from(b[0] >> 1) & 0x07) << 30
        | u64::from(b[1]) << 22
        | (u64::from(b[2]) >> 1) << 15
        | u64::from(b[3]) << 7
        | u64::from(b[4]) >> 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert_eq!(read_video(&[0u8; 188]), Err(TsError::Sync { offset: 0 }));
        assert_eq!(
            read_video(&[0x47; 100]),
            Err(TsError::Truncated { len: 100 })
        );
        // Valid sync bytes, nothing else: no video.
        let mut p = vec![0xFFu8; 188 * 3];
        for c in p.chunks_mut(188) {
            c[0] = 0x47;
        }
        assert!(read_video(&p).is_err());
    }

    #[test]
    fn ticks_wrap() {
        assert_eq!(ticks_since(5, TS_WRAP - 5), 10);
    }

    fn video(times: &[(u64, u64)]) -> Video {
        Video {
            codec: Codec::H264,
            units: times
                .iter()
                .map(|&(pts, dts)| AccessUnit {
                    data: Vec::new(),
                    pts,
                    dts,
                    keyframe: false,
                })
                .collect(),
        }
    }

    #[test]
    fn frame_times_that_stall_go_back_or_disagree_with_the_signed_range_are_named() {
        // 25 frames a second for 10 s, across the 33-bit wrap: good.
        let good: Vec<(u64, u64)> = (0..250u64)
            .map(|i| {
                let d = (TS_WRAP - 500 + i * 3600) % TS_WRAP;
                ((d + 3600) % TS_WRAP, d)
            })
            .collect();
        assert_eq!(
            frame_time_problem(&video(&good), Some(10_000_000_000)),
            None
        );
        // Frames sharing one time (the collapse of a camera whose timestamps jumped back).
        let mut stuck = good.clone();
        let held = stuck[99];
        for f in &mut stuck[100..150] {
            *f = held;
        }
        let why = frame_time_problem(&video(&stuck), None).unwrap();
        assert!(why.contains("50 of 250"), "{why}");
        // A step back.
        let mut back = good.clone();
        back[10].1 = back[5].1;
        assert!(frame_time_problem(&video(&back), None).is_some());
        // A TS of 2 s signed as 10.2 s, and a negative range.
        let short: Vec<(u64, u64)> = good[..51].to_vec();
        let why = frame_time_problem(&video(&short), Some(10_200_000_000)).unwrap();
        assert!(
            why.contains("span 2.000 s") && why.contains("10.200 s"),
            "{why}"
        );
        assert!(frame_time_problem(&video(&short), Some(-1_040_000_000)).is_some());
        assert_eq!(ticks_since(100, 40), 60);
    }
}
