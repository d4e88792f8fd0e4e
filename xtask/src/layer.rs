//! `cargo xtask layer [--arch x86_64|arm64|all] [--smoke]`: builds the `tandem`
//! extension for Lambda and packs it as a layer, `target/layer/tandem-<arch>.zip`
//! holding `extensions/tandem` with its run bit.
//!
//! Binaries are static musl builds (`*-unknown-linux-musl`): they run on every Lambda
//! runtime whatever its glibc (Amazon Linux 2 has 2.26, AL2023 2.34), and exec faster
//! than a dynamically linked binary (no loader, no shared-library relocations); the
//! numbers behind the choice are in the README. arm64 links with Debian's
//! `aarch64-linux-gnu-gcc`, installed here when missing.
//!
//! `--smoke` then runs each built binary as an extension inside tandem-emulator (arm64
//! under `qemu-aarch64`, behind a wrapper named `tandem` so the extension keeps its
//! name) through init, invocations and shutdown, and checks what its file sink wrote.

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

    pub fn triple(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-musl",
            Arch::Arm64 => "aarch64-unknown-linux-musl",
        }
    }
}

struct Args {
    arches: Vec<Arch>,
    smoke: bool,
}

fn parse(args: &[String]) -> Result<Args> {
    let mut arches = vec![Arch::X86_64, Arch::Arm64];
    let mut smoke = false;
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
            other => return Err(Failure::usage(format!("unknown layer argument `{other}`"))),
        }
    }
    Ok(Args { arches, smoke })
}

pub fn run(args: &[String]) -> Result<()> {
    let args = parse(args)?;
    let mut apt = Apt::default();
    for &arch in &args.arches {
        let zip = build(arch, &mut apt)?;
        if args.smoke {
            smoke(arch, &zip, &mut apt)?;
        }
    }
    Ok(())
}

/// Makes sure the Rust target and (for arm64) the cross linker exist.
fn ensure_toolchain(arch: Arch, apt: &mut Apt) -> Result<()> {
    let installed = util::probe("rustup", ["target", "list", "--installed"]).unwrap_or_default();
    if !installed.lines().any(|l| l.trim() == arch.triple()) {
        println!("layer: rustup target add {}", arch.triple());
        util::run_status(Command::new("rustup").args(["target", "add", arch.triple()]), "rustup target add")?;
    }
    if util::which("zip").is_none() {
        apt.install(&["zip"], "zip (packs the layer)")?;
    }
    if arch == Arch::X86_64 && util::which("musl-gcc").is_none() {
        apt.install(&["musl-tools"], "musl-gcc (compiles the C parts of the TLS stack)")?;
    }
    if arch == Arch::Arm64 && util::which("aarch64-linux-gnu-gcc").is_none() {
        apt.install(&["gcc-aarch64-linux-gnu", "libc6-dev-arm64-cross"], "the aarch64 cross compiler")?;
    }
    Ok(())
}

/// Builds the release binary for `arch` and packs the layer zip; returns its path.
pub fn build(arch: Arch, apt: &mut Apt) -> Result<PathBuf> {
    ensure_toolchain(arch, apt)?;
    let mut cargo = util::cargo();
    cargo.current_dir(util::workspace_root()).args([
        "build",
        "--release",
        "-p",
        "tandem",
        "--bin",
        "tandem",
        "--target",
        arch.triple(),
    ]);
    // The C parts of dependencies (ring, for TLS) need a C compiler for the target.
    match arch {
        Arch::X86_64 => cargo.env("CC_x86_64_unknown_linux_musl", "musl-gcc"),
        Arch::Arm64 => cargo
            .env("CC_aarch64_unknown_linux_musl", "aarch64-linux-gnu-gcc")
            .env("AR_aarch64_unknown_linux_musl", "aarch64-linux-gnu-ar"),
    };
    util::run_status(&mut cargo, &format!("cargo build --release --target {}", arch.triple()))?;
    let binary = util::target_dir().join(arch.triple()).join("release").join("tandem");
    let layer_dir = util::target_dir().join("layer");
    let staging = layer_dir.join(format!("staging-{}", arch.name()));
    let _ = std::fs::remove_dir_all(&staging);
    let ext_dir = staging.join("extensions");
    std::fs::create_dir_all(&ext_dir).map_err(|e| Failure::new(format!("cannot create {}: {e}", ext_dir.display())))?;
    let dest = ext_dir.join("tandem");
    std::fs::copy(&binary, &dest).map_err(|e| Failure::new(format!("cannot copy {}: {e}", binary.display())))?;
    set_mode(&dest, 0o755)?;
    let zip = layer_dir.join(format!("tandem-{}.zip", arch.name()));
    let _ = std::fs::remove_file(&zip);
    // -X: no extra file attributes (reproducible); the unix mode (0755) is kept.
    util::run_status(
        Command::new("zip").current_dir(&staging).args(["-q", "-X", "-r"]).arg(&zip).arg("extensions"),
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
        util::cargo().current_dir(&root).args(["build", "-p", "tandem-emulator", "-p", "example-functions"]),
        "cargo build (emulator and echo-fn for the smoke test)",
    )?;
    let work = util::target_dir().join("layer").join(format!("smoke-{}", arch.name()));
    let _ = std::fs::remove_dir_all(&work);
    let unpacked = work.join("opt");
    std::fs::create_dir_all(&unpacked)
        .map_err(|e| Failure::new(format!("cannot create {}: {e}", unpacked.display())))?;
    util::run_status(Command::new("unzip").args(["-q"]).arg(zip).arg("-d").arg(&unpacked), "unzip the layer")?;
    let binary = unpacked.join("extensions").join("tandem");
    let extensions = work.join("extensions");
    std::fs::create_dir_all(&extensions)
        .map_err(|e| Failure::new(format!("cannot create {}: {e}", extensions.display())))?;
    match arch {
        Arch::X86_64 => {
            std::os::unix::fs::symlink(&binary, extensions.join("tandem"))
                .map_err(|e| Failure::new(format!("cannot link the extension: {e}")))?;
        }
        Arch::Arm64 => {
            if util::which("qemu-aarch64").is_none() {
                apt.install(&["qemu-user"], "qemu-user (runs the arm64 extension)")?;
            }
            // The wrapper is named `tandem`, and qemu passes the guest binary's path
            // (also ending in `tandem`) as its argv[0]: the extension registers as
            // `tandem`, an external extension, as it would on Graviton.
            let wrapper = extensions.join("tandem");
            let script = format!("#!/bin/sh\nexec qemu-aarch64 '{}' \"$@\"\n", binary.display());
            std::fs::write(&wrapper, script)
                .map_err(|e| Failure::new(format!("cannot write the qemu wrapper: {e}")))?;
            set_mode(&wrapper, 0o755)?;
        }
    }
    let records = work.join("records.ndjson");
    let event = work.join("event.json");
    std::fs::write(&event, r#"{"log":["smoke line one","smoke line two"]}"#)
        .map_err(|e| Failure::new(format!("cannot write the event: {e}")))?;
    let debug = util::target_dir().join("debug");
    let output = Command::new(debug.join("tandem-emulator"))
        .arg("invoke")
        .arg("--runtime")
        .arg(debug.join("echo-fn"))
        .arg("--extensions-dir")
        .arg(&extensions)
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
