//! minimal_server: the least a Runtime API server can do (one function, no
//! extensions, no telemetry, no lifecycle): `next` and `response`, over keep-alive
//! HTTP/1.1 with hyper. The benchmark runs the same runtime against it and against
//! tandem-emulator, so the difference is the emulator's own cost.

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

#[derive(Default)]
struct State {
    queued: VecDeque<(String, Bytes)>,
    next_waiter: Option<oneshot::Sender<(String, Bytes)>>,
    pending: Vec<(String, oneshot::Sender<Bytes>)>,
    seq: u64,
}

#[derive(Clone, Default)]
pub struct Minimal {
    state: Arc<Mutex<State>>,
}

impl Minimal {
    pub async fn start() -> std::io::Result<(Self, SocketAddr)> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let me = Minimal::default();
        let server = me.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let s = server.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| s.clone().handle(req));
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        });
        Ok((me, addr))
    }

    /// One invocation: hands `event` to the runtime and waits for its response.
    pub async fn invoke(&self, event: Bytes) -> Option<Bytes> {
        let (tx, rx) = oneshot::channel();
        {
            let mut s = self.state.lock().ok()?;
            s.seq += 1;
            let id = format!("req-{}", s.seq);
            s.pending.push((id.clone(), tx));
            match s.next_waiter.take() {
                Some(w) => {
                    let _ = w.send((id, event));
                }
                None => s.queued.push_back((id, event)),
            }
        }
        rx.await.ok()
    }

    async fn handle(self, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
        let path = req.uri().path().to_owned();
        if req.method() == Method::GET && path == "/2018-06-01/runtime/invocation/next" {
            let rx = {
                let Ok(mut s) = self.state.lock() else { return Ok(status(500)) };
                match s.queued.pop_front() {
                    Some(ev) => Ok(ev),
                    None => {
                        let (tx, rx) = oneshot::channel();
                        s.next_waiter = Some(tx);
                        Err(rx)
                    }
                }
            };
            let (id, body) = match rx {
                Ok(ev) => ev,
                Err(rx) => match rx.await {
                    Ok(ev) => ev,
                    Err(_) => return Ok(status(500)),
                },
            };
            let mut r = Response::new(Full::new(body));
            if let Ok(v) = http::HeaderValue::from_str(&id) {
                r.headers_mut().insert("Lambda-Runtime-Aws-Request-Id", v);
            }
            return Ok(r);
        }
        if req.method() == Method::POST {
            if let Some(id) =
                path.strip_prefix("/2018-06-01/runtime/invocation/").and_then(|p| p.strip_suffix("/response"))
            {
                let id = id.to_owned();
                let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                if let Ok(mut s) = self.state.lock() {
                    if let Some(i) = s.pending.iter().position(|(p, _)| *p == id) {
                        let (_, tx) = s.pending.swap_remove(i);
                        let _ = tx.send(body);
                    }
                }
                return Ok(status(202));
            }
        }
        Ok(status(404))
    }
}

fn status(code: u16) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    r
}
