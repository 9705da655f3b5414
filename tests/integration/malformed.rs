//! The malformed-input corpus (`tests/data/malformed/`, see its README) through
//! the CLI: each bad file is replayed before a good one, and must give a
//! specific error naming the file (and record), never a crash, while the good
//! file's records, role assumptions and alerts are all still counted.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The good file replayed after each bad one: a burst and a long session.
const GOOD: &str = "cli/burst-and-long-session.json";

fn data(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(rel).display().to_string()
}

fn corpus(name: &str) -> String {
    data(&format!("malformed/{name}"))
}

/// What a run printed, with the summary numbers parsed.
struct Run {
    code: Option<i32>,
    stderr: String,
    alerts: Vec<serde_json::Value>,
}

impl Run {
    fn of(out: Output) -> Run {
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let alerts = stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l}")))
            .collect();
        Run { code: out.status.code(), stderr: String::from_utf8_lossy(&out.stderr).into_owned(), alerts }
    }

    fn summary(&self, field: &str) -> u64 {
        let line =
            self.stderr.lines().rev().find(|l| l.contains("records: ")).unwrap_or_else(|| panic!("{}", self.stderr));
        let rest = line.split(&format!(" {field}: ")).nth(1).unwrap_or_else(|| panic!("no {field} in: {line}"));
        rest.split(|c: char| !c.is_ascii_digit()).next().and_then(|n| n.parse().ok()).unwrap()
    }

    /// stderr lines about `path` (problem lines, not the summary).
    fn problems(&self, path: &str) -> Vec<&str> {
        let prefix = format!("rolewatch: {path}: ");
        self.stderr.lines().filter_map(|l| l.strip_prefix(prefix.as_str())).collect()
    }

    fn detectors(&self) -> Vec<String> {
        let mut d: Vec<String> = self.alerts.iter().map(|a| a["detector"].as_str().unwrap().to_owned()).collect();
        d.sort();
        d
    }
}

fn replay(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_rolewatch"))
        .args(["replay", "--format", "json"])
        .args(args)
        .output()
        .expect("the rolewatch binary runs");
    let run = Run::of(out);
    // A panic exits 101 and prints "panicked"; either is a crash on input.
    assert!(!run.stderr.contains("panicked"), "rolewatch crashed:\n{}", run.stderr);
    run
}

fn good_alone() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| {
        let run = replay(&[&data(GOOD)]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert!(!run.alerts.is_empty(), "the good file must raise alerts for this check to mean anything");
        run
    })
}

/// What a corpus file adds to the good file's figures.
struct Expect {
    code: i32,
    records: u64,
    role_assumptions: u64,
    bad_records: u64,
}

/// Replays `name` then the good file and checks the exit status, that the
/// good file was still processed in full, and the file's own figures.
fn check(name: &str, extra_args: &[&str], want: Expect) -> (Run, String) {
    let path = corpus(name);
    let mut args: Vec<&str> = extra_args.to_vec();
    let good = data(GOOD);
    args.extend([path.as_str(), good.as_str()]);
    let run = replay(&args);
    let base = good_alone();
    assert_eq!(run.code, Some(want.code), "{name}: exit status\n{}", run.stderr);
    assert_eq!(run.summary("files"), 2, "{name}\n{}", run.stderr);
    assert_eq!(run.summary("failed"), u64::from(want.code == 1), "{name}\n{}", run.stderr);
    assert_eq!(run.summary("records"), base.summary("records") + want.records, "{name}\n{}", run.stderr);
    assert_eq!(
        run.summary("role assumptions"),
        base.summary("role assumptions") + want.role_assumptions,
        "{name}\n{}",
        run.stderr
    );
    assert_eq!(run.summary("bad records"), want.bad_records, "{name}\n{}", run.stderr);
    // No corpus file raises alerts of its own: all of them are the good file's.
    assert_eq!(run.detectors(), base.detectors(), "{name}: the good file's alerts\n{}", run.stderr);
    assert_eq!(run.summary("alerts"), base.summary("alerts"), "{name}\n{}", run.stderr);
    (run, path)
}

/// The one line naming the unreadable file, which must carry every `reasons` part.
fn assert_file_error(run: &Run, path: &str, reasons: &[&str]) {
    let lines = run.problems(path);
    assert_eq!(lines.len(), 1, "one error line for {path}:\n{}", run.stderr);
    for reason in reasons {
        assert!(lines[0].contains(reason), "{path}: {:?} lacks {reason:?}", lines[0]);
    }
}

/// The problem lines for `path` are exactly one per `(index, reason)`, in order.
fn assert_record_errors(run: &Run, path: &str, want: &[(u64, &str)]) {
    let lines = run.problems(path);
    assert_eq!(lines.len(), want.len(), "{path}:\n{}", run.stderr);
    for (line, (index, reason)) in lines.iter().zip(want) {
        assert!(line.starts_with(&format!("record {index}: ")), "{line}");
        assert!(line.contains(reason), "record {index}: {line:?} lacks {reason:?}");
    }
}

