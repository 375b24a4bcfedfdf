//! The `sluice` command.

// Many small allocations on several threads: mimalloc measured faster than
// the system allocator on the record path (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    sluice_runtime::cli::main()
}
