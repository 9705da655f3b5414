//! rolewatch watches AWS STS role assumptions in CloudTrail and raises
//! alerts that are worth paging on.
//!
//! Data flow, the same in the Lambda and in `rolewatch replay`:
//!
//! ```text
//! input (file | S3 object)   -> cloudtrail::read_input: gzip by magic bytes, one record at a time
//!   -> AssumeRoleEvent          only STS AssumeRole*, lean and owned
//!   -> engine::Engine           detectors + cooldown + processed inputs; event time only, no I/O
//!   -> alert::Alert             rolewatch.alert.v1
//!   -> sink (stdout | SNS)      state saved only after delivery
//! ```
//!
//! Only the edges differ: the `rolewatch` command (package `rolewatch-cli`)
//! reads files and a state file; the `rolewatch-lambda` package reads S3 and
//! publishes to SNS. Neither adds detection logic.

pub mod alert;
pub mod chat;
pub mod cloudtrail;
pub mod config;
pub mod detect;
pub mod engine;
pub mod ingest;
#[cfg(any(test, feature = "test-support"))]
pub mod sample;
pub mod state;
pub mod storage;
pub mod suppress;

pub use alert::{Alert, Severity};
pub use config::Config;
pub use engine::{Applied, Engine};
pub use state::{State, StateStore};