const UNREADABLE: Expect = Expect { code: 1, records: 0, role_assumptions: 0, bad_records: 0 };

#[test]
fn truncated_gzip_is_named_as_truncated() {
    let (run, path) = check("truncated.json.gz", &[], UNREADABLE);
    assert_file_error(&run, &path, &["invalid gzip data", "truncated"]);
}

#[test]
fn truncated_plain_json_names_the_record_it_ends_in_and_keeps_what_came_before() {
    // Records 0 (a role assumption) and 1 are complete; the file ends inside record 2.
    let (run, path) = check("truncated-plain.json", &[], Expect { records: 2, role_assumptions: 1, ..UNREADABLE });
    assert_file_error(&run, &path, &["input ends inside record 2", "truncated"]);
}

#[test]
fn gz_name_over_random_bytes_is_not_a_cloudtrail_log() {
    let (run, path) = check("gz-name-random-bytes.json.gz", &[], UNREADABLE);
    assert_file_error(&run, &path, &["not a CloudTrail log"]);
}

#[test]
fn gzip_magic_over_garbage_is_invalid_gzip() {
    let (run, path) = check("gzip-header-then-garbage.json.gz", &[], UNREADABLE);
    assert_file_error(&run, &path, &["invalid gzip data", "corrupt"]);
}

#[test]
fn gz_name_over_plain_json_is_read_by_content() {
    let (run, path) =
        check("gz-name-plain-json.json.gz", &[], Expect { code: 0, records: 2, role_assumptions: 1, bad_records: 0 });
    assert_record_errors(&run, &path, &[]);
}

#[test]
fn gzip_bomb_stops_at_the_configured_cap_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cap.toml");
    std::fs::write(&config, "[input]\nmax_decompressed_bytes = 1000000\n").unwrap();
    let (run, path) = check("gzip-bomb.json.gz", &["--config", config.to_str().unwrap()], UNREADABLE);
    assert_file_error(&run, &path, &["limit of 1000000 bytes", "max_decompressed_bytes", "gzip bomb"]);
    // The file is about 50 KB; the cap counts decompressed bytes, not file bytes.
    assert!(std::fs::metadata(&path).unwrap().len() < 100_000);
}

#[test]
fn gzip_bomb_under_the_default_cap_is_only_a_large_empty_log() {
    // 50 MB decompressed is below the 4 GiB default: an honest big log of this
    // size must not fail. (A bomb past the default would take minutes to
    // inflate in a debug build; the cap itself is the same code as above.)
    let (run, path) =
        check("gzip-bomb.json.gz", &[], Expect { code: 0, records: 0, role_assumptions: 0, bad_records: 0 });
    assert_record_errors(&run, &path, &[]);
}

#[test]
fn json_that_is_not_cloudtrail_is_named() {
    let (run, path) = check("not-cloudtrail.json", &[], UNREADABLE);
    assert_file_error(&run, &path, &["not a CloudTrail log", "no \"Records\" array"]);
}

#[test]
fn records_that_is_not_an_array_is_named() {
    let (run, path) = check("records-not-array.json", &[], UNREADABLE);
    assert_file_error(&run, &path, &["not a CloudTrail log", "\"Records\" is not an array"]);
}

#[test]
fn an_empty_file_is_named() {
    let (run, path) = check("empty.json", &[], UNREADABLE);
    assert_file_error(&run, &path, &["not a CloudTrail log", "empty"]);
}

#[test]
fn a_utf8_bom_is_accepted() {
    let (run, path) = check("bom.json", &[], Expect { code: 0, records: 2, role_assumptions: 1, bad_records: 0 });
    assert_record_errors(&run, &path, &[]);
}

#[test]
fn records_that_are_not_objects_are_reported_by_index() {
    let want = [(0, "is not a JSON object"), (1, "is not a JSON object"), (2, "is not a JSON object")];
    let want = [&want[..], &[(3, "is not a JSON object"), (4, "is not a JSON object")]].concat();
    let (run, path) =
        check("record-not-object.json", &[], Expect { code: 0, records: 6, role_assumptions: 1, bad_records: 5 });
    assert_record_errors(&run, &path, &want);
}

#[test]
fn every_assume_role_field_with_the_wrong_type_is_reported_by_index() {
    // 12 bad records; the CLI prints 10 and counts the rest.
    let (run, path) =
        check("wrong-types.json", &[], Expect { code: 0, records: 13, role_assumptions: 1, bad_records: 12 });
    let lines = run.problems(&path);
    assert_eq!(lines.len(), 11, "{}", run.stderr);
    let reasons = [
        "integer `1740830400`, expected a string",             // eventTime
        "string \"arn:aws:iam::444455556666:user/corpus-01\"", // userIdentity
        "invalid type: map",                                   // requestParameters is an array of maps
        "expected a number of seconds",                        // durationSeconds
        "integer `3221225994`",                                // sourceIPAddress
        "integer `5`",                                         // eventID
        "sequence, expected a string",                         // roleArn
        "map, expected a string",                              // roleSessionName
        "sequence, expected a string",                         // userAgent
        "integer `403`",                                       // errorCode
    ];
    for (i, (line, reason)) in lines.iter().zip(reasons).enumerate() {
        assert!(line.starts_with(&format!("record {i}: malformed record: invalid type")), "{line}");
        assert!(line.contains(reason), "record {i}: {line:?} lacks {reason:?}");
    }
    assert_eq!(lines[10], "2 more bad records not shown");
}

