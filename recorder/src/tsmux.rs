//! A minimal MPEG-TS muxer for one H.264 or H.265 video stream, without I/O.
//!
//! Why our own and not `mpegtsmux`: a segment must play on its own from its first byte, so every
//! keyframe has to start a fresh entry point: PAT, PMT, then the keyframe's PES with the random
//! access indicator and a PCR. `mpegtsmux` repeats PAT/PMT on a timer, not at keyframes, and
//! hands out one 188-byte buffer per packet. Here one access unit in gives its packets out in one
//! buffer, and the store cuts segments exactly at keyframe boundaries.

/// The video codec carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    H264,
    H265,
}

impl Codec {
    fn stream_type(self) -> u8 {
        match self {
            Codec::H264 => 0x1B,
            Codec::H265 => 0x24,
        }
    }

    /// An access unit delimiter NAL, as TS wants at the start of every access unit.
    fn aud(self) -> &'static [u8] {
        match self {
            Codec::H264 => &[0, 0, 0, 1, 0x09, 0xF0],
            Codec::H265 => &[0, 0, 0, 1, 0x46, 0x01, 0x50],
        }
    }

    fn is_aud(self, nal_header: u8) -> bool {
        match self {
            Codec::H264 => nal_header & 0x1F == 9,
            Codec::H265 => (nal_header >> 1) & 0x3F == 35,
        }
    }
}

pub const PACKET: usize = 188;
const PID_PMT: u16 = 0x1000;
const PID_VIDEO: u16 = 0x0100;
/// 33-bit timestamps.
const TS_MASK: u64 = (1 << 33) - 1;
/// PCR runs this far (90 kHz ticks) ahead of decoding: 100 ms.
const PCR_LEAD: u64 = 9000;

/// Muxes access units of one stream into TS packets.
#[derive(Debug)]
pub struct TsMuxer {
    codec: Codec,
    cc_pat: u8,
    cc_pmt: u8,
    cc_video: u8,
}

/// Converts nanoseconds to 90 kHz ticks, offset so that PCR (which leads DTS) stays positive.
pub fn ns_to_90k(ns: u64) -> u64 {
    ((ns as u128 * 9 / 100_000) as u64 + 2 * PCR_LEAD) & TS_MASK
}

impl TsMuxer {
    pub fn new(codec: Codec) -> Self {
        TsMuxer {
            codec,
            cc_pat: 0,
            cc_pmt: 0,
            cc_video: 0,
        }
    }

    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Appends the packets of one access unit (Annex B byte stream) to `out`. `pts` and `dts`
    /// are 90 kHz ticks. A keyframe is preceded by PAT and PMT, so it is an entry point.
    pub fn mux(&mut self, au: &[u8], pts: u64, dts: u64, keyframe: bool, out: &mut Vec<u8>) {
        if keyframe {
            self.psi(0, 0x00, &pat(), out);
            self.psi(PID_PMT, 0x02, &pmt(self.codec), out);
        }
        let needs_aud = !starts_with_aud(self.codec, au);
        let mut pes = Vec::with_capacity(19 + 7 + au.len());
        pes.extend_from_slice(&[0, 0, 1, 0xE0, 0, 0]); // video stream 0, unbounded length
        let (pts, dts) = (pts & TS_MASK, dts & TS_MASK);
        if pts == dts {
            pes.extend_from_slice(&[0x84, 0x80, 5]);
            pes.extend_from_slice(&timestamp(0b0010, pts));
        } else {
            pes.extend_from_slice(&[0x84, 0xC0, 10]);
            pes.extend_from_slice(&timestamp(0b0011, pts));
            pes.extend_from_slice(&timestamp(0b0001, dts));
        }
        if needs_aud {
            pes.extend_from_slice(self.codec.aud());
        }
        pes.extend_from_slice(au);
        let pcr = dts.wrapping_sub(PCR_LEAD) & TS_MASK;
        self.packetize(&pes, keyframe, pcr, out);
    }

