//! `cargo xtask check-deploy`: validates the deployment examples in `deploy/`: the SAM
//! template with cfn-lint (from PyPI, pinned, in the project's venv), the Terraform
//! module with `terraform fmt -check`, and `terraform validate` when the providers can
//! be installed (they come from registry.terraform.io, which is not reachable from every
//! machine; then it says so and skips that step).

use crate::util::{self, Failure, Result};
use std::process::Command;

pub const CFN_LINT_VERSION: &str = "1.58.0";

pub fn run(args: &[String]) -> Result<()> {
    if let Some(a) = args.first() {
        return Err(Failure::usage(format!("check-deploy takes no arguments (got `{a}`)")));
    }
    let root = util::workspace_root();
    let bin = crate::setup::ensure_pip_tool("cfn-lint", CFN_LINT_VERSION, "cfn-lint", &["--version"])?;
    util::run_status(
        Command::new(bin.join("cfn-lint")).current_dir(&root).arg("deploy/sam/template.yaml"),
        "cfn-lint deploy/sam/template.yaml",
    )?;
    println!("check-deploy: cfn-lint {CFN_LINT_VERSION}: deploy/sam/template.yaml is valid");

    let tf_dir = root.join("deploy").join("terraform");
    if util::which("terraform").is_none() {
        println!("check-deploy: terraform is not installed (no registry this project uses ships it); the module was not checked");
        return Ok(());
    }
    util::run_status(
        Command::new("terraform").arg(format!("-chdir={}", tf_dir.display())).args(["fmt", "-check", "-diff"]),
        "terraform fmt -check",
    )?;
    println!("check-deploy: terraform fmt: deploy/terraform is formatted");
    let init = Command::new("terraform")
        .arg(format!("-chdir={}", tf_dir.display()))
        .args(["init", "-backend=false", "-input=false", "-no-color"])
        .output()
        .map_err(|e| Failure::new(format!("cannot run terraform init: {e}")))?;
    if !init.status.success() {
        let why = String::from_utf8_lossy(&init.stderr);
        let reason = why
            .lines()
            .find(|l| l.contains("could not connect") || l.contains("Failed"))
            .unwrap_or("see terraform init");
        println!(
            "check-deploy: terraform validate skipped: its providers cannot be installed here ({})",
            reason.trim()
        );
        return Ok(());
    }
    util::run_status(
        Command::new("terraform").arg(format!("-chdir={}", tf_dir.display())).args(["validate", "-no-color"]),
        "terraform validate",
    )?;
    println!("check-deploy: terraform validate: deploy/terraform is valid");
    Ok(())
}
