//! The `ihdsi` binary: see [`ihdsi_cli::command`].
//!
//! jemalloc is its allocator: under many concurrent queries and logins,
//! glibc's malloc kept hundreds of MiB of freed memory in per-thread arenas
//! (its mmap threshold grows to the largest block freed, so argon2's and
//! DataFusion's large buffers stayed in the heap); see docs/operations.md.

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    ihdsi_cli::command::main()
}
