//! `rdc list` and `rdc fetch`: resumable, two segments in flight, every segment checked against
//! the unit's signed manifest, local names built from numbers only, decrypted on this machine.

use crate::CheckFailed;
use crate::audit::{check_chain, unit_keys};
use crate::events::{Event, Events};
use crate::progress::{Counting, Progress};
use crate::select::{Footage, Target};
use crate::time;
use crate::units::connect;
use anyhow::{Context as _, anyhow};
use rdc_config::Id;
use rdc_format::chain::Entry;
use rdc_format::{Manifest, SegmentEntry};
use rdc_uplink::client::{Client, ClientError};
use rdc_uplink::protocol::{Justification, Track, TrackRef};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub(crate) async fn list(
    c: &Client,
    f: &Footage,
    (from, to): (i64, i64),
) -> anyhow::Result<Vec<SegmentEntry>> {
    Ok(c.list(&f.camera, from, to, &f.why.justification()?).await?)
}

/// The local name of a segment: built from numbers only, never from a name the unit sent, so
/// a compromised or impostor unit cannot write outside `--out`.
pub(crate) fn local_stem(seq: u64, start_ns: i64) -> String {
    format!("{seq:010}-{start_ns}")
}

/// Where segment `seq` is fetched to before it is verified.
pub(crate) fn part_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:010}.part"))
}

/// Fetches every segment in the range, resuming, verifying and decrypting.
pub(crate) async fn fetch(
    target: &Target,
    footage: &Footage,
    identity: Option<&Path>,
    out: &Path,
    events: &Events,
) -> anyhow::Result<Fetch> {
    let camera = &footage.camera;
    let range = time::parse_range(&footage.from, &footage.to)?;
    let identities = identity.map(crate::keys::read_identities).transpose()?;
    let just = footage.why.justification()?;
    let mut client = connect(target).await?;
    // The camera is an `Id` (checked as the command line was parsed): a plain folder name.
    let dir = out.join(camera.as_str());
    let (status, entries, lead) =
        status_and_list(&client, camera.into(), range, &just, &dir).await?;
    let unit_keys = unit_keys(&status.unit_public_key, &status.retired_keys)?;
    if entries.is_empty() {
        return Ok(Fetch {
            dir,
            segments: 0,
            bytes: 0,
            decrypted: false,
        });
    }
    let seqs = seq_span(&entries);
    let (_, fetched) = fetch_segments(
        &mut client,
        target,
        (camera, Track::Footage),
        &entries,
        seqs,
        &unit_keys,
        &dir,
        &just,
        identities.as_deref(),
        lead,
        events,
    )
    .await?;
    client.close();
    Ok(Fetch {
        dir,
        segments: fetched.len(),
        bytes: entries.iter().map(|e| e.segment.bytes).sum(),
        decrypted: identities.is_some(),
    })
}

/// What [`fetch`] brought: `segments` files of `bytes` (ciphertext) in `dir`, each checked
/// against the unit's signed manifest, and decrypted beside it if `decrypted`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Fetch {
    pub dir: PathBuf,
    pub segments: usize,
    pub bytes: u64,
    pub decrypted: bool,
}

/// The range's first segment, asked for with the list: its bytes, still to be read.
#[derive(Debug)]
pub(crate) struct Lead {
    seq: u64,
    body: rdc_uplink::client::Body,
}

/// The unit's status (for its signing key) and the segments of `of` in `range`, asked for
/// together: round trips cost 60-150 ms on 4G. When nothing of the range is in `dir` yet, the
/// range's first segment is asked for with them, so its bytes start arriving with the list, a
/// round trip before the first fetch could be sent ([`Lead`]; anything already in `dir` is
/// resumed instead, from where it stopped).
pub(crate) async fn status_and_list(
    client: &Client,
    of: TrackRef<'_>,
    (from_ns, to_ns): (i64, i64),
    just: &Justification,
    dir: &Path,
) -> anyhow::Result<(
    rdc_uplink::protocol::StatusAnswer,
    Vec<SegmentEntry>,
    Option<Lead>,
)> {
    let fresh = std::fs::read_dir(dir).map_or(true, |mut d| d.next().is_none());
    let lead = async {
        if !fresh {
            return None;
        }
        // Refused (nothing in the range) or failed: the list says what there is.
        let (entry, body) = client.fetch_first(of, from_ns, to_ns, just).await.ok()?;
        Some(Lead {
            seq: entry.segment.seq,
            body,
        })
    };
    let (status, entries, lead) =
        tokio::join!(client.status(), client.list(of, from_ns, to_ns, just), lead);
    Ok((status?, entries?, lead))
}

/// The segment numbers `lo..hi` that the listed `entries` span.
pub(crate) fn seq_span(entries: &[SegmentEntry]) -> (u64, u64) {
    (
        entries.iter().map(|e| e.segment.seq).min().unwrap_or(0),
        entries.iter().map(|e| e.segment.seq).max().unwrap_or(0) + 1,
    )
}

