//! Every input form gives the alerts the same records give as CloudTrail
//! log files; a file in none of them is named with the forms that are read.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::run::{alerts, rolewatch, stderr, summary};

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/events/cloudtrail");
const FORMS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/forms");

/// The incidents found: detector and dedup key, sorted (one input's
/// alerts come in event order, many files' in file order).
fn incidents(alerts: &[Value]) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> =
        alerts.iter().map(|a| (a["detector"].to_string(), a["dedup_key"].to_string())).collect();
    found.sort();
    found
}

fn form(name: &str) -> String {
    format!("{FORMS}/{name}")
}

#[test]
fn each_form_gives_the_alerts_of_the_same_records_as_log_files() {
    let expected = incidents(&alerts(&rolewatch(&["replay", "--format", "json", SAMPLES])));
    assert_eq!(expected.len(), 4);
    let records = summary(&rolewatch(&["replay", SAMPLES]), "records");
    for name in ["lookup-events.json.gz", "athena-export.jsonl.gz", "firehose-eventbridge.jsonl.gz"] {
        let out = rolewatch(&["replay", "--format", "json", &form(name)]);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", stderr(&out));
        assert_eq!(incidents(&alerts(&out)), expected, "{name}");
        assert_eq!(summary(&out, "records"), records, "{name}: every record read");
        assert_eq!(summary(&out, "bad records"), 0, "{name}: {}", stderr(&out));
    }
}

#[test]
fn stdin_is_read_in_any_form() {
    for name in ["athena-export.jsonl.gz", "lookup-events.json.gz"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rolewatch"))
            .args(["replay", "--format", "json", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let bytes = std::fs::read(form(name)).unwrap();
        let mut stdin = child.stdin.take().unwrap();
        std::thread::spawn(move || stdin.write_all(&bytes));
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(alerts(&out).len(), 4, "{name}");
    }
}

#[test]
fn a_file_in_no_known_form_is_named_with_the_forms_read() {
    let path = form("not-cloudtrail.json");
    let out = rolewatch(&["replay", &path, SAMPLES]);
    assert_eq!(out.status.code(), Some(1), "the input could not be read");
    let err = stderr(&out);
    let line = err.lines().find(|l| l.contains("not-cloudtrail.json")).unwrap_or_else(|| panic!("{err}"));
    for named in ["Records", "lookup-events", "JSON Lines", "gzip"] {
        assert!(line.contains(named), "{named} missing from: {line}");
    }
    assert_eq!(summary(&out, "alerts"), 4, "the other inputs are still read");
}

#[test]
fn a_json_lines_line_that_is_not_json_is_one_bad_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("export.jsonl");
    let good = r#"{"eventVersion":"1.08","eventSource":"sts.amazonaws.com","eventName":"AssumeRole","eventTime":"2026-10-05T10:00:00Z","eventID":"a","recipientAccountId":"111122223333","sourceIPAddress":"192.0.2.1","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/a","accountId":"111122223333"},"requestParameters":{"roleArn":"arn:aws:iam::111122223333:role/r","roleSessionName":"s"}}"#;
    std::fs::write(&path, format!("{good}\n{{\"eventVersion\": broken\n\n{good}\n")).unwrap();
    let out = rolewatch(&["replay", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "bad records alone do not fail an input: {}", stderr(&out));
    assert_eq!(summary(&out, "records"), 3);
    assert_eq!(summary(&out, "bad records"), 1);
    assert!(stderr(&out).contains("record 1: is not a JSON object"), "{}", stderr(&out));
}
