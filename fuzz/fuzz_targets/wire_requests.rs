//! The bodies extensions and runtimes send and receive: register, subscribe (validated
//! as Lambda validates it, for both APIs), next events, error bodies, and timestamps.
//! Nothing panics; a subscription that validates has a port, types and buffering within
//! Lambda's ranges; a timestamp that parses formats back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem_wire::subscription::{Api, SubscribeRequest};
use tandem_wire::time::{format_epoch_millis, parse_rfc3339_millis};
use tandem_wire::{ErrorRequest, NextEvent, RegisterRequest};

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<RegisterRequest>(data);
    let _ = serde_json::from_slice::<ErrorRequest>(data);
    if let Ok(event) = serde_json::from_slice::<NextEvent>(data) {
        let json = serde_json::to_vec(&event).expect("an event serializes");
        serde_json::from_slice::<NextEvent>(&json).expect("what was serialized parses");
    }
    if let Ok(request) = serde_json::from_slice::<SubscribeRequest>(data) {
        for api in [Api::Telemetry, Api::Logs] {
            if let Ok(sub) = request.validate(api) {
                assert!((1000..=10_000).contains(&sub.max_items), "maxItems {}", sub.max_items);
                assert!((262_144..=1_048_576).contains(&sub.max_bytes), "maxBytes {}", sub.max_bytes);
                assert!((25..=30_000).contains(&sub.timeout_ms), "timeoutMs {}", sub.timeout_ms);
                assert!(sub.port != 0 && sub.port != 9001, "port {}", sub.port);
                assert!(!sub.types.is_empty());
                assert!(!sub.uri.chars().any(char::is_control), "a control character passed: {:?}", sub.uri);
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(ms) = parse_rfc3339_millis(text) {
            // Canonical forms (what Lambda and the emulator write) format back to themselves.
            let formatted = format_epoch_millis(ms);
            if text.len() == 24 && text.ends_with('Z') {
                assert_eq!(parse_rfc3339_millis(&formatted), Some(ms));
            }
        }
    }
});
