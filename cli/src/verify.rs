//! `rdc verify DIR`: checks an evidence bundle offline and says plainly whether it is complete
//! and unaltered, and if not, what is wrong and where.
//!
//! Nothing in the bundle is trusted that can be recomputed: file hashes are computed from the
//! files, the gaps from the unit's signed manifests, the receipt's digest from the segments.
//! What cannot be recomputed is signed: the segments' manifests and the receipt by the unit,
//! the bundle by the exporter, whose certificate the scheme's CA issued.

use std::collections::{BTreeMap, BTreeSet};

use rdc_format::AuditRecord;
use rdc_format::export::{self, Bundle, Signed};

use crate::audit::{check_chain, unit_keys};
use crate::export::{MANIFEST, SUMS};
use crate::report::{Report, check_issued, read_signed};
use anyhow::Context as _;
use rdc_format::Manifest;
use rdc_format::chain::{self as chainlog};
use rdc_uplink::pki;
use rdc_uplink::tls;
use std::path::{Path, PathBuf};

/// Checks the bundle in `dir`: every line of the report, and its verdict; `Err` (with the
/// lines so far) when the checks could not be run to the end.
pub fn check_bundle(
    dir: &Path,
    ca: Option<&Path>,
    identity: Option<&Path>,
) -> (Report, anyhow::Result<()>) {
    let mut r = Report::default();
    let result = check_all(dir, ca, identity, &mut r);
    r.verdict = if result.is_err() {
        format!(
            "The bundle in {} could not be checked to the end.",
            dir.display()
        )
    } else if !r.failed.is_empty() {
        format!(
            "The bundle in {} is NOT intact: {} check(s) failed (lines marked FAILED above).",
            dir.display(),
            r.failed.len()
        )
    } else if ca.is_none() {
        format!(
            "The bundle in {} is self-consistent, but its ORIGIN IS UNPROVEN: the exporter's certificate was checked only against the CA the bundle carries, which anyone can make. Run again with --ca and the scheme's CA certificate.",
            dir.display()
        )
    } else {
        r.intact_and_proven = true;
        format!(
            "The bundle in {} is complete and unaltered: every check above holds.",
            dir.display()
        )
    };
    (r, result)
}

/// A path from the manifest, refused unless it is a plain relative path inside the bundle.
fn inside(dir: &Path, rel: &str) -> Option<PathBuf> {
    let p = Path::new(rel);
    let plain = !rel.is_empty()
        && p.components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
    plain.then(|| dir.join(p))
}

fn check_all(
    dir: &Path,
    ca: Option<&Path>,
    identity: Option<&Path>,
    r: &mut Report,
) -> anyhow::Result<()> {
    let Some((signed, b)) = read_manifest(dir, r) else {
        return Ok(());
    };
    // The exporter's signature, and who they are.
    let signer = check_exporter(dir, ca, &signed, &b, r)?;
    // Every file: where the manifest says, with its size and hash.
    let actual = check_files(dir, &b, r)?;
    check_sums(dir, &b, r)?;
    extra_files(dir, &b, r);
    // The unit's signed manifests: an unbroken chain, each of this camera.
    let keys = match unit_keys(&b.unit.public_key, &b.unit.retired_keys) {
        Ok(k) => k,
        Err(e) => {
            r.fail(format!("the unit's key in {MANIFEST}: {e}"));
            return Ok(());
        }
    };
    let run_manifests = check_unit_manifests(&b, &keys, r);
    // Each exported segment: in order, its master file the one the unit signed.
    let digest_items = check_segments(&b, &run_manifests, &actual, r);
    // What the manifest says of the footage, recomputed from the unit's manifests.
    check_described(&b, &run_manifests, r);
    // The unit's receipt: it logged this export, of these segments, for this case.
    check_receipt(&b, &keys, &digest_items, signer.as_deref(), r);
    check_frame_times(dir, &b, &run_manifests, r);
    check_decryptions(dir, &b, &actual, identity, r)
}

/// The bundle's signed manifest, read; `None` (failed in the report) when it cannot be.
fn read_manifest(dir: &Path, r: &mut Report) -> Option<(Signed, Bundle)> {
    let d = read_signed(
        (dir, MANIFEST, "bundle"),
        "a bundle manifest",
        (export::FORMAT, |b: &Bundle| b.format.as_str()),
        r,
    )?;
    let signed = Signed {
        bundle: d.value,
        signature: d.signature,
    };
    Some((signed, d.doc))
}

