//! `rdc`: the tool with which the scheme's people reach units over their 4G links.
//!
//! `rdc keys` makes the scheme's CA, units' and users' certificates and officers' age
//! identities. `rdc status|list|fetch|audit` talk to a unit named in the units file. `fetch`
//! resumes after a dropped link, checks every segment against the unit's signed manifest, and
//! decrypts it with the officer's age identity on this machine.
//!
//! Exit codes: 0 success, 1 the unit refused or a check failed, 2 anything else.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use anyhow::{anyhow, bail};
use clap::Parser;
use rdc_uplink::client::{Client, ClientError};
use rdc_uplink::protocol::{Justification, Purpose, Request};

pub mod events;
pub mod progress;
use events::Events;

/// A check on what the unit sent failed: the footage or log is not what the unit signed.
#[derive(Debug, thiserror::Error)]
#[error("check failed: {0}")]
struct CheckFailed(String);

/// A bundle holds together, but who made it was checked only against a CA it carries.
#[derive(Debug, thiserror::Error)]
#[error("origin unproven: {0}")]
struct Unproven(String);

macro_rules! check_failed {
    ($($arg:tt)*) => {
        return Err(CheckFailed(format!($($arg)*)).into())
    };
}

/// `println!` that ends the program quietly when the reader has gone (`rdc status | head`),
/// instead of panicking on the broken pipe.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut o = std::io::stdout().lock();
        if let Err(e) = writeln!(o, $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

/// 1 when the unit refused or a check failed (the officer must act), 3 when a bundle is
/// self-consistent but its origin is unproven (no scheme CA given), 2 for anything else.
fn exit_code(e: &anyhow::Error) -> u8 {
    if e.chain().any(|c| c.is::<Unproven>()) {
        return 3;
    }
    let refused_or_failed = e.chain().any(|c| {
        c.is::<CheckFailed>()
            || matches!(
                c.downcast_ref::<ClientError>(),
                Some(ClientError::Refused(_) | ClientError::CertificateRefused { .. })
            )
    });
    if refused_or_failed { 1 } else { 2 }
}

mod activity;
mod args;
mod audit;
mod console;
mod decode;
mod exhibit;
mod export;
mod fetch;
mod font;
mod hub;
mod keys;
pub mod mp4;
mod preview;
mod redact;
#[doc(hidden)]
pub use redact::render_for_bench as redact_render_for_bench;
mod report;
mod sar;
mod select;
mod stick;
mod still;
mod time;
mod units;
mod verdict;
mod verify;

use args::*;
use audit::audit;
use fetch::{fetch, list};
use keys::keys;
use select::{Case, Footage, Source, Span, Target};
use time::parse_time;
use units::connect;
pub use units::fuzz_units_file;

/// The whole program; the `rdc` binary calls this.
pub fn main() -> ExitCode {
    main_from(std::env::args_os())
}

/// The program with these arguments (the first is the program's name).
pub fn main_from(args: impl IntoIterator<Item = std::ffi::OsString>) -> ExitCode {
    let args: Vec<std::ffi::OsString> = args.into_iter().collect();
    if let Err(e) = units::set_zone_from(&args) {
        eprintln!("rdc: {e:#}");
        return ExitCode::from(2);
    }
    let cli = Cli::parse_from(args::hoist_target_flags(args));
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rdc: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rdc: {e:#}");
            ExitCode::from(exit_code(&e))
        }
    }
}

