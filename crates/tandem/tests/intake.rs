//! The intake off the thread that answers Lambda, end to end: real `tandem` and
//! `echo-fn` in tandem-emulator, with rules over 200 KiB log lines and the default adaptive
//! flush. Every invocation completes without tandem holding it up (its report's
//! `extensionOverhead` is 0: tandem called `next` before the runtime finished while the
//! intake was parsing, masking and queueing the lines), and every record arrives once,
//! masked, in order, with one invocation record per request. That the intake never runs
//! on the runtime thread is proved by `app::intake`'s unit tests.

mod common;

use common::*;
use serde_json::json;
use tandem_wire::Status;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_on_long_lines_never_hold_up_an_invocation_and_every_record_arrives_once() {
    let dir = tempdir("intake");
    // The rules from a TOML file: a pattern that backtracking engines take seconds per
    // MiB on, excluding, and a mask.
    let config = dir.join("tandem.toml");
    let toml = "sinks = \"file\"\n\n[[rules]]\nkind = \"exclude\"\npattern = '(?:p{1,30}){1,30}q'\n\n\
                [[rules]]\nkind = \"mask\"\npattern = 'secret=\\w+'\n";
    std::fs::write(&config, toml).expect("write the configuration");
    let env = start(&dir, &[("TANDEM_CONFIG", config.display().to_string())], |_| {}).await;
    // 200 KiB: scanned in full by the rules (the first 256 KiB of a line), and two per
    // invocation stay under the 1 MiB high-water mark that would flush before `next`.
    let long = "p".repeat(200 << 10);
    let mut ids = Vec::new();
    for i in 0..4 {
        let log = json!([long, format!("before {i} secret=abc"), format!("{long}q {i}"), format!("after {i}")]);
        let r = invoke(&env, json!({"log": log, "sleep_ms": 300})).await;
        assert_eq!(r.result.status, Status::Success, "{:#?}", env.console_lines());
        ids.push(r.result.request_id);
    }
    env.shutdown().await;

    let overheads = extension_overheads(&env);
    assert_eq!(overheads, vec![0.0; ids.len()], "tandem called next before the runtime finished, every time");

    let written = std::fs::read_to_string(dir.join("records.ndjson")).unwrap_or_default();
    let messages = ndjson_messages(&written);
    let short: Vec<&String> = messages.iter().filter(|m| m.len() < 100).collect();
    let want: Vec<String> = (0..4).flat_map(|i| [format!("before {i} ****"), format!("after {i}")]).collect();
    assert_eq!(short, want.iter().collect::<Vec<_>>(), "masked, once each, in order");
    let long_ones = messages.iter().filter(|m| m.len() == 200 << 10 && m.bytes().all(|b| b == b'p')).count();
    assert_eq!(long_ones, 4, "the lines the exclude rule did not match, unchanged ({} messages)", messages.len());
    let invocations = ndjson_of(&written, "invocation");
    for id in &ids {
        assert_eq!(invocations.iter().filter(|v| v["requestId"] == id.as_str()).count(), 1, "{id}");
    }
    let _ = std::fs::remove_dir_all(dir);
}
