//! `cargo xtask layer [--arch x86_64|arm64|all] [--libc gnu|musl] [--smoke]`: builds
//! the `tandem` extension for Lambda and packs it as a layer,
//! `target/layer/tandem-<arch>.zip` holding `extensions/tandem` with its run bit, and
//! `tandem-wrapper` (the secrets cache's `AWS_LAMBDA_EXEC_WRAPPER`).
//!
//! The layer's binaries are built with cargo-lambda (`cargo lambda build --extension
//! --release`, from PyPI with its bundled zig, installed here), the toolchain Rust users
//! of Lambda know: glibc builds linked against glibc 2.17 (cargo-lambda's default; every
//! symbol needed is checked to be from 2.17 or older, so they run on Amazon Linux 2,
//! which has 2.26, and Amazon Linux 2023, which has 2.34, alike).
//! Measured against static musl builds (`--libc musl`, kept for comparison and for
//! systems without glibc), they start faster and spend about half the CPU per record
//! (musl's allocator and memcpy are slow), for 2 MiB more resident memory; the figures
//! are in the README.
//!
//! `--smoke` then runs each layer zip as shipped in tandem-emulator (`invoke --layer
//! <zip> --code fn.zip --runtime /var/task/bootstrap`: the zip merged onto /opt, its
//! extension started from /opt/extensions; arm64 under `qemu-aarch64`, through a second
//! layer whose wrapper named `tandem` keeps the extension's name) through init,
//! invocations and shutdown, and checks what its file sink wrote.

use crate::setup::Apt;
use crate::util::{self, Failure, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Arch {
    X86_64,
    Arm64,
}

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }

    pub fn musl_triple(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-musl",
            Arch::Arm64 => "aarch64-unknown-linux-musl",
        }
    }
}

/// Which C library the binary is built against.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Libc {
    /// glibc (old baseline) through cargo-lambda and zig: the layer's default.
    Gnu,
    /// Static musl through rustup's target and Debian's compilers.
    Musl,
}

/// Pinned so that every machine builds the layer with the same toolchain.
pub const CARGO_LAMBDA_VERSION: &str = "1.9.2";

struct Args {
    arches: Vec<Arch>,
    libc: Libc,
    smoke: bool,
}

fn parse(args: &[String]) -> Result<Args> {
    let mut arches = vec![Arch::X86_64, Arch::Arm64];
    let mut smoke = false;
    let mut libc = Libc::Gnu;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--arch" => {
                arches = match it.next().map(String::as_str) {
                    Some("x86_64") => vec![Arch::X86_64],
                    Some("arm64") => vec![Arch::Arm64],
                    Some("all") => vec![Arch::X86_64, Arch::Arm64],
                    other => return Err(Failure::usage(format!("--arch takes x86_64, arm64 or all (got {other:?})"))),
                }
            }
            "--smoke" => smoke = true,
            "--libc" => {
                libc = match it.next().map(String::as_str) {
                    Some("gnu") => Libc::Gnu,
                    Some("musl") => Libc::Musl,
                    other => return Err(Failure::usage(format!("--libc takes gnu or musl (got {other:?})"))),
                }
            }
            other => return Err(Failure::usage(format!("unknown layer argument `{other}`"))),
        }
    }
    Ok(Args { arches, libc, smoke })
}

pub fn run(args: &[String]) -> Result<()> {
    let args = parse(args)?;
    let mut apt = Apt::default();
    for &arch in &args.arches {
        let zip = build(arch, args.libc, &mut apt)?;
        if args.smoke {
            smoke(arch, &zip, &mut apt)?;
        }
    }
    Ok(())
}

/// Makes sure a Rust target is installed.
fn ensure_target(triple: &str) -> Result<()> {
    let installed = util::probe("rustup", ["target", "list", "--installed"]).unwrap_or_default();
    if !installed.lines().any(|l| l.trim() == triple) {
        println!("layer: rustup target add {triple}");
        util::run_status(Command::new("rustup").args(["target", "add", triple]), "rustup target add")?;
    }
    Ok(())
}

/// cargo-lambda (with zig) in the project's venv; returns the venv's bin directory.
pub fn ensure_cargo_lambda() -> Result<std::path::PathBuf> {
    crate::setup::ensure_pip_tool("cargo-lambda", CARGO_LAMBDA_VERSION, "cargo-lambda", &["lambda", "--version"])
}

