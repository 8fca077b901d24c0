//! A tail record, as recovery reads it after a power cut.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = rdc_storage::fuzzing::tail_record(data);
});