/// Where a camera's footage is on the unit, in words: for a range that held none.
async fn where_footage_is(c: &Client, camera: &str) -> String {
    match c.status().await {
        Ok(v) => match v.store.cameras.iter().find(|s| s.camera == camera) {
            Some(s) => match (s.oldest_start_ns, s.newest_end_ns) {
                (Some(a), Some(b)) => format!(
                    "the unit has {camera}'s footage from {} to {}",
                    time::local(a),
                    time::local(b)
                ),
                _ => format!("the unit holds no footage of {camera}"),
            },
            None => format!(
                "the unit has no camera {camera}; its cameras: {}",
                v.store
                    .cameras
                    .iter()
                    .map(|s| s.camera.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
        Err(e) => format!("(the unit could not say where its footage is: {e})"),
    }
}

/// `rdc status` for a person: who runs the unit and where, its clock, each camera, the disk.
fn status_summary(v: &rdc_uplink::protocol::StatusAnswer) -> Vec<String> {
    let mut out = vec![format!("unit        {}", v.unit)];
    if let Some(a) = &v.about {
        out.push(format!("operator    {} ({})", a.operator, a.contact));
        out.push(format!("site        {}", a.site));
    }
    let skew = (v.time_ns - crate::time::now_ns()) / 1_000_000_000;
    let clock = match &v.live {
        Some(l) if l.clock.synchronized => "synchronised".to_owned(),
        Some(_) => "NOT synchronised (footage times are the unit's own clock)".to_owned(),
        None => "unknown".to_owned(),
    };
    out.push(format!(
        "clock       {} on the unit, {clock}{}",
        time::local(v.time_ns),
        if skew.abs() >= 5 {
            format!("; {skew:+} s from this machine's")
        } else {
            String::new()
        }
    ));
    if let Some(l) = &v.live {
        for c in &l.cameras {
            let mut line = format!(
                "recording   {:<12} {}",
                c.camera,
                if c.recording {
                    "yes".to_owned()
                } else {
                    format!(
                        "NO: {}",
                        c.last_gap_cause.as_deref().unwrap_or("not started yet")
                    )
                }
            );
            if c.dropped_frames > 0 {
                line.push_str(&format!(
                    "; {} frames dropped since the recorder started (the disk could not keep up)",
                    c.dropped_frames
                ));
            }
            out.push(line);
        }
        if let Some(t) = &l.tunnel {
            out.push(format!(
                "tunnel      {} {}{}",
                t.interface,
                if t.up { "up" } else { "DOWN" },
                t.handshake_age_s
                    .map_or(String::new(), |s| format!(", the hub answered {s} s ago"))
            ));
        }
    }
    out.extend(rdc_format::human::status_lines(&v.store, &|t| {
        time::local(t)
    }));
    out
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.cmd {
        Cmd::Keys { cmd } => keys(cmd),
        Cmd::Units {
            cmd:
                UnitsCmd::Status {
                    units,
                    json,
                    timeout,
                    jobs,
                },
        } => units::fleet_status(units, json, timeout, jobs).await,
        Cmd::Completions { shell } => {
            rdc_config::shell::completions(<Cli as clap::CommandFactory>::command(), shell);
            Ok(())
        }
        Cmd::Man { dir } => man_pages(&dir),
        Cmd::Status {
            target,
            activity: false,
            json,
            ..
        } => status(&target, json).await,
        Cmd::Status {
            target,
            hours,
            cameras,
            case_ref,
            reason,
            ..
        } => {
            let why = Justification {
                purpose: Purpose::View,
                case_ref: case_ref.unwrap_or_default(),
                reason: reason.unwrap_or_default(),
            };
            activity::activity(&target, &cameras, hours, &why).await
        }
        Cmd::Holds { target, cmd } => holds(&target, cmd).await,
        Cmd::Audit {
            target,
            from_seq,
            accept_new_key,
        } => audit(&target, from_seq, accept_new_key).await,
        Cmd::List { target, footage } => list_segments(&target, &footage).await,
        Cmd::Fetch {
            source:
                Source {
                    unit,
                    units,
                    from_stick: Some(stick),
                },
            camera,
            from,
            to,
            identity,
            out,
            ..
        } => fetch_from_stick(
            &stick,
            unit.as_deref(),
            units,
            camera,
            (from.as_deref(), to.as_deref()),
            identity,
            &out,
        ),
        Cmd::Fetch {
            source:
                Source {
                    unit,
                    units,
                    from_stick: None,
                },
            camera,
            from,
            to,
            purpose,
            case_ref,
            reason,
            identity,
            out,
        } => {
            fetch_remote(
                target_of(unit, units)?,
                footage_of(camera, (from, to), (purpose, case_ref, reason))?,
                identity,
                &out,
            )
            .await
        }
        Cmd::Export {
            source:
                Source {
                    unit,
                    units,
                    from_stick: Some(stick),
                },
            export,
        } => export_from_stick(&stick, unit.as_deref(), units, export).await,
        Cmd::Export {
            source:
                Source {
                    unit,
                    units,
                    from_stick: None,
                },
            export,
        } => export::export(&target_of(unit, units)?, &export.remote()?).await,
        Cmd::Preview { target, preview } => preview::preview(&target, &preview).await,
        Cmd::Commission {
            target,
            cameras,
            done,
            reason,
            out,
        } => {
            if done && reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
                bail!("--done needs --reason (e.g. the installation's job number)");
            }
            still::commission(&target, &cameras, reason.as_deref().filter(|_| done), &out).await
        }
        Cmd::Selftest { target, json } => still::selftest(&target, json).await,
        Cmd::Still { target, cmd } => match cmd {
            StillCmd::Request(a) => exhibit::request(&target, &a).await,
            StillCmd::Approve(a) => exhibit::approve(&target, &a).await,
            StillCmd::Make {
                still,
                identity,
                out,
            } => make_still(&target, still, &identity, &out).await,
            StillCmd::Release { still, to } => exhibit::release(&target, still, &to).await,
        },
        Cmd::Sar { cmd } => sar::run(cmd).await,
        Cmd::Stick { cmd } => stick::run(cmd).await,
        Cmd::Redact(a) => redact::redact(&a).await,
        Cmd::Stills {
            target,
            case_ref,
            json,
        } => exhibit::register(&target, case_ref.as_deref(), json).await,
        Cmd::Console { console } => console::run(console).await,
        Cmd::Verify {
            dir,
            ca,
            identity,
            source,
        } => verdict::verify(&dir, ca.as_deref(), identity.as_deref(), source.as_deref()),
    }
}

/// `rdc list`: the segments of a camera in a range, and what follows each.
async fn list_segments(target: &Target, footage: &Footage) -> anyhow::Result<()> {
    let range = time::parse_range(&footage.from, &footage.to)?;
    let c = connect(target).await?;
    let entries = list(&c, footage, range).await?;
    if entries.is_empty() {
        let held = where_footage_is(&c, footage.camera.as_str()).await;
        c.close();
        eprintln!(
            "no footage of {} {}; {held}",
            footage.camera,
            time::describe_range(range.0, range.1)
        );
        return Ok(());
    }
    c.close();
    outln!(
        "{:<10} {:>7}  {:<23}  {:<23}  {:>9}  then",
        "camera",
        "segment",
        "from",
        "to",
        "size"
    );
    for e in &entries {
        outln!(
            "{:<10} {:>7}  {:<23}  {:<23}  {:>9}  {}",
            e.segment.camera,
            e.segment.seq,
            time::local(e.segment.start_ns),
            time::local(e.segment.end_ns),
            rdc_format::human::bytes(e.segment.bytes),
            match &e.ended {
                rdc_format::Ended::Cut => "the next segment follows".to_owned(),
                rdc_format::Ended::Stopped { cause } => format!("a gap: {cause}"),
                rdc_format::Ended::PowerLoss => "a gap: the unit lost power".to_owned(),
                rdc_format::Ended::Lost { cause } => format!("lost: {cause}"),
            }
        );
    }
    eprintln!("{} segments", entries.len());
    Ok(())
}

/// `rdc fetch --from-stick`.
fn fetch_from_stick(
    stick: &std::path::Path,
    unit: Option<&str>,
    units: Option<std::path::PathBuf>,
    camera: Option<rdc_config::Id>,
    (from, to): (Option<&str>, Option<&str>),
    identity: Option<std::path::PathBuf>,
    out: &std::path::Path,
) -> anyhow::Result<()> {
    let identity = identity.ok_or_else(|| {
        anyhow!("--identity is needed with --from-stick: the stick's footage is encrypted")
    })?;
    let v = crate::stick::open(stick, unit, units, camera)?;
    let f = crate::stick::fetch(&v, from, to, &identity, out)?;
    eprintln!(
        "{} segments of {} from the stick in {}: checked against unit {}'s signed manifests, decrypted",
        f.segments,
        v.camera,
        f.dir.display(),
        v.request.unit
    );
    Ok(())
}

/// `rdc fetch`: from the unit over its uplink.
async fn fetch_remote(
    target: Target,
    footage: Footage,
    identity: Option<std::path::PathBuf>,
    out: &std::path::Path,
) -> anyhow::Result<()> {
    let f = fetch(
        &target,
        &footage,
        identity.as_deref(),
        out,
        &Events::terminal(),
    )
    .await?;
    if f.segments == 0 {
        let held = match connect(&target).await {
            Ok(c) => {
                let h = where_footage_is(&c, footage.camera.as_str()).await;
                c.close();
                h
            }
            Err(e) => format!("(the unit could not be asked where its footage is: {e:#})"),
        };
        eprintln!("no footage of {} in that range; {held}", footage.camera);
    } else {
        eprintln!(
            "{} segments from {} in {}: verified against the unit's signed manifests{}",
            f.segments,
            footage.camera,
            f.dir.display(),
            if f.decrypted { ", decrypted" } else { "" }
        );
    }
    Ok(())
}

/// `rdc export --from-stick`.
async fn export_from_stick(
    stick: &std::path::Path,
    unit: Option<&str>,
    units: Option<std::path::PathBuf>,
    export: crate::export::ExportCli,
) -> anyhow::Result<()> {
    let v = crate::stick::open(stick, unit, units, export.camera.clone())?;
    let camera = v.camera.clone();
    let x = crate::stick::export(v, &export.identity, &export.out).await?;
    eprintln!(
        "exported {} segments of {camera} from the stick into {}: {} gap(s), checked against the unit's signed manifests; the unit's receipt for the stick is its audit entry {}. {}",
        x.segments,
        x.dir.display(),
        x.gaps,
        x.receipt_seq,
        x.check_it()
    );
    Ok(())
}

/// `rdc status`.
async fn status(target: &Target, json: bool) -> anyhow::Result<()> {
    let c = connect(target).await?;
    let v = c.status().await?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for l in status_summary(&v) {
            outln!("{l}");
        }
    }
    Ok(())
}

/// `rdc holds`.
async fn holds(target: &Target, cmd: HoldsCmd) -> anyhow::Result<()> {
    let c = connect(target).await?;
    let req = match cmd {
        HoldsCmd::List => Request::HoldList,
        HoldsCmd::Create {
            cameras,
            span: Span { from, to },
            case: Case { case_ref, reason },
            review,
        } => Request::HoldCreate {
            cameras,
            from_ns: time::parse_range(&from, &to)?.0,
            to_ns: parse_time(&to)?,
            case_ref,
            reason,
            review_ns: parse_time(&review)?,
        },
        HoldsCmd::Release { id, reason } => Request::HoldRelease { id, reason },
    };
    outln!("{}", serde_json::to_string_pretty(&c.call(&req).await?)?);
    Ok(())
}

/// `rdc still make`.
async fn make_still(
    target: &Target,
    still: u64,
    identity: &std::path::Path,
    out: &std::path::Path,
) -> anyhow::Result<()> {
    let m = exhibit::make(target, still, identity, out).await?;
    outln!(
        "still {still}: the frame shown at {} ({}), {}×{}, in {}: {} of segment {}'s {} bytes served, checked against its signed manifest; nothing decrypted was written",
        m.record.frame.utc,
        m.record.frame.uk_local,
        m.record.picture.width,
        m.record.picture.height,
        m.dir.display(),
        m.served_bytes,
        m.record.frame.segment,
        m.segment_bytes
    );
    Ok(())
}

/// The footage `rdc fetch` names, each part required unless it reads from a stick.
fn footage_of(
    camera: Option<rdc_config::Id>,
    (from, to): (Option<String>, Option<String>),
    (purpose, case_ref, reason): (String, Option<String>, Option<String>),
) -> anyhow::Result<Footage> {
    Ok(Footage {
        camera: camera.ok_or_else(|| anyhow!("--camera is needed"))?,
        from: from.unwrap_or_else(|| "now-1h".into()),
        to: to.unwrap_or_else(|| "now".into()),
        why: crate::select::Why {
            purpose,
            case_ref: case_ref.ok_or_else(|| anyhow!("--case is needed"))?,
            reason: reason.ok_or_else(|| anyhow!("--reason is needed"))?,
        },
    })
}

/// `rdc man DIR`: writes the man pages, one a command, and names them.
fn man_pages(dir: &std::path::Path) -> anyhow::Result<()> {
    for p in rdc_config::shell::man_pages(<Cli as clap::CommandFactory>::command(), dir)? {
        outln!("{}", p.display());
    }
    Ok(())
}

/// The unit a command names, required unless it reads from a stick.
fn target_of(unit: Option<String>, units: Option<std::path::PathBuf>) -> anyhow::Result<Target> {
    Ok(Target {
        unit: unit.ok_or_else(|| anyhow!("--unit is needed"))?,
        units,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_unit_may_be_named_before_or_after_a_subcommand() {
        use crate::args::{Cli, Cmd, hoist_target_flags};
        use clap::Parser as _;
        let parse = |line: &str| {
            let args = line.split(' ').map(std::ffi::OsString::from).collect();
            Cli::try_parse_from(hoist_target_flags(args))
        };
        for line in [
            "rdc still --unit u1 --units f.toml request --camera front --at now --case c --reason r",
            "rdc still request --camera front --at now --case c --reason r --unit u1 --units f.toml",
            "rdc still request --unit=u1 --camera front --at now --case c --reason r --units=f.toml",
            "rdc still request -u u1 --units f.toml --camera front --at now --case c --reason r",
        ] {
            match parse(line) {
                Ok(Cli {
                    cmd: Cmd::Still { target, .. },
                }) => {
                    assert_eq!(target.unit, "u1", "{line}");
                    assert_eq!(
                        target.units.as_deref(),
                        Some(std::path::Path::new("f.toml"))
                    );
                }
                other => panic!("{line}: {other:?}"),
            }
        }
        assert!(parse("rdc holds list --unit u1").is_ok());
        assert!(parse("rdc holds list").is_err());
    }

    #[test]
    fn every_command_and_argument_says_what_it_is_for() {
        rdc_config::shell::assert_documented(<crate::args::Cli as clap::CommandFactory>::command());
    }

    use crate::fetch::{local_stem, part_path};
    use crate::time::parse_time;
    use crate::units::parse_units;
    use proptest::prelude::*;

    proptest! {
        /// Whatever numbers a unit (or an impostor) sends, the files `rdc fetch` writes stay in
        /// the camera's folder under `--out`: names are built from numbers only.
        #[test]
        fn local_names_stay_in_the_folder(seq in any::<u64>(), start in any::<i64>()) {
            let dir = std::path::Path::new("/out/front");
            for name in [
                format!("{}.age", local_stem(seq, start)),
                format!("{}.ts", local_stem(seq, start)),
            ] {
                let p = dir.join(&name);
                prop_assert_eq!(p.parent(), Some(dir));
                prop_assert!(!name.contains('/') && !name.starts_with('.'));
            }
            let part = part_path(dir, seq);
            prop_assert_eq!(part.parent(), Some(dir));
        }

        #[test]
        fn any_units_file_parses_or_is_refused_never_a_panic(text in any::<String>()) {
            let _ = parse_units(&text);
        }

        #[test]
        fn a_units_file_reads_back(
            name in "[a-z][a-z0-9-]{0,20}",
            port in any::<u16>(),
            path in "[a-zA-Z0-9/._ -]{1,40}",
        ) {
            let text = format!(
                "[unit.{name}]\naddress = \"unit.example:{port}\"\nca = {path:?}\ncert = {path:?}\nkey = {path:?}\n"
            );
            let f = parse_units(&text).unwrap();
            let u = &f.unit[&name];
            prop_assert_eq!(&u.address, &format!("unit.example:{port}"));
            prop_assert_eq!(u.key.to_str().unwrap(), path.as_str());
        }

        #[test]
        fn any_time_parses_or_is_refused_never_a_panic(text in any::<String>()) {
            let _ = parse_time(&text);
        }
    }

    #[test]
    fn times() {
        assert_eq!(
            parse_time("2026-11-23T18:04:05Z").unwrap(),
            1_795_457_045_000_000_000
        );
        assert_eq!(parse_time("1970-01-01T00:00:00Z").unwrap(), 0);
        assert!(parse_time("now-10m").unwrap() < parse_time("now").unwrap());
        assert!(parse_time("yesterday").is_err());
    }
}