/// Makes sure the musl target and its C compilers exist.
fn ensure_musl_toolchain(arch: Arch, apt: &mut Apt) -> Result<()> {
    ensure_target(arch.musl_triple())?;
    if arch == Arch::X86_64 && util::which("musl-gcc").is_none() {
        apt.install(&["musl-tools"], "musl-gcc (compiles the C parts of the TLS stack)")?;
    }
    if arch == Arch::Arm64 && util::which("aarch64-linux-gnu-gcc").is_none() {
        apt.install(&["gcc-aarch64-linux-gnu", "libc6-dev-arm64-cross"], "the aarch64 cross compiler")?;
    }
    Ok(())
}

/// Builds the release binary; returns its path.
fn build_binary(arch: Arch, libc: Libc, apt: &mut Apt) -> Result<PathBuf> {
    match libc {
        Libc::Gnu => {
            let bin = ensure_cargo_lambda()?;
            ensure_target(match arch {
                Arch::X86_64 => "x86_64-unknown-linux-gnu",
                Arch::Arm64 => "aarch64-unknown-linux-gnu",
            })?;
            let out = util::target_dir().join("lambda").join(arch.name());
            let path = std::env::var_os("PATH").unwrap_or_default();
            let mut paths = vec![bin];
            paths.extend(std::env::split_paths(&path));
            let mut cargo = util::cargo();
            cargo
                .current_dir(util::workspace_root())
                .env("PATH", std::env::join_paths(paths).map_err(|e| Failure::new(format!("bad PATH: {e}")))?)
                .args(["lambda", "build", "--release", "--extension", "-p", "tandem", "--lambda-dir"])
                .arg(&out)
                .arg(match arch {
                    Arch::X86_64 => "--x86-64",
                    Arch::Arm64 => "--arm64",
                });
            util::run_status(&mut cargo, &format!("cargo lambda build --release --extension ({})", arch.name()))?;
            let binary = out.join("extensions").join("tandem");
            check_glibc_baseline(&binary)?;
            Ok(binary)
        }
        Libc::Musl => {
            ensure_musl_toolchain(arch, apt)?;
            let mut cargo = util::cargo();
            cargo.current_dir(util::workspace_root()).args([
                "build",
                "--release",
                "-p",
                "tandem",
                "--bin",
                "tandem",
                "--target",
                arch.musl_triple(),
            ]);
            // The C parts of dependencies (ring, for TLS) need a C compiler for the target.
            match arch {
                Arch::X86_64 => cargo.env("CC_x86_64_unknown_linux_musl", "musl-gcc"),
                Arch::Arm64 => cargo
                    .env("CC_aarch64_unknown_linux_musl", "aarch64-linux-gnu-gcc")
                    .env("AR_aarch64_unknown_linux_musl", "aarch64-linux-gnu-ar"),
            };
            util::run_status(&mut cargo, &format!("cargo build --release --target {}", arch.musl_triple()))?;
            Ok(util::target_dir().join(arch.musl_triple()).join("release").join("tandem"))
        }
    }
}

/// The newest glibc symbol version the layer may need: what cargo-lambda links against by
/// default, older than Amazon Linux 2's 2.26, so one zip serves AL2 and AL2023 runtimes.
const GLIBC_BASELINE: (u32, u32) = (2, 17);

/// Fails when the binary needs a glibc symbol newer than [`GLIBC_BASELINE`] (weak
/// symbols, which std only uses when present, do not count).
fn check_glibc_baseline(binary: &Path) -> Result<()> {
    let Some(dump) = util::probe("objdump", [std::ffi::OsStr::new("-T"), binary.as_os_str()]) else {
        println!("layer: objdump is not available; the glibc baseline was not checked");
        return Ok(());
    };
    let mut newest = (0, 0);
    for line in dump.lines() {
        let weak = line.split_whitespace().nth(1) == Some("w");
        let Some(v) = line.split("GLIBC_").nth(1).and_then(|v| v.split([')', ' ']).next()) else { continue };
        let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let version = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        if !weak && version > newest {
            newest = version;
        }
    }
    if newest > GLIBC_BASELINE {
        return Err(Failure::new(format!(
            "{} needs glibc {}.{}, newer than the layer's baseline {}.{}",
            binary.display(),
            newest.0,
            newest.1,
            GLIBC_BASELINE.0,
            GLIBC_BASELINE.1
        )));
    }
    println!(
        "layer: {} needs glibc {}.{} at most (baseline {}.{})",
        util::display(binary),
        newest.0,
        newest.1,
        GLIBC_BASELINE.0,
        GLIBC_BASELINE.1
    );
    Ok(())
}

