//! `cargo xtask setup`: makes available what the tests' peer programs need —
//! bash and curl (shell peers), a Python venv at `target/venv` with a pinned
//! awslambdaric (Python peer), cargo-nextest, Node.js and pinned third-party extension
//! layers (`target/third-party/`, from their registries). Idempotent, and quick when
//! everything is already there.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{self, Failure, Result};

/// Pinned so every machine runs the same Runtime Interface Client.
pub const AWSLAMBDARIC_VERSION: &str = "4.2.2";

pub fn run(args: &[String]) -> Result<()> {
    if let Some(arg) = args.first() {
        return Err(Failure::usage(format!("setup takes no arguments (got `{arg}`)")));
    }
    ensure().map(|_| ())
}

/// Runs every setup step and returns the venv's Python for the tests.
pub fn ensure() -> Result<PathBuf> {
    let mut apt = Apt::default();
    // chromium: the timeline test renders its page headless (emulator tests/timeline.rs).
    ensure_tools(&mut apt, &["bash", "curl", "chromium"])?;
    let python = ensure_venv(&mut apt)?;
    ensure_moto(&python)?;
    ensure_standards_checkers(&python)?;
    ensure_otel_instrumentation(&python)?;
    ensure_phoenix(&mut apt)?;
    ensure_third_party(&mut apt)?;
    ensure_nextest()?;
    Ok(python)
}

/// Makes the tool `package` (its command `tool`, answering `version_args` with a line
/// that contains `version`) available in the project's venv; returns the venv's bin
/// directory. Pinned versions, so that every machine runs the same tools.
pub fn ensure_pip_tool(package: &str, version: &str, tool: &str, version_args: &[&str]) -> Result<PathBuf> {
    let python = ensure_venv_python()?;
    let bin = python.parent().map(Path::to_path_buf).unwrap_or_default();
    let have = util::probe(bin.join(tool), version_args).unwrap_or_default();
    if !have.contains(version) {
        let requirement = format!("{package}=={version}");
        println!("setup: pip install {requirement}");
        let mut pip = Command::new(&python);
        pip.args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", &requirement]);
        util::run_status(&mut pip, &format!("pip install {requirement}"))?;
    }
    Ok(bin)
}

/// Third-party extensions the tests run unmodified from their layers, pinned. npm's
/// `@serverless/aws-lambda-otel-extension-dist` ships a Lambda layer (`extension.zip`,
/// a Node.js extension that subscribes to the Logs API at `http://sandbox:4243` and
/// listens on `sandbox`); it is fetched at setup, never committed.
pub const OTEL_EXTENSION_PACKAGE: &str = "@serverless/aws-lambda-otel-extension-dist";
/// The pinned version of [`OTEL_EXTENSION_PACKAGE`].
pub const OTEL_EXTENSION_VERSION: &str = "0.1.11";

/// Where the third-party layers go: `target/third-party/<name>-<version>.zip`.
pub fn third_party_dir() -> PathBuf {
    util::target_dir().join("third-party")
}

/// Node.js (for the Node.js extension) and the pinned third-party layers.
fn ensure_third_party(apt: &mut Apt) -> Result<()> {
    if util::which("node").is_none() || util::which("npm").is_none() {
        apt.install(&["nodejs", "npm"], "Node.js (runs a third-party extension)")?;
    }
    let dir = third_party_dir();
    let layer = dir.join(format!("aws-lambda-otel-extension-{OTEL_EXTENSION_VERSION}.zip"));
    if layer.is_file() {
        println!("setup: {} already there", util::display(&layer));
        return Ok(());
    }
    let work = dir.join("npm-pack");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| Failure::new(format!("cannot create {}: {e}", work.display())))?;
    let spec = format!("{OTEL_EXTENSION_PACKAGE}@{OTEL_EXTENSION_VERSION}");
    println!("setup: npm pack {spec}");
    util::run_status(Command::new("npm").current_dir(&work).args(["pack", "--silent", &spec]), "npm pack")?;
    let tarball = work.join(format!("serverless-aws-lambda-otel-extension-dist-{OTEL_EXTENSION_VERSION}.tgz"));
    util::run_status(
        Command::new("tar").current_dir(&work).arg("-xzf").arg(&tarball).arg("package/extension.zip"),
        "tar (the layer out of the npm package)",
    )?;
    std::fs::rename(work.join("package").join("extension.zip"), &layer)
        .map_err(|e| Failure::new(format!("cannot move the layer to {}: {e}", layer.display())))?;
    let _ = std::fs::remove_dir_all(&work);
    println!("setup: installed {}", util::display(&layer));
    Ok(())
}