/// The exporter's signature over the manifest, and their certificate issued by the scheme CA:
/// returns the signer's fingerprint when the certificate could be read.
fn check_exporter(
    dir: &Path,
    ca: Option<&Path>,
    signed: &Signed,
    b: &Bundle,
    r: &mut Report,
) -> anyhow::Result<Option<String>> {
    let mut signer: Option<String> = None;
    let cert_der = tls::cert_der(&b.exporter.certificate);
    let sig = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.decode(&signed.signature.value)
    };
    match (&cert_der, sig) {
        (Some(der), Ok(sig)) => {
            signer = Some(pki::fingerprint_text(der));
            let good = pki::verify(der, &export::canonical(&signed.bundle), &sig);
            r.check(
                good.is_ok(),
                format!(
                    "{MANIFEST} is signed by {} ({})",
                    b.exporter.name, b.exporter.fingerprint
                ),
                format!(
                    "{MANIFEST}: the exporter's signature does not match: {}",
                    good.err().map(|e| e.to_string()).unwrap_or_default()
                ),
            );
            r.check(
                pki::fingerprint_text(der) == b.exporter.fingerprint,
                "the exporter's fingerprint is their certificate's",
                "the exporter's fingerprint is not that of the certificate in the manifest",
            );
            check_issued(
                r,
                (dir, "bundle"),
                ca,
                (der, "the exporter"),
                (
                    "when the bundle was signed",
                    b.exported_at_ns,
                    &b.exported_at,
                ),
            )?;
        }
        (None, _) => r.fail("the manifest's exporter certificate is not a PEM certificate"),
        (_, Err(e)) => r.fail(format!("the manifest's signature is not base64: {e}")),
    }
    Ok(signer)
}

/// Every file the manifest lists, present, regular and as hashed: their SHA-256 by path.
fn check_files(dir: &Path, b: &Bundle, r: &mut Report) -> anyhow::Result<BTreeMap<String, String>> {
    let mut actual: BTreeMap<String, String> = BTreeMap::new();
    let mut files_ok = true;
    for f in &b.files {
        let Some(p) = inside(dir, &f.path) else {
            r.fail(format!(
                "{MANIFEST} names a file outside the bundle: {:?}",
                f.path
            ));
            files_ok = false;
            continue;
        };
        match std::fs::symlink_metadata(&p) {
            Err(_) => {
                r.fail(format!("{} is missing", f.path));
                files_ok = false;
            }
            Ok(md) if !md.file_type().is_file() => {
                r.fail(format!(
                    "{} is not a regular file (a {}): a bundle holds only the files it lists, each a regular file inside it",
                    f.path,
                    kind_of(&md)
                ));
                files_ok = false;
            }
            Ok(md) => {
                let sha = crate::fetch::sha256_file(&p)?;
                if md.len() != f.bytes || sha != f.sha256 {
                    r.fail(format!(
                        "{} has been altered: its SHA-256 is {sha}, the manifest says {}",
                        f.path, f.sha256
                    ));
                    files_ok = false;
                }
                actual.insert(f.path.clone(), sha);
            }
        }
    }
    if files_ok {
        r.ok.push(format!(
            "all {} files are present and match their SHA-256 in {MANIFEST}",
            b.files.len()
        ));
    }
    Ok(actual)
}

/// The unit's manifests: an unbroken signed chain, each of this unit's camera. Returns those
/// that are.
fn check_unit_manifests(b: &Bundle, keys: &[[u8; 32]], r: &mut Report) -> Vec<Manifest> {
    let chain_ok = match check_chain(&b.manifests, keys, "manifest") {
        Ok(()) => true,
        Err(e) => {
            r.fail(format!("the unit's manifests: {e}"));
            false
        }
    };
    let mut run_manifests: Vec<Manifest> = Vec::new();
    for e in &b.manifests {
        match serde_json::from_value::<Manifest>(e.body.clone()) {
            Ok(m) if m.camera == b.camera && m.unit == b.unit.id => run_manifests.push(m),
            Ok(m) => r.fail(format!(
                "manifest entry {} describes {}/{}, not {}/{}",
                e.seq, m.unit, m.camera, b.unit.id, b.camera
            )),
            Err(err) => r.fail(format!("manifest entry {} is not readable: {err}", e.seq)),
        }
    }
    if chain_ok {
        r.ok.push(format!(
            "{} manifests of camera {} signed by unit {} ({}), an unbroken chain",
            b.manifests.len(),
            b.camera,
            b.unit.id,
            b.unit.public_key
        ));
    }
    run_manifests
}

