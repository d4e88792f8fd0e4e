//! `cargo xtask template-check`: CI's check of `templates/extension`. For each flavour
//! (`--logs`, `--telemetry`) it generates a project twice under `target/template-check/`,
//! with `cargo lambda new --template` and with `cargo xtask new-extension`, fails unless
//! both wrote the same files, then builds that project's layer with `cargo lambda build
//! --extension --release --output-format zip` and runs its test (`cargo test`: the
//! extension with a real function in tandem-emulator).
//!
//! The projects depend on this checkout (`tandem_path`) and are pinned to the
//! workspace's Cargo.lock, so they build offline from the cargo cache; they share one
//! target directory (`target/template-check/target`), so dependencies compile once.

use crate::new_extension::{self, Flavour};
use crate::util::{self, Failure, Result};
use std::path::Path;
use std::time::Instant;

pub fn run(args: &[String]) -> Result<()> {
    if let Some(arg) = args.first() {
        return Err(Failure::usage(format!("template-check takes no arguments (got `{arg}`)")));
    }
    let started = Instant::now();
    let cargo_lambda_bin = crate::layer::ensure_cargo_lambda()?;
    let path = std::env::var_os("PATH").unwrap_or_default();
    let path = std::env::join_paths(std::iter::once(cargo_lambda_bin).chain(std::env::split_paths(&path)))
        .map_err(|e| Failure::new(format!("bad PATH: {e}")))?;
    let root = util::workspace_root();
    let work = util::target_dir().join("template-check");
    let target = work.join("target");
    let tandem_path = root.display().to_string();
    for flavour in [Flavour::Logs, Flavour::Telemetry] {
        let name = format!("check-{}", flavour.flag());
        let by_cargo_lambda = work.join("cargo-lambda");
        let project = by_cargo_lambda.join(&name);
        remove_dir(&project)?;
        create_dir(&by_cargo_lambda)?;
        let mut new = util::cargo();
        new.current_dir(&by_cargo_lambda)
            .env("PATH", &path)
            .args(["lambda", "new", &name, "--extension", "--no-interactive", "--template"])
            .arg(new_extension::template_dir())
            .arg(format!("--{}", flavour.flag()))
            .arg("--render-var")
            .arg(format!("tandem_path={tandem_path}"));
        util::run_status(&mut new, &format!("cargo lambda new {name} --{}", flavour.flag()))?;

        let by_xtask = work.join("xtask").join(&name);
        remove_dir(&by_xtask)?;
        let vars = new_extension::variables(&name, flavour, None, &[("tandem_path".into(), tandem_path.clone())]);
        new_extension::generate(&new_extension::template_dir(), &by_xtask, &vars)?;
        compare(&project, &by_xtask)?;
        println!("template-check: {name}: cargo lambda new and cargo xtask new-extension wrote the same files");

        // The workspace's lock: the versions its tests pass with, all in the cargo cache.
        let lock = project.join("Cargo.lock");
        std::fs::copy(root.join("Cargo.lock"), &lock)
            .map_err(|e| Failure::new(format!("cannot copy Cargo.lock to {}: {e}", lock.display())))?;
        let in_project = |args: &[&str]| {
            let mut c = util::cargo();
            c.current_dir(&project)
                .env("PATH", &path)
                .env("CARGO_TARGET_DIR", &target)
                .env("CARGO_NET_OFFLINE", "true")
                .args(args);
            c
        };
        util::run_status(
            &mut in_project(&["lambda", "build", "--extension", "--release", "--output-format", "zip"]),
            &format!("cargo lambda build --extension --release ({name})"),
        )?;
        check_layer_zip(&target.join("lambda").join("extensions").join(format!("{name}.zip")), &name)?;
        util::run_status(&mut in_project(&["test"]), &format!("cargo test ({name})"))?;
        println!("template-check: {name}: layer built, test passed");
    }
    println!("template-check: both flavours passed in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn remove_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Failure::new(format!("cannot remove {}: {e}", dir.display()))),
    }
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Failure::new(format!("cannot create {}: {e}", dir.display())))
}

/// Fails unless both trees hold the same files with the same bytes.
fn compare(a: &Path, b: &Path) -> Result<()> {
    let (files_a, files_b) = (new_extension::files(a)?, new_extension::files(b)?);
    if files_a != files_b {
        return Err(Failure::new(format!(
            "the two renderers wrote different files:\n  {}: {files_a:?}\n  {}: {files_b:?}",
            a.display(),
            b.display()
        )));
    }
    for rel in &files_a {
        let read = |root: &Path| {
            std::fs::read(root.join(rel))
                .map_err(|e| Failure::new(format!("cannot read {}: {e}", root.join(rel).display())))
        };
        if read(a)? != read(b)? {
            return Err(Failure::new(format!(
                "the two renderers wrote {} differently: diff {} {}",
                rel.display(),
                a.join(rel).display(),
                b.join(rel).display()
            )));
        }
    }
    Ok(())
}

/// A layer's zip holds the binary as `extensions/NAME` (zip keeps entry names in clear).
fn check_layer_zip(zip: &Path, name: &str) -> Result<()> {
    let bytes =
        std::fs::read(zip).map_err(|e| Failure::new(format!("cannot read the layer {}: {e}", zip.display())))?;
    let entry = format!("extensions/{name}");
    if bytes.windows(entry.len()).any(|w| w == entry.as_bytes()) {
        println!("template-check: {} holds {entry} ({} bytes)", util::display(zip), bytes.len());
        Ok(())
    } else {
        Err(Failure::new(format!("{} does not hold {entry}", zip.display())))
    }
}
