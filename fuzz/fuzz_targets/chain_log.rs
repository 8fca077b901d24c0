//! A chain-log file (audit, destruction, holds, manifests) as the store opens and verifies it.
#![no_main]
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use rdc_storage::UnitKey;
use rdc_storage::chainlog::{self, ChainLog};

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir_in("/dev/shm").unwrap();
    let path = dir.path().join("audit.jsonl");
    std::fs::write(&path, data).unwrap();
    let key = Arc::new(UnitKey::ephemeral());
    let _ = chainlog::verify(&path, &[key.public()]).unwrap();
    let _ = chainlog::read_all::<serde_json::Value>(&path).unwrap();
    let mut log = ChainLog::open(&path, key).expect("a damaged log never stops the store");
    log.append(0, &serde_json::json!({"after": "fuzz"})).unwrap();
});
