//! receiver::decode: an OTLP export request's body to a [`Received`], and the answers'
//! bodies. Pure: bytes in, values out; shared by the HTTP and gRPC listeners.
//!
//! Owns the OTLP/HTTP request rules: which path is which signal, the two encodings
//! (protobuf and OTLP/JSON: lowerCamelCase, hex ids, 64-bit integers as strings or
//! numbers, enums as numbers — `opentelemetry-proto`'s serde), gzip inflated within the
//! size bound (a gzip bomb stops at the bound), and the validation that turns invalid
//! items into a partial success rather than refusing the whole request: a span needs a
//! 16-byte trace id and an 8-byte span id, neither all zero; a log record's ids, when
//! present, have those lengths. What is kept is kept unchanged.

use crate::model::Received;
use crate::sink::otlp::encode::Signal;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use std::io::Read;

/// The most a request body may hold once inflated (bytes): far above what an SDK's
/// batch sends (512 spans), far below what would strain a 128 MB function.
pub const MAX_BODY_BYTES: usize = 8 << 20;

/// How a body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `application/x-protobuf` (and gRPC's messages).
    Protobuf,
    /// `application/json` (OTLP/JSON).
    Json,
}

impl Encoding {
    /// The encoding of a `Content-Type` (parameters such as `charset` ignored).
    pub fn from_content_type(content_type: &str) -> Option<Encoding> {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        if essence.eq_ignore_ascii_case("application/x-protobuf") {
            Some(Encoding::Protobuf)
        } else if essence.eq_ignore_ascii_case("application/json") {
            Some(Encoding::Json)
        } else {
            None
        }
    }

    /// The `Content-Type` of an answer in this encoding.
    pub const fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// The signal an OTLP/HTTP path receives.
pub fn signal_of_path(path: &str) -> Option<Signal> {
    Signal::ALL.into_iter().find(|s| s.path() == path)
}

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Over [`MAX_BODY_BYTES`] (413).
    TooLarge,
    /// Not a valid request (400), with why.
    Malformed(String),
}

/// Inflates a gzip body, stopping at `limit` bytes.
pub fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, Refusal> {
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    let mut dec = flate2::read::GzDecoder::new(body).take(limit as u64 + 1);
    dec.read_to_end(&mut out).map_err(|e| Refusal::Malformed(format!("invalid gzip body: {e}")))?;
    if out.len() > limit {
        return Err(Refusal::TooLarge);
    }
    Ok(out)
}

/// A decoded request: what is kept, and what was refused in it.
#[derive(Debug, Default, PartialEq)]
pub struct Decoded {
    /// The valid part (time and request id unset).
    pub received: Received,
    /// Items refused (spans, data points or log records).
    pub rejected: u64,
    /// Why, when some were.
    pub message: String,
}

/// Decodes an export request of `signal`.
pub fn decode(signal: Signal, encoding: Encoding, body: &[u8]) -> Result<Decoded, Refusal> {
    fn parse<M: Message + Default + serde::de::DeserializeOwned>(
        encoding: Encoding,
        body: &[u8],
    ) -> Result<M, Refusal> {
        match encoding {
            Encoding::Protobuf => M::decode(body).map_err(|e| Refusal::Malformed(format!("invalid protobuf: {e}"))),
            Encoding::Json => {
                serde_json::from_slice(body).map_err(|e| Refusal::Malformed(format!("invalid OTLP/JSON: {e}")))
            }
        }
    }
    let mut d = Decoded::default();
    let r = &mut d.received;
    let bad = match signal {
        Signal::Traces => {
            r.resource_spans = parse::<ExportTraceServiceRequest>(encoding, body)?.resource_spans;
            let bad = retain_nested(
                &mut r.resource_spans,
                |x| &mut x.scope_spans,
                |x| &mut x.spans,
                |s| valid_id(&s.trace_id, 16) && valid_id(&s.span_id, 8),
            );
            (bad, "spans need a 16-byte trace id and an 8-byte span id, not all zero")
        }
        Signal::Logs => {
            r.resource_logs = parse::<ExportLogsServiceRequest>(encoding, body)?.resource_logs;
            let bad = retain_nested(
                &mut r.resource_logs,
                |x| &mut x.scope_logs,
                |x| &mut x.log_records,
                |l| matches!(l.trace_id.len(), 0 | 16) && matches!(l.span_id.len(), 0 | 8),
            );
            (bad, "a log record's trace id has 16 bytes and its span id 8")
        }
        Signal::Metrics => {
            r.resource_metrics = parse::<ExportMetricsServiceRequest>(encoding, body)?.resource_metrics;
            // A metric without data says nothing: dropped, not counted (it has no points).
            retain_nested(&mut r.resource_metrics, |x| &mut x.scope_metrics, |x| &mut x.metrics, |m| m.data.is_some());
            (0, "")
        }
    };
    d.refused(bad.0, bad.1);
    Ok(d)
}