    fn packetize(&mut self, pes: &[u8], keyframe: bool, pcr: u64, out: &mut Vec<u8>) {
        let mut rest = pes;
        let mut first = true;
        out.reserve(pes.len() / 184 * PACKET + 2 * PACKET);
        while !rest.is_empty() {
            // Adaptation field: on the first packet, PCR (and the random access flag on a
            // keyframe); on the last, stuffing to fill the packet.
            let mut af: Vec<u8> = Vec::new();
            if first {
                af.push(if keyframe { 0x50 } else { 0x10 });
                let base = pcr;
                af.extend_from_slice(&[
                    (base >> 25) as u8,
                    (base >> 17) as u8,
                    (base >> 9) as u8,
                    (base >> 1) as u8,
                    ((base & 1) << 7) as u8 | 0x7E,
                    0,
                ]);
            }
            let room = |af: &Vec<u8>| {
                184 - if af.is_empty() && !first {
                    0
                } else {
                    1 + af.len()
                }
            };
            let mut space = room(&af);
            if rest.len() < space {
                // Stuff: grow the adaptation field until the payload fills the packet exactly.
                let need = space - rest.len();
                if af.is_empty() && !first {
                    // An adaptation field of length 0 is one byte; each more byte needs flags.
                    if need == 1 {
                        af = Vec::new();
                        space = 183;
                    } else {
                        af.push(0x00);
                        af.extend(std::iter::repeat_n(0xFF, need - 2));
                        space = 184 - 1 - af.len();
                    }
                } else {
                    af.extend(std::iter::repeat_n(0xFF, need));
                    space = 184 - 1 - af.len();
                }
                debug_assert_eq!(space, rest.len());
            }
            let has_af = first || space < 184;
            let (payload, tail) = rest.split_at(space.min(rest.len()));
            let start = out.len();
            out.push(0x47);
            out.push(if first { 0x40 } else { 0 } | (PID_VIDEO >> 8) as u8);
            out.push(PID_VIDEO as u8);
            out.push(if has_af { 0x30 } else { 0x10 } | self.cc_video);
            self.cc_video = (self.cc_video + 1) & 0x0F;
            if has_af {
                out.push(af.len() as u8);
                out.extend_from_slice(&af);
            }
            out.extend_from_slice(payload);
            debug_assert_eq!(out.len() - start, PACKET);
            rest = tail;
            first = false;
        }
    }

    fn psi(&mut self, pid: u16, _table: u8, section: &[u8], out: &mut Vec<u8>) {
        let cc = if pid == 0 {
            &mut self.cc_pat
        } else {
            &mut self.cc_pmt
        };
        let start = out.len();
        out.extend_from_slice(&[0x47, 0x40 | (pid >> 8) as u8, pid as u8, 0x10 | *cc, 0]);
        *cc = (*cc + 1) & 0x0F;
        out.extend_from_slice(section);
        out.resize(start + PACKET, 0xFF);
    }
}

fn starts_with_aud(codec: Codec, au: &[u8]) -> bool {
    let hdr = if au.starts_with(&[0, 0, 0, 1]) {
        au.get(4)
    } else if au.starts_with(&[0, 0, 1]) {
        au.get(3)
    } else {
        None
    };
    hdr.is_some_and(|h| codec.is_aud(*h))
}

fn timestamp(prefix: u8, ts: u64) -> [u8; 5] {
    [
        (prefix << 4) | (((ts >> 30) as u8 & 0x07) << 1) | 1,
        (ts >> 22) as u8,
        (((ts >> 15) as u8) << 1) | 1,
        (ts >> 7) as u8,
        ((ts as u8) << 1) | 1,
    ]
}

fn pat() -> Vec<u8> {
    // program 1 -> PMT PID
    section(
        0x00,
        1,
        &[0x00, 0x01, 0xE0 | (PID_PMT >> 8) as u8, PID_PMT as u8],
    )
}

fn pmt(codec: Codec) -> Vec<u8> {
    let body = [
        0xE0 | (PID_VIDEO >> 8) as u8,
        PID_VIDEO as u8, // PCR PID
        0xF0,
        0x00, // no program info
        codec.stream_type(),
        0xE0 | (PID_VIDEO >> 8) as u8,
        PID_VIDEO as u8,
        0xF0,
        0x00, // no ES info
    ];
    section(0x02, 1, &body)
}

/// A long-form PSI section with CRC.
fn section(table_id: u8, id: u16, body: &[u8]) -> Vec<u8> {
    let len = 5 + body.len() + 4;
    let mut s = vec![
        table_id,
        0xB0 | (len >> 8) as u8,
        len as u8,
        (id >> 8) as u8,
        id as u8,
        0xC1,
        0,
        0,
    ];
    s.extend_from_slice(body);
    let crc = crc32_mpeg(&s);
    s.extend_from_slice(&crc.to_be_bytes());
    s
}

