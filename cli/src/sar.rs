//! `rdc sar`: subject access requests (002 §43, R15). The unit holds the footage, records the
//! request and its deadline (a calendar month from receipt, to the next working day) in a signed
//! register, and releases the hold when the request is closed; `rdc sar list` shows the open
//! requests of every unit in the units file, overdue first.

use rdc_format::sar::{self, Outcome, Sar, SarEntry};

use crate::CheckFailed;
use crate::audit::{check_chain, unit_keys};
use crate::select::Target;
use crate::time;
use crate::units;
use crate::units::connect;
use anyhow::{Context as _, anyhow, bail};
use rdc_config::Id;
use rdc_uplink::client::Client;
use rdc_uplink::protocol::Request;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(clap::Subcommand, Debug)]
pub(crate) enum SarCmd {
    /// Open a request: hold a camera's footage of a range and record the deadline.
    Open {
        #[command(flatten)]
        target: Target,
        /// The camera whose footage the requester is in.
        #[arg(long)]
        camera: Id,
        /// Start of the footage asked for: a local time (2026-06-01T18:00) or one with an offset.
        #[arg(long)]
        from: String,
        /// End: as --from.
        #[arg(long)]
        to: String,
        /// The day the request was received (YYYY-MM-DD, UK date).
        #[arg(long)]
        received: String,
        /// The scheme's reference for the request (not the person's name).
        #[arg(long)]
        requester_ref: String,
    },
    /// Extend an open request's deadline by one or two months (within its first month).
    Extend {
        #[command(flatten)]
        target: Target,
        /// The request's reference (as `sar open --requester-ref` gave it).
        reference: String,
        /// Months to extend by: 1 or 2.
        #[arg(long)]
        months: u8,
        /// Why (recorded by the unit).
        #[arg(long)]
        reason: String,
    },
    /// Close a request: the disclosure made (its folder), or why it was refused. Its hold is
    /// released.
    Close {
        #[command(flatten)]
        target: Target,
        /// The request's reference (as `sar open --requester-ref` gave it).
        reference: String,
        /// The disclosure's folder (from `rdc redact`) that answered the request.
        #[arg(long, conflicts_with = "refused", required_unless_present = "refused")]
        disclosed: Option<PathBuf>,
        /// Why the request was refused, when it was.
        #[arg(long)]
        refused: Option<String>,
    },
    /// The open requests of every unit in the units file, overdue first, with the days left.
    List {
        /// The units file (default: $XDG_CONFIG_HOME/rdc/units.toml or ~/.config/rdc/units.toml).
        #[arg(long)]
        units: Option<PathBuf>,
        /// Closed requests too.
        #[arg(long)]
        all: bool,
        /// Print JSON (for tools) instead of lines.
        #[arg(long)]
        json: bool,
    },
}

/// A request as `sar list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Row {
    pub(crate) unit: String,
    /// The request's reference (as `sar open --requester-ref` gave it).
    pub(crate) reference: String,
    /// The camera whose footage the requester is in.
    pub(crate) camera: String,
    pub(crate) received: String,
    pub(crate) due: String,
    pub(crate) extended_months: u8,
    /// Working and other days from today (UK) to the deadline; negative when overdue.
    pub(crate) days_left: i64,
    pub(crate) status: String,
    /// The deadline lies past the bank holiday table: only weekends were counted.
    pub(crate) holidays_unknown: bool,
}

/// The disclosure's signed manifest, by SHA-256: `disclosure.json`, or a bundle's `manifest.json`.
fn disclosure_sha(dir: &Path) -> anyhow::Result<String> {
    for f in ["disclosure.json", crate::export::MANIFEST] {
        let p = dir.join(f);
        if p.is_file() {
            return crate::fetch::sha256_file(&p);
        }
    }
    bail!(
        "{} holds no disclosure (disclosure.json) or bundle (manifest.json)",
        dir.display()
    )
}

/// The unit's register of requests, every entry checked (signature, chain).
pub(crate) async fn read(c: &Client) -> anyhow::Result<Vec<Sar>> {
    let reg = match c.call(&Request::Sars).await? {
        rdc_uplink::protocol::Answer::Register(a) => a,
        _ => bail!("the unit answered the register of requests with something else"),
    };
    let keys = unit_keys(&reg.unit_public_key, &reg.retired_keys)?;
    check_chain(&reg.entries, &keys, "request register entry")?;
    let mut entries = Vec::new();
    for e in &reg.entries {
        let b: SarEntry = serde_json::from_value(e.body.clone()).map_err(|err| {
            CheckFailed(format!(
                "request register entry {} is not readable: {err}",
                e.seq
            ))
        })?;
        entries.push(b);
    }
    Ok(sar::fold(&entries))
}

fn row(unit: &str, s: &Sar, today: ::time::Date) -> Row {
    let due = sar::parse_date(&s.due);
    Row {
        unit: unit.to_owned(),
        reference: s.reference.clone(),
        camera: s.camera.clone(),
        received: s.received.clone(),
        due: s.due.clone(),
        extended_months: s.extended_months,
        days_left: due.map_or(0, |d| (d - today).whole_days()),
        status: match &s.closed {
            None => "open".into(),
            Some(Outcome::Disclosed { .. }) => "closed: disclosed".into(),
            Some(Outcome::Refused { .. }) => "closed: refused".into(),
        },
        holidays_unknown: due.is_some_and(sar::past_the_table),
    }
}

