//! An answer header from a unit (perhaps an impostor), as `rdc` parses it.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<rdc_uplink::protocol::Response>(data);
});