/// Builds the release binary for `arch` and packs the layer zip; returns its path.
pub fn build(arch: Arch, libc: Libc, apt: &mut Apt) -> Result<PathBuf> {
    if util::which("zip").is_none() {
        apt.install(&["zip"], "zip (packs the layer)")?;
    }
    let binary = build_binary(arch, libc, apt)?;
    let layer_dir = util::target_dir().join("layer");
    let staging = layer_dir.join(format!("staging-{}-{libc:?}", arch.name()));
    let _ = std::fs::remove_dir_all(&staging);
    let ext_dir = staging.join("extensions");
    std::fs::create_dir_all(&ext_dir).map_err(|e| Failure::new(format!("cannot create {}: {e}", ext_dir.display())))?;
    let dest = ext_dir.join("tandem");
    std::fs::copy(&binary, &dest).map_err(|e| Failure::new(format!("cannot copy {}: {e}", binary.display())))?;
    set_mode(&dest, 0o755)?;
    // /opt/tandem-wrapper: AWS_LAMBDA_EXEC_WRAPPER for the secrets cache (`tandem wrap`).
    let wrapper = staging.join("tandem-wrapper");
    std::fs::write(&wrapper, include_str!("../../crates/tandem/src/secrets/tandem-wrapper.sh"))
        .map_err(|e| Failure::new(format!("cannot write {}: {e}", wrapper.display())))?;
    set_mode(&wrapper, 0o755)?;
    let zip = match libc {
        Libc::Gnu => layer_dir.join(format!("tandem-{}.zip", arch.name())),
        Libc::Musl => layer_dir.join(format!("tandem-{}-musl.zip", arch.name())),
    };
    let _ = std::fs::remove_file(&zip);
    // -X: no extra file attributes (reproducible); the unix mode (0755) is kept.
    util::run_status(
        Command::new("zip")
            .current_dir(&staging)
            .args(["-q", "-X", "-r"])
            .arg(&zip)
            .args(["extensions", "tandem-wrapper"]),
        "zip",
    )?;
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    println!("layer: {} binary {} bytes, zip {} ({} bytes)", arch.name(), size(&dest), util::display(&zip), size(&zip));
    Ok(zip)
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Failure::new(format!("cannot chmod {}: {e}", path.display())))
}

/// Runs the layer's extension inside the emulator and checks what it delivered.
pub fn smoke(arch: Arch, zip: &Path, apt: &mut Apt) -> Result<()> {
    let root = util::workspace_root();
    util::run_status(
        util::cargo().current_dir(&root).args(["build", "-p", "tandem-lambda-emulator", "-p", "example-functions"]),
        "cargo build (emulator and echo-fn for the smoke test)",
    )?;
    let work = util::target_dir().join("layer").join(format!("smoke-{}", arch.name()));
    let _ = std::fs::remove_dir_all(&work);
    let debug = util::target_dir().join("debug");
    // The function as Lambda runs a custom runtime: fn.zip holding `bootstrap`
    // (echo-fn), on /var/task. The layer zip goes in as shipped: the emulator merges it
    // onto /opt in a private mount namespace and starts /opt/extensions/tandem.
    let code = work.join("code");
    std::fs::create_dir_all(&code).map_err(|e| Failure::new(format!("cannot create {}: {e}", code.display())))?;
    std::fs::copy(debug.join("echo-fn"), code.join("bootstrap"))
        .map_err(|e| Failure::new(format!("cannot copy echo-fn: {e}")))?;
    set_mode(&code.join("bootstrap"), 0o755)?;
    if util::which("zip").is_none() {
        apt.install(&["zip"], "zip (packs fn.zip)")?;
    }
    let fn_zip = work.join("fn.zip");
    util::run_status(
        Command::new("zip").current_dir(&code).args(["-q", "-X"]).arg(&fn_zip).arg("bootstrap"),
        "zip fn.zip",
    )?;
    let mut layers = vec![zip.to_path_buf()];
    if arch == Arch::Arm64 {
        layers.push(qemu_layer(zip, &work, apt)?);
    }
    // Outside /tmp, which is private to the environment.
    let records = work.join("records.ndjson");
    let event = work.join("event.json");
    std::fs::write(&event, r#"{"log":["smoke line one","smoke line two"]}"#)
        .map_err(|e| Failure::new(format!("cannot write the event: {e}")))?;
    let mut emulator = Command::new(debug.join("tandem-emulator"));
    emulator.arg("invoke");
    for layer in &layers {
        emulator.arg("--layer").arg(layer);
    }
    let output = emulator
        .arg("--code")
        .arg(&fn_zip)
        .args(["--runtime", "/var/task/bootstrap"])
        .args(["--env", "TANDEM_SINKS=file,stdout", "--env"])
        .arg(format!("TANDEM_FILE_PATH={}", records.display()))
        .args(["--env", "TANDEM_FLUSH=end", "--timeout", "10", "-n", "3", "--event"])
        .arg(&event)
        .output()
        .map_err(|e| Failure::new(format!("cannot run tandem-emulator: {e}")))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(Failure::new(format!("the {} smoke run failed ({}):\n{stderr}", arch.name(), output.status)));
    }
    let written = std::fs::read_to_string(&records).unwrap_or_default();
    let lines = |needle: &str| written.lines().filter(|l| l.contains(needle)).count();
    let (one, two, invocations) = (lines("smoke line one"), lines("smoke line two"), lines("\"type\":\"invocation\""));
    if one != 3 || two != 3 || invocations != 3 {
        return Err(Failure::new(format!(
            "the {} extension delivered {one}+{two} log lines and {invocations} invocations to its file sink, expected 3+3 and 3:\n{written}\n--- emulator output ---\n{stderr}",
            arch.name()
        )));
    }
    let killed = stderr.lines().any(|l| l.contains(": tandem killed (SIGKILL)"));
    if killed {
        return Err(Failure::new(format!("the {} extension had to be killed at shutdown:\n{stderr}", arch.name())));
    }
    println!(
        "layer: {} smoke test passed (init, 3 invokes, shutdown; 6 log lines and 3 invocations delivered)",
        arch.name()
    );
    Ok(())
}

