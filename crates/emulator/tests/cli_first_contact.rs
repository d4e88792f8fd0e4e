//! A new user's first minutes with the `tandem-emulator` binary (issue 18 §5): every
//! flag is described in `--help`, a runtime that cannot be started says why on stderr
//! (in `invoke` and in `serve`), and the task root is the current directory, so that
//! `python3 -m awslambdaric app.handler` finds `app.py` where the user stands.

mod common;

use common::*;
use std::process::{Output, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

async fn run(args: &[&str], cwd: Option<&std::path::Path>) -> Output {
    let mut cmd = tokio::process::Command::new(bin("tandem-emulator"));
    cmd.args(args).kill_on_drop(true).stdin(Stdio::null());
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    within(Duration::from_secs(60), "tandem-emulator", cmd.output()).await.expect("the CLI runs")
}

/// The options of a `--help` text, each with its description (empty when it has none).
/// Handles both of clap's layouts: the description after the flag, or on the next lines.
fn options(help: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = help.lines().skip_while(|l| !l.starts_with("Options:")).skip(1).collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        if !trimmed.starts_with('-') {
            continue;
        }
        // The flag spec ends at the first run of two spaces.
        let (flag, rest) = trimmed.split_once("  ").unwrap_or((trimmed, ""));
        let mut text = rest.trim().to_owned();
        if text.is_empty() {
            let indent = line.len() - trimmed.len();
            for next in &lines[i + 1..] {
                let t = next.trim_start();
                if t.is_empty() || t.starts_with('-') || next.len() - t.len() <= indent {
                    break;
                }
                text.push_str(t);
                text.push(' ');
            }
        }
        // A default value alone is not a description.
        let described = text.split('[').next().unwrap_or("").trim().to_owned();
        out.push((flag.to_owned(), described));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_flag_of_every_command_has_a_description_in_help() {
    for command in ["serve", "invoke"] {
        let out = run(&[command, "--help"], None).await;
        let help = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{command} --help: {:?}\n{help}", out.status);
        let opts = options(&help);
        for flag in ["--runtime", "--function-name", "--memory-mb", "--region", "--account-id", "--task-root"] {
            assert!(opts.iter().any(|(f, _)| f.starts_with(flag)), "{command} --help lists {flag}:\n{help}");
        }
        let bare: Vec<&String> = opts.iter().filter(|(_, d)| d.is_empty()).map(|(f, _)| f).collect();
        assert!(bare.is_empty(), "{command} --help: flags without a description: {bare:?}\n{help}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_says_on_stderr_why_the_runtime_cannot_start() {
    let dir = TempDir::new();
    let missing = dir.join("bootstrap-that-does-not-exist");
    let not_executable = dir.join("bootstrap-not-executable");
    std::fs::write(&not_executable, "#!/bin/sh\n").expect("write a file");
    for (runtime, cause) in [
        (missing.to_string_lossy().into_owned(), "No such file or directory"),
        (not_executable.to_string_lossy().into_owned(), "Permission denied"),
        ("no-such-program-on-the-path --flag".to_owned(), "No such file or directory"),
    ] {
        let out = run(&["invoke", "--runtime", &runtime], Some(dir.path())).await;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(!out.status.success(), "{runtime}: exit {:?}", out.status);
        // The invocation's answer stays what Lambda returns.
        assert!(stdout.contains("Runtime.InvalidEntrypoint"), "{runtime}: stdout {stdout}");
        let program = runtime.split(' ').next().unwrap_or_default();
        let line = stderr
            .lines()
            .find(|l| l.starts_with("tandem-emulator: runtime: cannot start ") && l.contains(program))
            .unwrap_or_else(|| panic!("{runtime}: no cause on stderr:\n{stderr}"));
        assert!(line.contains(cause), "{runtime}: {line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_says_on_stderr_why_the_runtime_cannot_start() {
    let dir = TempDir::new();
    let missing = dir.join("no-bootstrap-here");
    let mut child = tokio::process::Command::new(bin("tandem-emulator"))
        .args(["serve", "--listen", "127.0.0.1:0", "--runtime"])
        .arg(&missing)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start tandem-emulator serve");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr is piped")).lines();
    let mut seen = Vec::new();
    let found = within(Duration::from_secs(60), "the cause on serve's stderr", async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.starts_with("tandem-emulator: runtime: cannot start ") {
                return Some(line);
            }
            seen.push(line);
        }
        None
    })
    .await;
    let _ = child.start_kill();
    let _ = child.wait().await;
    let line = found.unwrap_or_else(|| panic!("serve exited without the cause; stderr:\n{}", seen.join("\n")));
    assert!(line.contains(&*missing.to_string_lossy()) && line.contains("No such file or directory"), "{line}");
    assert!(
        seen.iter().any(|l| l == "tandem-emulator: env-1: the init failed: Runtime.InvalidEntrypoint"),
        "the failed init is named first: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_task_root_is_the_current_directory_for_an_interpreter_runtime() {
    let dir = TempDir::new();
    std::fs::write(
        dir.join("app.py"),
        "import os\n\ndef handler(event, context):\n    \
         return {'cwd': os.getcwd(), 'task_root': os.environ['LAMBDA_TASK_ROOT']}\n",
    )
    .expect("write app.py");
    let python = python();
    let runtime = format!("{} -m awslambdaric app.handler", python.display());
    let out = run(&["invoke", "--runtime", &runtime, "--no-freeze"], Some(dir.path())).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "exit {:?}\nstdout: {stdout}\nstderr: {stderr}", out.status);
    let answer = json(stdout.trim().as_bytes());
    let here = dir.path().canonicalize().expect("the directory exists");
    let seen = |key: &str| {
        std::path::Path::new(answer[key].as_str().unwrap_or_else(|| panic!("{key} in {answer}")))
            .canonicalize()
            .expect("the reported directory exists")
    };
    assert_eq!(seen("cwd"), here, "{answer}");
    assert_eq!(seen("task_root"), here, "{answer}");
    assert_ne!(Some(seen("task_root").as_path()), python.parent(), "not the interpreter's directory");
}
