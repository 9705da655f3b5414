//! CloudWatch metrics in the embedded metric format (EMF): JSON lines on
//! stdout that CloudWatch Logs turns into metrics in the `rolewatch`
//! namespace, with no PutMetricData call and no permission for one.
//!
//! An EMF document takes each dimension's value from one member of its
//! root, so one document holds one value per dimension. An invocation
//! therefore writes one document with its totals (no dimension), then one
//! per detector that alerted (`detector`) and one per reason objects were
//! skipped for (`reason`): a graph of `Alerts` by `detector` needs each
//! detector's count in a document of its own.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use crate::report::InvocationSummary;

/// The metrics' namespace.
pub const NAMESPACE: &str = "rolewatch";

/// The documents for one invocation, one JSON object per line, in order:
/// totals, then by detector, then by skip reason.
pub fn emf_lines(summary: &InvocationSummary, at: DateTime<Utc>) -> Vec<String> {
    let timestamp = at.timestamp_millis();
    let mut totals = vec![
        ("FilesRead", "Count", json!(summary.processed)),
        ("Records", "Count", json!(summary.records)),
        ("RoleAssumptions", "Count", json!(summary.role_assumptions)),
        ("Alerts", "Count", json!(summary.alerts)),
        ("SkippedObjects", "Count", json!(summary.skipped_digests + summary.skipped_not_logs)),
        ("FailedObjects", "Count", json!(summary.failed)),
    ];
    // Only when something was published: a lag of 0 would pull the graph down.
    if let Some(lag) = summary.alerts_by_detector.values().map(|d| d.max_lag_seconds).max() {
        totals.push(("AlertLagSeconds", "Seconds", json!(lag)));
    }
    let mut lines = vec![document(timestamp, None, &totals, &[("trigger", summary.trigger)])];
    for (detector, alerts) in &summary.alerts_by_detector {
        let metrics =
            [("Alerts", "Count", json!(alerts.alerts)), ("AlertLagSeconds", "Seconds", json!(alerts.max_lag_seconds))];
        lines.push(document(timestamp, Some(("detector", detector)), &metrics, &[]));
    }
    for (reason, count) in
        [("cloudtrail_digest", summary.skipped_digests), ("not_a_cloudtrail_log", summary.skipped_not_logs)]
    {
        if count > 0 {
            let metrics = [("SkippedObjects", "Count", json!(count))];
            lines.push(document(timestamp, Some(("reason", reason)), &metrics, &[]));
        }
    }
    lines
}

/// One EMF document: the metadata under `_aws`, the dimension and the
/// metrics' values at the root, and `extra` root members that are not
/// metrics (searchable in Logs Insights, not dimensions).
fn document(
    timestamp: i64,
    dimension: Option<(&str, &str)>,
    metrics: &[(&str, &str, Value)],
    extra: &[(&str, &str)],
) -> String {
    let definitions: Vec<Value> = metrics.iter().map(|(name, unit, _)| json!({"Name": name, "Unit": unit})).collect();
    let dimensions: Vec<&str> = dimension.iter().map(|(name, _)| *name).collect();
    let mut root = Map::new();
    root.insert(
        "_aws".to_owned(),
        json!({
            "Timestamp": timestamp,
            "CloudWatchMetrics": [{"Namespace": NAMESPACE, "Dimensions": [dimensions], "Metrics": definitions}],
        }),
    );
    for (name, value) in extra.iter().chain(dimension.iter()) {
        root.insert((*name).to_owned(), json!(value));
    }
    for (name, _, value) in metrics {
        root.insert((*name).to_owned(), value.clone());
    }
    Value::Object(root).to_string()
}
