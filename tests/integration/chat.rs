//! `--format chat`: every alert as a custom notification of AWS's chat
//! integration, validated against the documented schema
//! (tests/data/chat-notification.schema.json) with the Python `jsonschema`
//! of the tools venv.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::run::{rolewatch, stderr, stdout};

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/events/cloudtrail");
const SCHEMA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/chat-notification.schema.json");

fn notifications() -> Vec<Value> {
    let out = rolewatch(&["replay", "--format", "chat", SAMPLES]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

#[test]
fn each_alert_is_one_chat_notification_naming_the_incident() {
    let json = rolewatch(&["replay", "--format", "json", SAMPLES]);
    let alerts: Vec<Value> = stdout(&json).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let chats = notifications();
    assert_eq!(chats.len(), alerts.len());
    for (chat, alert) in chats.iter().zip(&alerts) {
        assert_eq!(chat["metadata"]["threadId"], alert["dedup_key"], "one thread per incident");
        assert_eq!(chat["metadata"]["eventType"], alert["detector"]);
        assert!(chat["content"]["title"].as_str().unwrap().ends_with(alert["title"].as_str().unwrap()));
        assert!(chat.to_string().len() < 16 * 1024, "well within SNS's 256 KB and chat limits");
    }
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "needs the tools venv's python with jsonschema: run `make test`")]
fn chat_notifications_validate_against_the_documented_schema() {
    let python = std::env::var_os("TEST_TOOLS_BIN")
        .map(|d| std::path::Path::new(&d).join("python"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| "python3".into());
    let check = r#"
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
validator = jsonschema.Draft202012Validator(schema)
lines = [l for l in sys.stdin.read().splitlines() if l.strip()]
errors = [f"{i}: {e.message}" for i, l in enumerate(lines) for e in validator.iter_errors(json.loads(l))]
# The schema must catch a wrong notification, or the check proves nothing.
bad = json.loads(lines[0]); bad["version"] = "2.0"; del bad["content"]["description"]
assert len(list(validator.iter_errors(bad))) == 2, "the schema does not catch a broken notification"
print("\n".join(errors) or f"{len(lines)} valid")
sys.exit(1 if errors else 0)
"#;
    let lines: Vec<String> = notifications().iter().map(Value::to_string).collect();
    let mut child = Command::new(python)
        .args(["-c", check, SCHEMA])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    child.stdin.take().unwrap().write_all(lines.join("\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(stdout(&out).trim(), "4 valid");
}