/// Each exported segment in order, with its signed manifest, its master file the one the unit
/// signed and its decryption present. Returns (seq, signed SHA-256) of each, for the receipt.
fn check_segments(
    b: &Bundle,
    run_manifests: &[Manifest],
    actual: &BTreeMap<String, String>,
    r: &mut Report,
) -> Vec<(u64, String)> {
    let mut seg_ok = true;
    let mut prev: Option<u64> = None;
    let mut digest_items: Vec<(u64, String)> = Vec::new();
    for s in &b.segments {
        if prev.is_some_and(|p| s.seq <= p) {
            r.fail(format!(
                "segment {} comes after segment {}: the segments are out of order",
                s.seq,
                prev.unwrap_or_default()
            ));
            seg_ok = false;
        }
        prev = Some(s.seq);
        let Some(m) = run_manifests.iter().find(|m| m.seq == s.seq) else {
            r.fail(format!(
                "segment {} has no signed manifest in the bundle",
                s.seq
            ));
            seg_ok = false;
            continue;
        };
        digest_items.push((s.seq, m.ciphertext_sha256.clone()));
        match actual.get(&s.master) {
            Some(sha) if *sha == m.ciphertext_sha256 => {}
            Some(sha) => {
                r.fail(format!(
                    "{} is not the segment {} the unit signed (SHA-256 {sha}, signed {})",
                    s.master, s.seq, m.ciphertext_sha256
                ));
                seg_ok = false;
            }
            None => {
                r.fail(format!(
                    "segment {}: its master file {} is not in the bundle",
                    s.seq, s.master
                ));
                seg_ok = false;
            }
        }
        if !actual.contains_key(&s.decrypted) {
            r.fail(format!(
                "segment {}: its decryption {} is not in the bundle",
                s.seq, s.decrypted
            ));
            seg_ok = false;
        }
    }
    if b.segments.is_empty() {
        r.fail("the bundle holds no segments");
        seg_ok = false;
    }
    if seg_ok {
        r.ok.push(format!(
            "{} segments, each the file the unit signed",
            b.segments.len()
        ));
    }
    digest_items
}

/// The gaps, the footage's range and the clock state, as the unit's manifests show them.
fn check_described(b: &Bundle, run_manifests: &[Manifest], r: &mut Report) {
    let present: BTreeSet<u64> = b.segments.iter().map(|s| s.seq).collect();
    let gaps = export::gaps(
        (b.requested.from_ns, b.requested.to_ns),
        run_manifests,
        &|s| present.contains(&s),
    );
    r.check(
        gaps == b.gaps,
        format!(
            "{} gap(s) in the requested range, as the unit's manifests show",
            b.gaps.len()
        ),
        format!(
            "the gaps listed ({}) are not those the unit's manifests show ({}): {:?}",
            b.gaps.len(),
            gaps.len(),
            gaps.iter()
                .map(|g| format!("{} to {}: {}", g.range.from, g.range.to, g.cause))
                .collect::<Vec<_>>()
        ),
    );
    let exported: Vec<&Manifest> = run_manifests
        .iter()
        .filter(|m| present.contains(&m.seq))
        .collect();
    if let (Some(f), Some(l)) = (exported.first(), exported.last()) {
        r.check(
            b.footage.from_ns == f.start_ns && b.footage.to_ns == l.end_ns,
            "the footage's range is that of its segments",
            format!(
                "the footage's range ({} to {}) is not that of its segments ({} to {})",
                b.footage.from,
                b.footage.to,
                rdc_format::time::rfc3339(f.start_ns),
                rdc_format::time::rfc3339(l.end_ns)
            ),
        );
    }
    let clock = export::ClockSummary::of(exported.iter().copied());
    r.check(
        clock == b.clock,
        if clock.synchronized_throughout {
            "the unit's clock was synchronised throughout the footage".to_owned()
        } else {
            format!(
                "the clock state is as signed: NOT synchronised in segments {:?}",
                clock.unsynchronized_segments
            )
        },
        "the clock state listed is not what the unit's manifests say",
    );
}

/// With the officer's identity: every `.ts` is the decryption of its `.age`.
fn check_decryptions(
    dir: &Path,
    b: &Bundle,
    actual: &BTreeMap<String, String>,
    identity: Option<&Path>,
    r: &mut Report,
) -> anyhow::Result<()> {
    if let Some(id) = identity {
        let ids = crate::keys::read_identities(id)?;
        let mut all = true;
        for s in &b.segments {
            let (Some(age_p), Some(want)) = (inside(dir, &s.master), actual.get(&s.decrypted))
            else {
                continue;
            };
            match decrypted_sha(&age_p, &ids) {
                Ok(sha) if sha == *want => {}
                Ok(sha) => {
                    all = false;
                    r.fail(format!(
                        "{} is not the decryption of {} (decrypts to SHA-256 {sha})",
                        s.decrypted, s.master
                    ));
                }
                Err(e) => {
                    all = false;
                    r.fail(format!("{}: {e:#}", s.master));
                }
            }
        }
        if all {
            r.ok.push("every .ts is the decryption of its .age".to_owned());
        }
    } else {
        r.notes.push(
            "the .ts files were not compared with the decryption of their .age (give --identity)"
                .to_owned(),
        );
    }
    Ok(())
}

