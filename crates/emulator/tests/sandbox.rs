//! The sandbox as Lambda builds it: `sandbox` and `sandbox.localdomain` resolve for
//! every process, layers merged onto `/opt` (their extensions launched), the code on
//! `/var/task`, Lambda's search paths, and a private `/tmp` shared by the environment's
//! processes only. Real processes (bash, curl, getent) in a real mount namespace.

mod common;

use common::*;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

/// Writes a zip of `entries` (name, body, Unix mode), as `zip -r` makes a layer.
fn write_zip(path: &Path, entries: &[(&str, Vec<u8>, u32)]) {
    let mut w = zip::ZipWriter::new(std::fs::File::create(path).expect("create the zip"));
    for (name, body, mode) in entries {
        let opts = zip::write::SimpleFileOptions::default().unix_permissions(*mode);
        w.start_file(*name, opts).expect("start a zip entry");
        w.write_all(body).expect("write a zip entry");
    }
    w.finish().expect("finish the zip");
}

fn write_exec(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create the directory");
    }
    std::fs::write(path, text).expect("write the script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// The value printed as `<prefix><key>=<value>` on the console, once `prefix` printed it.
fn fact(lines: &[String], prefix: &str, key: &str) -> String {
    let want = format!("{prefix}{key}=");
    lines
        .iter()
        .find_map(|l| l.strip_prefix(&want).map(str::to_owned))
        .unwrap_or_else(|| panic!("no {want} line in {lines:#?}"))
}

const RESOLVE: &str = r#"for n in sandbox sandbox.localdomain localhost; do
    echo "$WHO$n=$(getent ahostsv4 "$n" | head -n 1 | cut -d' ' -f1)"
done
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_and_sandbox_localdomain_resolve_for_the_runtime_and_every_extension() {
    let dir = TempDir::new();
    let runtime =
        dir.script("bootstrap", &format!("#!/bin/bash\nWHO=runtime:\n{RESOLVE}exec '{}'\n", bin("echo-fn").display()));
    let ext_dir = dir.join("extensions");
    write_exec(
        &ext_dir.join("shell-ext"),
        &format!("#!/bin/bash\nWHO=extension:\n{RESOLVE}exec '{}'\n", example("extensions/shell/shell-ext").display()),
    );
    let mut cfg = config(vec![runtime.to_string_lossy().into_owned()]);
    cfg.extensions.push(ext_dir.join("shell-ext"));
    let env = start(cfg).await;
    invoke_ok(&env, "{}").await;
    shutdown(&env).await;
    let lines = env.console_lines();
    for who in ["runtime:", "extension:"] {
        for name in ["sandbox", "sandbox.localdomain", "localhost"] {
            assert_eq!(fact(&lines, who, name), "127.0.0.1", "{who} {name}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layers_merge_onto_opt_code_runs_from_var_task_and_tmp_is_private_to_the_environment() {
    let dir = TempDir::new();
    let marker = format!("tandem-sandbox-test-{}", std::process::id());
    // Layer 1, a directory: the extension's program, a tool and a library directory.
    let layer1 = dir.join("layer1");
    std::fs::create_dir_all(layer1.join("tools")).expect("mkdir");
    std::fs::copy(example("extensions/shell/shell-ext"), layer1.join("tools/shell-ext")).expect("copy shell-ext");
    write_exec(&layer1.join("bin/tool"), "#!/bin/sh\necho one\n");
    write_exec(&layer1.join("extensions/shell-ext"), "#!/bin/sh\nexit 3\n");
    std::fs::create_dir_all(layer1.join("lib")).expect("mkdir lib");
    // Layer 2, a zip, replaces layer 1's tool and extension (a later layer wins); the
    // extension leaves a file in /tmp for the runtime, started after it registered.
    let layer2 = dir.join("layer2.zip");
    let ext = format!("#!/bin/sh\necho from-extension > /tmp/{marker}\nexec /opt/tools/shell-ext\n");
    write_zip(
        &layer2,
        &[("bin/tool", b"#!/bin/sh\necho two\n".to_vec(), 0o755), ("extensions/shell-ext", ext.into_bytes(), 0o755)],
    );
    let bootstrap = format!(
        r#"#!/bin/bash
echo "fn:pwd=$(pwd)"
echo "fn:root=$LAMBDA_TASK_ROOT"
echo "fn:path=$PATH"
echo "fn:ld=$LD_LIBRARY_PATH"
echo "fn:tool=$(tool)"
echo "fn:tmpfile=$(cat /tmp/{marker})"
echo "fn:tmpsize=$(df -m --output=size /tmp | tail -n 1 | tr -d ' ')"
echo "fn:opt=$(touch /opt/x 2>/dev/null && echo writable || echo read-only)"
exec /var/task/real
"#
    );
    let code = dir.join("code.zip");
    write_zip(
        &code,
        &[
            ("bootstrap", bootstrap.into_bytes(), 0o755),
            ("real", std::fs::read(example("functions/shell/bootstrap")).expect("read the bootstrap"), 0o755),
        ],
    );
    let mut cfg = config(vec!["/var/task/bootstrap".into()]);
    cfg.layers = vec![layer1, layer2];
    cfg.code = Some(code);
    cfg.ephemeral_storage_mb = Some(600);
    let env = start(cfg).await;
    assert_eq!(env.init_outcome().map(|o| o.0), Some(tandem_wire::Status::Success), "{:#?}", env.console_lines());
    let out = invoke_ok(&env, r#"{"hello":"layers"}"#).await;
    assert_eq!(json(&out.payload), serde_json::json!({"hello":"layers"}));
    shutdown(&env).await;
    let lines = env.console_lines();
    assert_eq!(fact(&lines, "fn:", "pwd"), "/var/task");
    assert_eq!(fact(&lines, "fn:", "root"), "/var/task");
    assert!(fact(&lines, "fn:", "path").split(':').any(|p| p == "/opt/bin"), "{lines:#?}");
    let ld = fact(&lines, "fn:", "ld");
    assert!(ld.split(':').any(|p| p == "/opt/lib") && ld.split(':').any(|p| p == "/var/task"), "{ld}");
    assert_eq!(fact(&lines, "fn:", "tool"), "two", "the later layer's /opt/bin/tool wins");
    assert_eq!(fact(&lines, "fn:", "tmpfile"), "from-extension", "one /tmp for the environment's processes");
    assert_eq!(fact(&lines, "fn:", "tmpsize"), "600", "/tmp sized by the ephemeral storage");
    assert_eq!(fact(&lines, "fn:", "opt"), "read-only");
    assert!(!Path::new("/tmp").join(&marker).exists(), "the host's /tmp is not the environment's");
    // The layer's extension (from the zip, its run bit kept) registered and got SHUTDOWN.
    assert!(lines.iter().any(|l| l.starts_with("shell-ext registered as ")), "{lines:#?}");
    assert!(lines.iter().any(|l| l == "shell-ext got SHUTDOWN spindown"), "{lines:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_invoke_runs_a_layer_zip_and_a_code_zip() {
    let dir = TempDir::new();
    let layer = dir.join("layer.zip");
    let shell_ext = std::fs::read(example("extensions/shell/shell-ext")).expect("read shell-ext");
    write_zip(&layer, &[("extensions/shell-ext", shell_ext, 0o755)]);
    let code = dir.join("fn.zip");
    let bootstrap = std::fs::read(example("functions/shell/bootstrap")).expect("read the bootstrap");
    write_zip(&code, &[("bootstrap", bootstrap, 0o755)]);
    let mut cmd = tokio::process::Command::new(bin("tandem-emulator"));
    cmd.arg("invoke")
        .arg("--layer")
        .arg(&layer)
        .arg("--code")
        .arg(&code)
        .args(["--runtime", "/var/task/bootstrap", "-n", "2"])
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null());
    let out = within(Duration::from_secs(60), "tandem-emulator invoke", cmd.output()).await.expect("the CLI runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "exit {:?}\nstdout: {stdout}\nstderr: {stderr}", out.status);
    assert_eq!(stdout.lines().collect::<Vec<_>>(), ["{}", "{}"], "{stderr}");
    assert!(stderr.contains("in a private mount namespace"), "{stderr}");
    assert!(stderr.contains("/tmp private (512 MB)"), "the default ephemeral storage: {stderr}");
    assert_eq!(stderr.lines().filter(|l| l.starts_with("shell-ext got INVOKE ")).count(), 2, "{stderr}");
    assert!(stderr.lines().any(|l| l == "shell-ext got SHUTDOWN spindown"), "{stderr}");
}
