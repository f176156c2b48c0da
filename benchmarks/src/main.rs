//! The `ihdsi-bench` binary: see [`ihdsi_benchmarks::cli`]. Its site and
//! coordinator processes are this binary, so it has the `ihdsi` binary's
//! allocator (jemalloc) too.

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    ihdsi_benchmarks::cli::main()
}
