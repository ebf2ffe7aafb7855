//! The `unchoke` command line: `info`, `create`, `download`, `seed`, `tracker`, `dht`,
//! `swarm` and `simulate`.
//!
//! Exit status: 0 on success, 1 when the input or the work failed (one line on stderr,
//! `unchoke: <what>: <why>`), 2 for a usage error (from clap).

mod cmd_create;
mod cmd_dht;
mod cmd_info;
mod cmd_simulate;
mod cmd_swarm;
mod cmd_tracker;
mod cmd_transfer;
mod give_up;
mod human;
mod output;
mod progress;
mod runtime;
mod sim_chart;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// unchoke: a BitTorrent engine. Inspect, create, download and seed torrents; run a
/// tracker, or a whole local swarm.
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
    /// Download a torrent (a .torrent file or a magnet link) from peers given, found
    /// through trackers or the DHT (exit 0 once every piece is verified).
    Download(cmd_transfer::DownloadArgs),
    /// Serve a torrent's data (checked first) until interrupted.
    Seed(cmd_transfer::SeedArgs),
    /// Run a tracker over HTTP and UDP until interrupted.
    Tracker(cmd_tracker::TrackerArgs),
    /// Run a standalone DHT node (BEP 5) until interrupted, e.g. to bootstrap a private
    /// DHT for tests or a LAN.
    Dht(cmd_dht::DhtArgs),
    /// Run a whole swarm on 127.0.0.1: a tracker, one seed and N leechers that find each
    /// other through it; verify every copy and summarise who uploaded what.
    Swarm(cmd_swarm::SwarmArgs),
    /// Simulate the distribution-time study: for each swarm size N, the P2P time the real
    /// protocol takes on a virtual network against the client-server and P2P lower bounds;
    /// writes a table, study.csv and a study.svg chart.
    Simulate(cmd_simulate::SimulateArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info(args) => cmd_info::run(&args),
        Command::Create(args) => cmd_create::run(&args),
        Command::Download(args) => cmd_transfer::download(&args),
        Command::Seed(args) => cmd_transfer::seed(&args),
        Command::Tracker(args) => cmd_tracker::run(&args),
        Command::Dht(args) => cmd_dht::run(&args),
        Command::Swarm(args) => cmd_swarm::run(&args),
        Command::Simulate(args) => cmd_simulate::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            // Escaped: the message may quote a hostile file's contents, and must stay on
            // one line.
            output::report_failure(&message);
            ExitCode::FAILURE
        }
    }
}
