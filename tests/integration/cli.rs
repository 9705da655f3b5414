//! The `rolewatch` command as a user meets it: exit statuses, the
//! stdout/stderr split, state across runs, skipped and broken inputs.

use std::path::{Path, PathBuf};

use crate::run::{alerts, rolewatch, stderr, stdout, summary};
use serde_json::Value;

fn data(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(rel).display().to_string()
}

/// Failures of one principal as a CloudTrail file, `n` of them from `start` (seconds into 2026-10-05 10:00).
fn failures_file(dir: &Path, name: &str, first_id: usize, n: usize, start: u32) -> PathBuf {
    let records: Vec<Value> = (0..n)
        .map(|i| {
            let t = start + i as u32 * 20;
            serde_json::json!({
                "eventSource": "sts.amazonaws.com", "eventName": "AssumeRole",
                "eventTime": format!("2026-10-05T10:{:02}:{:02}Z", t / 60, t % 60),
                "eventID": format!("fail-{}", first_id + i), "errorCode": "AccessDenied", "requestParameters": null,
                "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/mallory", "accountId": "111122223333"},
                "sourceIPAddress": "198.51.100.7", "recipientAccountId": "111122223333"
            })
        })
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec(&serde_json::json!({ "Records": records })).unwrap()).unwrap();
    path
}

