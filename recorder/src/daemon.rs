//! `rdc-recorder run`: the daemon. Opens the store (recovering from any power cut), records
//! every camera, runs retention every minute, speaks systemd's notify protocol, and on SIGTERM
//! closes every segment cleanly.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use rdc_config::Config;
use rdc_storage::clock::rfc3339;
use rdc_storage::{AuditRecord, Clocks, Store, StoreConfig};

use crate::camera::{Camera, Options};
use crate::ingest::CameraSpec;
use crate::{logging, notify};

/// Runs until SIGTERM or SIGINT.
pub fn run(config_path: &Path, cfg: Config, opts: Options) -> anyhow::Result<()> {
    logging::init(&cfg.logging.level, cfg.logging.format);
    let clocks: Arc<dyn Clocks> = Arc::new(crate::clockstate::UnitClocks);
    // Never a silently new key: a store signed by another key, or a lost key, stops the start
    // with what happened and how to rotate deliberately.
    let key = Arc::new(rdc_storage::load_unit_key(
        &cfg.storage.path,
        &cfg.unit.signing_key,
    )?);
    let (store, report) = Store::open(StoreConfig::from_config(&cfg), key.clone(), clocks.clone())
        .with_context(|| format!("cannot open the store at {}", cfg.storage.path.display()))?;
    for m in &report.recovered {
        tracing::warn!(camera = %m.camera, seq = m.seq, end = %rfc3339(m.end_ns), "segment ended by power loss recovered");
    }
    if let Some(why) = &report.index_rebuilt {
        tracing::warn!(why = %why, "index rebuilt from the logs");
    }
    for f in report.missing_files.iter().chain(&report.unaccounted_files) {
        tracing::error!(file = %f, "store inconsistency: run `rdc-recorder store verify`");
    }
    let config_sha = std::fs::File::open(config_path)
        .and_then(|mut f| rdc_storage::sha256_hex(&mut f))
        .unwrap_or_default();
    store.audit(&AuditRecord {
        who: "unit".into(),
        role: rdc_format::Actor::System,
        action: "recorder_started".into(),
        outcome: rdc_format::Outcome::Done,
        detail: Some(format!(
            "version {}, config {} sha256 {config_sha}, cameras {}, unit public key {}",
            env!("CARGO_PKG_VERSION"),
            config_path.display(),
            cfg.cameras
                .iter()
                .map(|c| c.id.as_str())
                .collect::<Vec<_>>()
                .join(","),
            key.public_hex()
        )),
        ..Default::default()
    })?;
    tracing::info!(unit = %cfg.unit.id, cameras = cfg.cameras.len(), store = %cfg.storage.path.display(), "recorder starting");

    let shutdown = Arc::new(AtomicBool::new(false));
    let mut cameras = Vec::new();
    for c in &cfg.cameras {
        let password = match c.password.as_ref().map(|p| p.read()).transpose() {
            Ok(p) => p,
            Err(m) => {
                tracing::error!(camera = %c.id, "{m}; this camera is not recorded");
                continue;
            }
        };
        let spec = CameraSpec {
            id: c.id.to_string(),
            url: c.url.clone(),
            transport: c.transport,
            username: c.username.clone(),
            password,
        };
        cameras.push(Camera::spawn(
            spec,
            store.clone(),
            clocks.clone(),
            shutdown.clone(),
            opts.clone(),
        )?);
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let states: Vec<(String, Arc<crate::camera::CameraState>)> = cameras
        .iter()
        .map(|c| (c.id.clone(), c.state.clone()))
        .collect();
    let hooks = Arc::new(crate::hooks::Hooks::new(
        config_path.to_owned(),
        crate::commission::path(&cfg),
        states.clone(),
        &store,
    ));
    let uplink = match &cfg.uplink {
        Some(u) => {
            let tunnel = u.vpn.as_ref().map(|v| v.interface.clone());
            let live: rdc_uplink::server::LiveStatus =
                Arc::new(move || live_status(&states, tunnel.as_deref()));
            let about = rdc_uplink::protocol::UnitInfo {
                operator: cfg.unit.operator.clone(),
                contact: cfg.unit.contact.clone(),
                purpose: cfg.unit.purpose.clone(),
                site: cfg.unit.site.clone(),
            };
            let server =
                rt.block_on(async { start_uplink(u, &store, live, about, hooks.clone()) })?;
            // The stick job's audit records come through here (rdc-stick@.service may write
            // only this folder of the store).
            if let Err(e) = std::fs::create_dir_all(crate::stick::spool_dir(&store.config().root)) {
                tracing::warn!(error = %e, "cannot make the store's spool folder");
            }
            if let Err(e) = write_key_binding(cfg.unit.id.as_str(), u, &store) {
                tracing::warn!(error = %e, "cannot write the unit's key binding: sticks this unit writes will not be taken until it can");
            }
            Some(server)
        }
        None => None,
    };
    rt.block_on(housekeeping(&store, &cameras, &hooks))?;
    if let Some(server) = uplink {
        server.close();
    }

    notify::notify("STOPPING=1");
    tracing::info!("stopping: closing every segment");
    shutdown.store(true, Ordering::SeqCst);
    for c in cameras {
        c.join();
    }
    store.audit(&AuditRecord {
        who: "unit".into(),
        role: rdc_format::Actor::System,
        action: "recorder_stopped".into(),
        outcome: rdc_format::Outcome::Done,
        ..Default::default()
    })?;
    store.flush()?;
    tracing::info!("stopped");
    Ok(())
}

/// The daemon's own loop until SIGTERM/SIGINT: the systemd watchdog every second, retention
/// every minute, STATUS every 10 s.
async fn housekeeping(
    store: &Store,
    cameras: &[Camera],
    hooks: &crate::hooks::Hooks,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // A stick job waits on its audit records (one readdir of a near-empty folder each time).
    let mut spool_tick = tokio::time::interval(Duration::from_millis(100));
    spool_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let watchdog = notify::watchdog_interval();
    let mut n = 0u64;
    notify::notify("READY=1");
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
            _ = spool_tick.tick() => {
                crate::stick::serve_spool(store);
                continue;
            }
            _ = tick.tick() => {}
        }
        n += 1;
        if watchdog.is_some() {
            notify::notify("WATCHDOG=1");
        }
        hooks.audit_local_mark(store);
        if n % 60 == 1 {
            match store.enforce_retention() {
                Ok(r) if r.expired + r.over_budget > 0 => tracing::info!(
                    expired = r.expired,
                    over_budget = r.over_budget,
                    "retention"
                ),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "retention failed; retrying in a minute"),
            }
        }
        if n % 10 == 1 {
            let recording = cameras
                .iter()
                .filter(|c| c.state.recording.load(Ordering::Relaxed))
                .count();
            let down: Vec<String> = cameras
                .iter()
                .filter(|c| !c.state.recording.load(Ordering::Relaxed))
                .map(|c| {
                    format!(
                        "{} ({})",
                        c.id,
                        c.state
                            .last_cause
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .clone()
                            .unwrap_or_else(|| "connecting".into())
                    )
                })
                .collect();
            let days = store
                .status()
                .map(|s| s.effective_retention_days())
                .unwrap_or(0.0);
            let mut status = format!(
                "STATUS=recording {recording}/{} cameras; disk holds {days:.1} days",
                cameras.len()
            );
            if !down.is_empty() {
                status.push_str(&format!("; not recording: {}", down.join(", ")));
            }
            notify::notify(&status);
        }
    }
}