fn check_receipt(
    b: &Bundle,
    keys: &[[u8; 32]],
    items: &[(u64, String)],
    signer: Option<&str>,
    r: &mut Report,
) {
    if let Err(e) = chainlog::verify_entry_by(&b.receipt, keys) {
        r.fail(format!("the unit's audit receipt: {e}"));
        return;
    }
    let rec: AuditRecord = match serde_json::from_value(b.receipt.body.clone()) {
        Ok(rec) => rec,
        Err(e) => {
            r.fail(format!(
                "the unit's audit receipt is not an audit entry: {e}"
            ));
            return;
        }
    };
    let (first, last) = (
        items.first().map_or(0, |i| i.0),
        items.last().map_or(0, |i| i.0),
    );
    let digest = export::segments_digest(items.iter().map(|(s, h)| (*s, h.as_str())));
    let want = export::receipt_detail(first, last, items.len() as u64, &digest);
    let mut wrong = Vec::new();
    // A unit that wrote the footage onto a memory stick records one receipt for all the
    // request's cameras, each camera's segments in it as an export receipt names them.
    let by_stick = rec.action == "stick_export";
    if !(rec.action == "export" || by_stick) || !rec.outcome.is_granted() {
        wrong.push(format!(
            "it records {} ({}), not a granted export",
            rec.action, rec.outcome
        ));
    }
    if !by_stick && rec.camera.as_deref() != Some(b.camera.as_str()) {
        wrong.push(format!("its camera is {:?}", rec.camera));
    }
    if rec.case_ref.as_deref() != Some(b.case_ref.as_str())
        || rec.reason.as_deref() != Some(b.reason.as_str())
    {
        wrong.push("its case reference or reason differ".into());
    }
    if rec.from_ns != Some(b.requested.from_ns) || rec.to_ns != Some(b.requested.to_ns) {
        wrong.push("its time range differs".into());
    }
    let names_them = if by_stick {
        let part = format!("{}: {want}", b.camera);
        rec.detail
            .as_deref()
            .is_some_and(|d| d.split("; ").any(|x| x == part))
    } else {
        rec.detail.as_deref() == Some(want.as_str())
    };
    if !names_them {
        wrong.push("it names other segments than those in the bundle".into());
    }
    // The unit names whom it served as `name (sha256:…)`, from the certificate it checked:
    // the person who signed the bundle must be that person.
    let served = receipt_fingerprint(&rec.who);
    if signer.is_none() || served != signer {
        wrong.push(format!(
            "the unit served {}, but {MANIFEST} is signed by {} ({})",
            rec.who,
            b.exporter.name,
            signer.unwrap_or("an unreadable certificate")
        ));
    }
    r.check(
        wrong.is_empty(),
        format!(
            "the unit logged this export (audit entry {}, {}, by {}{}), of exactly these segments",
            b.receipt.seq,
            rdc_format::time::rfc3339(b.receipt.time_ns),
            rec.who,
            if by_stick {
                ", onto a memory stick"
            } else {
                ""
            }
        ),
        format!(
            "the audit receipt (entry {}) is not this export's: {}",
            b.receipt.seq,
            wrong.join("; ")
        ),
    );
}

/// `SHA256SUMS`: every line right, and every file of the bundle in it.
fn check_sums(dir: &Path, b: &Bundle, r: &mut Report) -> anyhow::Result<()> {
    let text = match std::fs::read_to_string(dir.join(SUMS)) {
        Ok(t) => t,
        Err(e) => {
            r.fail(format!("{SUMS} cannot be read: {e}"));
            return Ok(());
        }
    };
    let mut listed = BTreeSet::new();
    let mut ok = true;
    for (i, line) in text.lines().enumerate() {
        let Some((sha, path)) = line.split_once("  ") else {
            r.fail(format!("{SUMS} line {} is not `<sha256>  <file>`", i + 1));
            ok = false;
            continue;
        };
        let Some(p) = inside(dir, path) else {
            r.fail(format!(
                "{SUMS} line {} names a file outside the bundle",
                i + 1
            ));
            ok = false;
            continue;
        };
        listed.insert(path.to_owned());
        match crate::fetch::sha256_file(&p) {
            Ok(actual) if actual == sha => {}
            Ok(actual) => {
                r.fail(format!(
                    "{SUMS} line {}: {path} has SHA-256 {actual}, the line says {sha}",
                    i + 1
                ));
                ok = false;
            }
            Err(_) => {
                r.fail(format!("{SUMS} line {}: {path} is missing", i + 1));
                ok = false;
            }
        }
    }
    for f in b.files.iter().map(|f| f.path.as_str()).chain([MANIFEST]) {
        if !listed.contains(f) {
            r.fail(format!("{SUMS} does not list {f}"));
            ok = false;
        }
    }
    if ok {
        r.ok.push(format!("{SUMS} lists every file, each matching"));
    }
    Ok(())
}

