//! The lifecycle timeline (issue 18 §3): `invoke --timeline FILE.html` writes one
//! self-contained page, rendered here in headless Chromium (Debian's `chromium`): no
//! error in its console, its elements for a 3-invocation run with one extension are
//! there (a row per process, each request id, the phases, API calls, deliveries with a
//! retry, the extension overhead of each invocation), and a screenshot lands in
//! `target/timeline/`. `serve` answers the same page, live, at `/_tandem/`.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

fn chromium() -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("chromium"))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!("no `chromium` on PATH: run `cargo xtask setup` (it installs Debian's chromium), or `apt-get install chromium`")
    })
}

/// Runs headless Chromium on `page` with `args`; its stderr carries the page's console.
async fn run_chromium(page: &Path, args: &[&str]) -> Output {
    let profile = TempDir::new();
    let mut cmd = tokio::process::Command::new(chromium());
    cmd.args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--enable-logging=stderr", "--v=0"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    within(Duration::from_secs(120), "chromium", cmd.output()).await.expect("chromium runs")
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_timeline_renders_in_chromium_with_every_element_of_a_3_invocation_run() {
    let dir = TempDir::new();
    // One extension that refuses its first batch (a retry) and is late to its next
    // `next` (an extension overhead on every invocation).
    let probe = Ext::probe(&dir, "probe", &[("PROBE_FAIL_FIRST", "1"), ("PROBE_NEXT_DELAY_MS", "30")]);
    let event = dir.join("event.json");
    std::fs::write(&event, r#"{"log":["timeline line one","timeline line two"]}"#).expect("write the event");
    let out_dir = repo_root().join("target/timeline");
    std::fs::create_dir_all(&out_dir).expect("create target/timeline");
    let page = out_dir.join("invoke-3.html");
    let _ = std::fs::remove_file(&page);
    let mut cmd = tokio::process::Command::new(bin("tandem-emulator"));
    cmd.args(["invoke", "-n", "3", "--runtime"])
        .arg(bin("echo-fn"))
        .arg("--extension")
        .arg(probe.path())
        .arg("--event")
        .arg(&event)
        .arg("--timeline")
        .arg(&page)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = within(Duration::from_secs(60), "tandem-emulator invoke", cmd.output()).await.expect("the CLI runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{:?}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    let request_ids: Vec<String> =
        stdout.lines().map(|l| json(l.as_bytes())["request_id"].as_str().expect("a request id").to_owned()).collect();
    assert_eq!(request_ids.len(), 3);

    let html = std::fs::read_to_string(&page).expect("the timeline was written");
    // Self-contained: nothing is loaded from anywhere.
    for needle in [" src=", " href=", "fetch(", "XMLHttpRequest", "@import", "url("] {
        assert!(!html.contains(needle), "the page loads nothing ({needle:?} found)");
    }

    let dom = run_chromium(&page, &["--dump-dom"]).await;
    let dom_text = String::from_utf8_lossy(&dom.stdout).into_owned();
    let console = String::from_utf8_lossy(&dom.stderr).into_owned();
    assert!(dom.status.success(), "chromium: {:?}\n{console}", dom.status);
    let page_errors: Vec<&str> =
        console.lines().filter(|l| l.contains("CONSOLE") && (l.contains("Error") || l.contains("Uncaught"))).collect();
    assert!(page_errors.is_empty(), "errors in the page's console: {page_errors:#?}");
    assert!(dom_text.contains(r#"data-rendered="true""#), "the script ran to its end");
    assert!(!dom_text.contains("data-errors="), "no error caught by the page");

    // A row per process, named in the page's text.
    for row in [">environment<", ">invocations<", ">runtime<", ">probe<", ">telemetry → probe<"] {
        assert!(dom_text.contains(row), "row {row} in the page");
    }
    // Each invocation labelled with its request id (its zoom button and its label).
    for id in &request_ids {
        assert!(dom_text.contains(&format!(">{id}<")), "{id} in the page's text");
        assert!(dom_text.contains(&format!(">{}<", &id[..8])), "{id}'s label on the time axis");
    }
    assert_eq!(count(&dom_text, "class=\"invocation-button\""), 3);
    // Counted by their attributes (the page's script, in the DOM too, names the classes).
    assert_eq!(count(&dom_text, r#"class="overhead extension-overhead""#), 3, "each extensionOverhead highlighted");
    let api_calls = count(&dom_text, r#"class="api api-call""#) + count(&dom_text, r#"class="api-bad api-call""#);
    assert!(api_calls >= 3 * 2 + 2, "API calls: the runtime's next and response, the probe's ({api_calls})");
    assert_eq!(count(&dom_text, r#"class="bad delivery""#), 1, "the refused attempt");
    assert!(count(&dom_text, r#"class="retry delivery""#) >= 1, "the refused batch's retry, accepted");
    assert!(dom_text.contains("probe: batch 1, attempt 2 (retry)"), "a delivery's batch, attempt and status on hover");
    for phase in ["class=\"init\"", "class=\"frozen\"", "class=\"shutdown\"", "class=\"post\""] {
        assert!(dom_text.contains(phase), "phase {phase}");
    }
    // Log lines on hover (the invocation's tooltip) and on click (its panel).
    assert!(dom_text.contains("timeline line one"), "log lines in the page");

    let shot = out_dir.join("invoke-3.png");
    let _ = std::fs::remove_file(&shot);
    let arg = format!("--screenshot={}", shot.display());
    let r = run_chromium(&page, &["--hide-scrollbars", "--window-size=1300,1000", &arg]).await;
    assert!(r.status.success(), "chromium --screenshot: {:?}", r.status);
    let png = std::fs::read(&shot).expect("the screenshot was written");
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot at {}", shot.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_the_live_timeline_at_tandem() {
    let dir = TempDir::new();
    let probe = Ext::probe(&dir, "probe", &[]);
    let addr = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port");
    let mut child = tokio::process::Command::new(bin("tandem-emulator"))
        .args(["serve", "--listen", &addr.to_string(), "--runtime"])
        .arg(bin("echo-fn"))
        .arg("--extension")
        .arg(probe.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start serve");
    poll(DEADLINE, "serve listens", || std::net::TcpStream::connect(addr).ok().map(|_| ())).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let a = request(addr, "POST", "/2015-03-31/functions/function/invocations", &[], "{}").await;
        assert_eq!(a.status, 200, "{}", a.text());
        ids.push(a.json()["request_id"].as_str().expect("a request id").to_owned());
    }
    let page = request(addr, "GET", "/_tandem/", &[], "").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type").as_deref(), Some("text/html; charset=utf-8"));
    let html = page.text();
    for id in &ids {
        assert!(html.contains(id), "{id} in the live page");
    }
    assert!(html.contains(r#""id":"env-1""#) && html.contains(r#""live":true"#), "the pool's environment, live");
    let saved = dir.join("live.html");
    std::fs::write(&saved, &html).expect("save the page");
    let dom = run_chromium(&saved, &["--dump-dom"]).await;
    let dom_text = String::from_utf8_lossy(&dom.stdout).into_owned();
    assert!(dom_text.contains(r#"data-rendered="true""#) && !dom_text.contains("data-errors="), "it renders");
    assert!(dom_text.contains(">env-1 — function function<"), "the environment's section");
    let _ = child.start_kill();
    let _ = child.wait().await;
}
