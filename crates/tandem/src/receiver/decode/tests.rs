use super::*;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

fn spans_request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans { spans, ..ScopeSpans::default() }],
            ..ResourceSpans::default()
        }],
    }
}

fn span(id: u8) -> Span {
    Span { trace_id: vec![id; 16], span_id: vec![id; 8], name: format!("s{id}"), ..Span::default() }
}

#[test]
fn paths_and_content_types() {
    assert_eq!(signal_of_path("/v1/traces"), Some(Signal::Traces));
    assert_eq!(signal_of_path("/v1/metrics"), Some(Signal::Metrics));
    assert_eq!(signal_of_path("/v1/logs"), Some(Signal::Logs));
    assert_eq!(signal_of_path("/v1/log"), None);
    assert_eq!(Encoding::from_content_type("application/x-protobuf"), Some(Encoding::Protobuf));
    assert_eq!(Encoding::from_content_type("Application/JSON; charset=utf-8"), Some(Encoding::Json));
    assert_eq!(Encoding::from_content_type("text/plain"), None);
    assert_eq!(Encoding::from_content_type(""), None);
}

#[test]
fn protobuf_round_trips_and_invalid_spans_are_a_partial_success() {
    let mut bad = span(3);
    bad.trace_id = vec![0; 16];
    let mut short = span(4);
    short.span_id = vec![4; 3];
    let body = spans_request(vec![span(1), bad, span(2), short]).encode_to_vec();
    let d = decode(Signal::Traces, Encoding::Protobuf, &body).unwrap();
    let kept = &d.received.resource_spans[0].scope_spans[0].spans;
    assert_eq!(kept.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["s1", "s2"]);
    assert_eq!(d.rejected, 2);
    assert!(d.message.starts_with("2 refused"), "{}", d.message);
    let answer =
        ExportTraceServiceResponse::decode(&success_body(Signal::Traces, Encoding::Protobuf, 2, &d.message)[..])
            .unwrap();
    assert_eq!(answer.partial_success.map(|p| p.rejected_spans), Some(2));
    assert!(success_body(Signal::Traces, Encoding::Protobuf, 0, "").is_empty(), "full success: the empty message");
}

#[test]
fn otlp_json_is_read_with_hex_ids_and_string_integers() {
    let body = br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"fn"}}]},
        "scopeSpans":[{"scope":{"name":"lib"},"spans":[{"traceId":"5759e988bd862e3fe1be46a994272793",
        "spanId":"53995c3f42cd8ad8","name":"GET","kind":2,"startTimeUnixNano":"1700000000000000000",
        "endTimeUnixNano":1700000000000000500,"attributes":[{"key":"n","value":{"intValue":"7"}}]}]}]}]}"#;
    let d = decode(Signal::Traces, Encoding::Json, body).unwrap();
    let s = &d.received.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(s.trace_id[0], 0x57);
    assert_eq!(s.span_id.len(), 8);
    assert_eq!(s.start_time_unix_nano, 1_700_000_000_000_000_000);
    assert_eq!(s.end_time_unix_nano, 1_700_000_000_000_000_500);
    assert_eq!(s.kind, 2);
    assert_eq!(d.rejected, 0);
    assert_eq!(count_items(&d.received), 1);
    assert_eq!(success_body(Signal::Traces, Encoding::Json, 0, ""), b"{}");
}

#[test]
fn malformed_bodies_are_refused_with_a_reason() {
    for (signal, encoding, body) in [
        (Signal::Traces, Encoding::Protobuf, &b"\xff\xff\xff\xff"[..]),
        (Signal::Logs, Encoding::Json, &b"{\"resourceLogs\":\"nope\"}"[..]),
        (
            Signal::Traces,
            Encoding::Json,
            &b"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":7}]}]}]}"[..],
        ),
        (Signal::Metrics, Encoding::Json, &b"not json"[..]),
    ] {
        match decode(signal, encoding, body) {
            Err(Refusal::Malformed(why)) => assert!(!why.is_empty()),
            other => panic!("{signal:?} {encoding:?}: {other:?}"),
        }
    }
}

#[test]
fn gzip_is_inflated_within_the_bound() {
    let body = spans_request(vec![span(1)]).encode_to_vec();
    let gz = crate::encode::ndjson::gzip(&body).unwrap();
    assert_eq!(gunzip(&gz, MAX_BODY_BYTES).unwrap(), body);
    // A bomb: 20 MiB of zeros in a few KiB stops at the bound.
    let bomb = crate::encode::ndjson::gzip_level(&vec![0u8; 20 << 20], 9).unwrap();
    assert!(bomb.len() < 64 * 1024);
    assert_eq!(gunzip(&bomb, MAX_BODY_BYTES), Err(Refusal::TooLarge));
    assert!(matches!(gunzip(b"not gzip", MAX_BODY_BYTES), Err(Refusal::Malformed(_))));
}

#[test]
fn error_answers_are_google_rpc_status() {
    let pb = status_body(Encoding::Protobuf, code::INVALID_ARGUMENT, "bad");
    assert_eq!(pb, [0x08, 3, 0x12, 3, b'b', b'a', b'd']);
    let json: serde_json::Value = serde_json::from_slice(&status_body(Encoding::Json, 14, "later")).unwrap();
    assert_eq!(json, serde_json::json!({"code": 14, "message": "later"}));
}

mod arbitrary_bodies {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Any bytes, in any encoding, for any signal: an answer, never a panic.
        #[test]
        fn any_body_decodes_or_is_refused(body in proptest::collection::vec(any::<u8>(), 0..512), signal in 0usize..3, json in any::<bool>()) {
            let encoding = if json { Encoding::Json } else { Encoding::Protobuf };
            match decode(Signal::ALL[signal], encoding, &body) {
                Ok(d) => prop_assert!(d.rejected <= 512),
                Err(Refusal::Malformed(why)) => prop_assert!(!why.is_empty()),
                Err(Refusal::TooLarge) => prop_assert!(false, "decode never measures size"),
            }
            let _ = gunzip(&body, 1024);
            let _ = crate::encode::grpc::deframe(&body);
        }

        /// A valid request with one byte changed: still an answer.
        #[test]
        fn a_mutated_request_never_panics(at in 0usize..64, byte in any::<u8>()) {
            let mut body = spans_request(vec![span(1), span(2)]).encode_to_vec();
            let i = at % body.len();
            body[i] = byte;
            let _ = decode(Signal::Traces, Encoding::Protobuf, &body);
        }
    }
}
