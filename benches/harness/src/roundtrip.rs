//! roundtrip: what one invocation costs in tandem-emulator, next to the same runtime
//! talking to a minimal Runtime API server ([`crate::minimal_server`]).

use crate::minimal_server::Minimal;
use crate::stats::Samples;
use crate::Bins;
use bytes::Bytes;
use std::time::{Duration, Instant};
use tandem_emulator::{Config, Environment};

pub struct Figures {
    /// Per-invoke round trip in milliseconds.
    pub latency: Samples,
    /// Sequential invocations per second.
    pub per_second: f64,
}

const WARMUP: usize = 300;

fn event() -> Bytes {
    Bytes::from_static(br#"{"noop":true}"#)
}

/// The emulator with `noop-runtime`, freezing between invocations or not.
pub async fn emulator(bins: &Bins, n: usize, freeze: bool) -> Result<Figures, String> {
    let mut cfg = Config::new(vec![bins.noop_runtime.to_string_lossy().into_owned()]);
    cfg.freeze = freeze;
    cfg.record_bodies = false;
    let env = Environment::start(cfg).await.map_err(|e| e.to_string())?;
    for _ in 0..WARMUP {
        env.invoke(event()).await.map_err(|e| e.to_string())?;
    }
    let mut lat = Vec::with_capacity(n);
    let all = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        let out = env.invoke(event()).await.map_err(|e| e.to_string())?;
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
        if out.result.function_error.is_some() {
            return Err("the no-op runtime failed an invocation".into());
        }
    }
    let per_second = n as f64 / all.elapsed().as_secs_f64();
    env.shutdown().await;
    Ok(Figures { latency: Samples::new(lat), per_second })
}

/// The same runtime against the minimal server.
pub async fn minimal(bins: &Bins, n: usize) -> Result<Figures, String> {
    let (server, addr) = Minimal::start().await.map_err(|e| e.to_string())?;
    let mut child = tokio::process::Command::new(&bins.noop_runtime)
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start noop-runtime: {e}"))?;
    let invoke = |server: &Minimal| {
        let s = server.clone();
        async move { tokio::time::timeout(Duration::from_secs(10), s.invoke(event())).await.ok().flatten() }
    };
    for _ in 0..WARMUP {
        invoke(&server).await.ok_or("the minimal server got no response")?;
    }
    let mut lat = Vec::with_capacity(n);
    let all = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        invoke(&server).await.ok_or("the minimal server got no response")?;
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let per_second = n as f64 / all.elapsed().as_secs_f64();
    let _ = child.kill().await;
    Ok(Figures { latency: Samples::new(lat), per_second })
}
