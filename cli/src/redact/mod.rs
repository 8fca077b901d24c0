//! `rdc redact`: a disclosure copy of an evidence bundle with third parties obscured (002 §41,
//! R15). A person chooses the regions (a rectangle moving between keyframes; never found by
//! face recognition, R17); the working copy is decoded, the regions obscured beyond recovery
//! (black, or 16 px blocks), re-encoded, and the disclosure signed by the officer and recorded
//! by the unit. The master is only read.

pub(crate) mod regions;
pub(crate) mod render;
mod sheet;

use rdc_format::export::{self, Bundle, Exporter, FileHash, Signature};
use serde::{Deserialize, Serialize};

use crate::CheckFailed;
use crate::audit::unit_keys;
use crate::export::{CA_FILE, MANIFEST, base64_encode, hash_file, write_new};
use crate::report::Report;
use crate::select::Target;
use crate::units;
use crate::units::connect;
use anyhow::{Context as _, anyhow, bail};
use rdc_config::Id;
use rdc_format::chain::{self as chainlog, Entry};
use rdc_uplink::pki;
use rdc_uplink::protocol::{Justification, Purpose, Request};
use regions::{Mode, Region};
use std::path::{Path, PathBuf};

pub(crate) const DISCLOSURE: &str = "disclosure.json";
pub(crate) const VIDEO: &str = "disclosure.mp4";
/// A redacted still's picture.
pub(crate) const PICTURE: &str = "disclosure.png";
pub(crate) const REGIONS: &str = "regions.toml";
pub(crate) const FORMAT: &str = "rdc-disclosure/1";

#[derive(clap::Args, Debug)]
pub(crate) struct RedactArgs {
    /// The evidence bundle (`rdc export`'s folder; its working copy is the source) or a
    /// still's folder (`rdc still make`; its picture is).
    pub(crate) bundle: PathBuf,
    /// The regions to obscure (REGIONS.toml: `[[region]]` with from, to and keyframes of
    /// at, x, y, w, h in the picture's pixels).
    #[arg(long)]
    pub(crate) regions: PathBuf,
    /// The disclosure's folder (not with --check).
    #[arg(long, short, required_unless_present = "check")]
    pub(crate) out: Option<PathBuf>,
    /// How regions are obscured: solid (black) or pixelate (16 px blocks, each its average).
    #[arg(long, value_enum, default_value = "solid")]
    pub(crate) mode: Mode,
    /// Obscure everything outside the regions (to disclose only the requester).
    #[arg(long)]
    pub(crate) keep_only: bool,
    /// Only draw a contact sheet of the regions over the footage (PNG) to review them.
    #[arg(long, value_name = "SHEET.png")]
    pub(crate) check: Option<PathBuf>,
    /// Why (recorded with the disclosure and on the unit).
    #[arg(long, required_unless_present = "check")]
    pub(crate) reason: Option<String>,
    /// The subject access request it answers.
    #[arg(long, default_value = "")]
    pub(crate) request_ref: String,
    /// The unit that recorded the footage, as named in the units file: it records the
    /// disclosure in its audit log (and the officer's key signs it).
    #[arg(long, short, required_unless_present = "check")]
    pub(crate) unit: Option<String>,
    /// The units file (default: $XDG_CONFIG_HOME/rdc/units.toml or ~/.config/rdc/units.toml).
    #[arg(long)]
    pub(crate) units: Option<PathBuf>,
    /// x264's preset (faster renders, larger files).
    #[arg(long, default_value = "superfast")]
    pub(crate) preset: String,
}

