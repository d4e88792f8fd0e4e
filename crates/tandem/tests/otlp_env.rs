//! The otlp sink configured the OpenTelemetry way, end to end: the real `tandem` in
//! tandem-emulator with the real `echo-fn`, exporting to OTLP/HTTP servers on 127.0.0.1
//! that record each request's path, query and headers. Per-signal settings and the
//! sink's own `TANDEM_OTLP_*` names over the function's `OTEL_EXPORTER_OTLP_*`; TLS with
//! a private CA and mTLS with a client certificate, every certificate made by the test
//! (rcgen), the server a tokio-rustls one. Needs `cargo build --workspace --bins`.

mod common;

use bytes::Bytes;
use common::*;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use std::convert::Infallible;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

fn s(v: &str) -> String {
    v.to_owned()
}

/// One request as the server saw it (body decompressed).
#[derive(Debug, Clone)]
struct Seen {
    /// Path and query.
    target: String,
    headers: http::HeaderMap,
    body: Vec<u8>,
    /// Whether the TLS client presented a certificate (false over plain TCP).
    client_cert: bool,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// An OTLP/HTTP server on 127.0.0.1, plain or TLS, answering 200 to every request.
#[derive(Clone)]
struct Server {
    addr: std::net::SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// TLS handshakes that failed (a client without the certificate asked for).
    refused: Arc<AtomicUsize>,
}

impl Server {
    async fn start(tls: Option<ServerConfig>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a server");
        let server =
            Server { addr: listener.local_addr().expect("its address"), seen: Arc::default(), refused: Arc::default() };
        let acceptor = tls.map(|c| TlsAcceptor::from(Arc::new(c)));
        let s = server.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let (s, acceptor) = (s.clone(), acceptor.clone());
                tokio::spawn(async move {
                    match acceptor {
                        None => s.serve(TokioIo::new(tcp), false).await,
                        Some(a) => match a.accept(tcp).await {
                            Ok(stream) => {
                                let cert = stream.get_ref().1.peer_certificates().is_some_and(|c| !c.is_empty());
                                s.serve(TokioIo::new(stream), cert).await;
                            }
                            Err(_) => {
                                s.refused.fetch_add(1, Ordering::SeqCst);
                            }
                        },
                    }
                });
            }
        });
        server
    }

    async fn serve<I>(&self, io: I, client_cert: bool)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let seen = self.seen.clone();
        let service = service_fn(move |req: Request<Incoming>| {
            let seen = seen.clone();
            async move {
                let target = req.uri().path_and_query().map_or("/".into(), |p| p.as_str().to_owned());
                let headers = req.headers().clone();
                let raw = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                let body = if headers.get("content-encoding").is_some_and(|v| v == "gzip") {
                    let mut out = Vec::new();
                    flate2::read::GzDecoder::new(&raw[..]).read_to_end(&mut out).expect("a gzip body");
                    out
                } else {
                    raw.to_vec()
                };
                if let Ok(mut s) = seen.lock() {
                    s.push(Seen { target, headers, body, client_cert });
                }
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
            }
        });
        let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn url(&self, scheme: &str, path: &str) -> String {
        format!("{scheme}://{}{path}", self.addr)
    }
}

