//! What tandem writes, checked by decoders that are not ours: OTLP with the reference
//! protobuf classes of PyPI `opentelemetry-proto` and strict OTLP/JSON parsing, and EMF
//! with a checker written from the specification plus the validators of PyPI
//! `aws-embedded-metrics`. Each run is the real `tandem` in tandem-emulator with the
//! real `echo-fn`. Needs `cargo build --workspace --bins` and the venv of `cargo xtask
//! setup` (`TANDEM_PYTHON`).

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn s(v: &str) -> String {
    v.to_owned()
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py").join(name)
}

/// Runs a checker; panics with its report unless it passes. Returns its stdout.
fn check(name: &str, args: &[&str]) -> String {
    let out = Command::new(python()).arg(script(name)).args(args).output().expect("run the Python checker");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{name} found problems:\n{}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// Runs three invocations (the first a cold start) with tandem's OTLP sink at a
/// receiver, shuts down, and returns the accepted requests.
async fn otlp_run(name: &str, protocol: &str) -> Vec<Received> {
    let dir = tempdir(name);
    let otlp = Receiver::start().await;
    let env = start(
        &dir,
        &[
            ("TANDEM_SINKS", s("otlp")),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.url("")),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", s(protocol)),
            ("TANDEM_FLUSH", s("end")),
        ],
        |_| {},
    )
    .await;
    for i in 0..3 {
        let out = invoke(&env, serde_json::json!({ "log": [format!("standards line {i}")] })).await;
        assert_eq!(out.result.status, tandem_wire::Status::Success);
    }
    env.shutdown().await;
    let got = otlp.accepted();
    let _ = std::fs::remove_dir_all(&dir);
    got
}

fn write_requests(dir: &Path, requests: &[Received], ext: &str) {
    std::fs::create_dir_all(dir).expect("create the request directory");
    for (i, r) in requests.iter().enumerate() {
        let signal = r.path.rsplit('/').next().unwrap_or_default();
        std::fs::write(dir.join(format!("{i:03}-{signal}.{ext}")), &r.body).expect("write a request");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_protobuf_and_json_pass_the_reference_decoders() {
    for (protocol, ext) in [("http/protobuf", "pb"), ("http/json", "json")] {
        let requests = otlp_run(&format!("standards-{ext}"), protocol).await;
        for signal in ["/v1/logs", "/v1/metrics", "/v1/traces"] {
            assert!(requests.iter().any(|r| r.path == signal), "{protocol}: no {signal} request");
        }
        for r in &requests {
            assert!(!r.body.is_empty(), "{protocol}: an empty export to {}", r.path);
        }
        let dir = tempdir(&format!("standards-{ext}-requests"));
        write_requests(&dir, &requests, ext);
        let summary: serde_json::Value =
            serde_json::from_str(check("check_otlp.py", &[&dir.display().to_string()]).trim()).expect("a summary");
        assert!(summary["spans"].as_u64().unwrap_or(0) >= 3 * 2, "{protocol}: {summary}");
        assert!(summary["metric_points"].as_u64().unwrap_or(0) > 0, "{protocol}: {summary}");
        let resource = &summary["resource"];
        assert_eq!(resource["cloud.account.id"], "012345678912", "{protocol}: {summary}");
        assert_eq!(
            resource["cloud.resource_id"],
            format!("arn:aws:lambda:{}:012345678912:function:echo", resource["cloud.region"].as_str().unwrap_or("")),
            "{protocol}: $LATEST is not in the ARN"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emf_documents_pass_the_specification_and_the_aws_validators() {
    let dir = tempdir("standards-emf");
    let env = start(
        &dir,
        &[("TANDEM_EMF_DIMENSIONS", s("Environment=prod,Team=payments")), ("TANDEM_FLUSH", s("end"))],
        |_| {},
    )
    .await;
    for _ in 0..3 {
        invoke(&env, serde_json::json!({ "log": ["emf"] })).await;
    }
    env.shutdown().await;
    let console = console_after_shutdown(&env, |c| c.iter().filter(|l| l.starts_with("{\"_aws\"")).count() >= 3).await;
    let docs: Vec<&String> = console.iter().filter(|l| l.starts_with("{\"_aws\"")).collect();
    assert!(docs.len() >= 3, "one document per invocation: {console:#?}");
    let file = dir.join("emf.ndjson");
    std::fs::write(&file, docs.iter().map(|d| format!("{d}\n")).collect::<String>()).expect("write the documents");
    let n: usize = check("check_emf.py", &[&file.display().to_string()]).trim().parse().expect("a count");
    assert_eq!(n, docs.len());
    let _ = std::fs::remove_dir_all(&dir);
}
