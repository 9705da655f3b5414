//! Running the built `rolewatch` and reading what it prints, as a user would.

use std::process::{Command, Output};

use serde_json::Value;

pub fn rolewatch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rolewatch")).args(args).output().expect("the rolewatch binary runs")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The JSON Lines alerts on stdout; any other line fails the test.
pub fn alerts(out: &Output) -> Vec<Value> {
    stdout(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l}")))
        .collect()
}

/// A number from the stderr summary line, e.g. `summary(&out, "role assumptions")`.
pub fn summary(out: &Output, field: &str) -> u64 {
    let err = stderr(out);
    let line =
        err.lines().rev().find(|l| l.contains("role assumptions: ")).unwrap_or_else(|| panic!("no summary in: {err}"));
    let rest = line.split(&format!("{field}: ")).nth(1).unwrap_or_else(|| panic!("no {field:?} in: {line}"));
    rest.split(|c: char| !c.is_ascii_digit()).next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{line}"))
}
