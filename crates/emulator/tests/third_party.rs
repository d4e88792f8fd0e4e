//! Extensions written independently of this project, run unmodified from a layer as
//! Lambda runs them: each registers, receives its telemetry, receives SHUTDOWN and
//! exits on its own (status 0, never killed).
//!
//! - Node.js: npm's `@serverless/aws-lambda-otel-extension-dist` (its layer zip as
//!   published, fetched by `cargo xtask setup`): subscribes to the Logs API at
//!   `http://sandbox:4243` and listens on `sandbox`.
//! - the `lambda-extension` crate: `lext-telemetry` (examples/extensions/rust), whose
//!   Telemetry API listener the crate subscribes at `sandbox.localdomain`.
//! - Python: no extension published on PyPI subscribes with the host `sandbox` (`lef`
//!   calls the Runtime API over https, `lambda-sigterm` subscribes to nothing), so a
//!   stdlib-only peer here does what AWS's Python samples do: binds
//!   `sandbox.localdomain`, subscribes with `http://sandbox:PORT`.

mod common;

use common::*;
use std::path::PathBuf;
use tandem_emulator::{Environment, Observation};
use tandem_wire::NextEvent;

/// A third-party layer installed by `cargo xtask setup` under `target/third-party/`.
fn third_party_layer(file: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    // target/<profile>/deps/<test binary>
    let target = exe.ancestors().nth(3).expect("the test binary lives in target/<profile>/deps");
    let path = target.join("third-party").join(file);
    assert!(path.is_file(), "{} is missing: run `cargo xtask setup` (cargo xtask test does)", path.display());
    path
}

