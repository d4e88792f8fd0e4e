//! secrets_bench: the secrets cache's rows of `cargo xtask bench`. A cached read of an
//! SSM parameter over the cache's HTTP API (tandem in the emulator, not frozen: a
//! function reads while it runs) next to the same `GetParameter` signed and sent
//! straight to `moto_server` (the baseline: what a function without the cache pays,
//! loopback standing in for the network); the init time with the cache on and off
//! (`TANDEM_SECRETS`, same binary); and, when a build without the feature is there,
//! what the `secrets` feature adds to the stripped binary. That build is slow and is
//! not made by `cargo xtask bench`; make it once with
//! `cargo build --release -p tandem --bin tandem --no-default-features --features tls,grpc --target-dir target/nosecrets`.

use crate::extension::{self, Subject};
use crate::stats::Samples;
use crate::throughput::PlainRow;
use crate::Bins;
use bytes::Bytes;
use http_body_util::Full;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tandem::aws::client::AwsClient;
use tandem::aws::retry::RetryPolicy;
use tandem::aws::{AwsEnv, Service};
use tandem::sink::transport::url::Endpoint;
use tandem::sink::transport::Client;
use tandem_emulator::{Config, Environment};

const PARAMETER: &str = "/bench/db-url";
const TOKEN: &str = "bench-session-token";
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// `moto_server` on 127.0.0.1, killed when dropped.
struct Moto {
    child: Child,
    url: String,
}

