//! config: what an environment is made of (function settings, the runtime command,
//! the extensions, layers and code, the environment variables) and the process
//! environments Lambda gives the runtime and the extensions.

use crate::sandbox::Sandbox;
use crate::telemetry::ConsoleOutput;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Variables passed through from the caller's environment: what finding programs and
/// AWS credentials need. Everything else is Lambda's or the user's (`--env`).
pub const INHERITED: &[&str] = &[
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "LD_LIBRARY_PATH",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
];

/// Keys Lambda removes from the extensions' environment (besides every `_`-prefixed key).
const NOT_FOR_EXTENSIONS: &[&str] = &[
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_XRAY_CONTEXT_MISSING",
    "AWS_XRAY_DAEMON_ADDRESS",
    "LAMBDA_RUNTIME_DIR",
    "LAMBDA_TASK_ROOT",
];

/// How to build an environment: the function, its runtime and extensions, Lambda's
/// settings and limits, and what the emulator records.
#[derive(Debug, Clone)]
pub struct Config {
    /// `AWS_LAMBDA_FUNCTION_NAME`.
    pub function_name: String,
    /// `AWS_LAMBDA_FUNCTION_VERSION`.
    pub function_version: String,
    /// `_HANDLER`.
    pub handler: String,
    /// `AWS_REGION`.
    pub region: String,
    /// The account in the function's ARN (and `accountId` at register).
    pub account_id: String,
    /// The function's memory (128 to 10240 MB).
    pub memory_mb: u64,
    /// The invocation timeout.
    pub timeout: Duration,
    /// The limit of the first init (10 s in the cloud).
    pub init_timeout: Duration,
    /// The runtime's argv (program first).
    pub runtime: Vec<String>,
    /// `LAMBDA_TASK_ROOT` and the runtime's working directory; `/var/task` with
    /// [`Config::code`], else the runtime's directory when unset.
    pub task_root: Option<PathBuf>,
    /// External extension executables, started in this order at each init (after the
    /// layers' `/opt/extensions/*`).
    pub extensions: Vec<PathBuf>,
    /// Layers (directories or layer `.zip` files) merged in this order onto `/opt`, as
    /// Lambda merges them: a later layer's file replaces an earlier one's.
    pub layers: Vec<PathBuf>,
    /// The function's code (a directory or a `.zip`), on `/var/task`.
    pub code: Option<PathBuf>,
    /// A private `/tmp` of this many MB (Lambda's ephemeral storage, 512 by default
    /// there); `None` keeps the host's `/tmp` (host peers exchange files through it).
    pub ephemeral_storage_mb: Option<u64>,
    /// The function's own variables (`--env K=V`); extensions see them too.
    pub env: Vec<(String, String)>,
    /// Values for [`INHERITED`] (normally the caller's).
    pub inherited: Vec<(String, String)>,
    /// Freeze the processes between invocations, as Lambda does.
    pub freeze: bool,
    /// Invocations that may wait while one runs (more are refused).
    pub queue_limit: usize,
    /// Where the console lines (function and extension output, START/END/REPORT) go.
    pub console: ConsoleOutput,
    /// Written before every console line (an environment's id when several run at once).
    pub console_prefix: String,
    /// Where the Runtime API listens (port 0: any free port).
    pub runtime_api: SocketAddr,
    /// Platform-side telemetry buffer per subscriber.
    pub telemetry_buffer_items: usize,
    /// Platform-side telemetry buffer per subscriber, in bytes.
    pub telemetry_buffer_bytes: usize,
    /// Keep the body of every telemetry delivery (for tests).
    pub record_bodies: bool,
    /// Kill the environment past `memory_mb` (else only measure).
    pub enforce_memory: bool,
    /// The sandbox made at start, which every process joins.
    pub(crate) sandbox: Option<Arc<Sandbox>>,
}

