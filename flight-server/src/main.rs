//! The `ihdsi` binary: see [`ihdsi_flight_server::cli`].

fn main() -> std::process::ExitCode {
    ihdsi_flight_server::cli::main()
}
