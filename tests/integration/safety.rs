//! Hostile input end to end: property tests over the reader and the engine,
//! attacker-controlled strings in every output, and secrets that must never
//! leave (`tests/data/malformed/hostile-strings.json.gz`, `secrets.json`).

use std::io::{Read, Write};
use std::path::Path;
use std::process::Output;
use std::sync::OnceLock;

use crate::run::rolewatch;
use proptest::prelude::*;
use rolewatch::alert::{clean_text, Alert};
use rolewatch::cloudtrail::{read_input, InputEvents, InputLimits, ReadFailure, ASSUME_ROLE_FAMILY};
use rolewatch::engine::{Applied, Engine};
use rolewatch::sample::ByteAtATime;
use rolewatch::{Config, State};
use serde_json::{json, Value};

fn data(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(rel)
}

fn gunzip_if_needed(bytes: Vec<u8>) -> Vec<u8> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return bytes;
    }
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(&bytes[..]).read_to_end(&mut out).unwrap();
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn is_family(record: &Value) -> bool {
    record["eventSource"] == "sts.amazonaws.com"
        && record["eventName"].as_str().is_some_and(|n| ASSUME_ROLE_FAMILY.contains(&n))
}

/// Real records to mutate: every role assumption in the public data and the
/// hand-written fixtures, and some records of other services.
fn real_records() -> &'static (Vec<Value>, Vec<Value>) {
    static POOL: OnceLock<(Vec<Value>, Vec<Value>)> = OnceLock::new();
    POOL.get_or_init(|| {
        let (mut family, mut other) = (Vec::new(), Vec::new());
        for dir in ["public", "fixtures"] {
            let mut paths: Vec<_> = std::fs::read_dir(data(dir)).unwrap().map(|e| e.unwrap().path()).collect();
            paths.sort();
            for path in paths.iter().filter(|p| p.to_string_lossy().contains(".json")) {
                let file: Value = serde_json::from_slice(&gunzip_if_needed(std::fs::read(path).unwrap())).unwrap();
                let Some(records) = file.get("Records").and_then(Value::as_array) else { continue };
                for record in records {
                    if is_family(record) {
                        family.push(record.clone());
                    } else if other.len() < 64 {
                        other.push(record.clone());
                    }
                }
            }
        }
        assert!(family.len() >= 30 && other.len() >= 30, "{} family, {} other records", family.len(), family.len());
        (family, other)
    })
}

/// What a read came to, comparable across readers.
fn outcome(result: &Result<InputEvents, ReadFailure>) -> (u64, Vec<String>, Vec<String>, Option<String>) {
    let (read, error) = match result {
        Ok(read) => (read, None),
        Err(failure) => (&failure.partial, Some(failure.error.to_string())),
    };
    let ids = read.events.iter().map(|e| e.event_id.clone()).collect();
    (read.records, ids, read.bad_records.iter().map(ToString::to_string).collect(), error)
}

/// Every record is counted once, as a role assumption, a bad record, or
/// another service's record; bad records come in order, inside the input.
fn assert_accounted(read: &InputEvents) {
    let indexes: Vec<u64> = read.bad_records.iter().map(|e| e.index).collect();
    assert!(indexes.windows(2).all(|w| w[0] < w[1]), "bad record indexes out of order: {indexes:?}");
    assert!(indexes.last().is_none_or(|&i| i < read.records), "{indexes:?} past {} records", read.records);
    assert!(read.events.len() as u64 + indexes.len() as u64 <= read.records);
}

/// Runs the events through a fresh engine: no panic, alerts stay clean and
/// only cite events that were read, and a redelivery raises nothing.
fn assert_engine_safe(read: &InputEvents) {
    let mut engine = Engine::new(&Config::default(), State::default());
    let Applied::Processed { alerts } = engine.apply("input", &read.events) else { panic!("first delivery skipped") };
    let ids: Vec<String> = read.events.iter().map(|e| clean_text(&e.event_id, 128)).collect();
    for alert in &alerts {
        assert_clean_alert(&serde_json::to_value(alert).unwrap());
        assert!(alert.event_ids.iter().all(|id| ids.contains(id)), "{:?} cites unread events", alert.event_ids);
    }
    assert_eq!(engine.apply("input", &read.events), Applied::AlreadyProcessed);
    let state = engine.into_state();
    assert_eq!(State::from_bytes(state.to_bytes()).unwrap(), state, "state survives a save");
}

