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
        assert_eq!(ticks_since(100, 40), 60);
    }
}
