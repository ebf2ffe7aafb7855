//! Runs one fuzz target on files, on the stable toolchain, to reproduce a crash or check
//! a corpus:
//!
//! ```text
//! cargo run -p unchoke-fuzz --bin replay -- TARGET FILE...
//! ```
//!
//! A directory argument runs every file in it. Exit status 1 if any input fails an invariant
//! (the panic message and backtrace are printed as usual), 2 on a usage error.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use unchoke_fuzz::replay::run_one;
use unchoke_fuzz::targets;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let names: Vec<&str> = targets::ALL.iter().map(|(n, _)| *n).collect();
    let Some((name, files)) = args.split_first().filter(|(_, f)| !f.is_empty()) else {
        eprintln!(
            "usage: replay TARGET FILE|DIR...\ntargets: {}",
            names.join(", ")
        );
        return ExitCode::from(2);
    };
    let Some(target) = targets::by_name(name) else {
        eprintln!("unknown target {name:?}; targets: {}", names.join(", "));
        return ExitCode::from(2);
    };
    let mut paths: Vec<PathBuf> = Vec::new();
    for f in files {
        let p = Path::new(f);
        if p.is_dir() {
            match std::fs::read_dir(p) {
                Ok(entries) => {
                    let mut inner: Vec<PathBuf> = entries
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.is_file())
                        .collect();
                    inner.sort();
                    paths.extend(inner);
                }
                Err(e) => {
                    eprintln!("{}: {e}", p.display());
                    return ExitCode::from(2);
                }
            }
        } else {
            paths.push(p.to_path_buf());
        }
    }
    let mut failed = 0usize;
    for path in &paths {
        let data = match std::fs::read(path) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                return ExitCode::from(2);
            }
        };
        match run_one(target, &data) {
            Ok(()) => println!("ok      {} ({} bytes)", path.display(), data.len()),
            Err(message) => {
                failed += 1;
                println!(
                    "FAILED  {} ({} bytes): {message}",
                    path.display(),
                    data.len()
                );
            }
        }
    }
    println!("{} passed, {failed} failed", paths.len() - failed);
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