/// What `disclosure.json` says, signed by the officer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Disclosure {
    pub(crate) format: String,
    /// The exhibit it was made from: its signed manifest's SHA-256, unit, camera, case.
    pub(crate) source: Source,
    pub(crate) regions: Vec<Region>,
    /// How regions are obscured: solid (black) or pixelate (16 px blocks, each its average).
    pub(crate) mode: Mode,
    pub(crate) keep_only: bool,
    pub(crate) block_px: usize,
    pub(crate) encoder: render::Encoder,
    pub(crate) frames: u64,
    pub(crate) obscured_frames: u64,
    pub(crate) reason: String,
    #[serde(default)]
    pub(crate) request_ref: String,
    pub(crate) redactor: Exporter,
    pub(crate) made_ns: i64,
    pub(crate) made: String,
    pub(crate) files: Vec<FileHash>,
    /// The unit's signed audit entry recording this disclosure.
    pub(crate) receipt: Entry,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Source {
    pub(crate) manifest_sha256: String,
    pub(crate) unit: String,
    pub(crate) unit_public_key: String,
    #[serde(default)]
    pub(crate) retired_keys: Vec<String>,
    pub(crate) camera: String,
    pub(crate) case_ref: String,
    pub(crate) footage: export::Range,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SignedDisclosure {
    pub(crate) disclosure: serde_json::Value,
    pub(crate) signature: Signature,
}

/// For the benchmark: renders `input` (a working copy whose first frame is shown at
/// `first_ns`) with the regions of `regions_toml` into `output`; frames rendered.
#[doc(hidden)]
pub fn render_for_bench(
    input: &Path,
    first_ns: i64,
    regions_toml: &str,
    pixelate: bool,
    preset: &str,
    output: &Path,
) -> anyhow::Result<u64> {
    let regions = regions::parse(regions_toml, "the regions")?;
    let mode = if pixelate {
        Mode::Pixelate
    } else {
        Mode::Solid
    };
    let enc = render::Encoder {
        preset: preset.to_owned(),
        ..Default::default()
    };
    let r = render::render(
        input,
        rdc_format::ts::Codec::H264,
        first_ns,
        &regions,
        (mode, false),
        &enc,
        output,
    )?;
    Ok(r.frames)
}

fn read_bundle(dir: &Path) -> anyhow::Result<(Bundle, String)> {
    let p = dir.join(MANIFEST);
    let bytes = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
    let signed: export::Signed = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a bundle's manifest", p.display()))?;
    let b: Bundle = serde_json::from_value(signed.bundle)
        .with_context(|| format!("{} is not a bundle's manifest", p.display()))?;
    Ok((b, crate::fetch::sha256_file(&p)?))
}

/// What is redacted: a bundle's working copy, or a still's picture.
struct Origin {
    /// The signed file that names the footage (a bundle's manifest, a still's record) by
    /// SHA-256, and the footage's facts.
    source: Source,
    still: Option<StillPicture>,
    working_copy: Option<(PathBuf, rdc_format::ts::Codec, i64)>,
}

struct StillPicture {
    png: PathBuf,
    frame_ns: i64,
    height: usize,
}

fn origin(dir: &Path, keep_checking: bool) -> anyhow::Result<Origin> {
    if dir.join(crate::exhibit::RECORD).exists() {
        let r = crate::exhibit::check::folder(dir, None, None);
        if keep_checking && !r.failed.is_empty() {
            check_failed!(
                "the still {} is not intact ({}); nothing is disclosed from it",
                dir.display(),
                r.failed.join("; ")
            );
        }
        let signed: crate::exhibit::SignedRecord =
            serde_json::from_slice(&std::fs::read(dir.join(crate::exhibit::RECORD))?)?;
        let rec: crate::exhibit::Record = serde_json::from_value(signed.record)?;
        return Ok(Origin {
            source: Source {
                manifest_sha256: crate::fetch::sha256_file(&dir.join(crate::exhibit::RECORD))?,
                unit: rec.unit.id.clone(),
                unit_public_key: rec.unit.public_key.clone(),
                retired_keys: rec.unit.retired_keys.clone(),
                camera: rec.camera.clone(),
                case_ref: rec.case_ref.clone(),
                footage: export::Range::new(rec.frame.time_ns, rec.frame.time_ns),
            },
            still: Some(StillPicture {
                png: dir.join(crate::exhibit::PNG),
                frame_ns: rec.frame.time_ns,
                height: rec.picture.height,
            }),
            working_copy: None,
        });
    }
    let (report, checked) = crate::verify::check_bundle(dir, None, None);
    checked?;
    if keep_checking && !report.failed.is_empty() {
        check_failed!(
            "the bundle {} is not intact ({}); nothing is disclosed from it",
            dir.display(),
            report.failed.join("; ")
        );
    }
    let (bundle, manifest_sha) = read_bundle(dir)?;
    let wc = bundle
        .working_copy
        .clone()
        .ok_or_else(|| anyhow!("the bundle has no working copy to redact"))?;
    Ok(Origin {
        source: Source {
            manifest_sha256: manifest_sha,
            unit: bundle.unit.id.clone(),
            unit_public_key: bundle.unit.public_key.clone(),
            retired_keys: bundle.unit.retired_keys.clone(),
            camera: bundle.camera.clone(),
            case_ref: bundle.case_ref.clone(),
            footage: bundle.footage.clone(),
        },
        still: None,
        working_copy: Some((dir.join(&wc.file), wc.codec, wc.range.from_ns)),
    })
}

/// A still's picture with the regions in force at its frame obscured (RGB: black, or 16 px
/// blocks of their average); the caption strip beneath is left as it is.
fn redact_picture(
    p: &StillPicture,
    regions: &[Region],
    (mode, keep_only): (Mode, bool),
    out: &Path,
) -> anyhow::Result<u64> {
    let (w, total_h, mut rgb) = crate::exhibit::frame::png_pixels(&p.png)?;
    let h = p.height.min(total_h);
    let marked = regions::blocks(regions, p.frame_ns, keep_only, (w, h));
    let bw = w.div_ceil(regions::GRID);
    for (b, _) in marked.iter().enumerate().filter(|(_, m)| **m) {
        let (x0, y0) = (b % bw * regions::GRID, b / bw * regions::GRID);
        let (x1, y1) = ((x0 + regions::GRID).min(w), (y0 + regions::GRID).min(h));
        let mut sum = [0u64; 3];
        for y in y0..y1 {
            for x in x0..x1 {
                for c in 0..3 {
                    sum[c] += u64::from(rgb[(y * w + x) * 3 + c]);
                }
            }
        }
        let n = ((x1 - x0) * (y1 - y0)).max(1) as u64;
        let v = match mode {
            Mode::Solid => [0u8; 3],
            Mode::Pixelate => [(sum[0] / n) as u8, (sum[1] / n) as u8, (sum[2] / n) as u8],
        };
        for y in y0..y1 {
            for x in x0..x1 {
                rgb[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&v);
            }
        }
    }
    crate::preview::write_png(&rgb, (w, total_h), out)?;
    Ok(u64::from(marked.iter().any(|m| *m)))
}

/// `rdc redact`.
pub(crate) async fn redact(a: &RedactArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&a.regions)
        .with_context(|| format!("reading {}", a.regions.display()))?;
    let regions = regions::parse(&text, &a.regions.display().to_string())?;
    let from = origin(&a.bundle, true)?;
    if let Some(still) = &from.still {
        return redact_still(a, &text, &regions, &from.source, still).await;
    }
    let (input, codec, first_ns) = from
        .working_copy
        .clone()
        .ok_or_else(|| anyhow!("nothing to redact"))?;
    if let Some(sheet) = &a.check {
        let n = sheet::draw(&input, codec, first_ns, &regions, a.keep_only, sheet)?;
        outln!(
            "{} pictures with the regions drawn over them in {}: check them before rendering",
            n,
            sheet.display()
        );
        return Ok(());
    }
    let (out, reason) = out_and_reason(a)?;
    let me = Maker::of(a)?;
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let enc = render::Encoder {
        preset: a.preset.clone(),
        ..Default::default()
    };
    let part = out.join(format!("{VIDEO}.part"));
    let done = render::render(
        &input,
        codec,
        first_ns,
        &regions,
        (a.mode, a.keep_only),
        &enc,
        &part,
    )?;
    std::fs::rename(&part, out.join(VIDEO))?;
    let d = finish(
        a,
        &me,
        (&text, regions),
        &from.source,
        (&out, VIDEO, &reason),
        (done.frames, done.obscured_frames, enc),
    )
    .await?;
    outln!(
        "disclosure of {} frames ({} with regions obscured, {}) in {}; recorded by unit {} (audit entry {}); check it with `rdc verify --ca CA {}`",
        d.frames,
        d.obscured_frames,
        match (a.mode, a.keep_only) {
            (_, true) => "everything but the regions obscured",
            (Mode::Solid, false) => "black",
            (Mode::Pixelate, false) => "16 px blocks",
        },
        out.display(),
        d.source.unit,
        d.receipt.seq,
        out.display()
    );
    Ok(())
}

