//! otlp_receiver: an OTLP/HTTP receiver on 127.0.0.1 (protobuf or JSON, gzip or not)
//! that decodes what it gets with `opentelemetry-proto`, counts it, and keeps the log
//! bodies, so that the demo can say exactly what arrived. It can also write each
//! request, decoded, as a JSON file.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use prost::Message;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// What arrived so far.
#[derive(Debug, Default, Clone)]
pub struct Received {
    pub requests: u64,
    pub log_bodies: Vec<String>,
    pub spans: u64,
    pub span_names: BTreeMap<String, u64>,
    pub metric_points: BTreeMap<String, u64>,
    pub errors: Vec<String>,
}

#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<Mutex<Received>>,
}

impl Receiver {
    /// Starts listening; with `dump`, each decoded request is written there as JSON.
    pub async fn start(dump: Option<PathBuf>) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state: Arc<Mutex<Received>> = Arc::default();
        let st = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (st, dump) = (st.clone(), dump.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle(req, st.clone(), dump.clone()));
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        });
        Ok(Receiver { addr, state })
    }

    pub fn received(&self) -> Received {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

fn reply(code: StatusCode) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = code;
    r
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<Mutex<Received>>,
    dump: Option<PathBuf>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let json = req.headers().get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("json"));
    let gzip = req.headers().get("content-encoding").and_then(|v| v.to_str().ok()) == Some("gzip");
    let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
        return Ok(reply(StatusCode::BAD_REQUEST));
    };
    let body = if gzip {
        let mut out = Vec::new();
        if flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut out).is_err() {
            return Ok(reply(StatusCode::BAD_REQUEST));
        }
        Bytes::from(out)
    } else {
        body
    };
    let Ok(mut s) = state.lock() else { return Ok(reply(StatusCode::INTERNAL_SERVER_ERROR)) };
    s.requests += 1;
    let n = s.requests;
    let decoded: Result<serde_json::Value, String> = match path.as_str() {
        "/v1/logs" => decode::<ExportLogsServiceRequest>(&body, json).map(|r| {
            for rl in &r.resource_logs {
                for sl in &rl.scope_logs {
                    for lr in &sl.log_records {
                        let text = match lr.body.as_ref().and_then(|b| b.value.as_ref()) {
                            Some(AnyValue::StringValue(s)) => s.clone(),
                            Some(other) => format!("{other:?}"),
                            None => String::new(),
                        };
                        s.log_bodies.push(text);
                    }
                }
            }
            serde_json::to_value(&r).unwrap_or_default()
        }),
        "/v1/traces" => decode::<ExportTraceServiceRequest>(&body, json).map(|r| {
            for rs in &r.resource_spans {
                for ss in &rs.scope_spans {
                    for sp in &ss.spans {
                        s.spans += 1;
                        *s.span_names.entry(sp.name.clone()).or_default() += 1;
                    }
                }
            }
            serde_json::to_value(&r).unwrap_or_default()
        }),
        "/v1/metrics" => decode::<ExportMetricsServiceRequest>(&body, json).map(|r| {
            for rm in &r.resource_metrics {
                for sm in &rm.scope_metrics {
                    for m in &sm.metrics {
                        let points = match &m.data {
                            Some(Data::Sum(x)) => x.data_points.len(),
                            Some(Data::Gauge(x)) => x.data_points.len(),
                            Some(Data::Histogram(x)) => x.data_points.len(),
                            Some(Data::ExponentialHistogram(x)) => x.data_points.len(),
                            Some(Data::Summary(x)) => x.data_points.len(),
                            None => 0,
                        };
                        *s.metric_points.entry(m.name.clone()).or_default() += points as u64;
                    }
                }
            }
            serde_json::to_value(&r).unwrap_or_default()
        }),
        _ => return Ok(reply(StatusCode::NOT_FOUND)),
    };
    match decoded {
        Ok(v) => {
            if let Some(dir) = dump {
                let name = path.trim_start_matches("/v1/").to_owned();
                let _ = std::fs::write(
                    dir.join(format!("{n:05}-{name}.json")),
                    serde_json::to_vec_pretty(&v).unwrap_or_default(),
                );
            }
            Ok(reply(StatusCode::OK))
        }
        Err(e) => {
            s.errors.push(format!("{path}: {e}"));
            Ok(reply(StatusCode::BAD_REQUEST))
        }
    }
}

fn decode<M: Message + Default + serde::de::DeserializeOwned>(body: &[u8], json: bool) -> Result<M, String> {
    if json {
        serde_json::from_slice(body).map_err(|e| format!("invalid OTLP/JSON: {e}"))
    } else {
        M::decode(body).map_err(|e| format!("invalid OTLP protobuf: {e}"))
    }
}