/// A segment fetched, checked against its signed manifest, and (with an identity) decrypted.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub(crate) manifest: Manifest,
    pub(crate) age: PathBuf,
    pub(crate) ts: Option<PathBuf>,
}

/// Fetches `entries` of a camera's track into `dir`, resuming what is there, two segments in
/// flight; checks the chain of the track's manifests `manifest_seqs` (which must cover the entries) and every
/// file against its manifest; decrypts with `identities`. Returns the checked manifest log
/// entries and the segments, in the order of `entries`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn fetch_segments(
    client: &mut Client,
    target: &Target,
    (camera, track): (&Id, Track),
    entries: &[SegmentEntry],
    manifest_seqs: (u64, u64),
    unit_keys: &[[u8; 32]],
    dir: &Path,
    just: &Justification,
    identities: Option<&[crate::keys::AgeIdentity]>,
    lead: Option<Lead>,
    events: &Events,
) -> anyhow::Result<(Vec<Entry>, Vec<Fetched>)> {
    std::fs::create_dir_all(dir)?;
    let of = TrackRef { camera, track };
    let total: u64 = entries.iter().map(|e| e.segment.bytes).sum();
    let progress = Arc::new(Mutex::new(Progress::new(
        camera.as_str(),
        total,
        events.clone(),
    )));
    let bar = || progress.lock().unwrap_or_else(|e| e.into_inner());
    for e in entries {
        let on_disk = if dir
            .join(format!(
                "{}.age",
                local_stem(e.segment.seq, e.segment.start_ns)
            ))
            .exists()
        {
            e.segment.bytes
        } else {
            std::fs::metadata(part_path(dir, e.segment.seq)).map_or(0, |md| md.len())
        };
        bar().resumed(e.segment.seq, on_disk);
    }
    // The lead, if it is one of the entries, goes on into its `.part` file, beside the
    // prefetch of the others.
    let lead = lead.filter(|l| entries.iter().any(|e| e.segment.seq == l.seq));
    let lead_seq = lead.as_ref().map(|l| l.seq);
    let lead = async {
        let Some(Lead { seq, body }) = lead else {
            return;
        };
        if let Ok(mut f) = open_part(&part_path(dir, seq), seq, &progress).await {
            // Whatever does not arrive is fetched again, resuming, by the checked pass.
            let _ = body.copy_to(&mut f).await;
        }
    };
    let (manifests, (), ()) = tokio::join!(
        client.manifests(of, manifest_seqs.0, manifest_seqs.1, just),
        prefetch(client, of, entries, dir, just, &progress, lead_seq),
        lead
    );
    let manifests: Vec<Entry> = manifests?;
    check_chain(&manifests, unit_keys, "manifest")?;
    let mut fetched = Vec::with_capacity(entries.len());
    for e in entries {
        let m = verified_manifest(&manifests, of, e.segment.seq)?;
        let stem = local_stem(m.seq, m.start_ns);
        let fin = dir.join(format!("{stem}.age"));
        let part = part_path(dir, m.seq);
        if !(fin.exists() && sha256_file(&fin)? == m.ciphertext_sha256) {
            let mut attempts = 0;
            loop {
                let have = std::fs::metadata(&part).map(|md| md.len()).unwrap_or(0);
                if have >= m.ciphertext_len {
                    break;
                }
                let mut f = open_part(&part, e.segment.seq, &progress).await?;
                let r = client.fetch(of, e.segment.seq, have, just, &mut f).await;
                drop(f);
                match r {
                    Ok(_) => {}
                    Err(
                        err @ (ClientError::Refused(_) | ClientError::CertificateRefused { .. }),
                    ) => return Err(err.into()),
                    Err(err) => {
                        attempts += 1;
                        if attempts > 30 {
                            return Err(anyhow!(err)).context(
                                "the link kept dropping; run the same command again to resume",
                            );
                        }
                        let now = std::fs::metadata(&part).map(|md| md.len()).unwrap_or(0);
                        // What was buffered but not written is fetched again.
                        bar().set(e.segment.seq, now);
                        let wait = retry_delay(attempts);
                        events.emit(&Event::LinkDropped {
                            seq: m.seq,
                            at: now,
                            of: m.ciphertext_len,
                            error: err.to_string(),
                            attempt: attempts,
                            attempts: 30,
                            retry_in_s: wait.as_secs(),
                        });
                        tokio::time::sleep(wait).await;
                        if let Ok(c) = connect(target).await {
                            *client = c;
                        }
                    }
                }
            }
            let got = sha256_file(&part)?;
            if got != m.ciphertext_sha256 {
                std::fs::remove_file(&part)?;
                check_failed!(
                    "segment {} does not match its signed manifest (SHA-256 {got}); it was removed, fetch again",
                    e.segment.seq
                );
            }
            std::fs::rename(&part, &fin)?;
        }
        bar().segment_done(e.segment.seq);
        let ts = match identities {
            Some(ids) => {
                let ts = dir.join(format!("{stem}.ts"));
                decrypt(&fin, &ts, ids)?;
                Some(ts)
            }
            None => None,
        };
        fetched.push(Fetched {
            manifest: m,
            age: fin,
            ts,
        });
    }
    bar().finish();
    Ok((manifests, fetched))
}