/// Two invocations with the otlp sink configured by `env`, then shutdown; the console.
async fn run(name: &str, env: &[(&str, String)]) -> Vec<String> {
    let dir = tempdir(name);
    let mut all = vec![
        ("TANDEM_SINKS", s("otlp")),
        ("TANDEM_FLUSH", s("end")),
        // Not under test, and the port is the machine's.
        ("TANDEM_OTLP_RECEIVER", s("off")),
    ];
    all.extend(env.iter().map(|(k, v)| (*k, v.clone())));
    let environment = start(&dir, &all, |_| {}).await;
    for i in 0..2 {
        let out = invoke(&environment, serde_json::json!({ "log": [format!("{name} line {i}")] })).await;
        assert_eq!(out.result.status, tandem_wire::Status::Success);
    }
    environment.shutdown().await;
    let console = environment.console_lines();
    let _ = std::fs::remove_dir_all(&dir);
    console
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_signal_settings_and_the_sinks_own_names_reach_each_endpoint() {
    let general = Server::start(None).await;
    let traces = Server::start(None).await;
    // What the function's SDK reads: never where the sink sends.
    let sdk = refusing_url("").await;
    let console = run(
        "otlp-env",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", sdk),
            ("OTEL_EXPORTER_OTLP_HEADERS", s("sdk-secret=1")),
            ("TANDEM_OTLP_ENDPOINT", general.url("http", "/base?tenant=t1")),
            ("TANDEM_OTLP_HEADERS", s("x-team=pay")),
            ("TANDEM_OTLP_LOGS_PROTOCOL", s("http/json")),
            ("TANDEM_OTLP_METRICS_COMPRESSION", s("gzip")),
            ("TANDEM_OTLP_METRICS_HEADERS", s("x-signal=metrics")),
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", s("4000")),
            ("TANDEM_OTLP_TRACES_ENDPOINT", traces.url("http", "/custom/spans?k=v")),
            ("TANDEM_OTLP_TRACES_HEADERS", s("x-signal=traces")),
        ],
    )
    .await;
    assert!(!console.iter().any(|l| l.contains("[tandem]") && l.contains("OTLP")), "no problem told: {console:#?}");

    let at_general = general.seen();
    let logs: Vec<&Seen> = at_general.iter().filter(|r| r.target.starts_with("/base/v1/logs")).collect();
    let metrics: Vec<&Seen> = at_general.iter().filter(|r| r.target.starts_with("/base/v1/metrics")).collect();
    assert!(!logs.is_empty() && !metrics.is_empty(), "{:#?}", at_general.iter().map(|r| &r.target).collect::<Vec<_>>());
    assert!(at_general.iter().all(|r| !r.target.contains("traces")), "traces went to their own endpoint");
    for r in &at_general {
        assert!(r.target.ends_with("?tenant=t1"), "the query stays after the signal path: {}", r.target);
        assert_eq!(r.header("x-team"), Some("pay"));
        assert_eq!(r.header("sdk-secret"), None, "the SDK's headers are not the sink's");
        assert!(!r.body.is_empty());
    }
    for r in &logs {
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("content-encoding"), None);
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("OTLP/JSON logs");
        assert!(v["resourceLogs"].is_array(), "{v}");
        assert_eq!(r.header("x-signal"), None);
    }
    for r in &metrics {
        assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
        assert_eq!(r.header("content-encoding"), Some("gzip"));
        assert_eq!(r.header("x-signal"), Some("metrics"));
    }
    let spans = traces.seen();
    assert!(!spans.is_empty(), "no traces request");
    for r in &spans {
        assert_eq!(r.target, "/custom/spans?k=v", "a per-signal endpoint is used as is");
        assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
        assert_eq!((r.header("x-team"), r.header("x-signal")), (Some("pay"), Some("traces")));
    }
}

/// A private CA, a server certificate for 127.0.0.1 and a client certificate, all
/// signed by it; the CA and the client's files written to `dir`.
struct Pki {
    ca: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    ca_der: CertificateDer<'static>,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: PrivateKeyDer<'static>,
}

fn pki(dir: &Path) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "tandem test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("a CA key")).expect("the CA");
    let leaf = |names: Vec<String>, usage: ExtendedKeyUsagePurpose| {
        let key = KeyPair::generate().expect("a key");
        let mut params = CertificateParams::new(names).expect("params");
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &ca).expect("a certificate");
        (cert, key)
    };
    let (server, server_key) = leaf(vec!["127.0.0.1".into()], ExtendedKeyUsagePurpose::ServerAuth);
    let (client, client_key) = leaf(vec!["tandem-client".into()], ExtendedKeyUsagePurpose::ClientAuth);
    let write = |name: &str, text: String| {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write a PEM file");
        p
    };
    Pki {
        ca: write("ca.pem", ca.pem()),
        client_cert: write("client.pem", client.pem()),
        client_key: write("client.key", client_key.serialize_pem()),
        ca_der: ca.der().clone(),
        server_chain: vec![server.der().clone()],
        server_key: PrivateKeyDer::from_pem_slice(server_key.serialize_pem().as_bytes()).expect("the server key"),
    }
}

/// A TLS server configuration; with `clients_from`, a client certificate signed by that
/// CA is required.
fn server_config(pki: &Pki, clients_from: Option<&CertificateDer<'static>>) -> ServerConfig {
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("TLS versions");
    let builder = match clients_from {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            roots.add(ca.clone()).expect("the CA as a root");
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .expect("a client verifier");
            builder.with_client_cert_verifier(verifier)
        }
    };
    builder.with_single_cert(pki.server_chain.clone(), pki.server_key.clone_key()).expect("the server certificate")
}

