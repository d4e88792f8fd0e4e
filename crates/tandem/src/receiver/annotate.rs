//! receiver::annotate: what tandem adds to received OTLP data, and nothing else.
//! Pure: the current invocation comes in as a value.
//!
//! - Linking: a span whose trace is the invocation's X-Ray trace and that had no parent
//!   in the function (no parent, or Lambda's own `Parent=` segment) becomes a child of
//!   tandem's invocation span (`sink::otlp::ids::span_id_for(request, "invocation")`),
//!   so the function's spans hang under the invocation in one trace.
//! - `faas.invocation_id` on every span and log record that arrives during an
//!   invocation without one. Not on metric data points: a point aggregates whatever
//!   the SDK measured since its last export, across invocations; naming one invocation
//!   would be false, and would split every series per request.

use crate::model::Received;
use crate::sink::otlp::encode::{kv, string};
use crate::sink::otlp::ids::{span_id_for, span_id_hex, xray_to_trace_id};
use opentelemetry_proto::tonic::common::v1::KeyValue;

/// The attribute naming the invocation.
pub const INVOCATION_ID: &str = "faas.invocation_id";

/// The invocation running now, as the INVOKE event told it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    /// Lambda's request id.
    pub request_id: String,
    /// The X-Ray trace (`Root=`) as an OTel trace id, when traced.
    pub trace_id: Option<[u8; 16]>,
    /// Lambda's segment (`Parent=`), when traced.
    pub parent: Option<[u8; 8]>,
}

impl Current {
    /// From the INVOKE event's request id and trace header (`Root=…;Parent=…;Sampled=…`).
    pub fn new(request_id: &str, trace_header: Option<&str>) -> Current {
        let field = |name: &str| {
            trace_header?.split(';').find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
            })
        };
        Current {
            request_id: request_id.to_owned(),
            trace_id: field("Root").and_then(xray_to_trace_id),
            parent: field("Parent").and_then(span_id_hex),
        }
    }
}

/// Stamps `r` with the invocation running when it arrived (see the module
/// documentation); with none, leaves it as it came.
pub fn annotate(r: &mut Received, current: Option<&Current>) {
    let Some(cur) = current else {
        return;
    };
    r.request_id = Some(cur.request_id.clone());
    let invocation_span = span_id_for(&cur.request_id, "invocation");
    for span in r.resource_spans.iter_mut().flat_map(|x| &mut x.scope_spans).flat_map(|s| &mut s.spans) {
        let in_trace = cur.trace_id.is_some_and(|t| span.trace_id == t);
        let rootless = span.parent_span_id.is_empty() || cur.parent.is_some_and(|p| span.parent_span_id == p);
        if in_trace && rootless {
            span.parent_span_id = invocation_span.to_vec();
        }
        add_invocation_id(&mut span.attributes, &cur.request_id);
    }
    for rec in r.resource_logs.iter_mut().flat_map(|x| &mut x.scope_logs).flat_map(|s| &mut s.log_records) {
        add_invocation_id(&mut rec.attributes, &cur.request_id);
    }
}

fn add_invocation_id(attributes: &mut Vec<KeyValue>, request_id: &str) {
    if !attributes.iter().any(|a| a.key == INVOCATION_ID) {
        attributes.push(kv(INVOCATION_ID, string(request_id)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    const ROOT: &str = "1-5759e988-bd862e3fe1be46a994272793";
    const TRACE: [u8; 16] =
        [0x57, 0x59, 0xe9, 0x88, 0xbd, 0x86, 0x2e, 0x3f, 0xe1, 0xbe, 0x46, 0xa9, 0x94, 0x27, 0x27, 0x93];

    fn span(trace: [u8; 16], id: u8, parent: &[u8]) -> Span {
        Span { trace_id: trace.to_vec(), span_id: vec![id; 8], parent_span_id: parent.to_vec(), ..Span::default() }
    }

    fn received(spans: Vec<Span>) -> Received {
        Received {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans { spans, ..ScopeSpans::default() }],
                ..ResourceSpans::default()
            }],
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![
                        LogRecord::default(),
                        LogRecord { attributes: vec![kv(INVOCATION_ID, string("theirs"))], ..LogRecord::default() },
                    ],
                    ..ScopeLogs::default()
                }],
                ..ResourceLogs::default()
            }],
            ..Received::default()
        }
    }

    #[test]
    fn the_trace_header_is_read() {
        let c = Current::new("r-1", Some(&format!("Root={ROOT};Parent=53995c3f42cd8ad8;Sampled=1")));
        assert_eq!(c.trace_id, Some(TRACE));
        assert_eq!(c.parent, Some([0x53, 0x99, 0x5c, 0x3f, 0x42, 0xcd, 0x8a, 0xd8]));
        assert_eq!(Current::new("r-1", None).trace_id, None);
        assert_eq!(Current::new("r-1", Some("Root=garbage")).trace_id, None);
    }

    #[test]
    fn rootless_spans_of_the_invocation_trace_become_children_of_its_span() {
        let cur = Current::new("r-1", Some(&format!("Root={ROOT};Parent=53995c3f42cd8ad8;Sampled=1")));
        let lambda_parent = cur.parent.unwrap();
        let mut r = received(vec![
            span(TRACE, 1, &[]),            // root in the function: linked
            span(TRACE, 2, &[1; 8]),        // child of a function span: kept
            span(TRACE, 3, &lambda_parent), // child of Lambda's segment: linked
            span([7; 16], 4, &[]),          // another trace: kept
        ]);
        annotate(&mut r, Some(&cur));
        let spans = &r.resource_spans[0].scope_spans[0].spans;
        let inv = span_id_for("r-1", "invocation").to_vec();
        assert_eq!(spans[0].parent_span_id, inv);
        assert_eq!(spans[1].parent_span_id, vec![1; 8]);
        assert_eq!(spans[2].parent_span_id, inv);
        assert!(spans[3].parent_span_id.is_empty());
        assert!(spans.iter().all(|s| s.attributes.iter().filter(|a| a.key == INVOCATION_ID).count() == 1));
        assert_eq!(r.request_id.as_deref(), Some("r-1"));
        let logs = &r.resource_logs[0].scope_logs[0].log_records;
        assert_eq!(logs[0].attributes, vec![kv(INVOCATION_ID, string("r-1"))]);
        assert_eq!(logs[1].attributes, vec![kv(INVOCATION_ID, string("theirs"))], "an id it carried is kept");
    }

    #[test]
    fn outside_an_invocation_nothing_changes() {
        let mut r = received(vec![span(TRACE, 1, &[])]);
        let before = r.clone();
        annotate(&mut r, None);
        assert_eq!(r, before);
        let cur = Current::new("r-2", None);
        annotate(&mut r, Some(&cur));
        assert!(r.resource_spans[0].scope_spans[0].spans[0].parent_span_id.is_empty(), "untraced: no link");
    }
}
