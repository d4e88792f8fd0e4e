//! Log lines: turns a `function`/`extension` telemetry record into a [`LogRecord`] with
//! a level, a request id, a message and attributes.
//!
//! This is the hot path (one call per log line). It owns level detection and the
//! parsing of the Lambda runtimes' text formats; it never does I/O, never builds a
//! regex, never logs, and allocates nothing beyond the fields of the record it returns
//! ([`into_log_record`] even reuses the line's own buffer for the message).
//!
//! # What is recognised
//!
//! Text lines (a trailing `\n`/`\r\n` is removed):
//! - Lambda's tab format (Node.js, .NET, Python's `LambdaLoggerHandler` without the
//!   bracket): `2024-01-01T00:00:00.000Z\t<requestId>\t<LEVEL>\t<message>`. Level,
//!   request id and time are taken from the fields, the message is what follows. When
//!   the third field is not a level, the level is unknown and the message is everything
//!   after the request id. A request id of `undefined`/`null`/`-` counts as none.
//! - Python's awslambdaric format: `[LEVEL]\t<time>\t<requestId>\t<message>`.
//! - A leading `[level]` (any case), e.g. `[ERROR] boom`: level only, the message is
//!   the whole line.
//! - A leading upper-case level word followed by a space, tab, `:` or the end of the
//!   line: `ERROR`, `WARN`, `WARNING`, `INFO`, `DEBUG`, `TRACE`, `FATAL`, `CRITICAL`
//!   (upper case only, so that prose such as "Error connecting…" is not mistaken for a
//!   level): level only, the message is the whole line.
//! - Crash output: `Traceback (most recent call last):` is ERROR; Go's `panic: ` and
//!   `fatal error: ` are FATAL. No other heuristics: everything else is UNKNOWN.
//! - A line that is a JSON object (`{...}`, as printed by structured loggers such as
//!   Powertools when the function's log format is Text) is handled as a JSON record.
//!
//! JSON records (`AWS_LAMBDA_LOG_FORMAT=JSON`, or a JSON text line):
//! - level: the first of `level`, `levelname`, `severity`, `log.level` that holds a
//!   level name (any case, see [`Level::parse`]) or a pino/bunyan number (10…60);
//! - request id: `requestId`, `AWSRequestId`, `aws_request_id`, `function_request_id`;
//! - time: `timestamp`, `time` or `@timestamp` as RFC 3339 or epoch milliseconds;
//! - message: `message` or `msg` (a non-string value is written as compact JSON); when
//!   neither exists the whole object, as compact JSON, is the message and there are no
//!   attributes;
//! - attributes: every other field. Mapped fields are removed from the attributes.
//!
//! The request id falls back to `in_flight` (the invocation running when the line was
//! written); time falls back to the telemetry event's time, which is always the
//! record's `observed_ms`.

use crate::model::{Level, LogRecord, Source};
use serde_json::{Map, Value};
use tandem_wire::telemetry::LogRecord as WireLog;
use tandem_wire::time::parse_rfc3339_millis;

/// Builds a [`LogRecord`] from a borrowed telemetry record (copies the text).
pub fn to_log_record(event_time_ms: u64, source: Source, rec: &WireLog, in_flight: Option<&str>) -> LogRecord {
    match rec {
        WireLog::Text(line) => {
            if let Some(map) = json_line(line) {
                return from_json(event_time_ms, source, map, in_flight);
            }
            let p = parse_text(line);
            let message = line[p.msg.0..p.msg.1].to_owned();
            finish_text(event_time_ms, source, line, &p, message, in_flight)
        }
        WireLog::Json(Value::Object(map)) => from_json(event_time_ms, source, map.clone(), in_flight),
        WireLog::Json(other) => non_object(event_time_ms, source, other, in_flight),
    }
}

