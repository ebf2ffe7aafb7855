//! Benchmarks live in `benches/benches/`; see RESULTS.md.
