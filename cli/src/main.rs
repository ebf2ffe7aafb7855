//! The `unchoke` command line: `info`, `create`, `download`, `seed`, `tracker`, `dht`,
//! `swarm`, `simulate`, `daemon`, and `completions` and `man` for the shell and the manual.
//!
//! Exit status (see [`error`] and [`signals`]): 0 done, 1 the input or the work failed (one
//! line on stderr, `unchoke: <message>`), 2 a usage error, 130 stopped by SIGINT, 143 by
//! SIGTERM.

/// The exit-status table (a macro, so `concat!` can put it in each command's `after_help`).
macro_rules! exit_status {
    () => {
        "Exit status:
  0    done (download: every piece verified)
  1    failure: the input or the work failed (one line on stderr: `unchoke: <message>`)
  2    usage error: an option or argument is wrong (also those the command checks itself)
  130  stopped by SIGINT (Ctrl-C) after saving what was verified; a second Ctrl-C exits at once
  143  stopped by SIGTERM, likewise"
    };
}

mod cmd_create;
mod cmd_daemon;
mod cmd_dht;
mod cmd_info;
mod cmd_simulate;
mod cmd_swarm;
mod cmd_tracker;
mod cmd_transfer;
mod error;
mod give_up;
mod human;
mod output;
mod progress;
mod runtime;
mod signals;
mod sim_chart;
mod torrent_file;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::error::{CliError, Kind};

/// unchoke: a BitTorrent engine. Inspect, create, download and seed torrents; run a
/// tracker, or a whole local swarm.
#[derive(Parser, Debug)]
#[command(
    name = "unchoke",
    version,
    max_term_width = 100,
    after_help = concat!(
        exit_status!(),
        "

Shell completions: `unchoke completions bash|zsh|fish`; manual page: `unchoke man`.

Examples:
  unchoke create ~/photos -o photos.torrent -t udp://tracker.example:6969
  unchoke download photos.torrent -o ~/Downloads
  unchoke seed photos.torrent ~"
    )
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show what a .torrent file or a magnet link holds.
    #[command(
        after_help = "Exit status: 0 shown; 1 not a readable .torrent file or magnet link; 2 usage error.

Examples:
  unchoke info photos.torrent
  unchoke info --json photos.torrent | jq .files
  unchoke info 'magnet:?xt=urn:btih:...'"
    )]
    Info(cmd_info::InfoArgs),
    /// Make a .torrent file from a file or a directory, hashing on all cores.
    #[command(
        after_help = "Exit status: 0 written; 1 failure (nothing is written); 2 usage error.

Examples:
  unchoke create ~/photos -o photos.torrent
  unchoke create big.iso -o big.torrent -t udp://tracker.example:6969 --piece-length 4M
  unchoke create dir -o dir.torrent --private --no-date --hybrid    # v1 and v2 (BEP 52)"
    )]
    Create(cmd_create::CreateArgs),
    /// Download a torrent (a .torrent file or a magnet link) from peers given, found
    /// through trackers or the DHT (exit 0 once every piece is verified).
    #[command(after_help = concat!(
        "Ctrl-C stops cleanly: what was verified is kept (resume data in DIR/.unchoke/), and \
         the same command resumes from there.

",
        exit_status!(),
        "

Examples:
  unchoke download photos.torrent                  (into the current directory)
  unchoke download photos.torrent -o ~/Downloads --peer 192.0.2.7:6881
  unchoke download 'magnet:?xt=urn:btih:...' -o ~/Downloads --dht-bootstrap router.example:6881"
    ))]
    Download(cmd_transfer::DownloadArgs),
    /// Serve a torrent's data (checked first) until interrupted.
    #[command(after_help = concat!(
        "Seeding only reads: the files in DIR are never created, extended or changed.

",
        exit_status!(),
        "

Examples:
  unchoke seed photos.torrent ~/Downloads          (the -o DIR the download used)
  unchoke seed photos.torrent ~/Downloads --tracker udp://tracker.example:6969
  unchoke seed photos.torrent ~/Downloads --partial --listen 0.0.0.0:51413"
    ))]
    Seed(cmd_transfer::SeedArgs),
    /// Run a tracker over HTTP and UDP until interrupted.
    #[command(
        after_help = "Exit status: 130 after Ctrl-C, 143 after SIGTERM; 1 failure; 2 usage error.

Examples:
  unchoke tracker                                  (HTTP and UDP on 127.0.0.1:6969)
  unchoke tracker --http 0.0.0.0:8080 --udp 0.0.0.0:6969
  unchoke tracker --whitelist hashes.txt --json"
    )]
    Tracker(cmd_tracker::TrackerArgs),
    /// Run a standalone DHT node (BEP 5) until interrupted, e.g. to bootstrap a private
    /// DHT for tests or a LAN.
    #[command(
        after_help = "Exit status: 130 after Ctrl-C, 143 after SIGTERM; 1 failure; 2 usage error.

Examples:
  unchoke dht --listen 127.0.0.1:7000
  unchoke dht --bootstrap 127.0.0.1:7000 --nodes-file dht.nodes
  unchoke dht --listen 0.0.0.0:6881 --json --report-every 60"
    )]
    Dht(cmd_dht::DhtArgs),
    /// Run a whole swarm on 127.0.0.1: a tracker, one seed and N leechers that find each
    /// other through it; verify every copy and summarise who uploaded what.
    #[command(
        after_help = "Exit status: 0 every copy verified; 1 failure; 2 usage error; 130/143 stopped by a signal.