impl Moto {
    async fn start(root: &Path) -> Result<Moto, String> {
        let server = root.join("target/venv/bin/moto_server");
        if !server.exists() {
            return Err(format!("{} is missing (run `cargo xtask setup`)", server.display()));
        }
        let port = free_port()?;
        let child = Command::new(&server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", server.display()))?;
        let moto = Moto { child, url: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            if Instant::now() > deadline {
                return Err(format!("moto_server did not listen on {port} within 30 s"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(moto)
    }

    fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_SESSION_TOKEN", TOKEN),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", self.url.as_str()),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
    }

    fn client(&self) -> AwsClient {
        let env = self.env();
        let var = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        AwsClient::new(AwsEnv::from_env(var), 2, RetryPolicy::default())
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn ssm(client: &AwsClient, op: &str, body: serde_json::Value) -> Result<Bytes, String> {
    let (r, _) = client.call(Service::Ssm, op, Bytes::from(body.to_string()), CALL_TIMEOUT).await;
    r.map_err(|e| format!("{op} to moto failed: {e}"))
}

/// `n` timed GetParameter calls straight to moto (after one to warm the connection).
async fn direct(client: &AwsClient, n: usize) -> Result<Samples, String> {
    let body = json!({ "Name": PARAMETER });
    ssm(client, "GetParameter", body.clone()).await?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        ssm(client, "GetParameter", body.clone()).await?;
        v.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(Samples::new(v))
}

/// `n` timed reads through tandem's cache (after one miss that fills it).
async fn cached(bins: &Bins, tandem: &Path, moto: &Moto, n: usize) -> Result<Samples, String> {
    let port = free_port()?;
    let mut cfg = Config::new(vec![bins.noop_runtime.to_string_lossy().into_owned()]);
    cfg.extensions.push(tandem.to_owned());
    cfg.env.extend(moto.env());
    cfg.env.push(("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT".into(), port.to_string()));
    cfg.env.push(("TANDEM_OTLP_RECEIVER".into(), "off".into()));
    // Reads happen while the function runs: the environment is not frozen here.
    cfg.freeze = false;
    cfg.record_bodies = false;
    let env = Environment::start(cfg).await.map_err(|e| e.to_string())?;
    let endpoint = Endpoint::parse(&format!("http://127.0.0.1:{port}")).map_err(|e| e.to_string())?;
    let mut client = Client::new(&endpoint);
    let path = format!("/systemsmanager/parameters/get?name={}", tandem::secrets::request::encode(PARAMETER));
    let mut v = Vec::with_capacity(n);
    let mut result = Ok(());
    for i in 0..=n {
        let req = http::Request::get(path.as_str())
            .header("host", format!("127.0.0.1:{port}"))
            .header(tandem::secrets::server::TOKEN_HEADER, TOKEN)
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let t = Instant::now();
        match client.send(req).await {
            Ok(a) if a.status == 200 => {}
            Ok(a) => {
                result = Err(format!("the cache answered {}: {}", a.status, String::from_utf8_lossy(&a.body)));
                break;
            }
            Err(e) => {
                result = Err(format!("cannot read through the cache: {e}"));
                break;
            }
        }
        if i > 0 {
            v.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    env.shutdown().await;
    result.map(|()| Samples::new(v))
}

/// The stripped size of `binary` (a stripped copy in `scratch`).
fn stripped(binary: &Path, scratch: &Path, name: &str) -> Result<u64, String> {
    let out = scratch.join(name);
    let status =
        Command::new("strip").arg("-o").arg(&out).arg(binary).status().map_err(|e| format!("cannot run strip: {e}"))?;
    if !status.success() {
        return Err(format!("strip {} failed", binary.display()));
    }
    std::fs::metadata(&out).map(|m| m.len()).map_err(|e| e.to_string())
}

/// The secrets cache's rows.
pub async fn rows(bins: &Bins, tandem: &Path, scratch: &Path, quick: bool) -> Result<Vec<PlainRow>, String> {
    let root = std::env::current_dir().map_err(|e| e.to_string())?;
    let (reads, init_runs) = if quick { (500, 10) } else { (5_000, 40) };
    let moto = Moto::start(&root).await?;
    let admin = moto.client();
    ssm(&admin, "PutParameter", json!({ "Name": PARAMETER, "Value": "postgres://db:5432/app", "Type": "String" }))
        .await?;

    eprintln!("bench: secrets cached read ({reads} reads through tandem, {reads} GetParameter straight to moto)");
    let base = direct(&admin, reads).await?;
    let hit = cached(bins, tandem, &moto, reads).await?;
    let mut rows = Vec::new();
    for (label, t, b) in [("p50", hit.median(), base.median()), ("p99", hit.p99(), base.p99())] {
        rows.push(PlainRow {
            metric: format!(
                "secrets: cached GetParameter through tandem's HTTP API, {label} (baseline: the call straight to moto_server on loopback; target ≤ 0.1 ms p50)"
            ),
            unit: "ms",
            tandem: t,
            baseline: Some(b),
            target: None,
            json: json!({"reads": reads, "tandem_ms": t, "moto_ms": b}),
        });
    }

    eprintln!("bench: init with the secrets cache on and off ({init_runs} cold starts each)");
    let subject = |on: &str| -> Result<Subject, String> {
        Ok(Subject {
            binary: tandem.to_owned(),
            env: vec![
                ("TANDEM_SECRETS".into(), on.into()),
                ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT".into(), free_port()?.to_string()),
                ("TANDEM_OTLP_RECEIVER".into(), "off".into()),
                ("TANDEM_SPOOL_DIR".into(), scratch.join("secrets-spool").to_string_lossy().into_owned()),
            ],
        })
    };
    let on = extension::init_overhead(bins, &subject("on")?, init_runs).await?;
    let off = extension::init_overhead(bins, &subject("off")?, init_runs).await?;
    rows.push(PlainRow {
        metric: "secrets: tandem init (exec to first next) with the cache on, p50 (baseline: TANDEM_SECRETS=off, same binary)"
            .into(),
        unit: "ms",
        tandem: on.median(),
        baseline: Some(off.median()),
        target: None,
        json: json!({"on_p50": on.median(), "on_p99": on.p99(), "off_p50": off.median(), "off_p99": off.p99()}),
    });

    let without: PathBuf = root.join("target/nosecrets/release/tandem");
    if without.exists() {
        let (with_b, without_b) =
            (stripped(tandem, scratch, "tandem-stripped")?, stripped(&without, scratch, "tandem-nosecrets-stripped")?);
        rows.push(PlainRow {
            metric: "secrets: the `secrets` feature's share of the stripped binary (baseline: built without it, `--no-default-features --features tls,grpc`)".into(),
            unit: "KiB",
            tandem: with_b as f64 / 1024.0,
            baseline: Some(without_b as f64 / 1024.0),
            target: None,
            json: json!({"with_bytes": with_b, "without_bytes": without_b, "added_bytes": with_b as i64 - without_b as i64}),
        });
    } else {
        eprintln!("bench: no {} (see secrets_bench.rs to build it): no binary size row", without.display());
    }
    Ok(rows)
}