/// A still's disclosure: its picture with the regions obscured.
async fn redact_still(
    a: &RedactArgs,
    text: &str,
    regions: &[Region],
    source: &Source,
    still: &StillPicture,
) -> anyhow::Result<()> {
    if a.check.is_some() {
        bail!("--check draws a bundle's footage; for a still, render it and look at {PICTURE}");
    }
    let (out, reason) = out_and_reason(a)?;
    let me = Maker::of(a)?;
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let obscured = redact_picture(still, regions, (a.mode, a.keep_only), &out.join(PICTURE))?;
    let d = finish(
        a,
        &me,
        (text, regions.to_vec()),
        source,
        (&out, PICTURE, &reason),
        (
            1,
            obscured,
            render::Encoder {
                name: "png".into(),
                preset: "lossless".into(),
                quantizer: 0,
            },
        ),
    )
    .await?;
    outln!(
        "the still with {} region(s) obscured in {}; recorded by unit {} (audit entry {})",
        regions.len(),
        out.display(),
        d.source.unit,
        d.receipt.seq
    );
    Ok(())
}

fn out_and_reason(a: &RedactArgs) -> anyhow::Result<(PathBuf, String)> {
    let out = a.out.clone().ok_or_else(|| anyhow!("--out is needed"))?;
    let reason = a.reason.clone().unwrap_or_default();
    if reason.trim().is_empty() {
        bail!("--reason is needed: why this footage is disclosed, and to whom");
    }
    if out.join(DISCLOSURE).exists() {
        bail!(
            "{} already holds a disclosure: choose another --out",
            out.display()
        );
    }
    Ok((out, reason))
}