fn signals(seen: &[Seen]) -> Vec<&str> {
    let mut paths: Vec<&str> = seen.iter().map(|r| r.target.as_str()).collect();
    paths.sort_unstable();
    paths.dedup();
    paths
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_delivers_with_the_client_certificate_and_is_refused_without() {
    let dir = tempdir("otlp-mtls");
    let pki = pki(&dir);
    let server = Server::start(Some(server_config(&pki, Some(&pki.ca_der)))).await;
    let path = |p: &PathBuf| p.display().to_string();
    run(
        "otlp-mtls-ok",
        &[
            ("TANDEM_OTLP_ENDPOINT", server.url("https", "")),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", path(&pki.ca)),
            ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", path(&pki.client_cert)),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", path(&pki.client_key)),
        ],
    )
    .await;
    let seen = server.seen();
    assert_eq!(signals(&seen), ["/v1/logs", "/v1/metrics", "/v1/traces"]);
    assert!(seen.iter().all(|r| r.client_cert && !r.body.is_empty()));
    assert_eq!(server.refused.load(Ordering::SeqCst), 0);

    // The same without the client certificate: the server refuses, tandem says why.
    let console = run(
        "otlp-mtls-refused",
        &[("TANDEM_OTLP_ENDPOINT", server.url("https", "")), ("OTEL_EXPORTER_OTLP_CERTIFICATE", path(&pki.ca))],
    )
    .await;
    assert_eq!(server.seen().len(), seen.len(), "nothing more was accepted");
    assert!(server.refused.load(Ordering::SeqCst) > 0, "the server saw a client without a certificate");
    assert!(
        console.iter().any(|l| l.contains("otlp sink") && l.contains(&server.addr.port().to_string())),
        "tandem reports the failed export: {console:#?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_ca_alone_verifies_the_server() {
    let dir = tempdir("otlp-ca");
    let pki = pki(&dir);
    let server = Server::start(Some(server_config(&pki, None))).await;
    run(
        "otlp-ca-ok",
        &[("TANDEM_OTLP_ENDPOINT", server.url("https", "")), ("TANDEM_OTLP_CERTIFICATE", pki.ca.display().to_string())],
    )
    .await;
    let seen = server.seen();
    assert_eq!(signals(&seen), ["/v1/logs", "/v1/metrics", "/v1/traces"]);
    assert!(seen.iter().all(|r| !r.client_cert), "no client certificate was configured");

    // Without the CA, the webpki roots do not know the server: nothing is sent.
    let console = run("otlp-ca-missing", &[("TANDEM_OTLP_ENDPOINT", server.url("https", ""))]).await;
    assert_eq!(server.seen().len(), seen.len());
    assert!(
        console.iter().any(|l| l.contains("otlp sink") && l.contains("TLS handshake")),
        "tandem reports the untrusted server: {console:#?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_config_reports_unusable_certificate_files_and_loops() {
    let dir = tempdir("otlp-check");
    let junk = dir.join("junk.pem");
    std::fs::write(&junk, "not PEM\n").expect("write");
    let out = std::process::Command::new(tandem_bin())
        .arg("check-config")
        .env_clear()
        .envs([
            ("TANDEM_SINKS", "otlp"),
            ("TANDEM_OTLP_ENDPOINT", "https://collector.example.com"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem"),
            ("OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE", junk.to_str().expect("a UTF-8 path")),
            ("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", junk.to_str().expect("a UTF-8 path")),
            ("OTEL_EXPORTER_OTLP_INSECURE", "true"),
        ])
        .output()
        .expect("run tandem check-config");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let problems: Vec<&str> = text.lines().filter(|l| l.starts_with("problem: ")).collect();
    assert_eq!(problems.len(), 4, "{text}");
    assert!(problems.iter().any(|p| p.starts_with("problem: OTEL_EXPORTER_OTLP_INSECURE: not supported")), "{text}");
    assert!(problems.iter().any(|p| p.starts_with("problem: OTEL_EXPORTER_OTLP_CERTIFICATE: /nonexistent/ca.pem")));
    assert!(
        problems.iter().any(|p| p.starts_with("problem: OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE:")
            && p.contains("holds no PEM certificate")),
        "{text}"
    );
    assert!(problems.iter().any(|p| p.contains("holds no PEM private key")), "{text}");

    // The sink's endpoint at tandem's own receiver: one line, the sink dropped.
    let out = std::process::Command::new(tandem_bin())
        .arg("check-config")
        .env_clear()
        .envs([("TANDEM_SINKS", "otlp"), ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318")])
        .output()
        .expect("run tandem check-config");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("is tandem's own OTLP receiver (a loop)"), "{text}");
    assert!(text.contains("sinks: stdout"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