fn check_bytes(bytes: &[u8]) {
    let whole = read_input(bytes, &InputLimits::default());
    let read = match &whole {
        Ok(read) => read,
        Err(failure) => &failure.partial,
    };
    assert_accounted(read);
    assert_engine_safe(read);
    assert_eq!(outcome(&read_input(ByteAtATime(bytes), &InputLimits::default())), outcome(&whole), "byte at a time");
}

/// Found by the byte-edit property: a first read shorter than the gzip magic
/// or the byte order mark once made a gzip or BOM file unreadable.
#[test]
fn one_byte_reads_still_find_gzip_and_a_byte_order_mark() {
    let log = std::fs::read(data("malformed/bom.json")).unwrap();
    let plain = &log[3..];
    for bytes in [log.clone(), gzip(plain), gzip(&log)] {
        let whole = read_input(&bytes[..], &InputLimits::default());
        let one = read_input(ByteAtATime(&bytes), &InputLimits::default());
        let (records, events, bad, error) = outcome(&one);
        assert_eq!((records, events.len(), bad.len(), error), (2, 1, 0, None));
        assert_eq!(outcome(&one), outcome(&whole));
    }
}

/// JSON values of every type, with the strings an attacker or a broken
/// pipeline would write, and timestamps around the valid range.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1e15f64..1e15).prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
        "[0-9a-fA-F:./ ]{0,40}".prop_map(Value::from),
        (
            0u32..=10000,
            0u32..=13,
            0u32..=32,
            0u32..=25,
            0u32..=61,
            0u32..=61,
            "|Z|z|\\.[0-9]{1,9}Z|[+-][0-9]{2}:?[0-9]{2}"
        )
            .prop_map(|(y, mo, d, h, mi, s, tail)| Value::from(format!(
                "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{tail}"
            ))),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-zA-Z]{1,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every field an AssumeRole record is read by (eventSource and eventName
/// are left alone so that which records are role assumptions stays known).
const FIELDS: [&[&str]; 18] = [
    &["eventTime"],
    &["eventID"],
    &["awsRegion"],
    &["sourceIPAddress"],
    &["userAgent"],
    &["errorCode"],
    &["errorMessage"],
    &["recipientAccountId"],
    &["userIdentity"],
    &["userIdentity", "type"],
    &["userIdentity", "arn"],
    &["userIdentity", "principalId"],
    &["userIdentity", "sessionContext", "attributes", "mfaAuthenticated"],
    &["requestParameters"],
    &["requestParameters", "roleArn"],
    &["requestParameters", "roleSessionName"],
    &["requestParameters", "durationSeconds"],
    &["requestParameters", "externalId"],
];

#[derive(Debug, Clone)]
enum Mutation {
    Set(usize, Value),
    Remove(usize),
}

fn mutate(record: &mut Value, mutation: &Mutation) {
    let (path, value) = match mutation {
        Mutation::Set(f, v) => (FIELDS[*f], Some(v.clone())),
        Mutation::Remove(f) => (FIELDS[*f], None),
    };
    let mut node = record;
    for key in &path[..path.len() - 1] {
        if !node[*key].is_object() {
            node[*key] = json!({});
        }
        node = &mut node[*key];
    }
    let map = node.as_object_mut().unwrap();
    match value {
        Some(v) => map.insert(path[path.len() - 1].to_owned(), v),
        None => map.remove(path[path.len() - 1]),
    };
}

/// A log of real records, each possibly given wrong-typed or odd fields.
fn mutated_log() -> impl Strategy<Value = Vec<Value>> {
    let mutation = prop_oneof![
        3 => (0..FIELDS.len(), any_json()).prop_map(|(f, v)| Mutation::Set(f, v)),
        1 => (0..FIELDS.len()).prop_map(Mutation::Remove),
    ];
    let record = (any::<bool>(), any::<prop::sample::Index>(), prop::collection::vec(mutation, 0..4));
    prop::collection::vec(record, 0..12).prop_map(|picks| {
        let (family, other) = real_records();
        picks
            .into_iter()
            .map(|(sts, index, mutations)| {
                let mut record = if sts { index.get(family) } else { index.get(other) }.clone();
                for m in &mutations {
                    mutate(&mut record, m);
                }
                record
            })
            .collect()
    })
}

#[derive(Debug, Clone)]
enum Edit {
    Flip(prop::sample::Index, u8),
    Insert(prop::sample::Index, u8),
    Delete(prop::sample::Index),
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check_bytes(&bytes);
        // The same bytes behind a Records opening reach the record scanner.
        check_bytes(&[&b"{\"Records\":["[..], &bytes].concat());
        check_bytes(&gzip(&bytes));
    }

    /// N records with K role assumptions among them: all N are counted, and
    /// each of the K becomes a role assumption or a reported bad record.
    #[test]
    fn every_record_of_a_mutated_log_is_accounted_for(records in mutated_log(), pretty in any::<bool>()) {
        let family = records.iter().filter(|r| is_family(r)).count();
        let log = json!({ "Records": records });
        let bytes = if pretty { serde_json::to_vec_pretty(&log) } else { serde_json::to_vec(&log) }.unwrap();
        let read = read_input(&bytes[..], &InputLimits::default()).unwrap_or_else(|f| panic!("{}", f.error));
        prop_assert_eq!(read.records, records.len() as u64);
        prop_assert_eq!(read.events.len() + read.bad_records.len(), family, "{:?}", read.bad_records);
        for bad in &read.bad_records {
            prop_assert!(is_family(&records[bad.index as usize]), "record {} is not a role assumption", bad.index);
        }
        assert_engine_safe(&read);
        // Gzip is found by its magic bytes and changes nothing.
        let unzipped = read_input(&gzip(&bytes)[..], &InputLimits::default());
        prop_assert_eq!(outcome(&unzipped), outcome(&Ok(read)));
    }

    #[test]
    fn byte_edits_and_truncation_of_a_real_log_never_panic(
        records in mutated_log(),
        edits in prop::collection::vec(
            prop_oneof![
                (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Flip(i, b)),
                (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
                any::<prop::sample::Index>().prop_map(Edit::Delete),
            ],
            0..8,
        ),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let mut bytes = serde_json::to_vec(&json!({ "Records": records })).unwrap();
        for edit in &edits {
            match edit {
                Edit::Flip(i, b) => { let i = i.index(bytes.len()); bytes[i] ^= b; }
                Edit::Insert(i, b) => { let i = i.index(bytes.len() + 1); bytes.insert(i, *b); }
                Edit::Delete(i) if bytes.len() > 1 => { let i = i.index(bytes.len()); bytes.remove(i); }
                Edit::Delete(_) => {}
            }
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        check_bytes(&bytes);
    }
}

// ---- what the CLI prints when the input is hostile ----

/// Characters that forge lines, colour terminals or reorder text.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map.iter().for_each(|(k, v)| {
            out.push(k.clone());
            strings(v, out);
        }),
        _ => {}
    }
}

