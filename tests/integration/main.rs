//! One integration-test binary (ripgrep style); data lives under `tests/data`.
mod cli;
mod malformed;
mod month;
mod public_data;
mod run;
mod safety;
mod suppress;
