//! `cargo xtask test [nextest args]`: runs setup, builds every binary of the
//! workspace (the tests run the example peers from target/debug), then runs
//! `cargo nextest run --workspace` with `TANDEM_PYTHON` pointing at the venv.

use crate::setup;
use crate::util::{self, Result};

pub fn run(args: &[String]) -> Result<()> {
    let python = setup::ensure()?;

    util::run_status(
        util::cargo().current_dir(util::workspace_root()).args(["build", "--workspace", "--bins", "--examples"]),
        "cargo build --workspace --bins --examples",
    )?;

    util::run_status(
        util::cargo()
            .current_dir(util::workspace_root())
            .args(["nextest", "run", "--workspace"])
            .args(args)
            .env("TANDEM_PYTHON", &python),
        "cargo nextest run",
    )
}