/// For arm64, a second layer over the shipped one: `extensions/tandem` becomes a wrapper
/// that runs the layer's binary (kept at /opt/arm64/tandem) under `qemu-aarch64`.
fn qemu_layer(zip: &Path, work: &Path, apt: &mut Apt) -> Result<PathBuf> {
    if util::which("qemu-aarch64").is_none() {
        apt.install(&["qemu-user"], "qemu-user (runs the arm64 extension)")?;
    }
    if util::which("unzip").is_none() {
        apt.install(&["unzip"], "unzip (takes the arm64 binary out of the layer)")?;
    }
    // A glibc build needs the arm64 loader and libraries, which Debian ships
    // under /usr/aarch64-linux-gnu (qemu's -L).
    let sysroot = Path::new("/usr/aarch64-linux-gnu");
    if !sysroot.join("lib").join("ld-linux-aarch64.so.1").exists() {
        apt.install(&["libc6-arm64-cross", "libgcc-s1-arm64-cross"], "the arm64 C library (for qemu)")?;
    }
    let layer = work.join("qemu-layer");
    for dir in [layer.join("extensions"), layer.join("arm64")] {
        std::fs::create_dir_all(&dir).map_err(|e| Failure::new(format!("cannot create {}: {e}", dir.display())))?;
    }
    let binary = layer.join("arm64").join("tandem");
    let out = Command::new("unzip")
        .arg("-p")
        .arg(zip)
        .arg("extensions/tandem")
        .output()
        .map_err(|e| Failure::new(format!("cannot run unzip: {e}")))?;
    if !out.status.success() || out.stdout.is_empty() {
        return Err(Failure::new(format!("{} holds no extensions/tandem", zip.display())));
    }
    std::fs::write(&binary, &out.stdout)
        .map_err(|e| Failure::new(format!("cannot write {}: {e}", binary.display())))?;
    set_mode(&binary, 0o755)?;
    // The wrapper is named `tandem`, and qemu passes the guest binary's path (also
    // ending in `tandem`) as its argv[0]: the extension registers as `tandem`, an
    // external extension, as it would on Graviton.
    let wrapper = layer.join("extensions").join("tandem");
    let script = format!("#!/bin/sh\nexec qemu-aarch64 -L '{}' /opt/arm64/tandem \"$@\"\n", sysroot.display());
    std::fs::write(&wrapper, script).map_err(|e| Failure::new(format!("cannot write the qemu wrapper: {e}")))?;
    set_mode(&wrapper, 0o755)?;
    Ok(layer)
}
