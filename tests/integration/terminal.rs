//! What a replay prints besides alerts: progress (plain when stderr is
//! not a terminal, none with --quiet), the summary table or JSON, and the
//! generated completions and man page.

use std::process::{Command, Output};

use serde_json::Value;

use crate::run::{alerts, rolewatch, stderr, stdout};

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/events/cloudtrail");

/// A replay whose progress lines come after every input (interval 0).
fn replay_with_progress(extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rolewatch"))
        .args([&["replay", "--format", "json"][..], extra, &[SAMPLES]].concat())
        .env("ROLEWATCH_PROGRESS_INTERVAL_SECONDS", "0")
        .output()
        .unwrap()
}

#[test]
fn progress_is_plain_lines_on_stderr_when_it_is_not_a_terminal() {
    let out = replay_with_progress(&[]);
    let err = stderr(&out);
    let progress: Vec<&str> = err.lines().filter(|l| l.starts_with("rolewatch: progress: ")).collect();
    assert_eq!(progress.len(), 291, "one line per input at interval 0: {err}");
    assert!(progress[290].starts_with("rolewatch: progress: 291/291 inputs, "), "{}", progress[290]);
    assert!(!err.contains('\x1b') && !err.contains('\r'), "no escape codes or bar redraws: {err}");
    assert_eq!(alerts(&out).len(), 4, "stdout holds only alerts");
}

#[test]
fn quiet_silences_progress_but_not_the_summary() {
    let out = replay_with_progress(&["--quiet"]);
    let err = stderr(&out);
    assert!(!err.contains("progress"), "{err}");
    assert!(err.lines().last().unwrap_or("").starts_with("rolewatch: files: 291, "), "{err}");
}

#[test]
fn the_summary_table_counts_alerts_per_detector_and_skips_by_reason() {
    let out = rolewatch(&["replay", SAMPLES]);
    let err = stderr(&out);
    assert!(err.contains("rolewatch: unexpected_source_ip  "), "{err}");
    let row = err.lines().find(|l| l.starts_with("rolewatch: role_enumeration ")).unwrap_or_else(|| panic!("{err}"));
    assert_eq!(row.split_whitespace().nth(2), Some("1"), "raised: {row}");
    assert!(err.contains("rolewatch: inputs: read 291, failed 0, skipped 2 (digest 1, not a log name 1)"), "{err}");
}

#[test]
fn a_json_summary_is_one_object_on_stderr_and_stdout_keeps_only_alerts() {
    let out = rolewatch(&["replay", "--format", "json", "--summary-format", "json", SAMPLES]);
    let summary: Value = serde_json::from_str(stderr(&out).trim()).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
    assert_eq!(summary["schema"], "rolewatch.replay-summary.v1");
    assert_eq!(summary["inputs"], 291);
    assert_eq!(summary["alerts"], 4);
    assert_eq!(summary["skipped_by_reason"]["digest"], 1);
    let raised: u64 = summary["detectors"].as_object().unwrap().values().map(|d| d["raised"].as_u64().unwrap()).sum();
    assert_eq!(raised, 4);
    assert_eq!(alerts(&out).len(), 4);
}

#[test]
fn the_cooldown_held_count_shows_a_second_burst_held_back() {
    // The same burst in two files with different content: the second run
    // of findings falls within the cooldown of the first alert.
    let dir = tempfile::tempdir().unwrap();
    let record = |id: &str, minute: u32| {
        format!(
            r#"{{"eventVersion":"1.08","eventSource":"sts.amazonaws.com","eventName":"AssumeRole","eventTime":"2026-10-05T10:{minute:02}:00Z","eventID":"{id}","recipientAccountId":"111122223333","sourceIPAddress":"192.0.2.1","errorCode":"AccessDenied","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/m","accountId":"111122223333"}},"requestParameters":{{"roleArn":"arn:aws:iam::111122223333:role/r","roleSessionName":"s"}}}}"#
        )
    };
    for (file, base) in [("a.json", 0), ("b.json", 10)] {
        let records: Vec<String> = (0..5).map(|i| record(&format!("{file}{i}"), base + i)).collect();
        std::fs::write(dir.path().join(file), format!(r#"{{"Records":[{}]}}"#, records.join(","))).unwrap();
    }
    let out = rolewatch(&["replay", "--summary-format", "json", dir.path().to_str().unwrap()]);
    let summary: Value = serde_json::from_str(stderr(&out).trim()).unwrap();
    assert_eq!(summary["detectors"]["repeated_failures"]["raised"], 1, "{summary}");
    assert!(summary["detectors"]["repeated_failures"]["cooldown_held"].as_u64().unwrap() >= 1, "{summary}");
}

#[test]
fn completions_and_the_man_page_are_generated_from_the_cli() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = rolewatch(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let script = stdout(&out);
        assert!(script.contains("summary-format") && script.contains("check-config"), "{shell}: {script}");
    }
    let man = rolewatch(&["man"]);
    assert_eq!(man.status.code(), Some(0));
    let page = stdout(&man);
    assert!(page.starts_with(".ie") || page.contains(".TH rolewatch"), "{page}");
    for option in ["\\-\\-since", "\\-\\-state", "\\-\\-quiet", "ROLEWATCH REPLAY"] {
        assert!(page.contains(option), "{option} missing from the man page");
    }
    assert_eq!(rolewatch(&["completions", "tcsh"]).status.code(), Some(2), "an unknown shell is a usage error");
}
