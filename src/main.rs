//! The `toolgate` binary: parse the command line and hand over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = toolgate::cli::Cli::parse();
    toolgate::cli::run(cli)
}