#[test]
fn json_output_matches_the_expected_alerts() {
    let out = rolewatch(&["replay", "--format", "json", &data("cli/burst-and-long-session.json")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let expected: Vec<Value> = std::fs::read_to_string(data("cli/burst-and-long-session.expected.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got = alerts(&out);
    assert_eq!(got.len(), expected.len(), "{}", stdout(&out));
    for (got, want) in got.iter().zip(&expected) {
        for (key, value) in want.as_object().unwrap() {
            assert_eq!(&got[key], value, "field {key} of {got}");
        }
        assert_eq!(got["schema"], "rolewatch.alert.v1");
        assert!(got["title"].as_str().unwrap().len() <= 100);
        assert!(got["details"].is_object());
    }
    assert_eq!(summary(&out, "role assumptions"), 7);
    assert_eq!(summary(&out, "alerts"), 2);
}

#[test]
fn text_output_is_for_people_and_the_summary_goes_to_stderr() {
    let out = rolewatch(&["replay", &data("cli/burst-and-long-session.json")]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(text.contains("HIGH") && text.contains("repeated_failures") && text.contains("long_session"), "{text}");
    assert!(!text.contains("records: "), "the summary belongs on stderr: {text}");
    assert!(stderr(&out).contains("role assumptions: 7"));
}

#[test]
fn a_missing_or_broken_input_exits_1_and_the_others_are_still_processed() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.json.gz");
    std::fs::write(&broken, [0x1f, 0x8b, 0x08, 0x00, 0x00]).unwrap();
    let good = data("cli/burst-and-long-session.json");
    let missing = dir.path().join("nope.json");
    let out = rolewatch(&["replay", "--format", "json", broken.to_str().unwrap(), &good, missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("broken.json.gz") && err.contains("gzip"), "{err}");
    assert!(err.contains("nope.json") && err.contains("no such file"), "{err}");
    assert_eq!(alerts(&out).len(), 2, "the good file's alerts still arrive");
    assert_eq!(summary(&out, "failed"), 2);
}

#[test]
fn configuration_errors_exit_2_before_anything_is_processed() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[unexpected_source_ip]\nallowed_cidrs = [\"10.0.0.0/40\"]\n").unwrap();
    let out = rolewatch(&["replay", "--config", config.to_str().unwrap(), &data("cli/burst-and-long-session.json")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stdout(&out).is_empty(), "nothing is processed");
    let err = stderr(&out);
    assert!(err.contains("allowed_cidrs") && err.contains("10.0.0.0/40"), "{err}");

    std::fs::write(&config, "[repeated_failures]\nthreshold = -3\n").unwrap();
    let out = rolewatch(&["check-config", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("threshold") && stderr(&out).contains("-3"), "{}", stderr(&out));

    std::fs::write(&config, "[alerts]\ncooldown_secs = 5\n").unwrap();
    let out = rolewatch(&["check-config", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cooldown_secs"), "{}", stderr(&out));

    assert_eq!(rolewatch(&["replay", "--format", "xml", "x.json"]).status.code(), Some(2));
    assert_eq!(rolewatch(&["replay"]).status.code(), Some(2));
}

#[test]
fn check_config_accepts_a_good_file_and_shows_the_settings() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("good.toml");
    std::fs::write(
        &config,
        "[repeated_failures]\nthreshold = 3\n[unexpected_source_ip]\nallowed_cidrs = [\"10.0.0.0/8\"]\n",
    )
    .unwrap();
    let out = rolewatch(&["check-config", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("threshold = 3") && stdout(&out).contains("window_seconds = 600"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_tuned_threshold_changes_what_fires() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("t.toml");
    std::fs::write(&config, "[repeated_failures]\nthreshold = 7\n").unwrap();
    let out = rolewatch(&[
        "replay",
        "--format",
        "json",
        "--config",
        config.to_str().unwrap(),
        &data("cli/burst-and-long-session.json"),
    ]);
    let detectors: Vec<String> = alerts(&out).iter().map(|a| a["detector"].as_str().unwrap().to_owned()).collect();
    assert_eq!(detectors, ["long_session"], "six failures are below a threshold of seven");
}

#[test]
fn replaying_the_same_file_with_the_same_state_never_alerts_twice() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let file = data("cli/burst-and-long-session.json");
    let first = rolewatch(&["replay", "--format", "json", "--state", state.to_str().unwrap(), &file]);
    assert_eq!(alerts(&first).len(), 2);
    let second = rolewatch(&["replay", "--format", "json", "--state", state.to_str().unwrap(), &file]);
    assert_eq!(second.status.code(), Some(0));
    assert!(alerts(&second).is_empty(), "{}", stdout(&second));
    assert_eq!(summary(&second, "skipped"), 1);
    // A copy under another name is the same file.
    let copy = dir.path().join("copy.json");
    std::fs::copy(&file, &copy).unwrap();
    let third = rolewatch(&["replay", "--format", "json", "--state", state.to_str().unwrap(), copy.to_str().unwrap()]);
    assert!(alerts(&third).is_empty());
}

#[test]
fn consecutive_runs_with_state_behave_like_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    // Three failures now, three more in the next delivery: one burst.
    let a = failures_file(dir.path(), "a.json", 0, 3, 0);
    let b = failures_file(dir.path(), "b.json", 3, 3, 60);
    let first = rolewatch(&["replay", "--format", "json", "--state", state.to_str().unwrap(), a.to_str().unwrap()]);
    assert!(alerts(&first).is_empty());
    let second = rolewatch(&["replay", "--format", "json", "--state", state.to_str().unwrap(), b.to_str().unwrap()]);
    let got = alerts(&second);
    assert_eq!(got.len(), 1, "{}", stdout(&second));
    assert_eq!(got[0]["event_count"], 6);
    // Without --state each run stands alone.
    let alone = rolewatch(&["replay", "--format", "json", b.to_str().unwrap()]);
    assert!(alerts(&alone).is_empty());
}

#[test]
fn late_files_land_in_their_window_whatever_the_order() {
    let dir = tempfile::tempdir().unwrap();
    // File names sort the late delivery first.
    failures_file(dir.path(), "1-later.json", 3, 3, 120);
    failures_file(dir.path(), "2-earlier.json", 0, 2, 0);
    let out = rolewatch(&["replay", "--format", "json", dir.path().to_str().unwrap()]);
    let got = alerts(&out);
    assert_eq!(got.len(), 1, "{}", stdout(&out));
    assert_eq!(got[0]["first_event_time"], "2026-10-05T10:00:00Z");
    assert_eq!(got[0]["event_count"], 5);
}

#[test]
fn folders_skip_digests_and_other_files_and_count_them() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("AWSLogs/111122223333/CloudTrail/us-east-1/2026/10/05");
    let digests = dir.path().join("AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/10/05");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::create_dir_all(&digests).unwrap();
    failures_file(&logs, "111122223333_CloudTrail_us-east-1_20261005T1000Z_a.json", 0, 5, 0);
    std::fs::write(digests.join("111122223333_CloudTrail-Digest_us-east-1_x_20261005T1000Z.json.gz"), b"\x1f\x8b junk")
        .unwrap();
    std::fs::write(logs.join("notes.txt"), b"not a log").unwrap();
    let out = rolewatch(&["replay", "--format", "json", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(alerts(&out).len(), 1);
    assert_eq!(summary(&out, "files"), 1);
    assert_eq!(summary(&out, "skipped"), 2);
}

#[test]
fn the_bundled_samples_show_every_detector() {
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("events/cloudtrail");
    let out = rolewatch(&["replay", "--format", "json", samples.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut detectors: Vec<String> = alerts(&out).iter().map(|a| a["detector"].as_str().unwrap().to_owned()).collect();
    detectors.sort();
    detectors.dedup();
    // legacy-build's burst guesses five roles: role_enumeration, which keeps repeated_failures quiet.
    assert_eq!(detectors, ["long_session", "role_enumeration", "unexpected_source_ip"], "{}", stdout(&out));
    assert!(summary(&out, "skipped") >= 1, "the sample digest is skipped");
}

#[test]
fn a_state_file_of_a_newer_release_is_refused_and_kept_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let newer = br#"{"format":4,"watermark":1}"#.to_vec();
    std::fs::write(&state, &newer).unwrap();
    let out = rolewatch(&["replay", "--state", state.to_str().unwrap(), &data("cli/burst-and-long-session.json")]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("newer rolewatch (format 4)") && err.contains("run the rolewatch release that wrote it"),
        "{err}"
    );
    assert!(!err.contains("move the file aside"), "{err}");
    assert_eq!(std::fs::read(&state).unwrap(), newer, "the file is kept as it was");
}

/// A CloudTrail file of an account without role assumptions still shows
/// that account's logs are read: a role owner's copy of a call it made is
/// then not counted, and it is no outsider.
#[test]
fn an_account_whose_log_file_holds_no_role_assumptions_is_still_read() {
    use rolewatch::sample;
    let (caller, owner) = ("111111111111", "222222222222");
    let dir = tempfile::tempdir().expect("a temporary folder");
    let write = |name: &str, records: &[Value]| {
        std::fs::write(dir.path().join(name), sample::log_json(records)).expect("write a log file");
    };
    // Path order: the caller's file (no role assumptions) first, then the owner's.
    write(
        "111111111111_CloudTrail_us-east-1_20261005T1100Z_b.json",
        &[sample::other_call(caller, "b1", "2026-10-05T11:00:00Z")],
    );
    write(
        "222222222222_CloudTrail_us-east-1_20261005T1000Z_a.json",
        &[sample::granted_assume_role(owner, "deployer", "a1", "2026-10-05T10:00:00Z")],
    );
    // Past the discovery hour: the owner's copy of a call by the caller's account.
    let mut call = sample::granted_assume_role(owner, "deployer", "a2", "2026-10-05T13:00:00Z");
    call["userIdentity"] =
        serde_json::json!({"type": "AWSAccount", "principalId": "AIDAEXAMPLEUSERID0001", "accountId": caller});
    call["sharedEventID"] = serde_json::json!("7c0e4b1a-0000-4000-8000-000000000002");
    write("222222222222_CloudTrail_us-east-1_20261005T1300Z_c.json", &[call]);

    let out = rolewatch(&["replay", "--format", "json", &dir.path().display().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let detectors: Vec<String> = alerts(&out).iter().map(|a| a["detector"].as_str().unwrap_or("").to_owned()).collect();
    assert!(detectors.is_empty(), "the caller's account is read, so its call is no outsider's: {detectors:?}");
}
