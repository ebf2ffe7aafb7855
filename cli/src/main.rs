//! The `unchoke` command line: `unchoke info` and `unchoke create`.
//!
//! Exit status: 0 on success, 1 when the input or the work failed (one line on stderr,
//! `unchoke: <what>: <why>`), 2 for a usage error (from clap).

mod cmd_create;
mod cmd_info;
mod human;
mod output;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// unchoke: a BitTorrent engine. Inspect and create torrents.
#[derive(Parser, Debug)]
#[command(
    name = "unchoke",
    version,
    max_term_width = 100,
    after_help = "Exit status: 0 on success, 1 when the input or the work failed (one line on \
                  stderr), 2 for a usage error."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show what a .torrent file or a magnet link holds.
    Info(cmd_info::InfoArgs),
    /// Make a .torrent file from a file or a directory, hashing on all cores.
    Create(cmd_create::CreateArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info(args) => cmd_info::run(&args),
        Command::Create(args) => cmd_create::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            // Escaped: the message may quote a hostile file's contents, and must stay on
            // one line.
            eprintln!("unchoke: {}", output::printable(&message));
            ExitCode::FAILURE
        }
    }
}