/// Like [`to_log_record`], consuming the telemetry record: the line's buffer becomes
/// the message and a JSON object's map becomes the attributes, without copying.
pub fn into_log_record(event_time_ms: u64, source: Source, rec: WireLog, in_flight: Option<&str>) -> LogRecord {
    match rec {
        WireLog::Text(mut line) => {
            if let Some(map) = json_line(&line) {
                return from_json(event_time_ms, source, map, in_flight);
            }
            let p = parse_text(&line);
            let request_id = p.request_id.map(|(a, b)| line[a..b].to_owned());
            line.truncate(p.msg.1);
            line.drain(..p.msg.0);
            LogRecord {
                time_ms: p.time_ms.unwrap_or(event_time_ms),
                observed_ms: event_time_ms,
                source,
                level: p.level,
                request_id: request_id.or_else(|| in_flight.map(str::to_owned)),
                message: line,
                attributes: Map::new(),
                trace_id: None,
            }
        }
        WireLog::Json(Value::Object(map)) => from_json(event_time_ms, source, map, in_flight),
        WireLog::Json(other) => non_object(event_time_ms, source, &other, in_flight),
    }
}

/// The level, request id, time and message of a text line, as byte ranges into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TextParts {
    level: Level,
    time_ms: Option<u64>,
    request_id: Option<(usize, usize)>,
    msg: (usize, usize),
}

fn finish_text(
    event_time_ms: u64,
    source: Source,
    line: &str,
    p: &TextParts,
    message: String,
    in_flight: Option<&str>,
) -> LogRecord {
    let request_id = match p.request_id {
        Some((a, b)) => Some(line[a..b].to_owned()),
        None => in_flight.map(str::to_owned),
    };
    LogRecord {
        time_ms: p.time_ms.unwrap_or(event_time_ms),
        observed_ms: event_time_ms,
        source,
        level: p.level,
        request_id,
        message,
        attributes: Map::new(),
        trace_id: None,
    }
}

fn trim_newline(s: &str) -> usize {
    let b = s.as_bytes();
    let mut end = b.len();
    while end > 0 && (b[end - 1] == b'\n' || b[end - 1] == b'\r') {
        end -= 1;
    }
    end
}

fn parse_text(line: &str) -> TextParts {
    let end = trim_newline(line);
    let s = &line[..end];
    let b = s.as_bytes();
    let whole = TextParts { level: Level::Unknown, time_ms: None, request_id: None, msg: (0, end) };
    let parts = match b.first() {
        None => return whole,
        // `[LEVEL]` prefix, optionally followed by Python's tab format.
        Some(b'[') => bracketed(s).unwrap_or(whole),
        Some(c) if c.is_ascii_digit() => tab_format(s, 0, true).unwrap_or(whole),
        Some(c) if c.is_ascii_uppercase() => bare_level(b).map_or(whole, |level| TextParts { level, ..whole }),
        Some(_) => whole,
    };
    parts.or_crash_heuristics(s)
}

fn bracketed(s: &str) -> Option<TextParts> {
    let b = s.as_bytes();
    let close = b[..b.len().min(13)].iter().position(|&c| c == b']')?;
    let level = Level::parse(&s[1..close])?;
    if b.get(close + 1) == Some(&b'\t') {
        if let Some(t) = tab_format(s, close + 2, false) {
            return Some(TextParts { level, ..t });
        }
    }
    Some(TextParts { level, time_ms: None, request_id: None, msg: (0, s.len()) })
}

impl TextParts {
    fn or_crash_heuristics(self, s: &str) -> TextParts {
        if self.level != Level::Unknown {
            return self;
        }
        let level = if s.starts_with("Traceback (most recent call last):") {
            Level::Error
        } else if s.starts_with("panic: ") || s.starts_with("fatal error: ") {
            Level::Fatal
        } else {
            return self;
        };
        TextParts { level, ..self }
    }
}

