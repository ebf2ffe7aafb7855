//! The `unchoke` command line: `info`, `create`, `download` and `seed`.
//!
//! Exit status: 0 on success, 1 when the input or the work failed (one line on stderr,
//! `unchoke: <what>: <why>`), 2 for a usage error (from clap).

mod cmd_create;
mod cmd_info;
mod cmd_transfer;
mod human;
mod output;
mod progress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// unchoke: a BitTorrent engine. Inspect, create, download and seed torrents.
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
    /// Download a torrent from the peers given (exit 0 once every piece is verified).
    Download(cmd_transfer::DownloadArgs),
    /// Serve a torrent's data (checked first) until interrupted.
    Seed(cmd_transfer::SeedArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info(args) => cmd_info::run(&args),
        Command::Create(args) => cmd_create::run(&args),
        Command::Download(args) => cmd_transfer::download(&args),
        Command::Seed(args) => cmd_transfer::seed(&args),
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