/// Who makes the disclosure: their certificate and key from the units file, and the unit.
struct Maker {
    target: Target,
    key_pem: String,
    ca_pem: String,
    who: Exporter,
}

impl Maker {
    fn of(a: &RedactArgs) -> anyhow::Result<Maker> {
        let target = Target {
            unit: a.unit.clone().unwrap_or_default(),
            units: a.units.clone(),
        };
        let s = crate::keys::Signer::from_entry(&units::entry(&target)?, "the disclosure")?;
        Ok(Maker {
            target,
            who: s.who,
            key_pem: s.key_pem,
            ca_pem: s.ca_pem,
        })
    }
}

/// The disclosure's other files, the unit's receipt, the signed record and SHA256SUMS.
async fn finish(
    a: &RedactArgs,
    me: &Maker,
    (text, regions): (&str, Vec<Region>),
    source: &Source,
    (out, made, reason): (&Path, &str, &str),
    (frames, obscured_frames, encoder): (u64, u64, render::Encoder),
) -> anyhow::Result<Disclosure> {
    std::fs::write(out.join(REGIONS), text)?;
    std::fs::write(out.join(CA_FILE), &me.ca_pem)?;
    let made_sha = crate::fetch::sha256_file(&out.join(made))?;
    let regions_sha = crate::fetch::sha256_file(&out.join(REGIONS))?;
    // The unit records the disclosure before it is signed: its receipt goes inside.
    let c = connect(&me.target).await?;
    let receipt = c
        .export_receipt(&Request::DisclosureReceipt {
            camera: Id::parse(&source.camera).map_err(|e| anyhow!("{e}"))?,
            source_sha256: source.manifest_sha256.clone(),
            disclosure_sha256: made_sha,
            regions_sha256: regions_sha,
            request_ref: a.request_ref.clone(),
            why: Justification {
                purpose: Purpose::Export,
                case_ref: source.case_ref.clone(),
                reason: reason.to_owned(),
            },
        })
        .await?;
    c.close();
    let made_ns = crate::time::now_ns();
    std::fs::write(
        out.join(crate::export::README),
        readme(source, made, reason, &a.request_ref),
    )?;
    let mut files = Vec::new();
    for f in [made, REGIONS, CA_FILE, crate::export::README] {
        files.push(hash_file(out, f)?);
    }
    let d = Disclosure {
        format: FORMAT.into(),
        source: source.clone(),
        regions,
        mode: a.mode,
        keep_only: a.keep_only,
        block_px: regions::GRID,
        encoder,
        frames,
        obscured_frames,
        reason: reason.to_owned(),
        request_ref: a.request_ref.clone(),
        redactor: me.who.clone(),
        made_ns,
        made: rdc_format::time::rfc3339(made_ns),
        files,
        receipt,
    };
    let value = serde_json::to_value(&d)?;
    let sig = pki::sign(&me.key_pem, &export::canonical(&value))?;
    let signed = SignedDisclosure {
        disclosure: value,
        signature: Signature {
            algorithm: "ecdsa-p256-sha256".into(),
            value: base64_encode(&sig),
        },
    };
    write_new(&out.join(DISCLOSURE), &serde_json::to_vec_pretty(&signed)?)?;
    let mut sums = d.files.clone();
    sums.push(hash_file(out, DISCLOSURE)?);
    let text: String = sums
        .iter()
        .map(|f| format!("{}  {}\n", f.sha256, f.path))
        .collect();
    std::fs::write(out.join(crate::export::SUMS), text)?;
    Ok(d)
}