/// `<time>\t<requestId>\t[<LEVEL>\t]<message>` starting at `from`.
fn tab_format(s: &str, from: usize, with_level: bool) -> Option<TextParts> {
    let b = s.as_bytes();
    let tab1 = from + b[from..].iter().position(|&c| c == b'\t')?;
    let ts = &s[from..tab1];
    if ts.len() < 20 || ts.len() > 35 {
        return None;
    }
    let time_ms = parse_rfc3339_millis(ts)?;
    let id_start = tab1 + 1;
    let tab2 = id_start + b[id_start..].iter().position(|&c| c == b'\t')?;
    let id = &s[id_start..tab2];
    if id.len() > 64 || id.bytes().any(|c| c == b' ') {
        return None;
    }
    let request_id = match id {
        "" | "undefined" | "null" | "-" | "None" => None,
        _ => Some((id_start, tab2)),
    };
    let rest = tab2 + 1;
    let mut parts =
        TextParts { level: Level::Unknown, time_ms: Some(time_ms), request_id, msg: (rest.min(s.len()), s.len()) };
    if with_level {
        if let Some(tab3) = b[rest..].iter().position(|&c| c == b'\t') {
            if let Some(level) = Level::parse(&s[rest..rest + tab3]) {
                parts.level = level;
                parts.msg.0 = rest + tab3 + 1;
            }
        } else if let Some(level) = Level::parse(&s[rest..]) {
            // `<time>\t<id>\tINFO` with an empty message.
            parts.level = level;
            parts.msg.0 = s.len();
        }
    }
    Some(parts)
}

/// An upper-case level word at the start of the line, followed by a delimiter.
fn bare_level(b: &[u8]) -> Option<Level> {
    let word_len = b.iter().take(9).take_while(|c| c.is_ascii_uppercase()).count();
    if !(4..=8).contains(&word_len) {
        return None;
    }
    match b.get(word_len) {
        None | Some(b' ') | Some(b'\t') | Some(b':') => {}
        _ => return None,
    }
    // Only the canonical words: no aliases such as FAIL or ALERT at line start.
    let word = &b[..word_len];
    Some(match word {
        b"TRACE" => Level::Trace,
        b"DEBUG" => Level::Debug,
        b"INFO" => Level::Info,
        b"WARN" | b"WARNING" => Level::Warn,
        b"ERROR" => Level::Error,
        b"FATAL" | b"CRITICAL" => Level::Fatal,
        _ => return None,
    })
}

/// A text line that is a whole JSON object.
fn json_line(line: &str) -> Option<Map<String, Value>> {
    let t = line.trim_end_matches(['\n', '\r']);
    if !(t.starts_with('{') && t.ends_with('}')) {
        return None;
    }
    serde_json::from_str::<Map<String, Value>>(t).ok()
}

const LEVEL_KEYS: [&str; 4] = ["level", "levelname", "severity", "log.level"];
const REQUEST_ID_KEYS: [&str; 4] = ["requestId", "AWSRequestId", "aws_request_id", "function_request_id"];
const TIME_KEYS: [&str; 3] = ["timestamp", "time", "@timestamp"];
const MESSAGE_KEYS: [&str; 2] = ["message", "msg"];

fn level_of(v: &Value) -> Option<Level> {
    match v {
        Value::String(s) => Level::parse(s),
        Value::Number(n) => n.as_i64().and_then(Level::from_number),
        _ => None,
    }
}

fn time_of(v: &Value) -> Option<u64> {
    match v {
        Value::String(s) => parse_rfc3339_millis(s),
        // Epoch milliseconds between 2001 and 2286.
        Value::Number(n) => n.as_u64().filter(|ms| (1_000_000_000_000..10_000_000_000_000).contains(ms)),
        _ => None,
    }
}

