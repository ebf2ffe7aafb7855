//! Fuzz target bodies, shared by the cargo-fuzz binaries and the stable replay harness.