/// CRC-32/MPEG-2.
pub fn crc32_mpeg(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the export reads back (`rdc_format::ts`) is what was muxed: every access unit, its
    /// times (B-frame PTS/DTS too, across the 33-bit wrap) and keyframe flag, for both codecs.
    #[test]
    fn the_export_reader_reads_back_every_access_unit() {
        for codec in [Codec::H264, Codec::H265] {
            let mut mux = TsMuxer::new(codec);
            let mut ts = Vec::new();
            let mut want = Vec::new();
            for i in 0..40u64 {
                let key = i % 10 == 0;
                let nal = match codec {
                    Codec::H264 => {
                        if key {
                            0x65
                        } else {
                            0x41
                        }
                    }
                    Codec::H265 => {
                        if key {
                            0x26
                        } else {
                            0x02
                        }
                    }
                };
                let mut au = vec![0, 0, 0, 1, nal, 1];
                au.extend((0..(i * 97 % 1500)).map(|b| (b % 251) as u8 | 1));
                let dts = (TS_MASK - 20 * 3600 + i * 3600) & TS_MASK;
                let pts = (dts + if i % 3 == 1 { 7200 } else { 0 }) & TS_MASK;
                mux.mux(&au, pts, dts, key, &mut ts);
                let mut with_aud = codec.aud().to_vec();
                with_aud.extend_from_slice(&au);
                want.push((with_aud, pts, dts, key));
            }
            let v = rdc_format::ts::read_video(&ts).unwrap();
            assert_eq!(
                v.codec,
                match codec {
                    Codec::H264 => rdc_format::ts::Codec::H264,
                    Codec::H265 => rdc_format::ts::Codec::H265,
                }
            );
            let got: Vec<_> = v
                .units
                .into_iter()
                .map(|u| (u.data, u.pts, u.dts, u.keyframe))
                .collect();
            assert_eq!(got, want);
        }
    }

    /// A tiny demuxer: PIDs in order, continuity per PID, and reassembled video PES payloads.
    fn demux(ts: &[u8]) -> (Vec<u16>, Vec<Vec<u8>>, Vec<bool>) {
        assert_eq!(ts.len() % PACKET, 0);
        let mut pids = Vec::new();
        let mut pes: Vec<Vec<u8>> = Vec::new();
        let mut rai = Vec::new();
        let mut cc: std::collections::HashMap<u16, u8> = Default::default();
        for p in ts.chunks(PACKET) {
            assert_eq!(p[0], 0x47);
            let pid = (u16::from(p[1] & 0x1F) << 8) | u16::from(p[2]);
            let pusi = p[1] & 0x40 != 0;
            let afc = (p[3] >> 4) & 3;
            let c = p[3] & 0x0F;
            if let Some(prev) = cc.insert(pid, c) {
                assert_eq!(c, (prev + 1) & 0x0F, "continuity on PID {pid:#x}");
            }
            pids.push(pid);
            let mut off = 4;
            if afc & 2 != 0 {
                let l = p[4] as usize;
                if pusi && pid == PID_VIDEO {
                    rai.push(l > 0 && p[5] & 0x40 != 0);
                    assert!(
                        l > 0 && p[5] & 0x10 != 0,
                        "PCR on every frame's first packet"
                    );
                }
                off += 1 + l;
            }
            if pid == PID_VIDEO {
                if pusi {
                    pes.push(Vec::new());
                }
                pes.last_mut().unwrap().extend_from_slice(&p[off..]);
            } else if pid == 0 || pid == PID_PMT {
                let sec = &p[off + 1..];
                let len = (((sec[1] & 0x0F) as usize) << 8) | sec[2] as usize;
                assert_eq!(crc32_mpeg(&sec[..3 + len]), 0, "PSI CRC");
            }
        }
        (pids, pes, rai)
    }

    #[test]
    fn keyframes_are_entry_points_and_payload_survives() {
        let mut m = TsMuxer::new(Codec::H264);
        let mut out = Vec::new();
        let sizes = [5000usize, 183, 184, 182, 1, 2, 0x10000, 176, 177, 178];
        let mut aus = Vec::new();
        for (i, s) in sizes.iter().enumerate() {
            let mut au = vec![0, 0, 0, 1, 0x65];
            au.extend((0..*s).map(|j| (i * 13 + j) as u8));
            m.mux(
                &au,
                9000 * i as u64 + 3000,
                9000 * i as u64,
                i % 4 == 0,
                &mut out,
            );
            aus.push(au);
        }
        let (pids, pes, rai) = demux(&out);
        assert_eq!(
            &pids[..3],
            &[0, PID_PMT, PID_VIDEO],
            "a stream opens with PAT, PMT, video"
        );
        assert_eq!(
            rai,
            (0..sizes.len()).map(|i| i % 4 == 0).collect::<Vec<_>>()
        );
        for (au, p) in aus.iter().zip(&pes) {
            let hl = 9 + p[8] as usize;
            assert_eq!(&p[hl..hl + 6], Codec::H264.aud());
            assert_eq!(&p[hl + 6..], &au[..]);
        }
    }

    #[test]
    fn existing_aud_not_doubled_and_h265_stream_type() {
        let mut m = TsMuxer::new(Codec::H265);
        let mut out = Vec::new();
        let au = [0, 0, 0, 1, 0x46, 0x01, 0x50, 0, 0, 0, 1, 0x26, 0x01, 0xAA];
        m.mux(&au, 100, 100, true, &mut out);
        let (_, pes, _) = demux(&out);
        let hl = 9 + pes[0][8] as usize;
        assert_eq!(&pes[0][hl..], &au);
        assert_eq!(out[PACKET + 5 + 8 + 4], 0x24, "PMT stream type is HEVC");
    }

    #[test]
    fn crc_known_value() {
        // CRC-32/MPEG-2 check value.
        assert_eq!(crc32_mpeg(b"123456789"), 0x0376_E6E7);
    }
}
