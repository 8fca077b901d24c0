//! The `rdc-recorder` command line: the daemon and the engineer's on-site tools.
//!
//! Exit codes: 0 success, 1 the configuration or store has problems (printed), 2 anything else.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use rdc_config::Config;
use rdc_storage::clock::rfc3339;
use rdc_storage::{RealClocks, Store, StoreConfig};

#[derive(Parser, Debug)]
#[command(
    name = "rdc-recorder",
    version,
    about = "The recorder of a redeployable CCTV unit"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Record every configured camera until SIGTERM (what systemd runs).
    Run {
        /// The unit's configuration.
        #[arg(long, short, default_value = rdc_config::DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Create the unit's identity on the unit (its private keys never leave it): the signing
    /// key, the uplink's TLS key, and a certificate request for `rdc keys sign-unit`.
    Init {
        /// The unit's id, as officers will name it.
        #[arg(long)]
        id: String,
        /// Where the keys go (the service's state directory).
        #[arg(long, default_value = "/var/lib/rdc")]
        dir: PathBuf,
        /// The account the service runs as: owns the keys, when it exists.
        #[arg(long, default_value = "rdc")]
        user: String,
        /// The unit's configuration, if written yet: refused if it holds the example's sample
        /// keys or a camera's default credentials.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The folder holds another unit's keys and this unit takes them under the new --id
        /// (recorded in the folder's renames.log). Without it, init refuses.
        #[arg(long)]
        rename: bool,
        /// The scheme's WireGuard hub, `host:port`, for a unit behind carrier NAT: the unit
        /// dials out to it and officers reach the unit through it. With --vpn-hub-key and
        /// --vpn-address, init makes the unit's WireGuard key (it never leaves the unit) and
        /// the systemd-networkd files, and prints the lines for the hub.
        #[arg(long, value_name = "HOST:PORT", requires_all = ["vpn_hub_key", "vpn_address"])]
        vpn_hub: Option<String>,
        /// The hub's public key (`rdc keys hub` prints it).
        #[arg(long, value_name = "KEY", requires = "vpn_hub")]
        vpn_hub_key: Option<String>,
        /// The unit's tunnel address and the scheme's subnet, e.g. 10.77.1.7/16.
        #[arg(long, value_name = "ADDR/PREFIX", requires = "vpn_hub")]
        vpn_address: Option<String>,
        /// The tunnel's interface name.
        #[arg(long, default_value = "rdc-vpn")]
        vpn_interface: String,
        /// Seconds between keepalives: below the carrier NAT's UDP timeout, or officers wait for
        /// the next one before a request reaches an idle unit.
        #[arg(long, default_value_t = rdc_uplink::vpn::DEFAULT_KEEPALIVE)]
        vpn_keepalive: u16,
        /// The tunnel's MTU: the 4G link's MTU less 60 (WireGuard over IPv4) or 80 (IPv6).
        #[arg(long, default_value_t = rdc_uplink::vpn::DEFAULT_MTU)]
        vpn_mtu: u16,
        /// Where systemd-networkd reads its files.
        #[arg(long, default_value = "/etc/systemd/network")]
        networkd_dir: PathBuf,
    },
    /// Commissioning: `--done` marks the unit in service (from then on nobody sees a live still;
    /// audited); without it, says whether the unit is in service.
    Commission {
        /// The unit's configuration.
        #[arg(long, short, default_value = rdc_config::DEFAULT_PATH)]
        config: PathBuf,
        /// Mark the unit in service (needs --reason).
        #[arg(long)]
        done: bool,
        /// Who marks it (recorded in the audit log).
        #[arg(long, default_value = "field engineer (on the unit)")]
        by: String,
        /// Why (e.g. the installation's job number), for the audit log.
        #[arg(long, required_if_eq("done", "true"))]
        reason: Option<String>,
    },
    /// Check a configuration file: print the effective configuration, or every problem in it.
    CheckConfig {
        /// The configuration file.
        #[arg(default_value = rdc_config::DEFAULT_PATH)]
        path: PathBuf,
    },
    /// Check the unit before it goes into service and at every visit: each camera streaming,
    /// the disk against retention, the clock, the uplink and its certificate, the
    /// configuration, the service's hardening. One PASS/FAIL line each; exit 1 on any failure.
    Selftest {
        /// The unit's configuration.
        #[arg(long, short, default_value = rdc_config::DEFAULT_PATH)]
        config: PathBuf,
        /// Print JSON (for tools) instead of lines.
        #[arg(long)]
        json: bool,
        /// Seconds to watch each camera's stream.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// The systemd unit file to score (default: the installed rdc-recorder.service).
        #[arg(long)]
        unit_file: Option<PathBuf>,
    },
    /// Inspect the store on this unit (for a field engineer on site; shows no footage).
    Store {
        /// The unit's configuration (before or after the subcommand).
        #[arg(long, short, global = true, default_value = rdc_config::DEFAULT_PATH)]
        config: PathBuf,
        #[command(subcommand)]
        cmd: StoreCmd,
    },
    /// Export to the memory stick mounted at PATH what the signed request on it asks for: the
    /// segments as stored (encrypted), their signed manifests, the unit's keys bound to its
    /// certificate and a receipt from the audit log; STATUS.txt says what was written. Inserting
    /// a stick runs this (rdc-stick@.service); run by hand, it shows progress. The recorder must
    /// be running (it keeps the audit log), and keeps priority over this job.
    Stick {
        /// The unit's configuration.
        #[arg(long, short, default_value = rdc_config::DEFAULT_PATH)]
        config: PathBuf,
        /// Where the stick is mounted.
        path: PathBuf,
    },
    /// Print a shell's completions for rdc-recorder (the .deb installs them).
    Completions {
        /// The shell: bash, zsh or fish.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages (rdc-recorder.1 and one per subcommand) into DIR.
    #[command(hide = true)]
    Man { dir: PathBuf },
}

#[derive(Subcommand, Debug)]
enum StoreCmd {
    /// Disk use, retention the disk really holds, cameras, holds.
    Status,
    /// Segments of a camera (all cameras if none given), newest last.
    List {
        /// The camera (all cameras if none given).
        camera: Option<String>,
    },
    /// Check signatures, chains and (with --deep) every segment's SHA-256.
    Verify {
        /// Also hash every segment against its signed manifest (reads all footage).
        #[arg(long)]
        deep: bool,
    },
    /// Retire the unit's signing key and start a new one (the recorder must be stopped). Only
    /// when the key is lost or compromised: the change is logged, old entries stay verifiable,
    /// and auditors are told by `rdc audit` that the key changed.
    RotateKey {
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
    },
}

/// The whole program; `main` calls this.
pub fn main() -> ExitCode {
    main_from(std::env::args_os())
}

/// The program with these arguments (the first is the program's name).
pub fn main_from(args: impl IntoIterator<Item = std::ffi::OsString>) -> ExitCode {
    let cli = Cli::parse_from(args);
    if !matches!(cli.cmd, Cmd::Run { .. }) {
        // The daemon installs its own subscriber from the configuration.
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rdc-recorder: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.cmd {
        Cmd::Completions { shell } => {
            rdc_config::shell::completions(<Cli as clap::CommandFactory>::command(), shell);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Man { dir } => {
            for p in rdc_config::shell::man_pages(<Cli as clap::CommandFactory>::command(), &dir)? {
                println!("{}", p.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Run { config } => {
            let Some(cfg) = load(&config) else {
                return Ok(ExitCode::from(1));
            };
            crate::daemon::run(&config, cfg, crate::camera::Options::default())?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::CheckConfig { path } => Ok(check_config(&path)),
        Cmd::Commission {
            config,
            done,
            by,
            reason,
        } => commission(&config, done, &by, reason),
        Cmd::Init {
            id,
            dir,
            user,
            config,
            rename,
            vpn_hub,
            vpn_hub_key,
            vpn_address,
            vpn_interface,
            vpn_keepalive,
            vpn_mtu,
            networkd_dir,
        } => {
            if let Some(c) = &config {
                crate::init::refuse_samples(c)?;
            }
            let vpn = match (vpn_hub, vpn_hub_key, vpn_address) {
                (Some(hub), Some(hub_key), Some(address)) => Some(crate::init::VpnOptions {
                    interface: vpn_interface,
                    hub,
                    hub_key,
                    address,
                    keepalive: vpn_keepalive,
                    mtu: vpn_mtu,
                    networkd_dir,
                }),
                _ => None,
            };
            let m = crate::init::init(&id, &dir, &user, rename)?;
            if let Some(v) = &vpn {
                let made = crate::init::vpn(v, config.as_deref())?;
                print_vpn(&id, &made);
            }
            for p in &m.created {
                eprintln!("created {} (mode 600)", p.display());
            }
            print!("{}", std::fs::read_to_string(&m.request)?);
            eprintln!(
                "\nunit {id}: identity in {dir} (private keys stay on this unit)\n  signing key  {} (Ed25519, public {})\n  TLS key      {}\n  request      {} (printed above)\nNext: on the scheme's machine, `rdc keys sign-unit --ca-dir CA --csr uplink.csr --dir .`;\nput the {id}.crt it makes and the scheme's ca.crt on this unit, and in /etc/rdc/recorder.toml set\n  [unit] id = \"{id}\", signing_key = \"{}\"\n  [uplink] cert = \".../{id}.crt\", key_file = \"{}\", ca = \".../ca.crt\"\nthen `rdc-recorder selftest`.",
                m.signing_key.display(),
                m.public_key,
                m.tls_key.display(),
                m.request.display(),
                m.signing_key.display(),
                m.tls_key.display(),
                dir = dir.display(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Selftest {
            config,
            json,
            seconds,
            unit_file,
        } => {
            let lines = crate::selftest::run(
                &config,
                &crate::selftest::Options {
                    watch: std::time::Duration::from_secs(seconds.clamp(1, 60)),
                    unit_file,
                    live: None,
                },
            );
            Ok(if crate::selftest::print(&lines, json) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Cmd::Stick { config, path } => stick(&config, &path),
        Cmd::Store { config, cmd } => store_cmd(&config, cmd),
    }
}

/// `rdc-recorder store list`: every segment and gap record, in order.
fn list_store(store: &Store, camera: Option<String>) -> anyhow::Result<ExitCode> {
    let cams = match camera {
        Some(c) => vec![c],
        None => store.cameras()?,
    };
    for cam in cams {
        // Gap records (a signed `lost` manifest: nothing was written, or what was
        // could not be kept) are listed too, in their place, saying so: a
        // number missing from the list would look like footage deleted unlogged.
        let lost: Vec<rdc_storage::Manifest> = store
            .manifests(&cam, 0, u64::MAX)?
            .into_iter()
            .filter_map(|e| serde_json::from_value::<rdc_storage::Manifest>(e.body).ok())
            .filter(|m| matches!(m.ended, rdc_storage::Ended::Lost { .. }))
            .collect();
        let mut lost = lost.into_iter().peekable();
        let print_lost = |m: &rdc_storage::Manifest| {
            let rdc_storage::Ended::Lost { cause } = &m.ended else {
                return;
            };
            println!(
                "{cam:<8} {:>6}  {} .. {}  {:>10} bytes  [no footage, no file: {cause}]",
                m.seq,
                rfc3339(m.start_ns),
                rfc3339(m.end_ns),
                0
            );
        };
        for e in store.list(&cam, i64::MIN, i64::MAX)? {
            while let Some(m) = lost.next_if(|m| m.seq < e.segment.seq) {
                print_lost(&m);
            }
            let end = match &e.ended {
                rdc_storage::Ended::Cut => String::new(),
                rdc_storage::Ended::Stopped { cause } => {
                    format!("  [gap follows: {cause}]")
                }
                rdc_storage::Ended::PowerLoss => "  [ended by power loss]".into(),
                rdc_storage::Ended::Lost { cause } => {
                    format!("  [lost: {cause}]")
                }
            };
            println!(
                "{cam:<8} {:>6}  {} .. {}  {:>10} bytes{}{end}",
                e.segment.seq,
                rfc3339(e.segment.start_ns),
                rfc3339(e.segment.end_ns),
                e.segment.bytes,
                if e.clock_synced {
                    ""
                } else {
                    "  [clock not synchronised]"
                }
            );
        }
        for m in lost {
            print_lost(&m);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `rdc-recorder store`: looks at the store (read-only), or rotates its key.
fn store_cmd(config: &std::path::Path, cmd: StoreCmd) -> anyhow::Result<ExitCode> {
    let Some(cfg) = load(config) else {
        return Ok(ExitCode::from(1));
    };
    if let StoreCmd::RotateKey { reason } = &cmd {
        let (old, new) = rdc_storage::rotate_key(
            StoreConfig::from_config(&cfg),
            &cfg.unit.signing_key,
            reason,
            Arc::new(RealClocks),
        )
        .with_context(|| {
            format!(
                "rotating the key of the store at {}",
                cfg.storage.path.display()
            )
        })?;
        println!(
            "signing key rotated: retired {}, new {new}; tell the scheme's auditors (rdc audit --accept-new-key)",
            old.as_deref().unwrap_or("(none)")
        );
        return Ok(ExitCode::SUCCESS);
    }
    // Looking never writes: no key, no recovery, no renames, and a running recorder
    // is not disturbed.
    let (store, report) =
        Store::open_read_only(StoreConfig::from_config(&cfg), Arc::new(RealClocks))
            .with_context(|| format!("opening the store at {}", cfg.storage.path.display()))?;
    for p in &report.open_segments {
        eprintln!(
            "{p}: being written, or cut off by a power loss (the recorder recovers it when it starts)"
        );
    }
    match cmd {
        StoreCmd::RotateKey { .. } => unreachable!("handled above"),
        StoreCmd::Status => {
            let s = store.status()?;
            println!("unit        {} ({})", cfg.unit.id, cfg.unit.operator);
            for l in rdc_format::human::status_lines(&s, &|t| rfc3339(t)) {
                println!("{l}");
            }
            Ok(ExitCode::SUCCESS)
        }
        StoreCmd::List { camera } => list_store(&store, camera),
        StoreCmd::Verify { deep } => {
            let problems = store.verify(deep)?;
            if problems.is_empty() {
                println!(
                    "store intact: logs, signatures and chains verify{}",
                    if deep {
                        ", every segment matches its manifest"
                    } else {
                        ""
                    }
                );
                Ok(ExitCode::SUCCESS)
            } else {
                for p in &problems {
                    println!("PROBLEM: {p}");
                }
                Ok(ExitCode::from(1))
            }
        }
    }
}

/// `rdc-recorder stick`: serves the spool request on a stick, with progress.
fn stick(config: &std::path::Path, path: &std::path::Path) -> anyhow::Result<ExitCode> {
    let Some(cfg) = load(config) else {
        return Ok(ExitCode::from(1));
    };
    let started = std::time::Instant::now();
    let mut last = std::time::Instant::now();
    let done = crate::stick::run(&cfg, path, &mut |p| {
        if last.elapsed() >= std::time::Duration::from_secs(1) || p.segments_done == p.segments {
            last = std::time::Instant::now();
            let secs = started.elapsed().as_secs_f64().max(0.001);
            eprintln!(
                "{}/{} segments, {} of {} MB ({:.1} MB/s)",
                p.segments_done,
                p.segments,
                p.bytes_done >> 20,
                p.bytes >> 20,
                p.bytes_done as f64 / secs / 1e6
            );
        }
    })?;
    if done.kept > 0 {
        eprintln!(
            "carried on from an earlier insertion: {} MB already on the stick were kept, {} MB written",
            done.kept >> 20,
            done.bytes >> 20
        );
    }
    print!("{}", done.status);
    Ok(if done.complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `rdc-recorder commission`: says whether the unit is in service, or marks it so.
fn commission(
    config: &std::path::Path,
    done: bool,
    by: &str,
    reason: Option<String>,
) -> anyhow::Result<ExitCode> {
    let Some(cfg) = load(config) else {
        return Ok(ExitCode::from(1));
    };
    let p = crate::commission::path(&cfg);
    if done {
        let reason = reason.unwrap_or_default();
        if reason.trim().is_empty() {
            anyhow::bail!("--reason: say why (e.g. the installation's job number)");
        }
        let now = rdc_storage::Clocks::wall_ns(&RealClocks);
        let m = crate::commission::mark(&p, by, &reason, now)?;
        println!(
            "in service since {} (marked by {}: {}); engineers see no footage from now on. The recorder puts this in the audit log within a second (or at its next start).",
            rfc3339(m.since_ns),
            m.by,
            m.reason
        );
    } else {
        match crate::commission::read(&p) {
            Some(m) => println!(
                "in service since {} (marked by {}: {})",
                rfc3339(m.since_ns),
                m.by,
                m.reason
            ),
            None => println!(
                "being commissioned: engineers may see a live still of each camera (rdc commission); mark it in service with --done when the views are set"
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn load(path: &std::path::Path) -> Option<Config> {
    match Config::load(path) {
        Ok(l) => {
            for w in &l.warnings {
                eprintln!("warning: {w}");
            }
            Some(l.config)
        }
        Err(e) => {
            eprintln!("{e}");
            None
        }
    }
}

fn check_config(path: &std::path::Path) -> ExitCode {
    match Config::load(path) {
        Ok(l) => {
            print!("{}", l.config.to_toml());
            for w in &l.warnings {
                eprintln!("warning: {w}");
            }
            eprintln!("{}: valid", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

/// What the engineer does next with the tunnel, and what the hub's IT adds.
fn print_vpn(id: &str, m: &crate::init::VpnMade) {
    let t = &m.tunnel;
    eprintln!(
        "{} the unit's WireGuard key {} (mode 600; it never leaves this unit)\nwrote {} and {}",
        if m.new_key { "created" } else { "kept" },
        t.private_key_file.display(),
        m.netdev.display(),
        m.network.display()
    );
    match &m.config_changed {
        Some(c) => eprintln!(
            "{}: the uplink now listens on {} only, through [uplink.vpn] interface = {:?}",
            c.display(),
            t.address,
            t.interface
        ),
        None => eprintln!(
            "in /etc/rdc/recorder.toml set [uplink] listen = \"{}:4433\" and add\n  [uplink.vpn]\n  interface = {:?}\n(or run init again with --config once it has an [uplink] section)",
            t.address, t.interface
        ),
    }
    eprintln!(
        "Bring the tunnel up: systemctl enable --now systemd-networkd && networkctl reload\nOn the hub, the scheme's IT adds this unit (the lines below are what it writes):\n  rdc keys hub add-unit --dir /etc/wireguard --name {id} --public-key {} --address {}\nthen `rdc-recorder selftest` shows the hub's handshake.",
        m.public_key, t.address
    );
    println!("{}", t.hub_peer(id, &m.public_key));
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_command_and_argument_says_what_it_is_for() {
        rdc_config::shell::assert_documented(<super::Cli as clap::CommandFactory>::command());
    }
}
