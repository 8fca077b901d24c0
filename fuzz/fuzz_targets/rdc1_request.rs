//! A request header from the network, as the unit parses it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rdc_uplink::protocol::{self, Request};

fuzz_target!(|data: &[u8]| {
    if data.len() >= 4 {
        let _ = protocol::header_len(data[..4].try_into().unwrap());
    }
    if let Ok(req) = protocol::decode_request(data) {
        // What parses, re-encodes to the same request.
        let bytes = protocol::encode(&req);
        assert_eq!(protocol::parse_request(&bytes[4..]).unwrap(), req);
        if let Request::Fetch { camera, .. } | Request::List { camera, .. } = &req {
            assert!(rdc_config::Id::parse(camera.as_str()).is_ok());
        }
    }
});
