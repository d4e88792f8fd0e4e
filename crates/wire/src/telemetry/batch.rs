//! telemetry::batch: parsing a whole delivery (a JSON array, or NDJSON over TCP) event
//! by event, so that one bad event costs only itself.

use super::event::Event;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::fmt;

/// Why one event of a batch could not be parsed. Its siblings are unaffected.
#[derive(Debug)]
pub struct EventError {
    /// Position in the batch.
    pub index: usize,
    /// The `type` of the event, when it could be read.
    pub kind: Option<String>,
    /// What the parser said.
    pub error: serde_json::Error,
    /// The event's raw JSON (for logging or dead-lettering).
    pub raw: String,
}

impl fmt::Display for EventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Some(k) => write!(f, "event {} ({k}) is malformed: {}", self.index, self.error),
            None => write!(f, "event {} is malformed: {}", self.index, self.error),
        }
    }
}

impl std::error::Error for EventError {}

/// A parsed delivery: the events that parsed, in order, and the ones that did not.
#[derive(Debug, Default)]
pub struct Batch {
    /// The events that parsed, in order.
    pub events: Vec<Event>,
    /// The events that did not.
    pub errors: Vec<EventError>,
}

/// Parses a delivery body (a JSON array of events), event by event.
///
/// Fails as a whole only when the body is not a JSON array at all. A batch whose every
/// event parses (the common case) is read in one pass; otherwise it is split into its
/// elements and each is parsed alone, so one bad event costs only itself.
pub fn parse_events(body: &[u8]) -> Result<Batch, serde_json::Error> {
    if let Ok(events) = serde_json::from_slice::<Vec<Event>>(body) {
        return Ok(Batch { events, errors: Vec::new() });
    }
    let items: Vec<&RawValue> = serde_json::from_slice(body)?;
    let mut batch = Batch { events: Vec::with_capacity(items.len()), errors: Vec::new() };
    for (index, raw) in items.into_iter().enumerate() {
        match parse_event(index, raw.get()) {
            Ok(e) => batch.events.push(e),
            Err(e) => batch.errors.push(e),
        }
    }
    Ok(batch)
}

/// Like [`parse_events`], keeping each element's outcome in its position.
pub fn parse_batch(body: &[u8]) -> Result<Vec<Result<Event, EventError>>, serde_json::Error> {
    if let Ok(events) = serde_json::from_slice::<Vec<Event>>(body) {
        return Ok(events.into_iter().map(Ok).collect());
    }
    let items: Vec<&RawValue> = serde_json::from_slice(body)?;
    Ok(items.into_iter().enumerate().map(|(index, raw)| parse_event(index, raw.get())).collect())
}

/// Parses newline-delimited events (the TCP destination's framing), line by line.
pub fn parse_ndjson(body: &[u8]) -> Vec<Result<Event, EventError>> {
    body.split(|&b| b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .enumerate()
        .map(|(index, line)| match std::str::from_utf8(line) {
            Ok(s) => parse_event(index, s),
            Err(_) => parse_event(index, &String::from_utf8_lossy(line)),
        })
        .collect()
}

fn parse_event(index: usize, raw: &str) -> Result<Event, EventError> {
    serde_json::from_str::<Event>(raw).map_err(|error| EventError {
        index,
        kind: serde_json::from_str::<KindOnly>(raw).ok().map(|k| k.kind),
        error,
        raw: raw.to_owned(),
    })
}

#[derive(Deserialize)]
struct KindOnly {
    #[serde(rename = "type")]
    kind: String,
}