impl Config {
    /// A function named `function` running `runtime` with Lambda's defaults.
    pub fn new(runtime: Vec<String>) -> Self {
        Self {
            function_name: "function".into(),
            function_version: "$LATEST".into(),
            handler: String::new(),
            region: "us-east-1".into(),
            account_id: "012345678912".into(),
            memory_mb: 128,
            timeout: Duration::from_secs(3),
            init_timeout: crate::lifecycle::INIT_TIMEOUT,
            runtime,
            task_root: None,
            extensions: Vec::new(),
            layers: Vec::new(),
            code: None,
            ephemeral_storage_mb: None,
            env: Vec::new(),
            inherited: INHERITED.iter().filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v))).collect(),
            freeze: true,
            queue_limit: 100,
            console: ConsoleOutput::None,
            console_prefix: String::new(),
            runtime_api: SocketAddr::from(([127, 0, 0, 1], 0)),
            telemetry_buffer_items: 50_000,
            telemetry_buffer_bytes: 8 * 1024 * 1024,
            record_bodies: true,
            enforce_memory: true,
            sandbox: None,
        }
    }

    /// Splits a `--runtime` value: an existing file is the program; anything else is a
    /// command line, split like a shell would.
    pub fn parse_runtime(value: &str) -> Result<Vec<String>, String> {
        if Path::new(value).is_file() {
            return Ok(vec![value.to_owned()]);
        }
        let argv = shell_words::split(value).map_err(|e| format!("cannot parse --runtime {value:?}: {e}"))?;
        if argv.is_empty() {
            return Err("--runtime is empty".into());
        }
        Ok(argv)
    }

    /// Makes relative program paths absolute (processes run in the task root, so a
    /// path relative to the caller's directory would not be found there).
    pub fn absolutize(&mut self) {
        let Ok(cwd) = std::env::current_dir() else {
            return;
        };
        let fix = |p: &str| -> String {
            let path = Path::new(p);
            if p.contains('/') && path.is_relative() {
                cwd.join(path).to_string_lossy().into_owned()
            } else {
                p.to_owned()
            }
        };
        if let Some(first) = self.runtime.first_mut() {
            *first = fix(first);
        }
        for e in &mut self.extensions {
            if e.is_relative() {
                *e = cwd.join(&*e);
            }
        }
        for p in self.task_root.iter_mut().chain(self.code.iter_mut()).chain(self.layers.iter_mut()) {
            if p.is_relative() {
                *p = cwd.join(&*p);
            }
        }
        for (k, v) in &mut self.env {
            if k == "AWS_LAMBDA_EXEC_WRAPPER" {
                *v = fix(v);
            }
        }
    }

    /// The function's value of `key` (the last one given wins).
    pub fn env_value(&self, key: &str) -> Option<&str> {
        self.env.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// `LAMBDA_TASK_ROOT`: the one given, else `/var/task` with code, else the runtime's directory.
    pub fn task_root(&self) -> PathBuf {
        if let Some(t) = &self.task_root {
            return t.clone();
        }
        if self.code.is_some() {
            return PathBuf::from(crate::sandbox::TASK);
        }
        self.runtime
            .first()
            .map(Path::new)
            .filter(|p| p.components().count() > 1)
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .or_else(|| std::env::current_dir().ok())
            .unwrap_or_else(|| PathBuf::from("/"))
    }

    /// The file names extensions are launched under (their registration names).
    pub fn extension_names(&self) -> Vec<String> {
        self.extensions
            .iter()
            .map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
            .collect()
    }

    /// The function's environment, as Lambda sets it.
    pub fn function_env(&self, runtime_api: &str, log_stream: &str) -> Vec<(String, String)> {
        let root = self.task_root().to_string_lossy().into_owned();
        let mut env: Vec<(String, String)> = self.inherited.clone();
        let lambda = [
            ("_HANDLER", self.handler.clone()),
            ("AWS_REGION", self.region.clone()),
            ("AWS_DEFAULT_REGION", self.region.clone()),
            ("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023".into()),
            ("AWS_LAMBDA_FUNCTION_NAME", self.function_name.clone()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", self.memory_mb.to_string()),
            ("AWS_LAMBDA_FUNCTION_VERSION", self.function_version.clone()),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{}", self.function_name)),
            ("AWS_LAMBDA_LOG_STREAM_NAME", log_stream.to_owned()),
            ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_owned()),
            ("AWS_XRAY_CONTEXT_MISSING", "LOG_ERROR".into()),
            ("LAMBDA_TASK_ROOT", root.clone()),
            ("LAMBDA_RUNTIME_DIR", root.clone()),
            ("TZ", ":UTC".into()),
        ];
        env.extend(lambda.into_iter().map(|(k, v)| (k.to_owned(), v)));
        if !self.layers.is_empty() || self.code.is_some() {
            env.extend(self.packaged_env(&root));
        }
        env.extend(self.env.iter().cloned());
        dedup_last_wins(env)
    }

    /// The search paths Lambda sets on Amazon Linux when the function runs from layers
    /// and code (`configuration-envvars`): `/opt/bin` on `PATH`, `/opt/lib` and the task
    /// root on `LD_LIBRARY_PATH`, the layers' Node.js and Python directories. The host's
    /// entries follow Lambda's, so that a runtime given as a host command still finds
    /// what it needs.
    fn packaged_env(&self, root: &str) -> Vec<(String, String)> {
        let host = |k: &str| self.inherited.iter().rev().find(|(ik, _)| ik == k).map(|(_, v)| v.as_str());
        let join = |lambda: String, k: &str| match host(k).filter(|v| !v.is_empty()) {
            Some(h) => format!("{lambda}:{h}"),
            None => lambda,
        };
        vec![
            ("PATH".into(), join("/usr/local/bin:/usr/bin/:/bin:/opt/bin".into(), "PATH")),
            (
                "LD_LIBRARY_PATH".into(),
                join(format!("/lib64:/usr/lib64:{root}:{root}/lib:/opt/lib"), "LD_LIBRARY_PATH"),
            ),
            ("NODE_PATH".into(), "/opt/nodejs/node_modules:/var/runtime/node_modules:/var/runtime:/var/task".into()),
            ("PYTHONPATH".into(), "/opt/python".into()),
        ]
    }

    /// The sandbox's entry for spawning (set once the environment started).
    pub(crate) fn sandbox(&self) -> Option<&Sandbox> {
        self.sandbox.as_deref()
    }

    /// The extensions' environment: the function's without the runtime-only keys.
    pub fn extension_env(&self, runtime_api: &str, log_stream: &str) -> Vec<(String, String)> {
        self.function_env(runtime_api, log_stream)
            .into_iter()
            .filter(|(k, _)| !k.starts_with('_') && !NOT_FOR_EXTENSIONS.contains(&k.as_str()))
            .collect()
    }

    /// The runtime's argv, behind `AWS_LAMBDA_EXEC_WRAPPER` when one is set.
    pub fn runtime_argv(&self) -> Vec<String> {
        match self.env_value("AWS_LAMBDA_EXEC_WRAPPER").filter(|w| !w.is_empty()) {
            Some(w) => std::iter::once(w.to_owned()).chain(self.runtime.iter().cloned()).collect(),
            None => self.runtime.clone(),
        }
    }
}

