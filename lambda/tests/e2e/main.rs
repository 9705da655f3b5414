//! End to end: the Lambda handler against a real `moto_server` (S3, SNS,
//! SQS), and the real runtime loop under `cargo lambda watch`.
//!
//! Needs `moto_server` and `cargo-lambda` on PATH (`make test` puts
//! `.venv/bin` first). Every test starts its own server on a free port.
//! Without the `e2e` feature the tests are listed as ignored, naming what
//! they need, so plain `cargo test` passes on a fresh clone; `make test`
//! runs them with `--features rolewatch-lambda/e2e`, and a missing tool then
//! fails them.

mod concurrency;
mod contended;
mod cross_account;
mod fault_matrix;
mod faults;
mod harness;
mod load;
mod oracle;
mod rollback;
mod runtime;
mod samples;
mod state_parts;
mod streaming;
mod synth;
