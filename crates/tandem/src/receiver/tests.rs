//! The listeners over real sockets on 127.0.0.1, with lanes that record what they are
//! given: the `otlp` sink's gRPC client against the gRPC listener (the framing both
//! share), back-pressure and SHUTDOWN.

use super::*;
use crate::sink::otlp::encode::Signal;
use crate::sink::otlp::grpc::GrpcClient;
use crate::sink::transport::url::Endpoint;
use crate::sink::Attempt;
use ::http::HeaderMap;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
struct Recorder {
    items: Mutex<Vec<Item>>,
    pending: AtomicU64,
    dropped: AtomicU64,
}

impl Lanes for Recorder {
    fn pending_bytes(&self) -> u64 {
        self.pending.load(Ordering::SeqCst)
    }

    fn push(&self, item: Item) {
        self.items.lock().unwrap().push(item);
    }

    fn dropped(&self, _reason: &'static str, n: u64) {
        self.dropped.fetch_add(n, Ordering::SeqCst);
    }
}

fn spans(n: u8) -> Vec<u8> {
    let span = |i: u8| Span { trace_id: vec![i; 16], span_id: vec![i; 8], name: format!("s{i}"), ..Span::default() };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans { spans: (1..=n).map(span).collect(), ..ScopeSpans::default() }],
            ..ResourceSpans::default()
        }],
    }
    .encode_to_vec()
}

async fn grpc_receiver(sinks: &[SinkKind]) -> (Arc<Recorder>, Arc<State>, Endpoint) {
    let lanes = Arc::new(Recorder::default());
    let state = Arc::new(State::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let receiver = Arc::new(Receiver::new(state.clone(), lanes.clone(), 1 << 20, sinks.contains(&SinkKind::Stdout)));
    tokio::spawn(grpc::serve(listener, receiver));
    (lanes, state, Endpoint::parse(&format!("http://127.0.0.1:{port}")).unwrap())
}

#[tokio::test]
async fn the_sinks_grpc_client_exports_to_the_grpc_listener() {
    let (lanes, state, endpoint) = grpc_receiver(&[SinkKind::Otlp]).await;
    state.invoke("r-1", None);
    let mut client = GrpcClient::new(&endpoint).unwrap();
    assert_eq!(client.export(Signal::Traces, &HeaderMap::new(), &spans(3), false).await, Attempt::Ok);
    let gz = crate::encode::ndjson::gzip(&spans(2)).unwrap();
    assert_eq!(client.export(Signal::Traces, &HeaderMap::new(), &gz, true).await, Attempt::Ok, "gzip, same connection");
    let items = lanes.items.lock().unwrap().clone();
    assert_eq!(items.len(), 2);
    match &items[0] {
        Item::Otlp(r) => {
            assert_eq!(decode::count_items(r), 3);
            assert_eq!(r.request_id.as_deref(), Some("r-1"));
        }
        other => panic!("{other:?}"),
    }
    // Not a message: refused for good; an unknown method: unimplemented.
    match client.export(Signal::Logs, &HeaderMap::new(), b"\xff\xff\xff", false).await {
        Attempt::Permanent(why) => assert!(why.contains("grpc-status 3"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(lanes.items.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn full_lanes_and_shutdown_are_retryable_refusals() {
    let (lanes, state, endpoint) = grpc_receiver(&[SinkKind::Otlp, SinkKind::Stdout]).await;
    let mut client = GrpcClient::new(&endpoint).unwrap();
    lanes.pending.store(2 << 20, Ordering::SeqCst);
    match client.export(Signal::Traces, &HeaderMap::new(), &spans(1), false).await {
        Attempt::Retry { reason, .. } => {
            assert!(reason.contains("grpc-status 14") && reason.contains("full"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    lanes.pending.store(0, Ordering::SeqCst);
    assert_eq!(client.export(Signal::Traces, &HeaderMap::new(), &spans(4), false).await, Attempt::Ok);
    // Larger than the bound alone: taken only while nothing waits.
    let big = {
        let span = |i: u16| Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            name: format!("{i}-{}", "x".repeat(600)),
            ..Span::default()
        };
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans { spans: (0..1000).map(span).collect(), ..ScopeSpans::default() }],
                ..ResourceSpans::default()
            }],
        }
        .encode_to_vec()
    };
    assert!(big.len() * 3 > 1 << 20, "the request's estimate is over the 1 MiB bound");
    lanes.pending.store(1, Ordering::SeqCst);
    assert!(matches!(client.export(Signal::Traces, &HeaderMap::new(), &big, false).await, Attempt::Retry { .. }));
    lanes.pending.store(0, Ordering::SeqCst);
    assert_eq!(client.export(Signal::Traces, &HeaderMap::new(), &big, false).await, Attempt::Ok);
    assert_eq!(lanes.dropped.load(Ordering::SeqCst), 1004, "stdout cannot carry spans: counted, not silent");
    state.close();
    match client.export(Signal::Traces, &HeaderMap::new(), &spans(1), false).await {
        Attempt::Retry { reason, .. } => assert!(reason.contains("shutting down"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(lanes.items.lock().unwrap().len(), 2, "only those taken while open and not full");
}