/// What a directory entry is, in words.
fn kind_of(md: &std::fs::Metadata) -> &'static str {
    let t = md.file_type();
    if t.is_symlink() {
        "symbolic link"
    } else if t.is_dir() {
        "folder"
    } else if t.is_file() {
        "file"
    } else {
        "special file"
    }
}

/// The fingerprint in an audit entry's `who` (`name (sha256:…)`).
fn receipt_fingerprint(who: &str) -> Option<&str> {
    let (_, fp) = who.rsplit_once(" (")?;
    fp.strip_suffix(')')
}

/// The bundle is a closed set of regular files: anything else in the folder (an extra file, a
/// symbolic link, a folder the export did not make) fails, named, since a recipient cannot
/// tell an added copy of a segment from footage the unit released.
fn extra_files(dir: &Path, b: &Bundle, r: &mut Report) {
    let known: BTreeSet<&str> = b
        .files
        .iter()
        .map(|f| f.path.as_str())
        .chain([MANIFEST, SUMS])
        .collect();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(dir.join(&rel)) else {
            continue;
        };
        for e in rd.flatten() {
            let p = rel.join(e.file_name());
            let Ok(md) = std::fs::symlink_metadata(dir.join(&p)) else {
                continue;
            };
            let listed = known.contains(p.to_string_lossy().as_ref());
            if md.file_type().is_dir() {
                if known.iter().any(|k| Path::new(k).starts_with(&p)) {
                    stack.push(p);
                } else {
                    r.fail(format!(
                        "{} is a folder the export did not make: a bundle holds only the files it lists",
                        p.display()
                    ));
                }
            } else if md.file_type().is_symlink() && !listed {
                r.fail(format!(
                    "{} is a symbolic link added to the bundle: a bundle holds only regular files",
                    p.display()
                ));
            } else if !listed {
                r.fail(format!(
                    "{} is in the bundle but not part of the export (a {} the manifest does not list)",
                    p.display(),
                    kind_of(&md)
                ));
            }
        }
    }
}

/// Each segment's decrypted `.ts`: its frames' decode times strictly increasing, and the time
/// they span that of the segment's signed range (a camera whose timestamps jumped must not
/// leave frames sharing a time, or a segment shorter than the unit says).
fn check_frame_times(dir: &Path, b: &Bundle, manifests: &[Manifest], r: &mut Report) {
    let mut ok = true;
    for s in &b.segments {
        let Some(p) = inside(dir, &s.decrypted) else {
            continue;
        };
        if !std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_file()) {
            continue; // named above
        }
        let Ok(bytes) = std::fs::read(&p) else {
            continue;
        };
        // (A segment in which the unit's clock stepped, signed as such, spans another time.)
        let signed = manifests
            .iter()
            .find(|m| m.seq == s.seq && m.wall_steps == 0)
            .map(|m| m.end_ns - m.start_ns);
        let problem = match rdc_format::ts::read_video(&bytes) {
            Ok(v) => rdc_format::ts::frame_time_problem(&v, signed),
            Err(e) => Some(format!("its TS cannot be read: {e}")),
        };
        if let Some(why) = problem {
            ok = false;
            r.fail(format!("segment {} ({}): {why}", s.seq, s.decrypted));
        }
    }
    if ok {
        r.ok.push(
            "every segment's frame times increase strictly and span its signed range".to_owned(),
        );
    }
}

fn decrypted_sha(src: &Path, ids: &[crate::keys::AgeIdentity]) -> anyhow::Result<String> {
    let d = age::Decryptor::new(std::fs::File::open(src)?)
        .with_context(|| format!("{} is not an age file", src.display()))?;
    let mut rd = d
        .decrypt(ids.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .context("the identity cannot decrypt it")?;
    Ok(rdc_format::sha256_hex(&mut rd)?)
}
