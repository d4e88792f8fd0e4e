//! Shared plumbing of the example extensions (`lext-*` binaries): the JSON-lines
//! output file every one of them writes, environment parsing, and the INVOKE /
//! SHUTDOWN handling they have in common. Tests read the output file to see
//! exactly what a real `lambda-extension` client received from the emulator.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_extension::{Error, LambdaEvent, LogBuffering, NextEvent};
use serde_json::{json, Value};

/// An append-only file of JSON lines, shared by every task of the extension.
/// Each line goes out in a single `write` on an `O_APPEND` file, so a reader
/// never sees half a line from us.
#[derive(Clone)]
pub struct JsonLines {
    file: Arc<Mutex<File>>,
}

impl JsonLines {
    /// Opens (creating if needed) the file named by `LEXT_OUT`, or exits.
    pub fn from_env() -> Self {
        let path = require_env("LEXT_OUT");
        match open_append(Path::new(&path)) {
            Ok(file) => JsonLines { file: Arc::new(Mutex::new(file)) },
            Err(err) => fail(&format!("cannot open LEXT_OUT file {path}: {err}")),
        }
    }

    /// Appends one compact JSON object and a newline, then flushes.
    pub fn write(&self, value: &Value) -> std::io::Result<()> {
        let mut line = value.to_string();
        line.push('\n');
        // A poisoned lock only means another task panicked mid-write; the
        // file itself is still usable.
        let mut file = self.file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        file.write_all(line.as_bytes())?;
        file.flush()
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// The executable's file name: the name the crate registers the extension
/// under, and the prefix of our stdout lines.
pub fn program_name() -> String {
    std::env::args()
        .next()
        .as_deref()
        .map(Path::new)
        .and_then(Path::file_name)
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "lext".to_string())
}

/// Prints `message` to stderr and exits 1.
pub fn fail(message: &str) -> ! {
    eprintln!("{}: {message}", program_name());
    std::process::exit(1);
}

/// Value of a required environment variable, or exit 1 saying which is missing.
pub fn require_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value,
        _ => fail(&format!("environment variable {name} is required")),
    }
}

/// True when the variable is set to `1`.
pub fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|value| value == "1")
}

/// Parses an optional numeric environment variable, exiting on garbage.
pub fn env_number<T: std::str::FromStr>(name: &str) -> Option<T> {
    let value = std::env::var(name).ok()?;
    match value.trim().parse() {
        Ok(number) => Some(number),
        Err(_) => fail(&format!("{name}={value:?} is not a valid number")),
    }
}

/// The listener port for Telemetry/Logs deliveries, from `LEXT_PORT`.
pub fn port_from_env() -> u16 {
    let value = require_env("LEXT_PORT");
    match value.trim().parse() {
        Ok(port) => port,
        Err(_) => fail(&format!("LEXT_PORT={value:?} is not a port number")),
    }
}

/// Buffering from `LEXT_MAX_ITEMS`/`LEXT_MAX_BYTES`/`LEXT_TIMEOUT_MS`; unset
/// fields keep the API defaults. `None` (the crate's defaults) when none is set.
pub fn buffering_from_env() -> Option<LogBuffering> {
    let max_items = env_number::<usize>("LEXT_MAX_ITEMS");
    let max_bytes = env_number::<usize>("LEXT_MAX_BYTES");
    let timeout_ms = env_number::<usize>("LEXT_TIMEOUT_MS");
    if max_items.is_none() && max_bytes.is_none() && timeout_ms.is_none() {
        return None;
    }
    let defaults = LogBuffering::default();
    Some(LogBuffering {
        max_items: max_items.unwrap_or(defaults.max_items),
        max_bytes: max_bytes.unwrap_or(defaults.max_bytes),
        timeout_ms: timeout_ms.unwrap_or(defaults.timeout_ms),
    })
}

/// Subscription types from `LEXT_TYPES` (comma separated, e.g.
/// `platform,function,extension`); `None` keeps the crate's default
/// (`platform,function`).
pub fn types_from_env() -> Option<Vec<String>> {
    let value = std::env::var("LEXT_TYPES").ok()?;
    let types: Vec<String> = value.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_string).collect();
    (!types.is_empty()).then_some(types)
}