/// The unit's uplink key and certificate, as the configuration names them.
fn uplink_identity(u: &rdc_config::Uplink) -> anyhow::Result<(rdc_config::Secret, String)> {
    let key = u
        .key
        .read()
        .map_err(|m| anyhow::anyhow!("uplink key: {m}"))?;
    let cert = std::fs::read_to_string(&u.cert)
        .with_context(|| format!("uplink.cert {}", u.cert.display()))?;
    Ok((key, cert))
}

/// Writes the store's [`rdc_format::stick::KeyBinding`]: the unit's signing keys signed with its
/// uplink key, which the stick job copies onto each stick (it holds no uplink key itself).
fn write_key_binding(unit: &str, u: &rdc_config::Uplink, store: &Store) -> anyhow::Result<()> {
    let (key, cert) = uplink_identity(u)?;
    let retired: Vec<String> = store
        .retired_public_keys()
        .iter()
        .map(hex::encode)
        .collect();
    let b = rdc_uplink::pki::bind_keys(unit, &store.public_hex(), &retired, &cert, key.expose())?;
    let dir = &store.config().root;
    let tmp = dir.join("unit-key-binding.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&b)?)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, dir.join(rdc_format::stick::KEY_BINDING_FILE))?;
    Ok(())
}

fn start_uplink(
    u: &rdc_config::Uplink,
    store: &Store,
    live: rdc_uplink::server::LiveStatus,
    about: rdc_uplink::protocol::UnitInfo,
    hooks: Arc<crate::hooks::Hooks>,
) -> anyhow::Result<std::sync::Arc<rdc_uplink::server::Server>> {
    use rdc_uplink::tls;
    let (key, cert) = uplink_identity(u)?;
    let ca =
        std::fs::read_to_string(&u.ca).with_context(|| format!("uplink.ca {}", u.ca.display()))?;
    let id = tls::Identity::from_pem(&cert, key.expose())
        .context("the unit's uplink certificate or key")?;
    let crl = match &u.crl {
        Some(p) => Some(
            std::fs::read_to_string(p).with_context(|| format!("uplink.crl {}", p.display()))?,
        ),
        None => None,
    };
    let server_tls = tls::server_config(&id, &ca, crl.as_deref())
        .context("uplink TLS (certificate, key, CA or CRL)")?;
    let bind = if u.vpn.is_some() {
        rdc_uplink::server::Server::bind_tunnel
    } else {
        rdc_uplink::server::Server::bind
    };
    if let Some(v) = &u.vpn {
        let t = crate::tunnel::read(&v.interface);
        if !t.up {
            tracing::warn!(interface = %v.interface, "the tunnel is not up yet; the uplink listens on its address and answers once it is");
        }
    }
    let server = bind(u.listen, server_tls, u.users.clone(), store.clone())
        .with_context(|| format!("cannot listen on {} (UDP)", u.listen))?
        .with_live_status(live)
        .with_unit_info(about)
        .with_hooks(hooks)
        .with_still_max_age(u.still_max_age);
    tracing::info!(listen = %server.local_addr()?, users = u.users.len(), "uplink listening");
    let server = std::sync::Arc::new(server);
    tokio::spawn(server.clone().serve_shared());
    Ok(server)
}

/// The cameras as the daemon sees them now, and the clock: for `rdc status` (R16).
fn live_status(
    states: &[(String, Arc<crate::camera::CameraState>)],
    tunnel: Option<&str>,
) -> rdc_uplink::protocol::LiveState {
    use rdc_uplink::protocol::{LiveCamera, LiveState};
    LiveState {
        clock: crate::clockstate::read(),
        cameras: states
            .iter()
            .map(|(id, s)| LiveCamera {
                camera: id.clone(),
                recording: s.recording.load(Ordering::Relaxed),
                sessions: s.sessions.load(Ordering::Relaxed),
                last_gap_cause: s
                    .last_cause
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone(),
                dropped_frames: s.dropped_written.load(Ordering::Relaxed),
                write_lag_ms: s
                    .lag
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .recent_ns(rdc_storage::Clocks::mono_ns(&rdc_storage::RealClocks))
                    .map(|n| n / 1_000_000),
            })
            .collect(),
        tunnel: tunnel.map(crate::tunnel::read),
    }
}