fn dedup_last_wins(env: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::with_capacity(env.len());
    for (k, v) in env {
        match out.iter_mut().find(|(ek, _)| *ek == k) {
            Some(e) => e.1 = v,
            None => out.push((k, v)),
        }
    }
    out
}

/// The executables in `dir`, by name, as Lambda starts every file in `/opt/extensions`.
pub fn extensions_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    use std::os::unix::fs::PermissionsExt;
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = std::fs::metadata(entry.path())?;
        if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
            found.push(entry.path());
        }
    }
    found.sort();
    Ok(found)
}

/// A log stream name as Lambda spells them: `YYYY/MM/DD/[$LATEST]<32 hex>`.
pub fn log_stream_name(version: &str) -> String {
    let day = tandem_wire::time::format_rfc3339_millis(std::time::SystemTime::now());
    let date = day.get(..10).unwrap_or("1970-01-01").replace('-', "/");
    format!("{date}/[{version}]{}", uuid::Uuid::new_v4().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_get_the_function_env_without_runtime_keys() {
        let mut c = Config::new(vec!["/var/task/bootstrap".into()]);
        c.handler = "h".into();
        c.env = vec![("MY_VAR".into(), "1".into()), ("_SECRET".into(), "x".into())];
        let f = c.function_env("127.0.0.1:9001", "s");
        let get = |env: &[(String, String)], k: &str| env.iter().find(|(ek, _)| ek == k).map(|(_, v)| v.clone());
        assert_eq!(get(&f, "_HANDLER").as_deref(), Some("h"));
        assert_eq!(get(&f, "LAMBDA_TASK_ROOT").as_deref(), Some("/var/task"));
        assert_eq!(get(&f, "AWS_LAMBDA_RUNTIME_API").as_deref(), Some("127.0.0.1:9001"));
        let e = c.extension_env("127.0.0.1:9001", "s");
        assert_eq!(get(&e, "MY_VAR").as_deref(), Some("1"));
        for k in ["_HANDLER", "_SECRET", "LAMBDA_TASK_ROOT", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_EXECUTION_ENV"] {
            assert_eq!(get(&e, k), None, "{k}");
        }
        assert_eq!(get(&e, "AWS_LAMBDA_FUNCTION_NAME").as_deref(), Some("function"));
    }

    #[test]
    fn exec_wrapper_goes_first() {
        let mut c = Config::new(vec!["/r".into(), "a".into()]);
        assert_eq!(c.runtime_argv(), ["/r", "a"]);
        c.env.push(("AWS_LAMBDA_EXEC_WRAPPER".into(), "/w.sh".into()));
        assert_eq!(c.runtime_argv(), ["/w.sh", "/r", "a"]);
    }

    #[test]
    fn runtime_commands_split_like_a_shell() {
        assert_eq!(
            Config::parse_runtime("python3 -m awslambdaric 'a b'").unwrap(),
            ["python3", "-m", "awslambdaric", "a b"]
        );
        assert!(Config::parse_runtime("'unclosed").is_err());
        assert!(log_stream_name("$LATEST").contains("/[$LATEST]"));
    }
}
