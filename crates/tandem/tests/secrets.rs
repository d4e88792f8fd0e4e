//! The secrets cache end to end, with real parts: `moto_server` (PyPI `moto[server]`,
//! installed by `cargo xtask setup`) as AWS on 127.0.0.1, a counting proxy in front of
//! it (hyper, forwarding with tandem's own transport), tandem in tandem-emulator, and a
//! Python function on awslambdaric (`tests/py/secrets_fn.py`) reading through the HTTP
//! API, or getting values from the exec wrapper.

mod common;

use bytes::Bytes;
use common::{python, repo_root, tandem_bin, tempdir};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tandem::aws::client::AwsClient;
use tandem::aws::retry::RetryPolicy;
use tandem::aws::{AwsEnv, Service};
use tandem::sink::transport::url::Endpoint;
use tandem::sink::transport::Client;
use tandem_emulator::{Config, Environment};
use tandem_wire::Status;
use tokio::net::TcpListener;

const DEADLINE: Duration = Duration::from_secs(30);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

/// `moto_server` on 127.0.0.1, killed when dropped.
struct Moto {
    child: Child,
    url: String,
}

impl Moto {
    async fn start() -> Moto {
        let port = free_port();
        let server = python().with_file_name("moto_server");
        assert!(server.is_file(), "{} is missing: run `cargo xtask setup`", server.display());
        let child = Command::new(&server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let moto = Moto { child, url: format!("http://127.0.0.1:{port}") };
        let up = common::eventually(DEADLINE, || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()).await;
        assert!(up, "moto_server did not start on {port}");
        moto
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// An AWS client for the test's own calls (creating and updating resources).
    fn admin(&self) -> Admin {
        let env: HashMap<&str, &str> = [
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", self.url.as_str()),
        ]
        .into();
        Admin(AwsClient::new(AwsEnv::from_env(|k| env.get(k).map(|v| (*v).to_owned())), 2, RetryPolicy::default()))
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Admin(AwsClient);

impl Admin {
    async fn call(&self, service: Service, op: &str, body: Value) -> Value {
        let (r, _) = self.0.call(service, op, Bytes::from(body.to_string()), DEADLINE).await;
        let body = r.unwrap_or_else(|e| panic!("{op} failed: {e}"));
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    }
    async fn secret(&self, op: &str, body: Value) -> Value {
        self.call(Service::SecretsManager, op, body).await
    }
    async fn ssm(&self, op: &str, body: Value) -> Value {
        self.call(Service::Ssm, op, body).await
    }
}

/// A counting proxy in front of moto: every call that reaches AWS, by target and name.
struct Proxy {
    url: String,
    calls: Arc<Mutex<Vec<(String, String)>>>,
}

impl Proxy {
    async fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let addr: SocketAddr = listener.local_addr().expect("its address");
        let calls: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let upstream = Endpoint::parse(upstream).expect("moto's URL");
        let seen = calls.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (seen, upstream) = (seen.clone(), upstream.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let (seen, upstream) = (seen.clone(), upstream.clone());
                        async move { forward(req, &upstream, &seen).await }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        });
        Proxy { url: format!("http://{addr}"), calls }
    }

    fn calls(&self) -> Vec<(String, String)> {
        self.calls.lock().unwrap().clone()
    }

    fn count(&self, name: &str) -> usize {
        self.calls().iter().filter(|(_, n)| n == name).count()
    }
}

async fn forward(
    req: Request<Incoming>,
    upstream: &Endpoint,
    seen: &Mutex<Vec<(String, String)>>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map_err(std::io::Error::other)?.to_bytes();
    let target = parts.headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let v: Value = serde_json::from_slice(&body).unwrap_or_default();
    let name = v.get("SecretId").or_else(|| v.get("Name")).and_then(Value::as_str).unwrap_or("").to_owned();
    seen.lock().unwrap().push((target, name));
    let mut out = Request::builder().method(parts.method).uri(parts.uri);
    for (k, v) in &parts.headers {
        out = out.header(k, v);
    }
    let out = out.body(Full::new(body)).map_err(std::io::Error::other)?;
    // AWS down: no answer at all (the connection closes), as an unreachable endpoint.
    let answer = Client::new(upstream).with_answer_limit(1 << 20).send(out).await.map_err(std::io::Error::other)?;
    let mut resp = Response::new(Full::new(answer.body));
    *resp.status_mut() = answer.status;
    Ok(resp)
}

/// A test's environment: tandem with the Python function, AWS behind the proxy.
struct Setup {
    env: Environment,
    dir: PathBuf,
}

fn s(v: &str) -> String {
    v.to_owned()
}

fn function_config(dir: &Path, aws_url: &str, token: &str, extra: &[(&str, String)]) -> Config {
    let bootstrap = repo_root().join("examples/functions/python/bootstrap");
    let mut cfg = Config::new(vec![bootstrap.display().to_string()]);
    cfg.handler = "secrets_fn.handle".into();
    cfg.extensions.push(tandem_bin());
    cfg.function_name = "secrets".into();
    let py_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py");
    let port = free_port().to_string();
    let env = [
        ("TANDEM_PYTHON", python().display().to_string()),
        ("PYTHONPATH", py_dir.display().to_string()),
        ("AWS_ACCESS_KEY_ID", s("testing")),
        ("AWS_SECRET_ACCESS_KEY", s("testing")),
        ("AWS_SESSION_TOKEN", token.to_owned()),
        ("AWS_ENDPOINT_URL", aws_url.to_owned()),
        ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", port),
        ("PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL", s("debug")),
        ("SECRETS_MANAGER_TIMEOUT_MILLIS", s("5000")),
        ("SSM_PARAMETER_STORE_TIMEOUT_MILLIS", s("5000")),
        ("TANDEM_SINKS", s("file")),
        // Parallel tests leave the OTLP receiver's fixed ports alone.
        ("TANDEM_OTLP_RECEIVER", s("off")),
        ("TANDEM_FILE_PATH", dir.join("records.ndjson").display().to_string()),
        ("TANDEM_SPOOL_DIR", dir.join("spool").display().to_string()),
        ("TANDEM_LOG_LEVEL", s("debug")),
    ];
    cfg.env.extend(env.into_iter().map(|(k, v)| (k.to_owned(), v)));
    cfg.env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    cfg
}

impl Setup {
    async fn start(name: &str, aws_url: &str, extra: &[(&str, String)]) -> Setup {
        let dir = tempdir(name);
        let token = format!("token-{}", fastrand::u64(..));
        let env =
            Environment::start(function_config(&dir, aws_url, &token, extra)).await.expect("the environment starts");
        let (status, error) = env.init_outcome().expect("init ended");
        assert_eq!(status, Status::Success, "init failed: {error:?}; console: {:#?}", env.console_lines());
        Setup { env, dir }
    }

    /// Invokes the function with `event` and answers its result.
    async fn invoke(&self, event: Value) -> Value {
        let out = self.env.invoke(event.to_string()).await.expect("the invocation runs").result;
        assert_eq!(out.status, Status::Success, "{out:?}; console: {:#?}", self.env.console_lines());
        serde_json::from_slice(&out.payload).expect("a JSON answer")
    }

    /// Reads `paths` in one invocation; answers (status, cache header, body) each.
    async fn read(&self, paths: &[String]) -> Vec<(u64, String, Value)> {
        let v = self.invoke(json!({ "paths": paths })).await;
        reads(&v["reads"])
    }

    /// Every output tandem and the function wrote: the console, the file sink, the spool.
    async fn outputs(&self) -> String {
        self.env.shutdown().await;
        let mut all = self.env.console_lines().join("\n");
        all.push_str(&std::fs::read_to_string(self.dir.join("records.ndjson")).unwrap_or_default());
        for entry in walk(&self.dir.join("spool")) {
            all.push_str(&String::from_utf8_lossy(&std::fs::read(entry).unwrap_or_default()));
        }
        all
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn reads(v: &Value) -> Vec<(u64, String, Value)> {
    v.as_array()
        .expect("reads")
        .iter()
        .map(|r| {
            let body = serde_json::from_str(r["body"].as_str().unwrap_or("")).unwrap_or(Value::Null);
            (r["status"].as_u64().unwrap_or(0), r["cache"].as_str().unwrap_or("").to_owned(), body)
        })
        .collect()
}

fn secret_path(id: &str) -> String {
    format!("/secretsmanager/get?secretId={}", tandem::secrets::request::encode(id))
}

fn unique(tag: &str) -> String {
    format!("{tag}-{:016x}", fastrand::u64(..))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_function_reads_secrets_at_init_and_per_invocation_with_one_aws_call_per_key() {
    let moto = Moto::start().await;
    let admin = moto.admin();
    let proxy = Proxy::start(&moto.url).await;
    let (v1, v2) = (unique("first-value"), unique("second-value"));
    let json_secret = json!({ "password": unique("pw"), "port": 5432 }).to_string();
    admin.secret("CreateSecret", json!({ "Name": "prod/db", "SecretString": v1 })).await;
    admin.secret("PutSecretValue", json!({ "SecretId": "prod/db", "SecretString": v2 })).await;
    admin.secret("CreateSecret", json!({ "Name": "app/json", "SecretString": json_secret })).await;
    admin.secret("CreateSecret", json!({ "Name": "app/bin", "SecretBinary": "AAEC/w==" })).await;
    let (p1, p2, sec) = (unique("url-one"), unique("url-two"), unique("secure"));
    admin.ssm("PutParameter", json!({ "Name": "/app/url", "Value": p1, "Type": "String" })).await;
    admin.ssm("PutParameter", json!({ "Name": "/app/url", "Value": p2, "Type": "String", "Overwrite": true })).await;
    admin.ssm("LabelParameterVersion", json!({ "Name": "/app/url", "ParameterVersion": 1, "Labels": ["prod"] })).await;
    admin.ssm("PutParameter", json!({ "Name": "/app/list", "Value": "a,b,c", "Type": "StringList" })).await;
    admin.ssm("PutParameter", json!({ "Name": "/app/key", "Value": sec, "Type": "SecureString" })).await;

    let setup = Setup::start("secrets-read", &proxy.url, &[("SECRETS_FN_INIT_SECRET", s("prod%2Fdb"))]).await;

    // Read at module load, during INIT: the listener was up before tandem registered.
    let first = setup.invoke(json!({})).await;
    assert_eq!(first["init"]["status"], 200, "{first}");
    let init_body: Value = serde_json::from_str(first["init"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(init_body["SecretString"], v2.as_str());
    assert_eq!(init_body["Name"], "prod/db");
    assert_eq!(first["init"]["cache"], "miss");

    // Everything AWS's extension answers, as GetSecretValue / GetParameter bodies.
    let paths = [
        secret_path("prod/db"),
        format!("{}&versionStage=AWSPREVIOUS", secret_path("prod/db")),
        secret_path("app/json"),
        secret_path("app/bin"),
        s("/systemsmanager/parameters/get?name=%2Fapp%2Furl"),
        s("/systemsmanager/parameters/get?name=%2Fapp%2Furl&version=1"),
        s("/systemsmanager/parameters/get?name=%2Fapp%2Furl:prod"),
        s("/systemsmanager/parameters/get?name=%2Fapp%2Furl&label=prod"),
        s("/systemsmanager/parameters/get?name=%2Fapp%2Flist"),
        s("/systemsmanager/parameters/get?name=%2Fapp%2Fkey&withDecryption=true"),
    ];
    let got = setup.read(&paths).await;
    assert!(got.iter().all(|(status, ..)| *status == 200), "{got:?}");
    assert_eq!(got[0].1, "hit", "read during INIT: cached");
    assert_eq!(got[0].2["SecretString"], v2.as_str());
    assert_eq!(got[1].2["SecretString"], v1.as_str(), "AWSPREVIOUS");
    assert_eq!(got[2].2["SecretString"], json_secret.as_str());
    assert_eq!(got[3].2["SecretBinary"], "AAEC/w==");
    assert_eq!(got[4].2["Parameter"]["Value"], p2.as_str());
    assert_eq!(got[4].2["Parameter"]["Version"], 2);
    assert_eq!(got[5].2["Parameter"]["Value"], p1.as_str(), "version 1");
    assert_eq!(got[6].2["Parameter"]["Value"], p1.as_str(), "label prod, as a name selector");
    assert_eq!(got[7].2["Parameter"]["Value"], p1.as_str(), "label prod, as a query parameter");
    assert_eq!(got[8].2["Parameter"]["Type"], "StringList");
    assert_eq!(got[9].2["Parameter"]["Value"], sec.as_str(), "decrypted");

    // 100 invocations within the TTL: exactly one AWS call per key.
    for _ in 0..100 {
        let got = setup.read(&paths[..1]).await;
        assert_eq!((got[0].0, got[0].1.as_str()), (200, "hit"));
    }
    assert_eq!(proxy.count("prod/db"), 2, "one call per key (two keys: AWSCURRENT, AWSPREVIOUS): {:?}", proxy.calls());
    assert_eq!(proxy.count("/app/url"), 1, "{:?}", proxy.calls());
    assert_eq!(proxy.count("/app/url:1"), 1, "{:?}", proxy.calls());
    assert_eq!(proxy.count("/app/url:prod"), 1, "the same key both ways: {:?}", proxy.calls());

    // Wrong or missing token: 401 and nothing else.
    for token in [json!("wrong"), Value::Null, json!("")] {
        let v = setup.invoke(json!({ "paths": [secret_path("prod/db")], "token": token })).await;
        let r = reads(&v["reads"]);
        assert_eq!((r[0].0, &r[0].2), (401, &Value::Null), "token {token}");
    }
    // AWS's errors pass through with their status and error type.
    let got = setup
        .read(&[
            secret_path("no/such"),
            s("/systemsmanager/parameters/get?name=%2Fno%2Fsuch"),
            s("/secretsmanager/get"),
        ])
        .await;
    assert_eq!((got[0].0, got[0].2["__type"].as_str()), (404, Some("ResourceNotFoundException")), "{got:?}");
    assert_eq!((got[1].0, got[1].2["__type"].as_str()), (404, Some("ParameterNotFound")), "{got:?}");
    assert_eq!(got[2].0, 400, "secretId is required");

    // No value ever reaches a sink, the spool or a diagnostic line.
    let outputs = setup.outputs().await;
    assert!(outputs.contains("secrets: fetching prod/db"), "debug diagnostics name lookups");
    for value in [&v1, &v2, &p1, &p2, &sec, &json_secret] {
        assert!(!outputs.contains(value.as_str()), "{value} leaked:\n{outputs}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_make_one_call_and_prefetch_fills_the_cache_during_init() {
    let moto = Moto::start().await;
    let admin = moto.admin();
    let proxy = Proxy::start(&moto.url).await;
    admin.secret("CreateSecret", json!({ "Name": "pre", "SecretString": unique("v") })).await;
    admin.secret("CreateSecret", json!({ "Name": "burst", "SecretString": unique("v") })).await;
    admin.ssm("PutParameter", json!({ "Name": "/pre/p", "Value": unique("v"), "Type": "SecureString" })).await;
    let prefetch = ("TANDEM_PREFETCH", s("secretsmanager:pre, ssm:/pre/p?withDecryption=true"));
    let setup = Setup::start("secrets-burst", &proxy.url, &[prefetch]).await;
    let ok = common::eventually(DEADLINE, || proxy.count("pre") == 1 && proxy.count("/pre/p") == 1).await;
    assert!(ok, "prefetched during INIT: {:?}", proxy.calls());
    let got =
        setup.read(&[secret_path("pre"), s("/systemsmanager/parameters/get?name=/pre/p&withDecryption=true")]).await;
    assert_eq!((got[0].1.as_str(), got[1].1.as_str()), ("hit", "hit"), "{got:?}");

    let v = setup.invoke(json!({ "paths": vec![secret_path("burst"); 20], "parallel": true })).await;
    let got = reads(&v["reads"]);
    assert!(got.iter().all(|(status, ..)| *status == 200), "{got:?}");
    assert_eq!(proxy.count("burst"), 1, "20 concurrent misses, one AWS call: {:?}", proxy.calls());
    setup.env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refreshed_ahead_no_invocation_waits_on_aws_and_updates_show_within_a_ttl() {
    let moto = Moto::start().await;
    let admin = moto.admin();
    let proxy = Proxy::start(&moto.url).await;
    let (old, new) = (unique("old"), unique("new"));
    admin.secret("CreateSecret", json!({ "Name": "rot", "SecretString": old })).await;
    let ttl = Duration::from_secs(2);
    let setup = Setup::start("secrets-refresh", &proxy.url, &[("SECRETS_MANAGER_TTL", s("2"))]).await;
    let start = Instant::now();
    let mut updated_at = None;
    let mut seen = Vec::new();
    while start.elapsed() < Duration::from_secs(10) {
        let at = Instant::now();
        let got = setup.read(&[secret_path("rot")]).await;
        seen.push((at, got[0].clone()));
        if updated_at.is_none() && start.elapsed() >= Duration::from_secs(4) {
            admin.secret("PutSecretValue", json!({ "SecretId": "rot", "SecretString": new })).await;
            updated_at = Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(500).saturating_sub(at.elapsed())).await;
    }
    let updated_at = updated_at.expect("updated");
    assert_eq!(seen[0].1 .1, "miss");
    for (_, (status, cache, _)) in &seen[1..] {
        assert_eq!((*status, cache.as_str()), (200, "hit"), "after the first, never a wait on AWS: {seen:?}");
    }
    // One TTL after the update (plus an invocation interval and a freeze), the new value.
    let late = updated_at + ttl + Duration::from_millis(1500);
    let after: Vec<_> = seen.iter().filter(|(at, _)| *at >= late).collect();
    assert!(!after.is_empty());
    for (_, (_, _, body)) in after {
        assert_eq!(body["SecretString"], new.as_str());
    }
    assert!(proxy.count("rot") >= 3, "refreshed ahead: {:?}", proxy.calls());
    setup.env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_aws_down_the_last_value_is_served_marked_stale() {
    let mut moto = Moto::start().await;
    let admin = moto.admin();
    let proxy = Proxy::start(&moto.url).await;
    let value = unique("kept");
    admin.secret("CreateSecret", json!({ "Name": "kept", "SecretString": value })).await;
    let extra = [
        ("SECRETS_MANAGER_TTL", s("1")),
        ("TANDEM_SECRETS_STALE_IF_ERROR_S", s("600")),
        ("SECRETS_MANAGER_TIMEOUT_MILLIS", s("1000")),
    ];
    let setup = Setup::start("secrets-stale", &proxy.url, &extra).await;
    assert_eq!(setup.read(&[secret_path("kept")]).await[0].1, "miss");
    moto.stop();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got = setup.read(&[secret_path("kept"), secret_path("never-read")]).await;
    assert_eq!((got[0].0, got[0].1.as_str()), (200, "stale"), "{got:?}");
    assert_eq!(got[0].2["SecretString"], value.as_str());
    assert_eq!((got[1].0, got[1].2["__type"].as_str()), (502, Some("ServiceUnavailable")), "{got:?}");
    let outputs = setup.outputs().await;
    assert!(outputs.contains("serving its last value"), "said, by name");
    assert!(!outputs.contains(value.as_str()), "{outputs}");
}

/// The layer's `/opt/tandem-wrapper`, pointed at the tandem under test.
fn wrapper(dir: &Path) -> PathBuf {
    let script = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/secrets/tandem-wrapper.sh"))
        .expect("the wrapper script");
    assert!(script.contains("exec /opt/extensions/tandem wrap \"$@\""), "{script}");
    let path = dir.join("tandem-wrapper");
    std::fs::write(&path, script.replace("/opt/extensions/tandem", &tandem_bin().display().to_string()))
        .expect("write the wrapper");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exec_wrapper_exports_values_and_a_failed_fetch_fails_init_naming_type_and_key() {
    let moto = Moto::start().await;
    let admin = moto.admin();
    let password = unique("pw");
    let db = json!({ "username": "app", "password": password }).to_string();
    admin.secret("CreateSecret", json!({ "Name": "prod/db", "SecretString": db })).await;
    admin.ssm("PutParameter", json!({ "Name": "/app/url", "Value": "https://example.test", "Type": "String" })).await;

    let dir = tempdir("secrets-wrap");
    let spec = "DB_PASSWORD=secretsmanager:prod/db#password,API_URL=ssm:/app/url";
    let extra = [("AWS_LAMBDA_EXEC_WRAPPER", wrapper(&dir).display().to_string()), ("TANDEM_SECRET_ENV", s(spec))];
    let setup = Setup::start("secrets-wrapped", &moto.url, &extra).await;
    let v = setup.invoke(json!({ "env": ["DB_PASSWORD", "API_URL"] })).await;
    assert_eq!(v["env"]["DB_PASSWORD"], password.as_str());
    assert_eq!(v["env"]["API_URL"], "https://example.test");
    let outputs = setup.outputs().await;
    assert!(!outputs.contains(password.as_str()), "{outputs}");

    // A missing secret: INIT fails with one line naming the error type and the key,
    // and the function never starts.
    let token = s("tok");
    let extra = [
        ("AWS_LAMBDA_EXEC_WRAPPER", wrapper(&dir).display().to_string()),
        ("TANDEM_SECRET_ENV", s("DB_PASSWORD=secretsmanager:prod/nope#password")),
        ("SECRETS_FN_INIT_SECRET", s("prod%2Fdb")),
    ];
    let env =
        Environment::start(function_config(&dir, &moto.url, &token, &extra)).await.expect("the environment starts");
    let (status, _) = env.init_outcome().expect("init ended");
    assert_ne!(status, Status::Success);
    let console = env.console_lines();
    let told: Vec<&String> = console.iter().filter(|l| l.contains("tandem wrap:")).collect();
    assert_eq!(told.len(), 1, "{console:#?}");
    assert!(
        told[0].contains(
            "Extension.SecretNotFound: DB_PASSWORD (secretsmanager:prod/nope#password): ResourceNotFoundException"
        ),
        "{told:?}"
    );
    env.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn check_config_describes_the_cache_and_notes_values_past_aws_caps() {
    let out = Command::new(tandem_bin())
        .arg("check-config")
        .env_clear()
        .env("SECRETS_MANAGER_TTL", "3600")
        .env("PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE", "10000")
        .output()
        .expect("run check-config");
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(out.contains("secrets cache: 127.0.0.1:2773, 10000 entries, secrets 3600 s"), "{out}");
    assert!(
        out.contains("note: SECRETS_MANAGER_TTL=3600 is over AWS's extension cap of 300 s: accepted by tandem"),
        "{out}"
    );
    assert!(out.contains("note: PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE=10000 is over"), "{out}");
    assert!(out.contains("configuration OK"), "a note is not a problem: {out}");
}

#[test]
fn every_secrets_setting_is_in_the_readme() {
    // Exact rows: the README's table is what `check-config` users read.
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    for (name, description) in tandem::secrets::settings::SETTINGS {
        let row = format!("| `{name}` | {description} |");
        assert!(readme.lines().any(|l| l == row), "README.md lacks the row:\n{row}");
    }
}

/// moto with `count` SSM parameters `/fill/<i>` of `size` bytes (`tests/py/moto_filled.py`).
struct FilledMoto {
    child: Child,
    url: String,
}

impl FilledMoto {
    fn start(count: usize, size: usize) -> FilledMoto {
        use std::io::BufRead;
        let port = free_port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/moto_filled.py");
        let mut child = Command::new(python())
            .arg(&script)
            .args([port.to_string(), count.to_string(), size.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_filled.py");
        let mut line = String::new();
        let out = child.stdout.take().expect("its stdout");
        std::io::BufReader::new(out).read_line(&mut line).expect("read its first line");
        assert_eq!(line.trim(), "ready", "moto_filled.py did not start");
        FilledMoto { child, url: format!("http://127.0.0.1:{port}") }
    }
}

impl Drop for FilledMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// This process's resident set, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:")?.split_whitespace().next()?.parse().ok())
        .expect("a VmRSS line")
}

/// Reads `/fill/<i>` for each i in `range` through the cache's HTTP API on `port`, 8
/// connections at a time; every read must succeed.
async fn fill(port: u16, token: &str, range: std::ops::Range<usize>) {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(range.start));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (next, token, end) = (next.clone(), token.to_owned(), range.end);
        workers.push(tokio::spawn(async move {
            let endpoint = Endpoint::parse(&format!("http://127.0.0.1:{port}")).expect("the cache's URL");
            let mut client = Client::new(&endpoint);
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= end {
                    return;
                }
                let req = Request::get(format!("/systemsmanager/parameters/get?name=%2Ffill%2F{i}"))
                    .header("host", format!("127.0.0.1:{port}"))
                    .header(tandem::secrets::server::TOKEN_HEADER, &token)
                    .body(Full::new(Bytes::new()))
                    .expect("a request");
                let answer = client.send(req).await.unwrap_or_else(|e| panic!("read /fill/{i}: {e}"));
                assert_eq!(answer.status, 200, "/fill/{i}: {}", String::from_utf8_lossy(&answer.body));
                let body: Value = serde_json::from_slice(&answer.body).expect("a GetParameter body");
                assert_eq!(body["Parameter"]["Name"], format!("/fill/{i}"));
            }
        }));
    }
    for w in workers {
        w.await.expect("a fill worker");
    }
}

/// The cache at its bound, through its HTTP API against moto: 10,000 parameters fill
/// it, 5,000 more evict the least recently used one for one, and the process's memory
/// does not grow with them (the bound holds in bytes, not only in entries).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_entries_fill_the_cache_and_more_evict_within_its_memory() {
    const SIZE: usize = 1024;
    let moto = FilledMoto::start(15_000, SIZE);
    let port = free_port();
    let token = format!("token-{}", fastrand::u64(..));
    let vars: HashMap<&str, String> = [
        ("AWS_ACCESS_KEY_ID", s("testing")),
        ("AWS_SECRET_ACCESS_KEY", s("testing")),
        ("AWS_SESSION_TOKEN", token.clone()),
        ("AWS_REGION", s("us-east-1")),
        ("AWS_ENDPOINT_URL", moto.url.clone()),
        ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", port.to_string()),
        ("PARAMETERS_SECRETS_EXTENSION_CACHE_SIZE", s("10000")),
        ("SSM_PARAMETER_STORE_TIMEOUT_MILLIS", s("10000")),
    ]
    .into();
    let service = tandem::secrets::start(|k| vars.get(k).cloned()).expect("the cache starts");
    let rss0 = rss_kib();

    fill(port, &token, 0..10_000).await;
    let (entries, bytes, evicted) = service.cache_stats();
    assert_eq!((entries, evicted), (10_000, 0), "full, nothing evicted yet");
    assert!(bytes >= 10_000 * SIZE, "each entry holds its {SIZE}-byte value: {bytes} bytes");
    let rss1 = rss_kib();

    fill(port, &token, 10_000..15_000).await;
    let (entries, bytes2, evicted) = service.cache_stats();
    assert_eq!((entries, evicted), (10_000, 5_000), "one evicted for each new entry");
    assert!(bytes2 <= bytes + bytes / 100, "the bytes held stay put: {bytes} then {bytes2}");
    let rss2 = rss_kib();
    let grown1 = rss1.saturating_sub(rss0);
    // Unbounded, 5,000 more entries would add half of what the first 10,000 did.
    assert!(
        rss2.saturating_sub(rss1) < grown1 / 5 + 2048,
        "RSS {rss0} KiB, {rss1} KiB with 10,000 entries, {rss2} KiB after 5,000 more"
    );
    let fetches = service.counters.fetches.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(fetches, 15_000, "one AWS call per key");

    // The most recent entries are hits; the first ones were evicted and are fetched again.
    fill(port, &token, 14_990..15_000).await;
    assert_eq!(service.counters.fetches.load(std::sync::atomic::Ordering::Relaxed), 15_000);
    fill(port, &token, 0..10).await;
    assert_eq!(service.counters.fetches.load(std::sync::atomic::Ordering::Relaxed), 15_010);
    assert_eq!(service.cache_stats().2, 5_010);
}
