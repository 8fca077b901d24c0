//! What the daemon does for the uplink beyond the store (`rdc_uplink::server::UnitHooks`):
//! commissioning stills from the cameras it records, the in-service mark, the selftest measured
//! on its own cameras; and the audit entry for a mark made on the unit itself.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rdc_storage::{AuditRecord, Store};
use rdc_uplink::protocol::{CheckLine, in_service_detail};

use crate::camera::CameraState;
use crate::commission;

/// The daemon's hooks.
#[derive(Debug)]
pub struct Hooks {
    pub config: PathBuf,
    pub mark: PathBuf,
    pub states: Vec<(String, Arc<CameraState>)>,
    /// How often a preview is kept, if previews are kept.
    preview_interval: Option<std::time::Duration>,
    /// In-service marks already in the audit log (by their time).
    audited: Mutex<Vec<i64>>,
}

impl Hooks {
    /// The hooks, knowing which marks the audit log already records.
    pub fn new(
        config: PathBuf,
        mark: PathBuf,
        states: Vec<(String, Arc<CameraState>)>,
        store: &Store,
    ) -> Hooks {
        let logged: Vec<String> = store
            .audit_entries(0)
            .map(|v| {
                v.into_iter()
                    .filter(|(_, r)| r.action == "commission_done")
                    .filter_map(|(_, r)| r.detail)
                    .collect()
            })
            .unwrap_or_default();
        let audited = commission::read(&mark)
            .filter(|m| logged.contains(&in_service_detail(m.since_ns)))
            .map(|m| vec![m.since_ns])
            .unwrap_or_default();
        Hooks {
            config,
            mark,
            states,
            preview_interval: store
                .config()
                .preview_interval_ns
                .map(std::time::Duration::from_nanos),
            audited: Mutex::new(audited),
        }
    }

    /// Puts a mark made on the unit (`rdc-recorder commission --done`) in the audit log, once.
    pub fn audit_local_mark(&self, store: &Store) {
        let Some(m) = commission::read(&self.mark) else {
            return;
        };
        let mut audited = self.audited.lock().unwrap_or_else(|p| p.into_inner());
        if audited.contains(&m.since_ns) {
            return;
        }
        let rec = AuditRecord {
            who: m.by.clone(),
            role: rdc_format::Actor::Person(rdc_format::Role::Engineer),
            action: "commission_done".into(),
            reason: Some(m.reason.clone()),
            outcome: rdc_format::Outcome::Granted,
            detail: Some(in_service_detail(m.since_ns)),
            ..Default::default()
        };
        match store.audit(&rec) {
            Ok(_) => {
                tracing::info!(since = %rdc_storage::clock::rfc3339(m.since_ns), "the unit is in service: engineers see no footage from now on");
                audited.push(m.since_ns);
            }
            Err(e) => tracing::error!(error = %e, "cannot write the audit log"),
        }
    }
}

impl rdc_uplink::server::UnitHooks for Hooks {
    fn cut_previews(&self, camera: &str) -> Option<std::time::Duration> {
        use std::sync::atomic::Ordering::SeqCst;
        let (_, s) = self.states.iter().find(|(id, _)| id == camera)?;
        if !s.recording.load(SeqCst) || !s.previews.load(SeqCst) {
            return None;
        }
        s.cut_previews.store(true, SeqCst);
        self.preview_interval
    }

    fn still(&self, camera: &str) -> Option<(String, Vec<u8>, i64)> {
        let (_, s) = self.states.iter().find(|(id, _)| id == camera)?;
        let k = s.last_keyframe.lock().unwrap_or_else(|p| p.into_inner());
        let (codec, data, wall) = k.as_ref()?;
        let codec = match codec {
            crate::tsmux::Codec::H264 => "h264",
            crate::tsmux::Codec::H265 => "h265",
        };
        Some((codec.to_owned(), data.clone(), *wall))
    }

    fn in_service(&self) -> Option<i64> {
        commission::read(&self.mark).map(|m| m.since_ns)
    }

    fn mark_in_service(&self, by: &str, reason: &str) -> Result<i64, String> {
        let now = rdc_storage::Clocks::wall_ns(&rdc_storage::RealClocks);
        let m = commission::mark(&self.mark, by, reason, now).map_err(|e| format!("{e:#}"))?;
        // The request that made it is audited by the uplink, with this detail.
        self.audited
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(m.since_ns);
        Ok(m.since_ns)
    }

    fn selftest(&self) -> Vec<CheckLine> {
        crate::selftest::run(
            &self.config,
            &crate::selftest::Options {
                watch: std::time::Duration::from_secs(3),
                unit_file: None,
                live: Some(self.states.clone()),
            },
        )
    }
}