/// Milliseconds since the Unix epoch.
pub fn epoch_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0)
}

/// If `LEXT_TICK_FILE` is set, appends the epoch-ms time to it every 20 ms from
/// a background task, so tests can see when the process was frozen (gaps).
/// A plain sleep loop (not an interval) so a thaw yields one tick, not a burst.
pub fn start_ticker_from_env() {
    let Ok(path) = std::env::var("LEXT_TICK_FILE") else {
        return;
    };
    let mut file = match open_append(Path::new(&path)) {
        Ok(file) => file,
        Err(err) => fail(&format!("cannot open LEXT_TICK_FILE {path}: {err}")),
    };
    tokio::spawn(async move {
        loop {
            if let Err(err) = file.write_all(format!("{}\n", epoch_ms()).as_bytes()) {
                eprintln!("{}: writing tick to {path}: {err}", program_name());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}

/// What to do after writing the SHUTDOWN line, read from the environment.
#[derive(Clone, Copy, Debug)]
pub struct ShutdownBehaviour {
    /// `LEXT_IGNORE_SHUTDOWN=1`: never return, so the platform has to kill us.
    pub ignore: bool,
    /// `LEXT_EXIT_ON_SHUTDOWN=1`: exit 0 (the crate itself would poll `next` again).
    pub exit: bool,
    /// `LEXT_SHUTDOWN_LINGER_MS`: wait this long before exiting, so deliveries
    /// the platform still sends during shutdown (final telemetry) get written.
    pub linger: Duration,
}

impl ShutdownBehaviour {
    pub fn from_env() -> Self {
        ShutdownBehaviour {
            ignore: env_flag("LEXT_IGNORE_SHUTDOWN"),
            exit: env_flag("LEXT_EXIT_ON_SHUTDOWN"),
            linger: Duration::from_millis(env_number::<u64>("LEXT_SHUTDOWN_LINGER_MS").unwrap_or(0)),
        }
    }
}

/// The JSON line recorded for an Extensions API event.
pub fn event_line(event: &NextEvent) -> Value {
    match event {
        NextEvent::Invoke(invoke) => json!({
            "event": "INVOKE",
            "request_id": invoke.request_id,
            "deadline_ms": invoke.deadline_ms,
            "invoked_function_arn": invoke.invoked_function_arn,
            // The crate turns a missing `tracing` object into empty strings.
            "tracing_type": non_empty(&invoke.tracing.r#type),
            "tracing_value": non_empty(&invoke.tracing.value),
        }),
        NextEvent::Shutdown(shutdown) => json!({
            "event": "SHUTDOWN",
            "shutdown_reason": shutdown.shutdown_reason,
            "deadline_ms": shutdown.deadline_ms,
        }),
    }
}

fn non_empty(value: &str) -> Value {
    if value.is_empty() {
        Value::Null
    } else {
        Value::String(value.to_string())
    }
}

/// The events processor shared by the extensions: records the event, prints a
/// short line, and on SHUTDOWN applies `behaviour`.
pub async fn handle_event(out: JsonLines, behaviour: ShutdownBehaviour, event: LambdaEvent) -> Result<(), Error> {
    let name = program_name();
    out.write(&event_line(&event.next))?;
    match &event.next {
        NextEvent::Invoke(invoke) => println!("{name} got INVOKE {}", invoke.request_id),
        NextEvent::Shutdown(shutdown) => {
            println!("{name} got SHUTDOWN {}", shutdown.shutdown_reason);
            if behaviour.ignore {
                println!("{name} ignoring SHUTDOWN");
                std::future::pending::<()>().await;
            }
            if behaviour.exit {
                if !behaviour.linger.is_zero() {
                    tokio::time::sleep(behaviour.linger).await;
                }
                println!("{name} exiting after SHUTDOWN");
                std::process::exit(0);
            }
        }
    }
    Ok(())
}
