//! The `tandem-emulator` binary; see [`tandem_emulator::cli`].

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tandem_emulator::cli::main().await
}
