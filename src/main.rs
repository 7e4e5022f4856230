//! The `toolgate` binary: parse the command line and hand over to the library.

use clap::Parser;

/// mimalloc: the gateway allocates and frees small buffers on every call;
/// glibc's allocator spent about a tenth of a call's CPU on them (README
/// "What profiling found").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = toolgate::cli::Cli::parse();
    toolgate::cli::run(cli)
}
