//! Real public CloudTrail data (`tests/data/public`, counts in its
//! `expected.json`) and hand-written odd shapes (`tests/data/fixtures`).

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::run::{alerts, rolewatch, stderr, stdout, summary};
use serde_json::Value;

const FAMILY: [&str; 3] = ["AssumeRole", "AssumeRoleWithSAML", "AssumeRoleWithWebIdentity"];

fn data_dir(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(rel)
}

/// The records of a `.json` or gzip `.json.gz` CloudTrail file.
fn records(path: &Path) -> Vec<Value> {
    let raw = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let text = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut s = Vec::new();
        flate2::read::GzDecoder::new(&raw[..]).read_to_end(&mut s).expect("gzip");
        s
    } else {
        raw
    };
    let doc: Value = serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    doc["Records"].as_array().unwrap_or_else(|| panic!("{}: no Records", path.display())).clone()
}

fn is_role_assumption(r: &Value) -> bool {
    r["eventSource"] == "sts.amazonaws.com" && r["eventName"].as_str().is_some_and(|n| FAMILY.contains(&n))
}

fn external_ids(records: &[Value]) -> HashSet<String> {
    records.iter().filter_map(|r| r["requestParameters"]["externalId"].as_str()).map(str::to_owned).collect()
}

fn assert_no_external_id(out: &Output, ids: &HashSet<String>, what: &str) {
    let (o, e) = (stdout(out), stderr(out));
    for id in ids {
        assert!(!o.contains(id.as_str()), "{what}: externalId {id:?} leaked to stdout");
        assert!(!e.contains(id.as_str()), "{what}: externalId {id:?} leaked to stderr");
    }
}

fn expected() -> Value {
    let text = std::fs::read_to_string(data_dir("public/expected.json")).expect("tests/data/public/expected.json");
    serde_json::from_str(&text).expect("expected.json is JSON")
}

#[test]
fn every_public_file_replays_and_counts_its_role_assumptions() {
    let expected = expected();
    let files = expected["files"].as_object().expect("files in expected.json");
    // A data file without expectations would silently go untested.
    let on_disk: HashSet<String> = std::fs::read_dir(data_dir("public"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| (n.ends_with(".json") || n.ends_with(".json.gz")) && n != "expected.json")
        .collect();
    assert_eq!(on_disk, files.keys().cloned().collect::<HashSet<_>>(), "expected.json lists every data file");

    for (name, want) in files {
        let path = data_dir("public").join(name);
        let out = rolewatch(&["replay", "--format", "json", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", stderr(&out));
        assert_eq!(summary(&out, "records"), want["records"].as_u64().unwrap(), "{name}: {}", stderr(&out));
        assert_eq!(
            summary(&out, "role assumptions"),
            want["role_assumptions"].as_u64().unwrap(),
            "{name}: {}",
            stderr(&out)
        );
        for alert in alerts(&out) {
            assert_eq!(alert["schema"], "rolewatch.alert.v1", "{name}: {alert}");
        }
        // aws-samples carries real externalId values (e.g. "aws:states").
        assert_no_external_id(&out, &external_ids(&records(&path)), name);
    }
}

#[test]
fn invictus_role_guessing_by_bert_jan_raises_repeated_failures() {
    let path = data_dir("public/invictus-ir_aws_dataset.json.gz");
    let bert = "arn:aws:iam::123837392027:user/bert-jan";
    let denied: HashSet<String> = records(&path)
        .iter()
        .filter(|r| is_role_assumption(r) && r["userIdentity"]["arn"] == bert && r["errorCode"] == "AccessDenied")
        .map(|r| r["eventID"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(denied.len(), 13, "the dataset holds bert-jan's 13 AccessDenied calls");

    let out = rolewatch(&["replay", "--format", "json", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let bursts: Vec<Value> =
        alerts(&out).into_iter().filter(|a| a["detector"] == "repeated_failures" && a["principal"] == bert).collect();
    // The 13 denials fall within 15 minutes: one burst, one page.
    assert_eq!(bursts.len(), 1, "{}", stdout(&out));
    let alert = &bursts[0];
    let ids: HashSet<String> =
        alert["event_ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
    assert!(ids.len() >= 5, "at least the default threshold of failures: {alert}");
    assert!(ids.is_subset(&denied), "only bert-jan's denied calls belong to the burst: {alert}");
    assert_eq!(alert["event_count"].as_u64(), Some(ids.len() as u64), "{alert}");
    assert_eq!(alert["account_id"], "123837392027", "{alert}");
}

#[test]
fn fixtures_replay_cleanly_and_never_reveal_external_ids() {
    let dir = data_dir("fixtures");
    let mut all = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            all.extend(records(&path));
        }
    }
    let ids = external_ids(&all);
    assert!(ids.len() >= 3, "the fixtures carry externalId values to look for");
    // eventIDs of records that carried an externalId: alerts about them are
    // where a leak would show.
    let with_external_id: HashSet<String> = all
        .iter()
        .filter(|r| r["requestParameters"]["externalId"].is_string())
        .filter_map(|r| r["eventID"].as_str().map(str::to_owned))
        .collect();

    let out = rolewatch(&["replay", "--format", "json", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(summary(&out, "records"), all.len() as u64, "{}", stderr(&out));
    let want = all.iter().filter(|r| is_role_assumption(r)).count() as u64;
    assert_eq!(summary(&out, "role assumptions"), want, "{}", stderr(&out));
    assert_eq!(summary(&out, "bad records"), 0, "every fixture shape is understood: {}", stderr(&out));

    let alerts = alerts(&out);
    let mut detectors: Vec<&str> = alerts.iter().map(|a| a["detector"].as_str().unwrap()).collect();
    detectors.sort_unstable();
    // As fixtures/README.md says: the external-id guessing burst and the two 12 h requests.
    assert_eq!(detectors, ["long_session", "long_session", "repeated_failures"], "{}", stdout(&out));
    assert!(
        alerts.iter().any(|a| a["event_ids"]
            .as_array()
            .unwrap()
            .iter()
            .any(|id| with_external_id.contains(id.as_str().unwrap()))),
        "some alert is about an event that carried an externalId, so the leak check below has teeth: {}",
        stdout(&out)
    );
    assert_no_external_id(&out, &ids, "json replay");

    let text = rolewatch(&["replay", "--format", "text", dir.to_str().unwrap()]);
    assert_eq!(text.status.code(), Some(0), "{}", stderr(&text));
    assert_no_external_id(&text, &ids, "text replay");
}
