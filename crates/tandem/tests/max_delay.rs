//! The adaptive flush's delivery-delay bound (`TANDEM_MAX_DELAY_MS`), end to end: real
//! `tandem` and `echo-fn` in tandem-emulator. Whether tandem held up an invocation is
//! read from Lambda's own account of it: the `extensionOverhead` span of its
//! `platform.report` is 0 when tandem called `next` before the runtime finished (it did
//! not wait for runtimeDone), and more when it waited to flush. No timing is asserted:
//! the function sleeps 300 ms, so "before the runtime finished" is an order, not a race.

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;
use tandem_emulator::Environment;
use tandem_wire::Status;

/// `extensionOverhead` of each of the `n` invocations, in order.
fn overheads(env: &Environment, n: usize) -> Vec<f64> {
    let o = extension_overheads(env);
    assert_eq!(o.len(), n, "one report per invocation: {o:?}");
    o
}

/// Invokes `n` times, `gap` apart (the environment frozen in between), each invocation
/// logging two lines and sleeping 300 ms; shuts down; returns the request ids and the
/// lines, after checking each line reached the file sink exactly once.
async fn run(tag: &str, env_vars: &[(&str, String)], n: usize, gap: Duration) -> (Environment, Vec<String>) {
    let dir = tempdir(tag);
    let mut vars = vec![("TANDEM_SINKS", "file".to_owned())];
    vars.extend(env_vars.iter().cloned());
    let env = start(&dir, &vars, |_| {}).await;
    let (mut ids, mut want) = (Vec::new(), Vec::new());
    for i in 0..n {
        if i > 0 {
            tokio::time::sleep(gap).await;
        }
        let out = lines(&format!("{tag}{i}"), 2);
        want.extend(out.iter().cloned());
        let r = invoke(&env, json!({"log": out, "sleep_ms": 300})).await;
        assert_eq!(r.result.status, Status::Success, "{:#?}", env.console_lines());
        ids.push(r.result.request_id);
    }
    env.shutdown().await;
    let written = std::fs::read_to_string(dir.join("records.ndjson")).unwrap_or_default();
    exactly_once("file", &ndjson_messages(&written), &want);
    let _ = std::fs::remove_dir_all(dir);
    (env, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_frequent_invocations_and_the_cold_start_never_wait_for_runtime_done() {
    let (env, ids) = run("frequent", &[], 5, Duration::from_millis(100)).await;
    let o = overheads(&env, ids.len());
    assert!(o.iter().all(|&ms| ms == 0.0), "tandem called next before the runtime finished: {o:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invocations_further_apart_than_the_bound_deliver_before_next_except_the_cold_start() {
    // A 1 s bound and invocations ~1.5 s apart: from the second on, the next thaw is
    // expected after the bound, so tandem waits for runtimeDone and flushes.
    let bound = [("TANDEM_MAX_DELAY_MS", "1000".to_owned())];
    let (env, ids) = run("rare", &bound, 3, Duration::from_millis(1_200)).await;
    let o = overheads(&env, ids.len());
    assert_eq!(o[0], 0.0, "no history at the cold start: {o:?}");
    assert!(o[1..].iter().all(|&ms| ms > 0.0), "waited for runtimeDone: {o:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_bound_delivers_every_invocation_before_next() {
    let zero = [("TANDEM_MAX_DELAY_MS", "0".to_owned())];
    let (env, ids) = run("zero", &zero, 3, Duration::from_millis(100)).await;
    let o = overheads(&env, ids.len());
    assert!(o.iter().all(|&ms| ms > 0.0), "{o:?}");
}
