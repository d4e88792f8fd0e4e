//! The otlp sink's `grpc` protocol to an `https://` endpoint, end to end: the real
//! `tandem` in tandem-emulator with `echo-fn`, exporting to a gRPC server on 127.0.0.1
//! that is hyper's HTTP/2 server behind tokio-rustls (ALPN `h2` only), with a private CA
//! and a required client certificate made by the test (rcgen). The server decodes each
//! `Export` call with `opentelemetry-proto`. Needs `cargo build --workspace --bins`.

mod common;

use bytes::Bytes;
use common::*;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use std::convert::Infallible;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tandem::encode::grpc;
use tokio::net::TcpListener;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// One `Export` call as the server saw it.
#[derive(Debug, Clone)]
struct Call {
    path: String,
    /// Spans in the request (traces only).
    spans: usize,
    /// The ALPN protocol the TLS session agreed on.
    alpn: Option<Vec<u8>>,
    client_cert: bool,
}

/// The files tandem is given and the server's own certificate, from one private CA.
struct Pki {
    ca: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    ca_der: CertificateDer<'static>,
    server: (CertificateDer<'static>, PrivateKeyDer<'static>),
}

fn make_pki(dir: &Path) -> Pki {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("a CA key")).expect("the CA");
    let issue = |name: &str, purpose: ExtendedKeyUsagePurpose| {
        let key = KeyPair::generate().expect("a key");
        let mut p = CertificateParams::new(vec![name.to_owned()]).expect("leaf parameters");
        p.extended_key_usages = vec![purpose];
        (p.signed_by(&key, &ca).expect("a leaf certificate"), key)
    };
    let (server, server_key) = issue("127.0.0.1", ExtendedKeyUsagePurpose::ServerAuth);
    let (client, client_key) = issue("tandem", ExtendedKeyUsagePurpose::ClientAuth);
    let file = |name: &str, pem: String| {
        let path = dir.join(name);
        std::fs::write(&path, pem).expect("a PEM file written");
        path
    };
    Pki {
        ca: file("ca.pem", ca.pem()),
        client_cert: file("client.pem", client.pem()),
        client_key: file("client-key.pem", client_key.serialize_pem()),
        ca_der: ca.der().clone(),
        server: (server.der().clone(), PrivatePkcs8KeyDer::from(server_key.serialize_der()).into()),
    }
}

/// A gRPC server over TLS offering only `h2`, requiring a client certificate from the CA;
/// every call answered `grpc-status: 0` (trailers-only). Returns its port and its calls.
async fn grpc_tls_server(pki: &Pki) -> (u16, Arc<Mutex<Vec<Call>>>) {
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(pki.ca_der.clone()).expect("the CA as a root");
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build().expect("a verifier");
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![pki.server.0.clone()], pki.server.1.clone_key())
        .expect("the server certificate");
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(cfg));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the gRPC server");
    let port = listener.local_addr().expect("its address").port();
    let calls: Arc<Mutex<Vec<Call>>> = Arc::default();
    let seen = calls.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, seen) = (acceptor.clone(), seen.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let session = tls.get_ref().1;
                let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
                let client_cert = session.peer_certificates().is_some_and(|c| !c.is_empty());
                let service = service_fn(move |req: Request<Incoming>| {
                    let (seen, alpn) = (seen.clone(), alpn.clone());
                    async move {
                        let path = req.uri().path().to_owned();
                        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                        let (compressed, message) = grpc::deframe(&body).expect("one gRPC message");
                        let mut plain = Vec::new();
                        if compressed {
                            flate2::read::GzDecoder::new(message).read_to_end(&mut plain).expect("gzip");
                        } else {
                            plain.extend_from_slice(message);
                        }
                        let spans = if path.ends_with("TraceService/Export") {
                            let req = ExportTraceServiceRequest::decode(plain.as_slice()).expect("a trace request");
                            req.resource_spans.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len()).sum()
                        } else {
                            0
                        };
                        seen.lock().expect("calls").push(Call { path, spans, alpn, client_cert });
                        let answer = Response::builder()
                            .header("content-type", grpc::CONTENT_TYPE)
                            .header("grpc-status", "0")
                            .body(Full::new(Bytes::new()))
                            .expect("an answer");
                        Ok::<_, Infallible>(answer)
                    }
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (port, calls)
}

/// One invocation logging `line`, tandem's otlp sink on grpc to `endpoint` (plus
/// `extra`: its certificate settings); the console once shut down.
async fn export_once(line: &str, endpoint: String, extra: &[(&str, String)]) -> Vec<String> {
    let dir = tempdir(line);
    let base = [
        ("TANDEM_SINKS", "otlp"),
        ("TANDEM_FLUSH", "end"),
        ("TANDEM_OTLP_RECEIVER", "off"),
        ("TANDEM_OTLP_PROTOCOL", "grpc"),
    ];
    let env: Vec<(&str, String)> = base
        .iter()
        .map(|(k, v)| (*k, (*v).to_owned()))
        .chain([("TANDEM_OTLP_ENDPOINT", endpoint)])
        .chain(extra.iter().cloned())
        .collect();
    let environment = start(&dir, &env, |_| {}).await;
    let outcome = invoke(&environment, serde_json::json!({ "log": [line] })).await;
    assert_eq!(outcome.result.status, tandem_wire::Status::Success, "{line}");
    environment.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    console_after_shutdown(&environment, |lines| !lines.is_empty()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_over_tls_delivers_with_the_private_ca_and_client_certificate() {
    let dir = tempdir("grpc-tls-pki");
    let pki = make_pki(&dir);
    let (port, calls) = grpc_tls_server(&pki).await;
    let path = |p: &PathBuf| p.display().to_string();
    let console = export_once(
        "grpc-tls-ok",
        format!("https://127.0.0.1:{port}"),
        &[
            ("TANDEM_OTLP_CERTIFICATE", path(&pki.ca)),
            ("TANDEM_OTLP_CLIENT_CERTIFICATE", path(&pki.client_cert)),
            ("TANDEM_OTLP_CLIENT_KEY", path(&pki.client_key)),
        ],
    )
    .await;
    let got = calls.lock().expect("calls").clone();
    let mut paths: Vec<&str> = got.iter().map(|c| c.path.as_str()).collect();
    paths.sort_unstable();
    paths.dedup();
    assert_eq!(
        paths,
        [
            "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
            "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        ],
        "console: {console:#?}"
    );
    // The invocation's spans arrived, over h2, with the client certificate.
    assert!(got.iter().map(|c| c.spans).sum::<usize>() >= 1, "{got:?}");
    assert!(got.iter().all(|c| c.alpn.as_deref() == Some(b"h2".as_slice()) && c.client_cert), "{got:?}");

    // Without the private CA the server is not trusted: nothing is sent, tandem says why.
    let before = got.len();
    let console = export_once("grpc-tls-no-ca", format!("https://127.0.0.1:{port}"), &[]).await;
    assert_eq!(calls.lock().expect("calls").len(), before, "nothing reached an untrusted server");
    assert!(
        console.iter().any(|l| l.contains("otlp sink") && l.contains("TLS handshake")),
        "tandem reports the untrusted server: {console:#?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
