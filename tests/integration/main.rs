//! One integration-test binary (ripgrep style); data lives under `tests/data`.
mod chat;
mod cli;
mod forms;
mod malformed;
mod month;
mod public_data;
mod run;
mod s3;
mod safety;
mod suppress;
mod terminal;