/// Every string in an alert (keys, details and event ids included) is free
/// of unsafe characters and capped; the title and SNS subject fit SNS.
fn assert_clean_alert(alert: &Value) {
    let mut all = Vec::new();
    strings(alert, &mut all);
    for s in &all {
        assert!(!s.chars().any(is_unsafe), "unsafe character in alert string {s:?}");
        assert!(s.chars().count() <= 4 * 2048 + 1, "alert string of {} characters", s.chars().count());
    }
    let title = alert["title"].as_str().unwrap();
    assert!(title.chars().count() <= 100, "title of {} characters", title.chars().count());
    let parsed: Alert = serde_json::from_value(alert.clone()).unwrap();
    let subject = parsed.sns_subject();
    assert!(
        !subject.is_empty() && subject.len() <= 100 && subject.chars().all(|c| c.is_ascii_graphic() || c == ' '),
        "SNS subject {subject:?}"
    );
}

/// stderr is for people and log pipelines: problem lines and the summary,
/// none able to forge a line, colour a terminal or flood a log.
fn assert_clean_stderr(out: &Output, problem_lines: usize) {
    let text = std::str::from_utf8(&out.stderr).expect("stderr is UTF-8");
    // Progress lines come every 10 s off a terminal: a slow machine may print some.
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with("rolewatch: progress: ")).collect();
    let summary_starts = lines.iter().position(|l| l.starts_with("rolewatch: detector")).unwrap_or(lines.len());
    assert_eq!(summary_starts, problem_lines, "{text}");
    assert!(lines.last().is_some_and(|l| l.starts_with("rolewatch: files: ")), "{text}");
    for line in lines {
        assert!(line.starts_with("rolewatch: "), "{line:?}");
        assert!(!line.chars().any(is_unsafe), "unsafe character on stderr: {line:?}");
        assert!(line.len() < 1000, "a stderr line of {} bytes", line.len());
    }
}

