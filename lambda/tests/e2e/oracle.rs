//! What the function should publish, computed by the engine itself from the
//! same sample files: the Lambda must deliver exactly the engine's alerts.

use rolewatch::alert::Alert;
use rolewatch::cloudtrail::{classify_key, read_input, InputKind};
use rolewatch::config::Config;
use rolewatch::engine::{Applied, Engine};
use rolewatch::state::State;

use crate::harness::{sample_object, Delivered, TRAIL_BUCKET};

/// The alerts a fresh state raises for these sample keys, processed in key order.
pub fn expected_alerts(keys: &[&str]) -> Vec<Alert> {
    expected_run(keys).0
}

/// The alerts, and the inputs the final state remembers (the engine forgets
/// inputs some days of event time behind the newest).
pub fn expected_run(keys: &[&str]) -> (Vec<Alert>, Vec<String>) {
    let config = Config::default();
    let mut engine = Engine::new(&config, State::default());
    let mut keys = keys.to_vec();
    keys.sort_unstable();
    let mut alerts = Vec::new();
    for key in keys {
        if classify_key(key) != InputKind::LogFile {
            continue;
        }
        let bytes = sample_object(key);
        let input = read_input(&bytes[..], &config.input.limits()).expect("sample objects are readable");
        if let Applied::Processed { alerts: raised } =
            engine.apply(&format!("s3://{TRAIL_BUCKET}/{key}"), &input.events)
        {
            alerts.extend(raised);
        }
    }
    (alerts, engine.into_state().processed_inputs())
}

/// Each expected alert arrived once, with its subject, attributes and body.
pub fn assert_delivered(delivered: &[Delivered], expected: &[Alert]) {
    let got: Vec<&str> = delivered.iter().map(Delivered::dedup_key).collect();
    let want: Vec<&str> = expected.iter().map(|a| a.dedup_key.as_str()).collect();
    assert_eq!(delivered.len(), expected.len(), "delivered {got:?}, expected {want:?}");
    for alert in expected {
        let found: Vec<&Delivered> = delivered.iter().filter(|d| d.dedup_key() == alert.dedup_key).collect();
        assert_eq!(found.len(), 1, "alert {} delivered {} times", alert.dedup_key, found.len());
        let d = found[0];
        let body = serde_json::to_value(alert).expect("alert serialises");
        assert_eq!(d.alert, body, "message body is the alert JSON");
        assert_eq!(d.alert["schema"], "rolewatch.alert.v1");
        assert_eq!(d.subject, alert.sns_subject(), "subject");
        assert!(d.subject.len() <= 100 && d.subject.chars().all(|c| c.is_ascii_graphic() || c == ' '));
        for (name, value) in
            [("severity", alert.severity.as_str()), ("detector", &alert.detector), ("account_id", &alert.account_id)]
        {
            assert_eq!(
                d.attributes.get(name),
                Some(&("String".to_owned(), value.to_owned())),
                "message attribute {name} of {}",
                alert.dedup_key
            );
        }
    }
}
