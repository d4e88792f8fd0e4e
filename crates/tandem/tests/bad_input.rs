//! Bad input never fails the function: a hostile `TANDEM_CONFIG` (nested 20,000 deep,
//! `/dev/zero`, a FIFO, a directory) is one problem line at init and the defaults, and
//! every invocation still succeeds. Real `tandem` in tandem-emulator, like e2e.rs.

mod common;

use common::*;
use serde_json::json;
use std::path::Path;
use tandem_wire::Status;

/// Starts tandem with `TANDEM_CONFIG=config`, invokes twice, and returns the console
/// after SHUTDOWN (the EMF documents of the stdout fallback included).
async fn run_with_config(tag: &str, config: &Path) -> Vec<String> {
    let dir = tempdir(tag);
    let env = start(&dir, &[("TANDEM_CONFIG", config.display().to_string())], |_| {}).await;
    let mut ids = Vec::new();
    for i in 0..2 {
        let r = invoke(&env, json!({"log": [format!("{tag} line {i}")]})).await;
        assert_eq!(r.result.status, Status::Success, "the function is not affected: {:#?}", env.console_lines());
        ids.push(r.result.request_id);
    }
    env.shutdown().await;
    let console = console_after_shutdown(&env, |c| {
        ids.iter().all(|id| c.iter().any(|l| l.starts_with("{\"_aws\"") && l.contains(id.as_str())))
    })
    .await;
    for id in &ids {
        assert!(
            console.iter().any(|l| l.starts_with("{\"_aws\"") && l.contains(id.as_str())),
            "the stdout sink runs on the defaults: {console:#?}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
    console
}

fn told(console: &[String], needle: &str) -> usize {
    console.iter().filter(|l| l.contains(needle)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_nested_20000_deep_is_a_problem_not_a_crash() {
    let dir = tempdir("deep-config");
    let file = dir.join("tandem.toml");
    // 40 KB: `rules = [[[[…]]]]`, the file that overflowed the stack.
    std::fs::write(&file, format!("rules = {}{}\n", "[".repeat(20_000), "]".repeat(20_000))).expect("write");
    let console = run_with_config("deep", &file).await;
    let line =
        format!("[tandem] TANDEM_CONFIG: cannot parse {}: line 1: arrays or inline tables nested", file.display());
    assert_eq!(told(&console, &line), 1, "{console:#?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_or_huge_config_file_is_a_problem_not_an_oom_or_a_hang() {
    let dir = tempdir("endless-config");
    let fifo = dir.join("fifo.toml");
    let made_fifo = std::process::Command::new("mkfifo").arg(&fifo).status().is_ok_and(|s| s.success());
    let huge = dir.join("huge.toml");
    std::fs::File::create(&huge).and_then(|f| f.set_len(6 << 30)).expect("a sparse 6 GiB file");
    let mut cases = vec![
        (std::path::PathBuf::from("/dev/zero"), "not a regular file (a device, a FIFO or a socket)"),
        (dir.clone(), "a directory"),
        (huge, "larger than 1MiB (a configuration is a few KiB)"),
    ];
    if made_fifo {
        cases.push((fifo, "not a regular file (a device, a FIFO or a socket)"));
    }
    for (i, (path, why)) in cases.into_iter().enumerate() {
        let console = run_with_config(&format!("endless{i}"), &path).await;
        let line = format!("[tandem] TANDEM_CONFIG: cannot read {}: {why}; file ignored", path.display());
        assert_eq!(told(&console, &line), 1, "{console:#?}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backtracking_rule_on_a_mib_line_costs_the_function_nothing() {
    let dir = tempdir("nasty-rule");
    // Nested counted repetitions: seconds per MiB for a backtracking engine; the
    // 1 MiB line below made every invocation time out with the old engine.
    let rules = r#"[
        {"kind":"exclude","name":"nasty","pattern":"(?:p{1,30}){1,30}q"},
        {"kind":"mask","name":"secret","pattern":"secret=\\w+"}
    ]"#;
    let env = start(
        &dir,
        &[("TANDEM_SINKS", "file".into()), ("TANDEM_FLUSH", "end".into()), ("TANDEM_RULES", rules.into())],
        |c| c.timeout = std::time::Duration::from_secs(20),
    )
    .await;
    let long = "p".repeat(1 << 20);
    for i in 0..3 {
        let r = invoke(&env, json!({"log": [long, format!("short {i} secret=abc"), format!("{long}q {i}")]})).await;
        assert_eq!(r.result.status, Status::Success, "{:#?}", env.console_lines());
    }
    env.shutdown().await;
    let written = std::fs::read_to_string(dir.join("records.ndjson")).unwrap_or_default();
    let messages = ndjson_messages(&written);
    for i in 0..3 {
        assert_eq!(messages.iter().filter(|m| **m == format!("short {i} ****")).count(), 1, "masked, once");
    }
    // The long lines (cut at 256 KiB per record, as Lambda cuts them) were scanned in
    // full, matched nothing and arrived unchanged.
    let long_ones = messages.iter().filter(|m| m.len() > 64 * 1024 && m.bytes().all(|b| b == b'p')).count();
    assert!(long_ones >= 3, "{long_ones} long lines of {} messages", messages.len());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn check_config_names_unknown_variables_and_refuses_a_directory() {
    let dir = tempdir("check-unknown");
    let path = dir.display().to_string();
    let run = std::process::Command::new(tandem_bin())
        .arg("check-config")
        .env_clear()
        .envs([("TANDEM_SNIKS", "file"), ("TANDEM_SINKS", "file"), ("TANDEM_FILE_PATH", path.as_str())])
        .output()
        .expect("run tandem check-config");
    let out = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.status.code(), Some(1), "{out}");
    assert!(
        out.contains("problem: TANDEM_SNIKS: not a setting tandem knows (did you mean TANDEM_SINKS?); ignored"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "problem: TANDEM_FILE_PATH: {path} is a directory, not a file; the file sink is dropped"
        )),
        "{out}"
    );
    assert!(out.contains("sinks: stdout"), "{out}");
    for args in [&["check-config", "--help"][..], &["check-config", "-h"], &["--help"], &["-h"]] {
        let h = std::process::Command::new(tandem_bin()).args(args).output().expect("run tandem");
        assert!(h.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&h.stdout);
        assert!(text.contains("Usage:") && text.contains("tandem check-config"), "{args:?}: {text}");
    }
    let _ = std::fs::remove_dir_all(dir);
}
