//! One integration-test binary (ripgrep style); data lives under `tests/data`.
mod cli;
mod month;
mod public_data;