fn first_key<T>(
    map: &Map<String, Value>,
    keys: &[&'static str],
    f: impl Fn(&Value) -> Option<T>,
) -> Option<(&'static str, T)> {
    keys.iter().find_map(|&k| map.get(k).and_then(&f).map(|t| (k, t)))
}

fn from_json(event_time_ms: u64, source: Source, mut map: Map<String, Value>, in_flight: Option<&str>) -> LogRecord {
    let level = first_key(&map, &LEVEL_KEYS, level_of);
    let rid = first_key(&map, &REQUEST_ID_KEYS, |v| v.as_str().filter(|s| !s.is_empty()).map(|_| ()));
    let time = first_key(&map, &TIME_KEYS, time_of);
    let msg_key = MESSAGE_KEYS.iter().copied().find(|k| map.contains_key(*k));

    let (message, request_id, attributes) = match msg_key {
        None => {
            // No message field: the whole object is the message, nothing is duplicated
            // into attributes.
            let request_id = rid.and_then(|(k, ())| map.get(k).and_then(Value::as_str).map(str::to_owned));
            (Value::Object(map).to_string(), request_id, Map::new())
        }
        Some(k) => {
            let message = match map.remove(k) {
                Some(Value::String(s)) => s,
                Some(other) => other.to_string(),
                None => String::new(),
            };
            if let Some((k, _)) = level {
                map.remove(k);
            }
            if let Some((k, _)) = time {
                map.remove(k);
            }
            let request_id = match rid {
                Some((k, ())) => match map.remove(k) {
                    Some(Value::String(s)) => Some(s),
                    _ => None,
                },
                None => None,
            };
            (message, request_id, map)
        }
    };
    LogRecord {
        time_ms: time.map_or(event_time_ms, |(_, t)| t),
        observed_ms: event_time_ms,
        source,
        level: level.map_or(Level::Unknown, |(_, l)| l),
        request_id: request_id.or_else(|| in_flight.map(str::to_owned)),
        message,
        attributes,
        trace_id: None,
    }
}

fn non_object(event_time_ms: u64, source: Source, v: &Value, in_flight: Option<&str>) -> LogRecord {
    LogRecord {
        time_ms: event_time_ms,
        observed_ms: event_time_ms,
        source,
        level: Level::Unknown,
        request_id: in_flight.map(str::to_owned),
        message: match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        },
        attributes: Map::new(),
        trace_id: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const T: u64 = 1_704_067_200_500; // 2024-01-01T00:00:00.500Z
    const RID: &str = "8f507cfc-3b2a-4c8a-9e39-7f2b2a1c6d11";

    fn text(line: &str) -> LogRecord {
        let a = to_log_record(T, Source::Function, &WireLog::Text(line.into()), Some("in-flight"));
        let b = into_log_record(T, Source::Function, WireLog::Text(line.into()), Some("in-flight"));
        assert_eq!(a, b, "borrowed and owned paths disagree on {line:?}");
        a
    }

    fn json(v: Value) -> LogRecord {
        let a = to_log_record(T, Source::Extension, &WireLog::Json(v.clone()), None);
        let b = into_log_record(T, Source::Extension, WireLog::Json(v), None);
        assert_eq!(a, b);
        a
    }

    #[test]
    fn node_tab_format() {
        let r =
            text(&format!("2024-01-01T00:00:00.000Z\t{RID}\tERROR\tInvoke Error \t{{\"errorType\":\"TypeError\"}}\n"));
        assert_eq!(r.level, Level::Error);
        assert_eq!(r.request_id.as_deref(), Some(RID));
        assert_eq!(r.message, "Invoke Error \t{\"errorType\":\"TypeError\"}");
        assert_eq!(r.time_ms, 1_704_067_200_000);
        assert_eq!(r.observed_ms, T);
        for (lvl, want) in [
            ("INFO", Level::Info),
            ("WARN", Level::Warn),
            ("DEBUG", Level::Debug),
            ("TRACE", Level::Trace),
            ("FATAL", Level::Fatal),
            ("info", Level::Info),
            ("fail", Level::Error),
        ] {
            let r = text(&format!("2024-01-01T00:00:00.000Z\t{RID}\t{lvl}\tx"));
            assert_eq!((r.level, r.message.as_str()), (want, "x"), "{lvl}");
        }
    }

    #[test]
    fn node_tab_format_edge_cases() {
        // Logged during init: Node prints `undefined`; the in-flight id is used instead.
        let r = text("2024-01-01T00:00:00.000Z\tundefined\tINFO\tloading config");
        assert_eq!(r.request_id.as_deref(), Some("in-flight"));
        assert_eq!((r.level, r.message.as_str()), (Level::Info, "loading config"));
        // No level field: unknown level, the message is everything after the id.
        let r = text(&format!("2024-01-01T00:00:00.000Z\t{RID}\tjust text\twith tab"));
        assert_eq!((r.level, r.message.as_str()), (Level::Unknown, "just text\twith tab"));
        // Empty message.
        let r = text(&format!("2024-01-01T00:00:00.000Z\t{RID}\tWARN"));
        assert_eq!((r.level, r.message.as_str()), (Level::Warn, ""));
        // Windows newline and multi-line message keep inner newlines.
        let r = text(&format!("2024-01-01T00:00:00.000Z\t{RID}\tERROR\tline1\nline2\r\n"));
        assert_eq!(r.message, "line1\nline2");
        // A number at the start that is not a timestamp is not the tab format.
        let r = text("2024 was a good year\tfor\tlogs");
        assert_eq!((r.level, r.message.as_str()), (Level::Unknown, "2024 was a good year\tfor\tlogs"));
        assert_eq!(r.time_ms, T);
    }

    #[test]
    fn python_formats() {
        let r = text(&format!("[ERROR]\t2024-01-01T00:00:00.250Z\t{RID}\tsomething failed\n"));
        assert_eq!(r.level, Level::Error);
        assert_eq!(r.request_id.as_deref(), Some(RID));
        assert_eq!(r.message, "something failed");
        assert_eq!(r.time_ms, 1_704_067_200_250);
        let r = text("[WARNING]\t2024-01-01T00:00:00.250Z\tNone\tno request yet");
        assert_eq!(
            (r.level, r.request_id.as_deref(), r.message.as_str()),
            (Level::Warn, Some("in-flight"), "no request yet")
        );
        // Bracketed level without the tab format: whole line kept.
        let r = text("[error] could not connect");
        assert_eq!((r.level, r.message.as_str()), (Level::Error, "[error] could not connect"));
        let r = text("[Critical]");
        assert_eq!(r.level, Level::Fatal);
        let r = text("[ERROR]\tnot a timestamp\tx\ty");
        assert_eq!((r.level, r.message.as_str()), (Level::Error, "[ERROR]\tnot a timestamp\tx\ty"));
        // Brackets that are not a level.
        let r = text("[1, 2, 3]");
        assert_eq!(r.level, Level::Unknown);
    }

    #[test]
    fn bare_prefixes_are_upper_case_words_only() {
        for (line, want) in [
            ("ERROR something broke", Level::Error),
            ("ERROR: something broke", Level::Error),
            ("ERROR\tsomething broke", Level::Error),
            ("ERROR", Level::Error),
            ("WARNING: low disk", Level::Warn),
            ("WARN low disk", Level::Warn),
            ("INFO started", Level::Info),
            ("DEBUG x=1", Level::Debug),
            ("TRACE enter", Level::Trace),
            ("FATAL out", Level::Fatal),
            ("CRITICAL out", Level::Fatal),
            ("Error connecting to db", Level::Unknown),
            ("ERRORS happen", Level::Unknown),
            ("INFORMATION: x", Level::Unknown),
            ("FAIL: test", Level::Unknown),
            ("INFO-ish", Level::Unknown),
            ("hello world", Level::Unknown),
            ("", Level::Unknown),
        ] {
            let r = text(line);
            assert_eq!(r.level, want, "{line:?}");
            assert_eq!(r.message, line);
            assert_eq!(r.request_id.as_deref(), Some("in-flight"));
        }
    }

    #[test]
    fn crash_output() {
        assert_eq!(text("Traceback (most recent call last):\n  File \"x\"").level, Level::Error);
        assert_eq!(text("panic: runtime error: index out of range").level, Level::Fatal);
        assert_eq!(text("fatal error: runtime: out of memory").level, Level::Fatal);
        assert_eq!(text("panicking is bad").level, Level::Unknown);
    }

    #[test]
    fn lambda_json_format() {
        let r = json(json!({
            "timestamp": "2024-01-01T00:00:00.100Z", "level": "ERROR", "requestId": RID,
            "message": "failed", "errorType": "TypeError", "stackTrace": ["a", "b"]
        }));
        assert_eq!(r.level, Level::Error);
        assert_eq!(r.request_id.as_deref(), Some(RID));
        assert_eq!(r.message, "failed");
        assert_eq!(r.time_ms, 1_704_067_200_100);
        assert_eq!(r.source, Source::Extension);
        assert_eq!(Value::Object(r.attributes), json!({"errorType": "TypeError", "stackTrace": ["a", "b"]}));
    }

    #[test]
    fn json_field_variants() {
        let r = json(json!({"levelname": "warning", "AWSRequestId": "a", "msg": "m"}));
        assert_eq!((r.level, r.request_id.as_deref(), r.message.as_str()), (Level::Warn, Some("a"), "m"));
        assert!(r.attributes.is_empty());
        let r = json(json!({"severity": "Debug", "aws_request_id": "b", "message": {"k": 1}}));
        assert_eq!((r.level, r.request_id.as_deref(), r.message.as_str()), (Level::Debug, Some("b"), "{\"k\":1}"));
        let r = json(json!({"log.level": "info", "message": "m", "function_request_id": "c"}));
        assert_eq!((r.level, r.request_id.as_deref()), (Level::Info, Some("c")));
        // pino: numeric level, epoch-ms time, msg.
        let r = json(json!({"level": 50, "time": 1_704_067_200_042u64, "msg": "boom", "pid": 1}));
        assert_eq!((r.level, r.time_ms, r.message.as_str()), (Level::Error, 1_704_067_200_042, "boom"));
        assert_eq!(Value::Object(r.attributes), json!({"pid": 1}));
        // An unreadable level stays an attribute; the next key is tried.
        let r = json(json!({"level": "loud", "severity": "ERROR", "message": "m"}));
        assert_eq!(r.level, Level::Error);
        assert_eq!(Value::Object(r.attributes), json!({"level": "loud"}));
        // A time that does not parse stays an attribute and the event time is used.
        let r = json(json!({"timestamp": "2024-01-01 12:00:00,123+0000", "message": "m"}));
        assert_eq!(r.time_ms, T);
        assert!(r.attributes.contains_key("timestamp"));
        // Without in-flight fallback and without an id: none.
        assert_eq!(r.request_id, None);
    }

    #[test]
    fn json_without_message_is_the_whole_object() {
        let r = json(json!({"level": "INFO", "requestId": "r", "count": 3}));
        assert_eq!(r.level, Level::Info);
        assert_eq!(r.request_id.as_deref(), Some("r"));
        let back: Value = serde_json::from_str(&r.message).unwrap();
        assert_eq!(back, json!({"level": "INFO", "requestId": "r", "count": 3}));
        assert!(!r.message.contains(' '));
        assert!(r.attributes.is_empty());
    }

    #[test]
    fn json_text_lines_are_parsed_as_json() {
        let r = text("{\"level\":\"WARN\",\"message\":\"from powertools\",\"service\":\"pay\"}\n");
        assert_eq!((r.level, r.message.as_str()), (Level::Warn, "from powertools"));
        assert_eq!(Value::Object(r.attributes), json!({"service": "pay"}));
        assert_eq!(r.request_id.as_deref(), Some("in-flight"));
        // Not valid JSON: plain text.
        let r = text("{not json}");
        assert_eq!((r.level, r.message.as_str()), (Level::Unknown, "{not json}"));
    }

    #[test]
    fn non_object_json_is_kept_as_text() {
        let r = to_log_record(T, Source::Function, &WireLog::Json(json!([1, 2])), Some("x"));
        assert_eq!((r.level, r.message.as_str(), r.request_id.as_deref()), (Level::Unknown, "[1,2]", Some("x")));
    }
}