/// The signed manifest of segment `seq` of a camera's track, checked to be about that segment.
pub(crate) fn verified_manifest(
    ms: &[Entry],
    of: TrackRef<'_>,
    seq: u64,
) -> anyhow::Result<Manifest> {
    let camera = of.track.store_name(of.camera.as_str());
    let Some(entry) = ms.iter().find(|x| x.body["seq"].as_u64() == Some(seq)) else {
        check_failed!("the unit sent no manifest for segment {seq}");
    };
    let m: Manifest = serde_json::from_value(entry.body.clone()).map_err(|e| {
        CheckFailed(format!(
            "the manifest of segment {seq} is not readable: {e}"
        ))
    })?;
    if m.camera != camera || m.seq != seq {
        check_failed!(
            "the manifest sent for {camera}/{seq} describes {}/{}",
            m.camera,
            m.seq
        );
    }
    Ok(m)
}

/// The first pass over the segments not yet on disk (but the lead's, which arrives beside it),
/// two at a time so that the link does not idle for a round trip between segments. Whatever
/// fails here stays in its `.part` file for the checked, resuming pass that follows.
pub(crate) async fn prefetch(
    client: &Client,
    of: TrackRef<'_>,
    entries: &[SegmentEntry],
    dir: &Path,
    just: &Justification,
    progress: &Arc<Mutex<Progress>>,
    lead: Option<u64>,
) {
    use futures_util::StreamExt as _;
    let mut todo = entries.iter().filter(|e| {
        Some(e.segment.seq) != lead
            && !dir
                .join(format!(
                    "{}.age",
                    local_stem(e.segment.seq, e.segment.start_ns)
                ))
                .exists()
    });
    // Two in flight; a named `async fn` each, so the future is `Send` for any caller.
    let mut inflight = futures_util::stream::FuturesUnordered::new();
    loop {
        while inflight.len() < 2 {
            let Some(e) = todo.next() else { break };
            inflight.push(prefetch_one(client, of, e, dir, just, progress));
        }
        if inflight.next().await.is_none() {
            break;
        }
    }
}

async fn prefetch_one(
    client: &Client,
    of: TrackRef<'_>,
    e: &SegmentEntry,
    dir: &Path,
    just: &Justification,
    progress: &Arc<Mutex<Progress>>,
) {
    let part = part_path(dir, e.segment.seq);
    let have = std::fs::metadata(&part).map_or(0, |md| md.len());
    if have >= e.segment.bytes {
        return;
    }
    let Ok(mut f) = open_part(&part, e.segment.seq, progress).await else {
        return;
    };
    let _ = client.fetch(of, e.segment.seq, have, just, &mut f).await;
}

/// Segment `seq`'s `.part` file, open for appending, counting what is written into `progress`.
pub(crate) async fn open_part(
    part: &Path,
    seq: u64,
    progress: &Arc<Mutex<Progress>>,
) -> std::io::Result<Counting<tokio::io::BufWriter<tokio::fs::File>>> {
    let f = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(part)
        .await?;
    Ok(Counting {
        inner: tokio::io::BufWriter::new(f),
        seq,
        progress: progress.clone(),
    })
}

pub(crate) fn sha256_file(p: &Path) -> anyhow::Result<String> {
    let mut f = std::fs::File::open(p).with_context(|| format!("reading {}", p.display()))?;
    Ok(rdc_format::sha256_hex(&mut f)?)
}

pub(crate) fn decrypt(
    src: &Path,
    dst: &Path,
    ids: &[crate::keys::AgeIdentity],
) -> anyhow::Result<()> {
    let d = age::Decryptor::new(std::fs::File::open(src)?)
        .with_context(|| format!("{} is not an age file", src.display()))?;
    let mut r = d
        .decrypt(ids.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .with_context(|| {
            format!(
                "your identity cannot decrypt {}: is it one of the unit's recipients?",
                src.display()
            )
        })?;
    let mut out = std::fs::File::create(dst)?;
    std::io::copy(&mut r, &mut out).with_context(|| format!("decrypting {}", src.display()))?;
    Ok(())
}

/// How long to wait before retry `attempt` (from 1) of a dropped fetch: 1 s, doubling to 16 s,
/// so a short drop resumes at once and a long outage is not hammered (30 tries span about 7
/// minutes).
pub(crate) fn retry_delay(attempt: u32) -> Duration {
    Duration::from_secs(1 << attempt.saturating_sub(1).min(4))
}

#[cfg(test)]
mod retry_tests {
    #[test]
    fn retries_back_off_from_one_second_to_sixteen() {
        let secs: Vec<u64> = (1..=7).map(|a| super::retry_delay(a).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 16, 16]);
        let total: u64 = (1..=30).map(|a| super::retry_delay(a).as_secs()).sum();
        assert_eq!(total, 1 + 2 + 4 + 8 + 16 * 26);
    }
}
