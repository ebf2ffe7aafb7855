//! Running targets on the stable toolchain: over the committed corpus, over generated
//! inputs, or over files named on a command line.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use crate::inputs;
use crate::targets::Target;

/// Generated inputs per target when `UNCHOKE_FUZZ_ITERS` is not set: enough to exercise
/// every target's mutations and grammar while the whole replay stays well under 20 s in a
/// debug build on two cores (about 7 s for the four targets when measured).
pub const DEFAULT_ITERS: usize = 100_000;

/// The fixed seed of the replay's generator (the seed of target `i` is this plus `i`).
pub const SEED: u64 = 0x756e_63686f6b65; // "unchoke"

/// How many generated inputs to run per target: `UNCHOKE_FUZZ_ITERS` if set to a number,
/// else [`DEFAULT_ITERS`].
pub fn iterations() -> usize {
    std::env::var("UNCHOKE_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_ITERS)
}

/// The committed seed corpus directory of `target` (`fuzz/corpus/<target>`).
pub fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target)
}

/// Every file of `target`'s committed corpus, sorted by name so replays are reproducible.
/// A missing directory is an empty corpus.
pub fn load_corpus(target: &str) -> std::io::Result<Vec<(PathBuf, Vec<u8>)>> {
    let dir = corpus_dir(target);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.is_file() {
            let data = std::fs::read(&path)?;
            files.push((path, data));
        }
    }
    files.sort();
    Ok(files)
}

/// Runs `target` on `input`, turning a panic into `Err(message)`.
pub fn run_one(target: Target, input: &[u8]) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(|| target(input))).map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic with a non-text payload".to_string())
    })
}

/// A failed invariant: which input, and the panic message.
#[derive(Debug)]
pub struct Finding {
    /// Where the input came from: a corpus file or `generated #N`.
    pub origin: String,
    /// The input itself.
    pub input: Vec<u8>,
    /// The panic message.
    pub message: String,
}

/// What one replay did.
#[derive(Debug, Default)]
pub struct Summary {
    /// Corpus files run.
    pub corpus: usize,
    /// Generated inputs run.
    pub generated: usize,
    /// Failed invariants (the replay stops at the first one).
    pub findings: Vec<Finding>,
}

/// Runs `target` on its whole corpus, then on `iters` inputs generated from `seed`
/// (random bytes, grammar-shaped inputs and corpus mutations). Stops at the first finding.
pub fn replay(name: &str, target: Target, seed: u64, iters: usize) -> std::io::Result<Summary> {
    let corpus = load_corpus(name)?;
    let mut summary = Summary::default();
    for (path, data) in &corpus {
        summary.corpus += 1;
        if let Err(message) = run_one(target, data) {
            summary.findings.push(Finding {
                origin: path.display().to_string(),
                input: data.clone(),
                message,
            });
            return Ok(summary);
        }
    }
    let bodies: Vec<Vec<u8>> = corpus.into_iter().map(|(_, d)| d).collect();
    let mut rng = fastrand::Rng::with_seed(seed);
    for i in 0..iters {
        let input = inputs::generate(name, &mut rng, &bodies, i);
        summary.generated += 1;
        if let Err(message) = run_one(target, &input) {
            summary.findings.push(Finding {
                origin: format!("generated #{i} (seed {seed:#x})"),
                input,
                message,
            });
            return Ok(summary);
        }
    }
    Ok(summary)
}
