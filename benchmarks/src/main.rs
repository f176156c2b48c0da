//! The `ihdsi-bench` binary: see [`ihdsi_benchmarks::cli`].

fn main() -> std::process::ExitCode {
    ihdsi_benchmarks::cli::main()
}