/// The venv's Python, creating the venv (with awslambdaric) when needed.
pub fn ensure_venv_python() -> Result<PathBuf> {
    let mut apt = Apt::default();
    ensure_venv(&mut apt)
}

/// Where the venv's interpreter is; what tests get as `TANDEM_PYTHON`.
pub fn venv_python() -> PathBuf {
    venv_dir().join("bin").join("python3")
}

fn venv_dir() -> PathBuf {
    util::target_dir().join("venv")
}

fn ensure_tools(apt: &mut Apt, tools: &[&str]) -> Result<()> {
    let missing: Vec<&str> = tools.iter().copied().filter(|t| util::which(t).is_none()).collect();
    if !missing.is_empty() {
        apt.install(&missing, &format!("{} (needed by the shell peers and the timeline test)", missing.join(", ")))?;
    }
    let found: Vec<String> = tools
        .iter()
        .map(|t| match util::which(t) {
            Some(path) => Ok(path.display().to_string()),
            None => Err(Failure::new(format!("{t} is still missing after installing it"))),
        })
        .collect::<Result<_>>()?;
    let state = if missing.is_empty() { "found" } else { "installed" };
    println!("setup: {state} {}", found.join(", "));
    Ok(())
}

fn ensure_venv(apt: &mut Apt) -> Result<PathBuf> {
    let python = venv_python();
    let venv = util::display(&venv_dir());
    if installed_awslambdaric(&python).as_deref() == Some(AWSLAMBDARIC_VERSION) {
        println!("setup: awslambdaric {AWSLAMBDARIC_VERSION} already in {venv}");
        return Ok(python);
    }

    // A venv whose interpreter does not run (moved, or its base Python is gone)
    // is rebuilt from scratch.
    let usable = util::probe(&python, ["-c", "import sys"]).is_some();
    if !usable {
        let base = base_python(apt)?;
        let mut create = Command::new(&base);
        create.args(["-m", "venv", "--clear"]).arg(venv_dir());
        util::run_status(&mut create, &format!("{base} -m venv {venv}"))?;
        println!("setup: created {venv} with {base}");
    }

    let requirement = format!("awslambdaric=={AWSLAMBDARIC_VERSION}");
    let mut pip = Command::new(&python);
    pip.args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", &requirement]);
    util::run_status(&mut pip, &format!("pip install {requirement}"))?;
    match installed_awslambdaric(&python) {
        Some(version) if version == AWSLAMBDARIC_VERSION => {
            println!("setup: installed awslambdaric {AWSLAMBDARIC_VERSION} in {venv}");
            Ok(python)
        }
        other => Err(Failure::new(format!(
            "awslambdaric is not importable from {} after pip install (found {other:?})",
            python.display()
        ))),
    }
}

/// Pinned moto (`moto[server]`): the AWS (Secrets Manager, SSM) the secrets tests run
/// `moto_server` of, on 127.0.0.1.
pub const MOTO_VERSION: &str = "5.2.5";

