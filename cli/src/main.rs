//! The `ihdsi` binary: see [`ihdsi_cli::command`].

fn main() -> std::process::ExitCode {
    ihdsi_cli::command::main()
}