impl Decoded {
    fn refused(&mut self, n: usize, why: &str) {
        if n > 0 {
            self.rejected = n as u64;
            self.message = format!("{n} refused: {why}");
        }
    }
}

/// Keeps the items of every scope of every resource that pass `keep`, then the scopes
/// and resources left with something; answers how many items were dropped.
fn retain_nested<R, S, T>(
    resources: &mut Vec<R>,
    scopes: impl Fn(&mut R) -> &mut Vec<S>,
    items: impl Fn(&mut S) -> &mut Vec<T>,
    keep: impl Fn(&T) -> bool,
) -> usize {
    let mut dropped = 0;
    resources.retain_mut(|r| {
        scopes(r).retain_mut(|s| {
            let list = items(s);
            let before = list.len();
            list.retain(&keep);
            dropped += before - list.len();
            !list.is_empty()
        });
        !scopes(r).is_empty()
    });
    dropped
}

fn valid_id(id: &[u8], len: usize) -> bool {
    id.len() == len && id.iter().any(|&b| b != 0)
}

/// The items (spans, metric data points, log records) in `r`.
pub fn count_items(r: &Received) -> u64 {
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
    let spans: usize = r.resource_spans.iter().flat_map(|x| &x.scope_spans).map(|s| s.spans.len()).sum();
    let logs: usize = r.resource_logs.iter().flat_map(|x| &x.scope_logs).map(|s| s.log_records.len()).sum();
    let points: usize = r
        .resource_metrics
        .iter()
        .flat_map(|x| &x.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(|m| match &m.data {
            Some(Data::Gauge(g)) => g.data_points.len(),
            Some(Data::Sum(s)) => s.data_points.len(),
            Some(Data::Histogram(h)) => h.data_points.len(),
            Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
            Some(Data::Summary(s)) => s.data_points.len(),
            None => 0,
        })
        .sum();
    (spans + logs + points) as u64
}

/// The success answer of `signal`: empty, or with `partial_success` when some items
/// were refused.
pub fn success_body(signal: Signal, encoding: Encoding, rejected: u64, message: &str) -> Vec<u8> {
    let n = i64::try_from(rejected).unwrap_or(i64::MAX);
    let partial = rejected > 0;
    if !partial && encoding == Encoding::Json {
        // serde would write `"partialSuccess":null`; the empty message is `{}`.
        return b"{}".to_vec();
    }
    let msg = || message.to_owned();
    match signal {
        Signal::Traces => encode(
            encoding,
            &ExportTraceServiceResponse {
                partial_success: partial.then(|| ExportTracePartialSuccess { rejected_spans: n, error_message: msg() }),
            },
        ),
        Signal::Metrics => encode(
            encoding,
            &ExportMetricsServiceResponse {
                partial_success: partial
                    .then(|| ExportMetricsPartialSuccess { rejected_data_points: n, error_message: msg() }),
            },
        ),
        Signal::Logs => encode(
            encoding,
            &ExportLogsServiceResponse {
                partial_success: partial
                    .then(|| ExportLogsPartialSuccess { rejected_log_records: n, error_message: msg() }),
            },
        ),
    }
}

fn encode<M: Message + serde::Serialize>(encoding: Encoding, m: &M) -> Vec<u8> {
    match encoding {
        Encoding::Protobuf => m.encode_to_vec(),
        Encoding::Json => crate::sink::otlp::encode::encode_json(m),
    }
}

pub use crate::encode::grpc::code;

/// A `google.rpc.Status` (`code`, `message`), the body of an OTLP/HTTP error answer.
/// Written by hand: two fields, and no generated type for it in `opentelemetry-proto`.
pub fn status_body(encoding: Encoding, code: i32, message: &str) -> Vec<u8> {
    match encoding {
        Encoding::Json => serde_json::json!({ "code": code, "message": message }).to_string().into_bytes(),
        Encoding::Protobuf => {
            let mut out = Vec::with_capacity(message.len() + 8);
            if code != 0 {
                prost::encoding::int32::encode(1, &code, &mut out);
            }
            if !message.is_empty() {
                prost::encoding::string::encode(2, &message.to_owned(), &mut out);
            }
            out
        }
    }
}

#[cfg(test)]
mod tests;
