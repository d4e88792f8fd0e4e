//! Telemetry batches as Lambda sends them: an HTTP JSON array and the TCP NDJSON
//! framing. Parsing never panics, one bad event never costs the others, and every event
//! that parses serializes to JSON that parses back to the same event.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem_wire::telemetry::{parse_batch, parse_events, parse_ndjson, Event};

fn round_trips(event: &Event) {
    let json = serde_json::to_vec(event).expect("an event always serializes");
    let back: Event = serde_json::from_slice(&json).expect("what was serialized parses");
    assert_eq!(format!("{event:?}"), format!("{back:?}"), "round trip changed {}", String::from_utf8_lossy(&json));
}

fuzz_target!(|data: &[u8]| {
    if let Ok(events) = parse_batch(data) {
        for event in events.iter().flatten() {
            round_trips(event);
        }
        // The one-pass parse agrees with the per-event parse when every event parses.
        if events.iter().all(Result::is_ok) {
            let fast = parse_events(data).map(|b| b.events.len()).unwrap_or(events.len());
            assert_eq!(fast, events.len());
        }
    }
    for event in parse_ndjson(data).iter().flatten() {
        round_trips(event);
    }
});