fn readme(b: &Source, made: &str, reason: &str, request: &str) -> String {
    format!(
        "A redacted disclosure copy of CCTV footage (rdc, {FORMAT}).\n\n\
         Unit {unit}, camera {camera}, footage from {from} to {to}, case {case}.\n\
         Why: {reason}{req}\n\n\
         {made}: the footage with the regions in {REGIONS} obscured beyond recovery (black or\n\
         16-pixel blocks); a video's subtitles give each second's time.\n\
         {DISCLOSURE}: what it was made from (the exhibit's signed manifest, by SHA-256), the\n\
         regions, who made it and the unit's receipt, signed by its maker.\n\
         SHA256SUMS: for sha256sum -c.\n\n\
         This is a derivative: the master exhibit is unchanged. Check it with\n\
         rdc verify --ca SCHEME-CA.crt THIS-FOLDER [--source THE-EXHIBIT]\n",
        unit = b.unit,
        camera = b.camera,
        from = b.footage.from,
        to = b.footage.to,
        case = b.case_ref,
        req = if request.is_empty() {
            String::new()
        } else {
            format!(" (subject access request {request})")
        },
    )
}

/// Checks a disclosure's folder offline (`rdc verify DIR` when DIR holds `disclosure.json`).
pub(crate) fn check(dir: &Path, ca: Option<&Path>, source: Option<&Path>) -> Report {
    let mut r = Report::default();
    if let Err(e) = check_run(dir, ca, source, &mut r) {
        r.fail(format!(
            "the disclosure could not be checked to the end: {e:#}"
        ));
    }
    r.verdict = if !r.failed.is_empty() {
        format!(
            "The disclosure in {} is NOT intact: {} check(s) failed (lines marked FAILED above).",
            dir.display(),
            r.failed.len()
        )
    } else if ca.is_none() {
        format!(
            "The disclosure in {} is self-consistent, but its ORIGIN IS UNPROVEN: give --ca with the scheme's CA certificate.",
            dir.display()
        )
    } else {
        r.intact_and_proven = true;
        format!(
            "The disclosure in {} is complete and unaltered: a redacted derivative of the exhibit above.",
            dir.display()
        )
    };
    r
}