/// Every unit's requests, overdue first.
pub(crate) async fn rows(
    units: Option<PathBuf>,
    all: bool,
) -> anyhow::Result<(Vec<Row>, Vec<String>)> {
    let t = Target {
        unit: String::new(),
        units,
    };
    let path = units::units_path(&t);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the units file {}", path.display()))?;
    let file = units::parse_units(&text)
        .with_context(|| format!("{} is not a valid units file", path.display()))?;
    let today = sar::uk_date(crate::time::now_ns());
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for name in file.unit.keys() {
        let target = Target {
            unit: name.clone(),
            units: Some(path.clone()),
        };
        let got = tokio::time::timeout(Duration::from_secs(10), async {
            let c = connect(&target).await?;
            let r = read(&c).await;
            c.close();
            r
        })
        .await
        .unwrap_or_else(|_| Err(anyhow!("no answer within 10 s")));
        match got {
            Ok(list) => rows.extend(
                list.iter()
                    .filter(|s| all || s.closed.is_none())
                    .map(|s| row(name, s, today)),
            ),
            Err(e) => problems.push(format!("{name}: {e:#}")),
        }
    }
    rows.sort_by_key(|r| (r.status != "open", r.days_left));
    Ok((rows, problems))
}

pub(crate) async fn run(cmd: SarCmd) -> anyhow::Result<()> {
    match cmd {
        SarCmd::Open {
            target,
            camera,
            from,
            to,
            received,
            requester_ref,
        } => {
            let (from_ns, to_ns) = time::parse_range(&from, &to)?;
            let c = connect(&target).await?;
            let e = c
                .call(&Request::SarOpen {
                    reference: requester_ref.clone(),
                    camera,
                    from_ns,
                    to_ns,
                    received: received.clone(),
                })
                .await?;
            c.close();
            if let rdc_uplink::protocol::Answer::SarRegistered(e) = e
                && let Ok(SarEntry::Opened { due, hold, .. }) =
                    serde_json::from_value::<SarEntry>(e.body.clone())
            {
                outln!(
                    "subject access request {requester_ref} opened on unit {}: received {received}, due {due} (a calendar month, to the next working day); footage held (hold {hold})",
                    target.unit
                );
            }
            Ok(())
        }
        SarCmd::Extend {
            target,
            reference,
            months,
            reason,
        } => {
            let c = connect(&target).await?;
            let a = c
                .call(&Request::SarExtend {
                    reference: reference.clone(),
                    months,
                    reason,
                })
                .await?;
            c.close();
            if let rdc_uplink::protocol::Answer::SarRegistered(e) = a
                && let Ok(SarEntry::Extended { due, .. }) =
                    serde_json::from_value::<SarEntry>(e.body.clone())
            {
                outln!(
                    "subject access request {reference} extended by {months} month(s): due {due}"
                );
            }
            Ok(())
        }
        SarCmd::Close {
            target,
            reference,
            disclosed,
            refused,
        } => {
            let outcome = match (disclosed, refused) {
                (Some(d), _) => Outcome::Disclosed {
                    disclosure_sha256: disclosure_sha(&d)?,
                },
                (None, Some(reason)) => Outcome::Refused { reason },
                (None, None) => bail!("say --disclosed DISCLOSURE or --refused REASON"),
            };
            let c = connect(&target).await?;
            c.call(&Request::SarClose {
                reference: reference.clone(),
                outcome,
            })
            .await?;
            c.close();
            outln!("subject access request {reference} closed; its hold is released");
            Ok(())
        }
        SarCmd::List { units, all, json } => {
            let (rows, problems) = rows(units, all).await?;
            if json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"requests": rows, "unreachable": problems})
                    )?
                );
            } else {
                if rows.is_empty() {
                    outln!("no open subject access requests");
                }
                for r in &rows {
                    let left = match r.days_left {
                        _ if r.status != "open" => format!("{:<12}", r.status),
                        d if d < 0 => format!("OVERDUE {:>3} d", -d),
                        0 => "due TODAY   ".into(),
                        d => format!("{d:>3} days left"),
                    };
                    outln!(
                        "{left}  {}  {}  camera {}  received {}  due {}{}{}",
                        r.unit,
                        r.reference,
                        r.camera,
                        r.received,
                        r.due,
                        if r.extended_months > 0 {
                            format!(" (extended {} month(s))", r.extended_months)
                        } else {
                            String::new()
                        },
                        if r.holidays_unknown {
                            " (past the bank holiday table: weekends only)"
                        } else {
                            ""
                        }
                    );
                }
                for p in &problems {
                    eprintln!("not reached: {p}");
                }
            }
            if problems.is_empty() {
                Ok(())
            } else {
                Err(anyhow!("{} unit(s) could not be asked", problems.len()))
            }
        }
    }
}