#[test]
fn hostile_strings_are_cleaned_in_every_output() {
    let input = data("malformed/hostile-strings.json.gz");
    let input = input.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();

    let json_out = rolewatch(&["replay", "--format", "json", input]);
    assert_eq!(json_out.status.code(), Some(0), "{}", String::from_utf8_lossy(&json_out.stderr));
    let stdout = std::str::from_utf8(&json_out.stdout).expect("stdout is UTF-8");
    let alerts: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).expect("each line is one alert")).collect();
    let mut detectors: Vec<&str> = alerts.iter().map(|a| a["detector"].as_str().unwrap()).collect();
    detectors.sort_unstable();
    assert_eq!(detectors, ["long_session", "repeated_failures", "unexpected_source_ip"], "{stdout}");
    alerts.iter().for_each(assert_clean_alert);
    // The hostile text reached the alerts (cleaned), so the checks above saw it.
    assert!(alerts.iter().all(|a| a["principal"].as_str().unwrap().contains("[31mFAKE")));
    // Records 8 and 9 are bad, and their problem lines quote hostile text.
    assert_clean_stderr(&json_out, 2);

    let state = dir.path().join("state.json");
    let text_out = rolewatch(&["replay", "--state", state.to_str().unwrap(), input]);
    assert_eq!(text_out.status.code(), Some(0));
    let text = std::str::from_utf8(&text_out.stdout).expect("stdout is UTF-8");
    assert!(!text.bytes().any(|b| b == 0x1b || b == b'\r' || b == 0), "raw escape byte in text output");
    assert!(!text.chars().any(|c| c != '\n' && is_unsafe(c)), "unsafe character in text output");
    // Two lines an alert: a forged newline would add lines.
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2 * alerts.len(), "{text}");
    for pair in lines.chunks(2) {
        assert!(["HIGH ", "MEDIUM ", "LOW ", "CRITICAL "].iter().any(|s| pair[0].starts_with(s)), "{:?}", pair[0]);
        assert!(pair[1].starts_with("         principal="), "{:?}", pair[1]);
    }
    assert_clean_stderr(&text_out, 2);
}

/// The values of `keys` anywhere in a CloudTrail file.
fn secret_values(value: &Value, keys: &[&str], out: &mut Vec<String>) {
    match value {
        Value::Array(items) => items.iter().for_each(|v| secret_values(v, keys, out)),
        Value::Object(map) => {
            for (k, v) in map {
                match v.as_str() {
                    Some(s) if keys.contains(&k.as_str()) => out.push(s.to_owned()),
                    _ => secret_values(v, keys, out),
                }
            }
        }
        _ => {}
    }
}

#[test]
fn secrets_never_reach_alerts_logs_or_state() {
    let input = data("malformed/secrets.json");
    let file: Value = serde_json::from_slice(&std::fs::read(&input).unwrap()).unwrap();
    let mut secrets = Vec::new();
    secret_values(&file, &["externalId", "sessionToken", "secretAccessKey"], &mut secrets);
    secrets.sort();
    secrets.dedup();
    // Seven external ids (five guesses, the granted one, the bad record's),
    // one session token, one secret key.
    assert_eq!(secrets.len(), 9, "{secrets:?}");

    let dir = tempfile::tempdir().unwrap();
    let input = input.to_str().unwrap();
    let mut shown = Vec::new();
    for format in ["json", "text"] {
        let state = dir.path().join(format!("state-{format}.json"));
        let out = rolewatch(&["replay", "--format", format, "--state", state.to_str().unwrap(), input]);
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(stderr.contains("secrets.json: record 6: "), "the bad record is reported: {stderr}");
        let state = std::fs::read_to_string(&state).unwrap();
        assert!(state.contains("vendor-audit"), "the state file holds what was learned");
        shown.extend([String::from_utf8_lossy(&out.stdout).into_owned(), stderr, state]);
    }
    let alerts: Vec<Value> = shown[0].lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let mut detectors: Vec<&str> = alerts.iter().map(|a| a["detector"].as_str().unwrap()).collect();
    detectors.sort_unstable();
    assert_eq!(detectors, ["long_session", "repeated_failures"], "the records behind the secrets raise alerts");
    for text in &shown {
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "{secret} leaked into:\n{text}");
        }
    }
    // Nor does the reader keep them: a debug print of the events is clean too.
    let read = read_input(std::fs::File::open(input).unwrap(), &InputLimits::default()).unwrap();
    let debug = format!("{:?}", read.events);
    assert!(secrets.iter().all(|s| !debug.contains(s.as_str())));
}