/// The function: the shell runtime from /var/task, which (as Lambda's runtimes may)
/// writes a last line when it is sent SIGTERM at shutdown.
fn code_dir(dir: &TempDir) -> PathBuf {
    let code = dir.join("code");
    std::fs::create_dir_all(&code).expect("mkdir code");
    std::fs::copy(example("functions/shell/bootstrap"), code.join("real")).expect("copy the shell runtime");
    let bootstrap = "#!/bin/bash\ntrap 'echo \"⚡. runtime: SIGTERM\"; exit 0' TERM\n/var/task/real &\nwait $!\n";
    std::fs::write(code.join("bootstrap"), bootstrap).expect("write the bootstrap");
    for f in ["bootstrap", "real"] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(code.join(f), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    code
}

/// `name` registered as an external extension, received telemetry (accepted with 200),
/// received SHUTDOWN, and exited with status 0.
fn assert_lived_a_full_life(env: &Environment, name: &str) {
    let obs = env.observations();
    let console = env.console_lines();
    assert!(
        obs.iter()
            .any(|o| matches!(&o.what, Observation::ExtensionRegistered { name: n, external: true, .. } if n == name)),
        "{name} registered as an external extension: {console:#?}"
    );
    let events = env.delivered_events(name);
    assert!(
        events.iter().any(|e| e["type"] == "platform.report"),
        "{name} received its telemetry: {events:#?}\n{console:#?}"
    );
    assert!(
        obs.iter().any(|o| matches!(&o.what, Observation::EventDelivered { extension, event: NextEvent::Shutdown(_) } if extension == name)),
        "{name} received SHUTDOWN: {console:#?}"
    );
    let exits: Vec<_> = obs
        .iter()
        .filter_map(|o| match &o.what {
            Observation::ProcessExited { process, exit } if process == name => Some(*exit),
            _ => None,
        })
        .collect();
    assert_eq!(exits.len(), 1, "{name} exited once: {exits:?}");
    assert_eq!(exits[0].code, Some(0), "{name} exited on its own, not killed: {:?}\n{console:#?}", exits[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_otel_extension_from_npm_runs_unmodified_from_its_layer_zip() {
    let layer = third_party_layer("aws-lambda-otel-extension-0.1.11.zip");
    let dir = TempDir::new();
    let mut cfg = config(vec!["/var/task/bootstrap".into()]);
    cfg.layers = vec![layer];
    cfg.code = Some(code_dir(&dir));
    cfg.ephemeral_storage_mb = Some(512);
    // The extension's own switch: without it, each INVOKE waits for data from its
    // companion function-side OpenTelemetry layer, which this function does not run.
    cfg.env.push(("DO_NOT_WAIT".into(), "1".into()));
    let env = start(cfg).await;
    assert_eq!(env.init_outcome().map(|o| o.0), Some(tandem_wire::Status::Success), "{:#?}", env.console_lines());
    for _ in 0..2 {
        invoke_ok(&env, "{}").await;
    }
    shutdown(&env).await;
    assert_lived_a_full_life(&env, "otel-extension");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_extension_crate_peer_runs_from_a_layer() {
    let dir = TempDir::new();
    let layer = dir.join("layer");
    std::fs::create_dir_all(layer.join("extensions")).expect("mkdir");
    std::fs::copy(bin("lext-telemetry"), layer.join("extensions/lext-telemetry")).expect("copy lext-telemetry");
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
    let out = dir.join("lext.out");
    let mut cfg = config(vec!["/var/task/bootstrap".into()]);
    cfg.layers = vec![layer];
    cfg.code = Some(code_dir(&dir));
    for (k, v) in [
        ("LEXT_PORT", port.to_string()),
        ("LEXT_OUT", out.to_string_lossy().into_owned()),
        ("LEXT_EXIT_ON_SHUTDOWN", "1".into()),
        ("LEXT_TYPES", "platform,function".into()),
        ("LEXT_TIMEOUT_MS", "25".into()),
        // As AWS's samples do: a moment after SHUTDOWN for the remaining events.
        ("LEXT_SHUTDOWN_LINGER_MS", "300".into()),
    ] {
        cfg.env.push((k.into(), v));
    }
    let env = start(cfg).await;
    for _ in 0..2 {
        invoke_ok(&env, "{}").await;
    }
    shutdown(&env).await;
    assert_lived_a_full_life(&env, "lext-telemetry");
}

/// A Python extension as AWS's samples write them (stdlib only).
const PY_EXTENSION: &str = r#"#!/usr/bin/env python3
import json, os, socket, sys, threading, time, urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer

api = os.environ["AWS_LAMBDA_RUNTIME_API"]
name = os.path.basename(__file__)
received = []

class Listener(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        received.extend(json.loads(body))
        self.send_response(200)
        self.end_headers()
    def log_message(self, *args):
        pass

server = HTTPServer(("sandbox.localdomain", 0), Listener)
threading.Thread(target=server.serve_forever, daemon=True).start()
port = server.server_address[1]

def call(method, path, body=None, headers=None):
    req = urllib.request.Request(f"http://{api}{path}", method=method, data=body, headers=headers or {})
    with urllib.request.urlopen(req) as r:
        return r.headers, r.read()

h, _ = call("POST", "/2020-01-01/extension/register",
            json.dumps({"events": ["INVOKE", "SHUTDOWN"]}).encode(), {"Lambda-Extension-Name": name})
ext_id = h["Lambda-Extension-Identifier"]
sub = {"schemaVersion": "2022-12-13", "types": ["platform", "function"],
       "buffering": {"timeoutMs": 25, "maxItems": 1000, "maxBytes": 262144},
       "destination": {"protocol": "HTTP", "URI": f"http://sandbox:{port}"}}
call("PUT", "/2022-07-01/telemetry", json.dumps(sub).encode(), {"Lambda-Extension-Identifier": ext_id})
print(f"{name}: listening on {server.server_address[0]}:{port}, subscribed", flush=True)
while True:
    _, body = call("GET", "/2020-01-01/extension/event/next", headers={"Lambda-Extension-Identifier": ext_id})
    event = json.loads(body)
    if event["eventType"] == "SHUTDOWN":
        # As AWS's samples do: a moment for the remaining events, then exit.
        time.sleep(0.3)
        print(f"{name}: SHUTDOWN after {len(received)} events", flush=True)
        sys.exit(0)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_extension_binding_sandbox_localdomain_runs_from_a_layer() {
    let dir = TempDir::new();
    let layer = dir.join("py-layer");
    std::fs::create_dir_all(layer.join("extensions")).expect("mkdir");
    let ext = layer.join("extensions/py-sandbox-ext");
    std::fs::write(&ext, PY_EXTENSION).expect("write the extension");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&ext, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let mut cfg = config(vec!["/var/task/bootstrap".into()]);
    cfg.layers = vec![layer];
    cfg.code = Some(code_dir(&dir));
    cfg.ephemeral_storage_mb = Some(512);
    let env = start(cfg).await;
    assert_eq!(env.init_outcome().map(|o| o.0), Some(tandem_wire::Status::Success), "{:#?}", env.console_lines());
    for _ in 0..2 {
        invoke_ok(&env, "{}").await;
    }
    shutdown(&env).await;
    let console = env.console_lines();
    assert!(
        console.iter().any(|l| l.starts_with("py-sandbox-ext: listening on 127.0.0.1:")),
        "sandbox.localdomain is the loopback address: {console:#?}"
    );
    assert_lived_a_full_life(&env, "py-sandbox-ext");
}
