//! The `tandem-emulator` binary: `serve` and `invoke`; see [`tandem_emulator::run_cli`].

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tandem_emulator::run_cli().await
}