fn check_run(
    dir: &Path,
    ca: Option<&Path>,
    source: Option<&Path>,
    r: &mut Report,
) -> anyhow::Result<()> {
    let Some(doc) = crate::report::read_signed(
        (dir, DISCLOSURE, "disclosure"),
        "a disclosure's record",
        (FORMAT, |x: &Disclosure| x.format.as_str()),
        r,
    ) else {
        return Ok(());
    };
    let d = doc.doc;
    let signed = SignedDisclosure {
        disclosure: doc.value,
        signature: doc.signature,
    };
    // Its maker's signature and certificate.
    crate::report::check_maker(
        r,
        dir,
        DISCLOSURE,
        &d.redactor,
        (&signed.disclosure, &signed.signature.value),
        ca,
        (d.made_ns, &d.made),
    )?;
    // Every file as listed, and nothing else.
    let mut listed = std::collections::BTreeSet::new();
    for f in &d.files {
        listed.insert(f.path.clone());
        let p = dir.join(&f.path);
        let ok_path = Path::new(&f.path)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        let md = std::fs::symlink_metadata(&p);
        if !ok_path || !md.as_ref().is_ok_and(|m| m.file_type().is_file()) {
            r.fail(format!("{} is missing or not a regular file", f.path));
            continue;
        }
        let sha = crate::fetch::sha256_file(&p)?;
        r.check(
            sha == f.sha256,
            format!("{} matches its SHA-256", f.path),
            format!(
                "{} has been altered: its SHA-256 is {sha}, {DISCLOSURE} says {}",
                f.path, f.sha256
            ),
        );
    }
    for e in std::fs::read_dir(dir)? {
        let name = e?.file_name().to_string_lossy().into_owned();
        if !listed.contains(&name) && name != DISCLOSURE && name != crate::export::SUMS {
            r.fail(format!(
                "{name} is in the disclosure's folder but not part of it"
            ));
        }
    }
    // The unit recorded it, of exactly this video, regions and source.
    let keys = unit_keys(&d.source.unit_public_key, &d.source.retired_keys)?;
    let sha_of = |name: &str| {
        d.files
            .iter()
            .find(|f| f.path == name)
            .map(|f| f.sha256.clone())
            .unwrap_or_default()
    };
    let made = if d.files.iter().any(|f| f.path == PICTURE) {
        PICTURE
    } else {
        VIDEO
    };
    let want = rdc_uplink::protocol::disclosure_detail(
        &d.source.manifest_sha256,
        &sha_of(made),
        &sha_of(REGIONS),
        &d.request_ref,
    );
    let rec: Option<rdc_format::AuditRecord> = chainlog::verify_entry_by(&d.receipt, &keys)
        .ok()
        .and_then(|()| serde_json::from_value(d.receipt.body.clone()).ok());
    r.check(
        rec.as_ref().is_some_and(|a| {
            a.action == "disclosure"
                && a.outcome.is_granted()
                && a.detail.as_deref() == Some(want.as_str())
                && a.who.contains(&d.redactor.fingerprint)
        }),
        format!(
            "unit {} recorded this disclosure (audit entry {}, {}), made by {}",
            d.source.unit,
            d.receipt.seq,
            rdc_format::time::rfc3339(d.receipt.time_ns),
            d.redactor.name
        ),
        format!(
            "the unit's receipt (audit entry {}) is not this disclosure's",
            d.receipt.seq
        ),
    );
    match source {
        Some(src) => {
            let signed_file = if src.join(crate::exhibit::RECORD).exists() {
                src.join(crate::exhibit::RECORD)
            } else {
                src.join(MANIFEST)
            };
            let sha = crate::fetch::sha256_file(&signed_file).unwrap_or_default();
            r.check(
                sha == d.source.manifest_sha256,
                format!(
                    "a redacted derivative of the exhibit in {} (its manifest SHA-256 {sha}): unit {}, camera {}, case {}",
                    src.display(), d.source.unit, d.source.camera, d.source.case_ref
                ),
                format!(
                    "it was not made from the exhibit in {}: that manifest's SHA-256 is {sha}, the disclosure names {}",
                    src.display(),
                    d.source.manifest_sha256
                ),
            );
        }
        None => r.notes.push(format!(
            "a redacted derivative of the exhibit whose manifest has SHA-256 {} (unit {}, camera {}, case {}, {} to {}); give --source with the exhibit to check it is that one",
            d.source.manifest_sha256, d.source.unit, d.source.camera, d.source.case_ref, d.source.footage.from, d.source.footage.to
        )),
    }
    Ok(())
}
