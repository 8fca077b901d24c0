//! The command line, as clap parses it.

use clap::{Parser, Subcommand};
use rdc_config::Id;
use std::path::PathBuf;

use crate::keys::KeysCmd;
use crate::select::{Case, Footage, Source, Span, Target};

#[derive(Parser, Debug)]
#[command(
    name = "rdc",
    version,
    about = "Reach redeployable CCTV units: status, footage, exports, stills, disclosures, memory sticks, audits",
    after_help = "Times: a local time in the scheme's zone (2026-06-01T18:00; the units file's `timezone`, Europe/London by default), one with an offset (2026-06-01T17:00:00Z), or now-10m, now-2h, now-1d."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Cmd {
    /// Make the scheme's keys and certificates.
    Keys {
        #[command(subcommand)]
        cmd: KeysCmd,
    },
    /// Every unit of the units file at once.
    Units {
        #[command(subcommand)]
        cmd: UnitsCmd,
    },
    /// The unit's cameras, storage, clock and the days of footage its disk really holds. With
    /// --activity (and a case and reason: it shows when things happened, and is audited), a
    /// chart of each camera's bytes per minute over the last --hours: where to look first.
    Status {
        #[command(flatten)]
        target: Target,
        /// Print the unit's answer as JSON (for tools) instead of a summary.
        #[arg(long, conflicts_with = "activity")]
        json: bool,
        /// A chart of each camera's bytes per minute (needs --case and --reason: it is audited).
        #[arg(long, requires_all = ["case_ref", "reason"])]
        activity: bool,
        /// Hours back from now, with --activity.
        #[arg(long, default_value_t = 24)]
        hours: u32,
        /// Cameras to chart (default: all the unit has).
        #[arg(long = "camera")]
        cameras: Vec<Id>,
        /// The case reference, with --activity.
        #[arg(long = "case")]
        case_ref: Option<String>,
        /// Why you look, with --activity.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Print a shell's completions for rdc (the .deb installs them).
    Completions {
        /// The shell: bash, zsh or fish.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages (rdc.1 and one per subcommand) into DIR.
    #[command(hide = true)]
    Man { dir: PathBuf },
    /// Segments of a camera in a time range.
    List {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        footage: Footage,
    },
    /// Fetch, verify and decrypt the segments of a camera in a time range, over the link or
    /// (--from-stick) from a memory stick the unit wrote.
    Fetch {
        #[command(flatten)]
        source: Source,
        /// The camera's id (a-z, 0-9, '-', '_'); with --from-stick, needed only when the stick
        /// holds more than one.
        #[arg(long, required_unless_present = "from_stick")]
        camera: Option<Id>,
        /// Start: RFC 3339 UTC (2026-11-23T18:00:00Z), or now-10m, now-2h, now-1d (default
        /// now-1h; with --from-stick, the stick's range).
        #[arg(long)]
        from: Option<String>,
        /// End (default now; with --from-stick, the stick's range).
        #[arg(long)]
        to: Option<String>,
        /// Why the footage is accessed: view, export or still.
        #[arg(long, default_value = "view", conflicts_with = "from_stick")]
        purpose: String,
        /// The case reference.
        #[arg(
            long = "case",
            required_unless_present = "from_stick",
            conflicts_with = "from_stick"
        )]
        /// The case reference.
        case_ref: Option<String>,
        /// The reason.
        #[arg(
            long,
            required_unless_present = "from_stick",
            conflicts_with = "from_stick"
        )]
        /// Why (recorded by the unit in its audit log).
        reason: Option<String>,
        /// The officer's age identity (AGE-SECRET-KEY-…) that decrypts the footage (required
        /// with --from-stick).
        #[arg(long)]
        identity: Option<PathBuf>,
        /// Where the segments go (`<camera>/<file>.age` and, decrypted, `.ts`).
        #[arg(long, short, default_value = ".")]
        out: PathBuf,
    },
    /// An evidence bundle of a camera's footage in a time range: the segments as the unit
    /// signed them and decrypted, a working copy (MP4 with a time track), a signed manifest
    /// with every gap and the unit's audit receipt, SHA256SUMS and a README. Resumable.
    Export {
        #[command(flatten)]
        source: Source,
        #[command(flatten)]
        export: crate::export::ExportCli,
    },
    /// A contact sheet of a camera's previews (one keyframe every few seconds, which the unit
    /// keeps for a few percent of the footage's bytes): a grid of pictures, each with its time,
    /// gaps shown as gaps, to find the minutes to fetch or export. Asked for and audited as
    /// viewing (a case and reason).
    Preview {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        preview: crate::preview::PreviewArgs,
    },
    /// The officer's console in a browser: units, a camera's timeline with its pictures and
    /// gaps, exports with live progress, the audit log, holds. Served on 127.0.0.1 only; prints
    /// a link that signs in once.
    Console {
        #[command(flatten)]
        console: crate::console::ConsoleArgs,
    },
    /// Checks an evidence bundle or a still's folder offline: every hash, the unit's
    /// signatures and chain, the gaps, the audit receipt (a still: the request, approval and
    /// the bytes served), the maker's signature and certificate. Exit 0 only if all hold.
    Verify {
        /// The bundle's (or the still's) folder.
        dir: PathBuf,
        /// The scheme's CA certificate: the exporter's certificate must be issued by it.
        #[arg(long)]
        ca: Option<PathBuf>,
        /// An age identity the footage was encrypted to: also checks that every .ts is the
        /// decryption of its .age.
        #[arg(long)]
        identity: Option<PathBuf>,
        /// For a disclosure: the exhibit it says it was made from.
        #[arg(long)]
        source: Option<PathBuf>,
    },
    /// Stills as exhibits: an officer requests a still of an instant, a
    /// manager approves its necessity, the officer makes it (the exact frame, decoded here, as
    /// a PNG with a signed record) and records its release to the police. The unit enforces
    /// each step and keeps the register.
    Still {
        #[command(flatten)]
        target: Target,
        #[command(subcommand)]
        cmd: StillCmd,
    },
    /// A disclosure copy of an evidence bundle with third parties obscured: regions a
    /// person drew, black or 16 px blocks (or everything but the regions, --keep-only),
    /// re-encoded, signed and recorded by the unit. --check draws the regions over the footage
    /// first.
    Redact(crate::redact::RedactArgs),
    /// Memory sticks: `prepare` writes a signed request onto a stick for a unit to export
    /// footage onto when it is inserted (then `rdc export --from-stick` or `rdc fetch
    /// --from-stick` on your machine).
    Stick {
        #[command(subcommand)]
        cmd: crate::stick::StickCmd,
    },
    /// Subject access requests (answered within a calendar month): open one (the footage is held, the deadline recorded
    /// on the unit), extend or close it; list every unit's, overdue first.
    Sar {
        #[command(subcommand)]
        cmd: crate::sar::SarCmd,
    },
    /// The unit's stills register, checked (signed by the unit, the chain unbroken): one still a
    /// line with each request, approval, production and release.
    Stills {
        #[command(flatten)]
        target: Target,
        /// Only this case's stills.
        #[arg(long = "case")]
        case_ref: Option<String>,
        /// Print JSON (for tools) instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Commissioning (field engineers, before the unit is in service): a live still of each
    /// camera to set its view (PNG files in --out), or with --done, mark the unit in service.
    Commission {
        #[command(flatten)]
        target: Target,
        /// Cameras (default: all the unit has).
        #[arg(long = "camera")]
        cameras: Vec<Id>,
        /// Mark the unit in service: from then on engineers see no footage.
        #[arg(long)]
        done: bool,
        /// Why, with --done (recorded in the unit's audit log).
        #[arg(long)]
        reason: Option<String>,
        /// Where the stills go.
        #[arg(long, short, default_value = ".")]
        out: PathBuf,
    },
    /// The unit's selftest, run by the unit: cameras, disk, clock, uplink, configuration,
    /// hardening. One PASS/FAIL line each; exit 1 on any failure.
    Selftest {
        #[command(flatten)]
        target: Target,
        /// Print JSON (for tools) instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Holds on footage (managers): keep footage past retention for a case.
    Holds {
        #[command(flatten)]
        target: Target,
        #[command(subcommand)]
        cmd: HoldsCmd,
    },
    /// The unit's audit log (managers and auditors), checked: every entry signed by the unit,
    /// the chain unbroken, and still containing the newest entry seen last time (kept in
    /// $XDG_STATE_HOME/rdc/audit-anchors.json), so a truncated or rewritten log is noticed.
    Audit {
        #[command(flatten)]
        target: Target,
        /// Print entries from this sequence number on (all are still checked).
        #[arg(long, default_value_t = 0)]
        from_seq: u64,
        /// Accept that the unit's signing key changed since last time (a re-provisioned unit).
        #[arg(long)]
        accept_new_key: bool,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum StillCmd {
    /// Ask for a still of an instant (signed with your key); it waits for a manager's approval.
    Request(crate::exhibit::RequestArgs),
    /// (Managers) list the pending requests; with a still's number, show it (and the nearest
    /// preview, with --identity); with --yes, sign its approval.
    Approve(crate::exhibit::ApproveArgs),
    /// Make an approved still: the unit serves the footage that holds the frame, rdc checks it
    /// and writes --out: still.png, still.json (signed), the served bytes, the CA, a README.
    Make {
        /// The still's id, as `rdc stills` lists it.
        still: u64,
        /// The officer's age identity that decrypts the footage.
        #[arg(long)]
        identity: PathBuf,
        /// Where the file is written.
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Record a made still's release to the police as an exhibit.
    Release {
        /// The still's id, as `rdc stills` lists it.
        still: u64,
        /// Who receives it: "DC NAME, force, exhibit ref".
        #[arg(long)]
        to: String,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum HoldsCmd {
    /// Active holds.
    List,
    /// Hold footage of some cameras (all if none given) in a time range.
    Create {
        /// A camera (repeat for more; all the unit has if none).
        #[arg(long = "camera")]
        cameras: Vec<Id>,
        #[command(flatten)]
        span: Span,
        #[command(flatten)]
        case: Case,
        /// When the hold must be reviewed (at most a year ahead), e.g. 2027-05-01T00:00:00Z.
        #[arg(long)]
        review: String,
    },
    /// Release a hold; its footage then follows normal retention.
    Release {
        /// The hold's number, as `rdc holds list` shows it.
        id: u64,
        /// Why (recorded by the unit in its audit log).
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum UnitsCmd {
    /// One line per unit, all asked at once: reachable, the tunnel's last handshake, the clock,
    /// cameras recording, days held, and the audit anchor this machine holds.
    Status {
        /// The units file (default: $XDG_CONFIG_HOME/rdc/units.toml or ~/.config/rdc/units.toml).
        #[arg(long)]
        units: Option<PathBuf>,
        /// One JSON object per unit, in an array.
        #[arg(long)]
        json: bool,
        /// Seconds each unit has to answer.
        #[arg(long, default_value_t = 4.0)]
        timeout: f64,
        /// Units asked at the same time.
        #[arg(long, default_value_t = 256)]
        jobs: usize,
    },
}

/// Commands whose unit (`--unit`, `--units`) belongs to the command while the work is a
/// subcommand: `rdc still request ...`, `rdc holds list`.
const TARGET_THEN_SUBCOMMAND: [&str; 2] = ["still", "holds"];

/// Lets `--unit` and `--units` come after the subcommand as well as before it (`rdc still
/// request --unit u1 ...`, as people type it and as the README writes it): moves them to just
/// after the command, where clap reads them. Other arguments are left as they are.
pub(crate) fn hoist_target_flags(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let Some(cmd) = args.get(1).and_then(|a| a.to_str()) else {
        return args;
    };
    if !TARGET_THEN_SUBCOMMAND.contains(&cmd) {
        return args;
    }
    // Where the subcommand is: the first word after the command that is not a flag or the
    // value of one of these flags.
    let is_target = |a: &str| matches!(a, "--unit" | "-u" | "--units");
    let mut i = 2;
    while i < args.len() {
        let a = args[i].to_string_lossy();
        if is_target(&a) {
            i += 2;
        } else if a.starts_with('-') {
            i += 1;
        } else {
            break;
        }
    }
    let (head, tail) = args.split_at(i.min(args.len()));
    let mut moved = Vec::new();
    let mut rest = Vec::new();
    let mut j = 0;
    while j < tail.len() {
        let a = tail[j].to_string_lossy();
        if is_target(&a) && j + 1 < tail.len() && !tail[j + 1].to_string_lossy().starts_with('-') {
            moved.extend_from_slice(&tail[j..j + 2]);
            j += 2;
        } else if a.starts_with("--unit=") || a.starts_with("--units=") {
            moved.push(tail[j].clone());
            j += 1;
        } else {
            rest.push(tail[j].clone());
            j += 1;
        }
    }
    let mut out = head.to_vec();
    out.extend(moved);
    out.extend(rest);
    out
}