#[test]
fn invalid_utf8_in_an_sts_record_is_reported_by_index() {
    // Record 2 (EC2) has a bad byte too, but records of other services are never parsed.
    let (run, path) =
        check("invalid-utf8.json", &[], Expect { code: 0, records: 4, role_assumptions: 2, bad_records: 1 });
    assert_record_errors(&run, &path, &[(1, "invalid unicode code point")]);
}

#[test]
fn very_long_strings_are_read_or_skipped_and_never_echoed_whole() {
    // 0: a 1 MB session name (read); 1: a 5 MB record (over the 4 MiB record
    // limit, skipped); 2: a 1 MB eventTime (bad); 3: a plain record.
    let (run, path) =
        check("long-strings.json.gz", &[], Expect { code: 0, records: 4, role_assumptions: 2, bad_records: 2 });
    assert_record_errors(&run, &path, &[(1, "is larger than 4194304 bytes; skipped"), (2, "is not a timestamp")]);
    for line in run.stderr.lines() {
        assert!(line.len() < 1000, "a stderr line of {} bytes quotes a hostile value whole", line.len());
    }
}

#[test]
fn a_file_of_nothing_but_bad_records_is_counted_in_full_and_shown_in_part() {
    // Written here rather than kept in the corpus: 200,000 records of `1`.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("all-bad.json");
    std::fs::write(&path, format!(r#"{{"Records":[{}]}}"#, vec!["1"; 200_000].join(","))).unwrap();
    let path = path.display().to_string();
    let run = replay(&[&path, &data(GOOD)]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.summary("bad records"), 200_000, "{}", run.stderr);
    assert_eq!(run.summary("alerts"), good_alone().summary("alerts"), "the good file is still read");
    let lines = run.problems(&path);
    assert_eq!(lines.len(), 11, "ten records shown, then a count:\n{}", run.stderr);
    assert_eq!(lines[10], "199990 more bad records not shown");
}

#[test]
fn deep_nesting_does_not_overflow_the_stack() {
    // 10000 levels inside an EC2 record (0), inside STS records (1, 2: extra
    // fields, read past), and as a bare array instead of a record (3).
    let (run, path) =
        check("deep-nesting.json", &[], Expect { code: 0, records: 5, role_assumptions: 3, bad_records: 1 });
    assert_record_errors(&run, &path, &[(3, "is not a JSON object")]);
}

#[test]
fn invalid_timestamps_are_reported_and_odd_addresses_are_kept() {
    // Records 0-4 have no usable eventTime; 5-9 have source addresses that are
    // not IPs, which are kept as text (not IP-checked) rather than dropped.
    let (run, path) =
        check("invalid-times-and-ips.json", &[], Expect { code: 0, records: 10, role_assumptions: 5, bad_records: 5 });
    assert_record_errors(
        &run,
        &path,
        &[
            (0, "eventTime \"2025-13-45T99:99:99Z\" is not a timestamp"),
            (1, "eventTime \"\" is not a timestamp"),
            (2, "eventTime \"yesterday\" is not a timestamp"),
            (3, "eventTime \"2025-02-29T12:00:00Z\" is not a timestamp"),
            (4, "eventTime is missing"),
        ],
    );
}

#[test]
fn the_whole_corpus_as_one_folder_fails_each_bad_file_and_reads_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cap.toml");
    // Above long-strings.json.gz (7 MB inflated), below the 50 MB bomb.
    std::fs::write(&config, "[input]\nmax_decompressed_bytes = 20000000\n").unwrap();
    let run = replay(&["--config", config.to_str().unwrap(), &corpus(""), &data(GOOD)]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    // truncated x2, random bytes, gzip garbage, bomb, not CloudTrail, Records not an array, empty.
    assert_eq!(run.summary("failed"), 8, "{}", run.stderr);
    // make_corpus.py and README.md are not log files.
    assert_eq!(run.summary("skipped"), 2, "{}", run.stderr);
    let base = good_alone();
    assert!(run.summary("alerts") > base.summary("alerts"), "hostile-strings and secrets raise alerts too");
    for detector in base.detectors() {
        assert!(run.detectors().contains(&detector), "{detector} missing:\n{}", run.stderr);
    }
}

#[test]
fn the_readme_describes_every_corpus_file() {
    let readme = std::fs::read_to_string(corpus("README.md")).unwrap();
    for entry in std::fs::read_dir(corpus("")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name != "README.md" {
            assert!(readme.contains(&format!("`{name}`")), "README.md does not describe {name}");
        }
    }
}