Examples:
  unchoke swarm
  unchoke swarm --leechers 20 --size 1G --runtime smol
  unchoke swarm --size 64MiB --dir /tmp/swarm --json"
    )]
    Swarm(cmd_swarm::SwarmArgs),
    /// Simulate the distribution-time study: for each swarm size N, the P2P time the real
    /// protocol takes on a virtual network against the client-server and P2P lower bounds;
    /// writes a table, study.csv and a study.svg chart.
    Simulate(cmd_simulate::SimulateArgs),
    /// Run many torrents in one process, driven over Transmission's RPC (so
    /// `transmission-remote` and tools that speak it work) until interrupted.
    #[command(
        after_help = "Drive it with transmission-remote (Debian's transmission-cli) or any tool that \
speaks Transmission's RPC: `transmission-remote 127.0.0.1:9091 -a photos.torrent`, then -l, \
-t ID -S / -s, -d / -u (kB/s), -t ID --remove-and-delete. Or open the web UI in a browser: \
http://127.0.0.1:9091/.

Exit status: 130 after Ctrl-C, 143 after SIGTERM; 1 failure; 2 usage error.

Examples:
  unchoke daemon --download-dir ~/Downloads
  unchoke daemon --download-dir ~/Downloads --watch-dir ~/watch --runtime smol
  unchoke daemon --config /etc/unchoke/daemon.toml    (TOML, keys as the flags; credentials there or in $UNCHOKE_RPC_AUTH)"
    )]
    Daemon(cmd_daemon::DaemonArgs),
    /// Print a shell completion script to stdout.
    #[command(after_help = "Examples:
  unchoke completions bash > ~/.local/share/bash-completion/completions/unchoke
  unchoke completions zsh > ~/.zfunc/_unchoke
  unchoke completions fish > ~/.config/fish/completions/unchoke.fish")]
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: CompletionShell,
    },
    /// Print the manual page (roff) to stdout.
    #[command(after_help = "Examples:
  unchoke man | man -l -
  unchoke man > ~/.local/share/man/man1/unchoke.1")]
    Man,
}

/// The shells `unchoke completions` writes for.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum CompletionShell {
    /// GNU bash.
    Bash,
    /// Z shell.
    Zsh,
    /// The friendly interactive shell.
    Fish,
}

impl Command {
    /// Whether the user asked for errors' internals (`--verbose`, where a command has it).
    fn verbose(&self) -> bool {
        match self {
            Command::Info(a) => a.verbose(),
            Command::Download(a) => a.verbose(),
            Command::Seed(a) => a.verbose(),
            _ => false,
        }
    }
}

/// mimalloc rather than the system's allocator: the simulator allocates and frees small
/// buffers per message across thousands of sessions, and glibc's allocator was about a
/// tenth of its time (`benches/RESULTS.md`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let verbose = cli.command.verbose();
    let result = run(cli.command);
    // A command stopped by a signal ends with the signal's status, whatever it returned:
    // it stopped because it was asked to, not because it failed (a usage error was found
    // before any work, so it stays one).
    let signal = signals::received();
    let code = match (&result, signal) {
        (Err(e), _) if e.kind == Kind::Usage => e.exit_code(),
        (_, Some(s)) => s.exit_code(),
        (Ok(()), None) => 0,
        (Err(e), None) => e.exit_code(),
    };
    if let Err(e) = &result {
        // Escaped there: the message may quote a hostile file's contents, and must stay
        // on one line. With --json it also ends the stream as an `error` event (or
        // `interrupted`, when a signal stopped the run).
        let stopped_by = signal.filter(|s| code == s.exit_code());
        output::report_failure(&e.render(verbose), code, stopped_by.map(|s| s.name()));
    }
    ExitCode::from(code)
}

fn run(command: Command) -> Result<(), CliError> {
    match command {
        Command::Info(args) => cmd_info::run(&args),
        Command::Create(args) => Ok(cmd_create::run(&args)?),
        Command::Download(args) => cmd_transfer::download(&args),
        Command::Seed(args) => cmd_transfer::seed(&args),
        Command::Tracker(args) => Ok(cmd_tracker::run(&args)?),
        Command::Dht(args) => cmd_dht::run(&args),
        Command::Swarm(args) => Ok(cmd_swarm::run(&args)?),
        Command::Simulate(args) => Ok(cmd_simulate::run(&args)?),
        Command::Daemon(args) => cmd_daemon::run(&args),
        Command::Completions { shell } => {
            let shell = match shell {
                CompletionShell::Bash => clap_complete::Shell::Bash,
                CompletionShell::Zsh => clap_complete::Shell::Zsh,
                CompletionShell::Fish => clap_complete::Shell::Fish,
            };
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "unchoke", &mut buf);
            Ok(output::print(&String::from_utf8_lossy(&buf))?)
        }
        Command::Man => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut buf)
                .map_err(|e| format!("cannot write the manual page: {e}"))?;
            Ok(output::print(&String::from_utf8_lossy(&buf))?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exit_status_table_is_in_the_top_level_help() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains(exit_status!()), "{help}");
        Cli::command().debug_assert();
    }
}
