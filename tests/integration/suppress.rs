//! `[[suppress]]` rules through the command: what they hold back is not
//! printed, and the run summary counts it per rule.

use std::path::Path;

use crate::run::{alerts, rolewatch, stderr, stdout, summary};

fn data(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(rel).display().to_string()
}

const RULES: &str = r#"
[[suppress]]
reason = "mallory is the red team's account this quarter"
detector = "repeated_failures"
principal = "arn:aws:iam::*:user/mallory"
source_cidr = "203.0.113.0/24"
until = "2026-12-31T23:59:59Z"

[[suppress]]
reason = "vendor scans"
caller_account = "444455556666"
"#;

#[test]
fn suppressed_alerts_are_not_printed_and_are_counted_per_rule() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rolewatch.toml");
    std::fs::write(&config, RULES).unwrap();
    let sample = data("cli/burst-and-long-session.json");
    let args = ["replay", "--config", config.to_str().unwrap(), "--format", "json", &sample];
    let out = rolewatch(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let got = alerts(&out);
    let detectors: Vec<&str> = got.iter().map(|a| a["detector"].as_str().unwrap()).collect();
    assert_eq!(detectors, ["long_session"], "the burst is suppressed, the long session is not");
    assert_eq!(summary(&out, "alerts"), 1);
    assert_eq!(summary(&out, "suppressed"), 1);
    let err = stderr(&out);
    assert!(
        err.contains("[[suppress]] rule 1 (\"mallory is the red team's account this quarter\"): 1 alerts suppressed"),
        "{err}"
    );
    assert!(err.contains("[[suppress]] rule 2 (\"vendor scans\"): 0 alerts suppressed"), "{err}");

    // In text output too, and nothing of the suppressed alert reaches stdout.
    let out = rolewatch(&["replay", "--config", config.to_str().unwrap(), &sample]);
    assert!(!stdout(&out).contains("mallory"), "{}", stdout(&out));
}

#[test]
fn a_rule_past_its_until_no_longer_suppresses() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rolewatch.toml");
    // The burst is on 2026-10-05: the rule ended the day before, in event time.
    std::fs::write(&config, "[[suppress]]\nreason = \"done\"\nuntil = \"2026-10-04T00:00:00Z\"\n").unwrap();
    let out = rolewatch(&[
        "replay",
        "--config",
        config.to_str().unwrap(),
        "--format",
        "json",
        &data("cli/burst-and-long-session.json"),
    ]);
    assert_eq!(alerts(&out).len(), 2, "{}", stderr(&out));
    assert_eq!(summary(&out, "suppressed"), 0);
}

#[test]
fn a_bad_rule_stops_the_run_and_names_rule_key_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rolewatch.toml");
    std::fs::write(
        &config,
        "[[suppress]]\nreason = \"a\"\n\n[[suppress]]\nreason = \"b\"\nsource_cidr = \"10.1.2.0/99\"\n",
    )
    .unwrap();
    let out = rolewatch(&["replay", "--config", config.to_str().unwrap(), &data("cli/burst-and-long-session.json")]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("suppress[2].source_cidr") && err.contains("10.1.2.0/99"), "{err}");
    assert!(stdout(&out).is_empty());

    std::fs::write(&config, "[[suppress]]\ndetector = \"long_session\"\n").unwrap();
    let out = rolewatch(&["check-config", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("reason"), "{}", stderr(&out));
}
