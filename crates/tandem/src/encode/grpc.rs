//! encode::grpc: OTLP/gRPC's framing, shared by the receiver's gRPC listener and the
//! `otlp` sink's `grpc` protocol: the three `Export` method paths, the
//! length-prefixed message (a compressed flag, a 4-byte big-endian length, the
//! protobuf), the status codes and which of them OTLP retries, and the
//! `grpc-message` percent-encoding. Pure.

use crate::sink::otlp::encode::Signal;

/// The `Content-Type` of gRPC requests and answers.
pub const CONTENT_TYPE: &str = "application/grpc";

/// gRPC status codes used here.
pub mod code {
    /// `OK`.
    pub const OK: i32 = 0;
    /// `INVALID_ARGUMENT`.
    pub const INVALID_ARGUMENT: i32 = 3;
    /// `RESOURCE_EXHAUSTED`.
    pub const RESOURCE_EXHAUSTED: i32 = 8;
    /// `UNIMPLEMENTED`.
    pub const UNIMPLEMENTED: i32 = 12;
    /// `INTERNAL`.
    pub const INTERNAL: i32 = 13;
    /// `UNAVAILABLE`.
    pub const UNAVAILABLE: i32 = 14;
}

/// The `Export` method of `signal`'s OTLP service.
pub const fn method_path(signal: Signal) -> &'static str {
    match signal {
        Signal::Traces => "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        Signal::Metrics => "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        Signal::Logs => "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
    }
}

/// The signal of an `Export` method path.
pub fn signal_of_path(path: &str) -> Option<Signal> {
    Signal::ALL.into_iter().find(|&s| method_path(s) == path)
}

/// One length-prefixed message.
pub fn frame(message: &[u8], compressed: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 5);
    out.push(u8::from(compressed));
    out.extend_from_slice(&u32::try_from(message.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// The one message of a unary call's body, and whether it is compressed.
pub fn deframe(body: &[u8]) -> Result<(bool, &[u8]), String> {
    if body.len() < 5 {
        return Err(format!("a gRPC message needs a 5-byte prefix; the body has {} bytes", body.len()));
    }
    let compressed = match body[0] {
        0 => false,
        1 => true,
        f => return Err(format!("unknown gRPC compressed flag {f}")),
    };
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    let rest = &body[5..];
    if rest.len() != len {
        return Err(format!("the gRPC message says {len} bytes, the body holds {} (one message per call)", rest.len()));
    }
    Ok((compressed, rest))
}

/// Whether OTLP retries a call that ended with `code` (the specification's retryable
/// codes; `RESOURCE_EXHAUSTED` too, as servers send it for back-pressure).
pub fn retryable(code: i32) -> bool {
    matches!(code, 1 | 4 | 8 | 10 | 11 | 14 | 15)
}

/// `grpc-message` as the gRPC HTTP/2 mapping writes it: printable ASCII but `%` as is,
/// every other byte percent-encoded.
pub fn percent_encode(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for &b in message.as_bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The inverse of [`percent_encode`] (invalid escapes kept as they are).
pub use crate::sink::otlp::resource::percent_decode;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_the_three_services() {
        for s in Signal::ALL {
            assert_eq!(signal_of_path(method_path(s)), Some(s));
        }
        assert_eq!(signal_of_path("/opentelemetry.proto.collector.trace.v1.TraceService/Other"), None);
    }

    #[test]
    fn messages_are_framed_and_deframed() {
        let f = frame(b"abc", false);
        assert_eq!(f, [0, 0, 0, 0, 3, b'a', b'b', b'c']);
        assert_eq!(deframe(&f), Ok((false, &b"abc"[..])));
        assert_eq!(deframe(&frame(b"", true)), Ok((true, &b""[..])));
        assert!(deframe(&f[..6]).is_err(), "truncated");
        assert!(deframe(&[0, 0, 0]).is_err(), "no prefix");
        let mut two = f.clone();
        two.extend_from_slice(&f);
        assert!(deframe(&two).is_err(), "two messages in a unary call");
        assert!(deframe(&[7, 0, 0, 0, 0]).is_err(), "unknown flag");
    }

    #[test]
    fn retryable_codes_and_messages() {
        assert!(retryable(code::UNAVAILABLE) && retryable(code::RESOURCE_EXHAUSTED) && retryable(4));
        assert!(!retryable(code::INVALID_ARGUMENT) && !retryable(code::UNIMPLEMENTED) && !retryable(7));
        let m = "queue full: 100%\nretry";
        assert_eq!(percent_encode(m), "queue full: 100%25%0Aretry");
        assert_eq!(percent_decode(&percent_encode(m)), m);
        assert_eq!(percent_decode("caf%C3%A9 %zz"), "café %zz");
    }
}