/// Installs `moto[server]` in the venv when it is not there at [`MOTO_VERSION`].
fn ensure_moto(python: &Path) -> Result<()> {
    let probe =
        || util::probe(python, ["-c", "import importlib.metadata as m, moto.server, flask; print(m.version('moto'))"]);
    if probe().as_deref() == Some(MOTO_VERSION) {
        println!("setup: moto {MOTO_VERSION} already in the venv");
        return Ok(());
    }
    let requirement = format!("moto[server]=={MOTO_VERSION}");
    println!("setup: pip install {requirement}");
    let mut pip = Command::new(python);
    pip.args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", &requirement]);
    util::run_status(&mut pip, &format!("pip install {requirement}"))?;
    match probe() {
        Some(v) if v == MOTO_VERSION => Ok(()),
        other => Err(Failure::new(format!("moto is not importable after pip install (found {other:?})"))),
    }
}

/// The awslambdaric version the venv can import, native client included.
fn installed_awslambdaric(python: &Path) -> Option<String> {
    util::probe(
        python,
        ["-c", "import importlib.metadata as m, awslambdaric, runtime_client; print(m.version('awslambdaric'))"],
    )
}

/// The interpreter that creates the venv (`TANDEM_BASE_PYTHON`, default
/// `python3`), checked to have the `venv` and `ensurepip` modules.
fn base_python(apt: &mut Apt) -> Result<String> {
    let base = std::env::var("TANDEM_BASE_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let has_venv = |base: &str| util::probe(base, ["-c", "import venv, ensurepip"]).is_some();
    if has_venv(&base) {
        return Ok(base);
    }
    if base == "python3" {
        // Debian ships venv/ensurepip separately from the interpreter.
        apt.install(&["python3", "python3-venv"], "python3 with its venv module")?;
        if has_venv(&base) {
            return Ok(base);
        }
    }
    Err(Failure::new(format!(
        "`{base} -m venv` is unavailable: install Python 3 with its venv module \
         (Debian/Ubuntu: `apt-get install python3-venv`), or point TANDEM_BASE_PYTHON at an interpreter that has it"
    )))
}

/// The reference decoders tandem's standards tests use (crates/tandem/tests/py):
/// the OpenTelemetry protobuf classes and AWS's EMF validators, pinned.
const STANDARDS_CHECKERS: &[&str] = &["opentelemetry-proto==1.38.0", "aws-embedded-metrics==3.3.0"];

fn ensure_standards_checkers(python: &Path) -> Result<()> {
    let probe = "import opentelemetry.proto.collector.trace.v1.trace_service_pb2, aws_embedded_metrics.validator";
    if util::probe(python, ["-c", probe]).is_some() {
        return Ok(());
    }
    println!("setup: pip install {}", STANDARDS_CHECKERS.join(" "));
    let mut pip = Command::new(python);
    pip.args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"]).args(STANDARDS_CHECKERS);
    util::run_status(&mut pip, "pip install the standards checkers")
}

/// OpenTelemetry's Python auto-instrumentation, for the receiver test's function
/// (crates/tandem/tests/receiver.rs): `opentelemetry-instrument` and its OTLP
/// exporters, pinned to the release of the standards checkers' `opentelemetry-proto`.
const OTEL_INSTRUMENTATION: &[&str] = &[
    "opentelemetry-distro==0.59b0",
    "opentelemetry-exporter-otlp-proto-http==1.38.0",
    "opentelemetry-exporter-otlp-proto-grpc==1.38.0",
    "opentelemetry-instrumentation-aws-lambda==0.59b0",
];

fn ensure_otel_instrumentation(python: &Path) -> Result<()> {
    let probe = "import opentelemetry.distro, opentelemetry.exporter.otlp.proto.http, \
                 opentelemetry.exporter.otlp.proto.grpc, opentelemetry.instrumentation.aws_lambda";
    if util::probe(python, ["-c", probe]).is_some() {
        return Ok(());
    }
    println!("setup: pip install {}", OTEL_INSTRUMENTATION.join(" "));
    let mut pip = Command::new(python);
    pip.args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"]).args(OTEL_INSTRUMENTATION);
    util::run_status(&mut pip, "pip install the OpenTelemetry instrumentation")
}

fn ensure_nextest() -> Result<()> {
    let version = || {
        let output = util::cargo().args(["nextest", "--version"]).output().ok()?;
        output.status.success().then(|| {
            let text = String::from_utf8_lossy(&output.stdout);
            text.lines().next().unwrap_or_default().trim().to_string()
        })
    };
    if let Some(version) = version() {
        println!("setup: found {version}");
        return Ok(());
    }
    println!("setup: cargo-nextest is missing; installing it from crates.io (takes a few minutes)");
    let mut install = util::cargo();
    install.args(["install", "cargo-nextest", "--locked"]);
    util::run_status(&mut install, "cargo install cargo-nextest")?;
    match version() {
        Some(version) => {
            println!("setup: installed {version}");
            Ok(())
        }
        None => Err(Failure::new(
            "cargo-nextest was installed but `cargo nextest` still does not run (is ~/.cargo/bin on PATH?)",
        )),
    }
}

/// Installs Debian packages when that is possible (root, apt-get present),
/// running `apt-get update` once per xtask run, before the first install.
#[derive(Default)]
pub struct Apt {
    updated: bool,
}

impl Apt {
    pub fn install(&mut self, packages: &[&str], what: &str) -> Result<()> {
        let is_root = util::probe("id", ["-u"]).as_deref() == Some("0");
        if !is_root || util::which("apt-get").is_none() {
            return Err(Failure::new(format!(
                "missing {what}: install {} with your package manager",
                packages.join(" ")
            )));
        }
        if !self.updated {
            util::run_status(Command::new("apt-get").args(["update", "-qq"]), "apt-get update")?;
            self.updated = true;
        }
        println!("setup: apt-get install {}", packages.join(" "));
        util::run_status(
            Command::new("apt-get")
                .args(["install", "-y", "-qq", "--no-install-recommends"])
                .args(packages)
                .env("DEBIAN_FRONTEND", "noninteractive"),
            &format!("apt-get install {}", packages.join(" ")),
        )
    }
}

/// Pinned Arize Phoenix (PyPI `arize-phoenix`, about 850 MB installed): a real OTLP
/// trace backend that runs here, which tandem's traces are exported to and read back
/// from (crates/tandem/tests/phoenix.rs).
pub const PHOENIX_VERSION: &str = "20.26.1";

/// Phoenix's own venv, `target/phoenix-venv`: it pins its OpenTelemetry packages, which
/// must not move the ones the checkers and the instrumented function use in the venv.
pub fn phoenix_venv() -> PathBuf {
    util::target_dir().join("phoenix-venv")
}

/// Installs Phoenix in [`phoenix_venv`] when it is not there at [`PHOENIX_VERSION`].
fn ensure_phoenix(apt: &mut Apt) -> Result<()> {
    let venv = phoenix_venv();
    let python = venv.join("bin").join("python3");
    let probe = || util::probe(&python, ["-c", "import importlib.metadata as m; print(m.version('arize-phoenix'))"]);
    // The installed version, not an import (importing Phoenix takes seconds).
    if probe().as_deref() == Some(PHOENIX_VERSION) && venv.join("bin/phoenix").is_file() {
        println!("setup: arize-phoenix {PHOENIX_VERSION} already in {}", util::display(&venv));
        return Ok(());
    }
    if util::probe(&python, ["-c", "import sys"]).is_none() {
        let base = base_python(apt)?;
        let mut create = Command::new(&base);
        create.args(["-m", "venv", "--clear"]).arg(&venv);
        util::run_status(&mut create, &format!("{base} -m venv {}", util::display(&venv)))?;
    }
    let requirement = format!("arize-phoenix=={PHOENIX_VERSION}");
    println!("setup: pip install {requirement} (about 850 MB, once)");
    let mut pip = Command::new(&python);
    pip.args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", &requirement]);
    util::run_status(&mut pip, &format!("pip install {requirement}"))?;
    match probe() {
        Some(v) if v == PHOENIX_VERSION => Ok(()),
        other => Err(Failure::new(format!("arize-phoenix is not importable after pip install (found {other:?})"))),
    }
}
