//! sink::otlp::traces: one SERVER span per invocation, with `init` (or `restore`),
//! `runtime` and `extension_overhead` children, as OTLP traces. Pure.

use super::encode::{boolean, double, dur_ns, int, kv, ms_to_ns, scope, string};
use super::ids::{span_id_for, span_id_hex, trace_id_for};
use super::resource::Resource;
use crate::model::Invocation;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::{span, status, ResourceSpans, ScopeSpans, Span, Status};

pub(crate) const SPAN_FLAG_SAMPLED: u32 = 0x01;
pub(crate) const SPAN_FLAG_HAS_IS_REMOTE: u32 = 0x100;
pub(crate) const SPAN_FLAG_IS_REMOTE: u32 = 0x200;

/// The spans of one invocation: a SERVER span named after the function (status ERROR
/// with the error type as message when the invocation failed), and children `init` (or
/// `restore`, cold starts), `runtime` (the function's execution) and
/// `extension_overhead` (post-runtime extension time, when non-zero); the SERVER span
/// covers its children (on a cold start it starts with `init`). Its parent is
/// Lambda's invocation span (`tracing.spanId`) or the X-Ray `Parent`, when traced.
pub fn invocation_spans(inv: &Invocation, function_name: &str) -> Vec<Span> {
    let id = inv.request_id.as_str();
    let trace_id = trace_id_for(id, inv.trace_id.as_deref()).to_vec();
    let root_id = span_id_for(id, "invocation");
    let parent =
        inv.span_id.as_deref().and_then(span_id_hex).or_else(|| inv.parent_id.as_deref().and_then(span_id_hex));
    let sampled = if inv.sampled == Some(false) { 0 } else { SPAN_FLAG_SAMPLED };
    let start = ms_to_ns(inv.start_ms);
    let end = start + dur_ns(inv.duration_ms);
    let error_status = |failed: bool, message: &str| {
        failed.then(|| Status { message: message.to_owned(), code: status::StatusCode::Error as i32 })
    };

    let mut attributes = vec![
        kv("faas.invocation_id", string(id)),
        kv("faas.coldstart", boolean(inv.cold_start)),
        kv("aws.lambda.status", string(&inv.status)),
        kv("aws.lambda.billed_duration_ms", int(i64::try_from(inv.billed_duration_ms).unwrap_or(i64::MAX))),
        kv("aws.lambda.memory_size_mb", int(i64::try_from(inv.memory_size_mb).unwrap_or(i64::MAX))),
        kv("aws.lambda.estimated_cost_usd", double(inv.estimated_cost_usd)),
    ];
    if inv.complete {
        attributes
            .push(kv("aws.lambda.max_memory_used_mb", int(i64::try_from(inv.max_memory_used_mb).unwrap_or(i64::MAX))));
    } else {
        attributes.push(kv("aws.lambda.complete", boolean(false)));
    }
    if inv.out_of_memory {
        attributes.push(kv("aws.lambda.out_of_memory", boolean(true)));
    }
    if let Some(t) = &inv.error_type {
        attributes.push(kv("error.type", string(t)));
    }
    let failure_message = inv.error_type.as_deref().unwrap_or(&inv.status);
    let child = |part: &str, start: u64, end: u64, attributes: Vec<KeyValue>, status: Option<Status>| Span {
        trace_id: trace_id.clone(),
        span_id: span_id_for(id, part).to_vec(),
        trace_state: String::new(),
        parent_span_id: root_id.to_vec(),
        flags: sampled | SPAN_FLAG_HAS_IS_REMOTE,
        name: part.to_owned(),
        kind: span::SpanKind::Internal as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: end.max(start),
        attributes,
        dropped_attributes_count: 0,
        events: Vec::new(),
        dropped_events_count: 0,
        links: Vec::new(),
        dropped_links_count: 0,
        status,
    };

    let mut spans = Vec::with_capacity(4);
    spans.push(Span {
        trace_id: trace_id.clone(),
        span_id: root_id.to_vec(),
        trace_state: String::new(),
        parent_span_id: parent.map(|p| p.to_vec()).unwrap_or_default(),
        flags: sampled | SPAN_FLAG_HAS_IS_REMOTE | if parent.is_some() { SPAN_FLAG_IS_REMOTE } else { 0 },
        name: function_name.to_owned(),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes,
        dropped_attributes_count: 0,
        events: Vec::new(),
        dropped_events_count: 0,
        links: Vec::new(),
        dropped_links_count: 0,
        status: error_status(inv.is_error(), failure_message),
    });

    if inv.cold_start {
        if let Some(init) = &inv.init {
            let duration = init.duration_ms.or(inv.init_duration_ms).or(inv.restore_duration_ms);
            if let (Some(s), Some(d)) = (init.start_ms, duration) {
                let s = ms_to_ns(s);
                let mut attrs = Vec::new();
                if let Some(t) = &init.initialization_type {
                    attrs.push(kv("aws.lambda.initialization_type", string(t)));
                }
                if let Some(p) = &init.phase {
                    attrs.push(kv("aws.lambda.init_phase", string(p)));
                }
                let failed = init.status.as_deref().is_some_and(|st| st != "success");
                let msg = init.error_type.as_deref().or(init.status.as_deref()).unwrap_or("");
                let name = if init.restore { "restore" } else { "init" };
                spans.push(child(name, s, s + dur_ns(d), attrs, error_status(failed, msg)));
            }
        }
    }

    let post = inv.post_runtime_extension_ms.unwrap_or(0.0);
    let runtime_ms = inv.runtime_duration_ms.unwrap_or_else(|| (inv.duration_ms - post).max(0.0));
    let runtime_end = start + dur_ns(runtime_ms);
    let mut attrs = Vec::new();
    if let Some(b) = inv.produced_bytes {
        attrs.push(kv("aws.lambda.produced_bytes", int(i64::try_from(b).unwrap_or(i64::MAX))));
    }
    if let Some(l) = inv.response_latency_ms {
        attrs.push(kv("aws.lambda.response_latency_ms", double(l)));
    }
    spans.push(child("runtime", start, runtime_end, attrs, error_status(inv.is_error(), failure_message)));
    if post > 0.0 {
        spans.push(child("extension_overhead", runtime_end, runtime_end + dur_ns(post), Vec::new(), None));
    }
    // A child lies inside its parent: on a cold start the root begins with `init`, as
    // X-Ray draws Lambda's Initialization inside the function's segment; one trace
    // then shows the whole cold start in a waterfall, which a separate linked span
    // would not (most backends render links as a side note, if at all).
    let (first, last) =
        spans[1..].iter().fold((start, end), |(a, b), s| (a.min(s.start_time_unix_nano), b.max(s.end_time_unix_nano)));
    spans[0].start_time_unix_nano = first;
    spans[0].end_time_unix_nano = last;
    spans
}

/// An export request with the spans of `invocations`, named after the resource's
/// function.
pub fn traces_request<'a>(
    resource: &Resource,
    invocations: impl IntoIterator<Item = &'a Invocation>,
) -> ExportTraceServiceRequest {
    let name = resource.function_name();
    let spans: Vec<Span> = invocations.into_iter().flat_map(|i| invocation_spans(i, name)).collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource.to_proto()),
            scope_spans: vec![ScopeSpans { scope: Some(scope()), spans, schema_url: String::new() }],
            schema_url: String::new(),
        }],
    }
}
