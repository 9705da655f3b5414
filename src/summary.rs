//! The run summary on stderr: a small table for people (alerts per
//! detector, inputs by outcome) closed by the one-line totals, or one JSON
//! object for scripts (`--summary-format json`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::input::{SkipReason, Skips};

/// What one detector did in this run.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct DetectorCounts {
    /// Alerts raised (published, printed).
    pub raised: u64,
    /// Findings of an incident already alerted on, held back by the cooldown.
    pub cooldown_held: u64,
    /// Alerts silenced by `[[suppress]]` rules; `None` when no rule is in force.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<u64>,
}

/// The table's columns per detector: a new count is one line here.
type Column = (&'static str, fn(&DetectorCounts) -> Option<u64>);
const DETECTOR_COLUMNS: &[Column] =
    &[("raised", |c| Some(c.raised)), ("suppressed", |c| c.suppressed), ("cooldown-held", |c| Some(c.cooldown_held))];

/// What a replay did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ReplaySummary {
    /// Inputs read or tried (files, objects, stdin).
    pub files: u64,
    pub records: u64,
    pub role_assumptions: u64,
    pub alerts: u64,
    /// Alerts `[[suppress]]` rules held back (not in `alerts`).
    pub suppressed: u64,
    /// Per rule, in the order written: its reason and the alerts it held back.
    pub suppressed_by_rule: Vec<(String, u64)>,
    pub skips: Skips,
    /// Inputs that could not be read to their end.
    pub failed: u64,
    pub bad_records: u64,
    pub roaming_principals: usize,
    pub bytes: u64,
    pub elapsed: Duration,
    pub detectors: BTreeMap<String, DetectorCounts>,
}

#[derive(Serialize)]
struct SuppressedByRule<'a> {
    /// Numbered from 1 in the order written, as configuration errors number them.
    rule: usize,
    reason: &'a str,
    suppressed: u64,
}

/// The JSON form: stable field names for scripts.
#[derive(Serialize)]
struct JsonSummary<'a> {
    schema: &'static str,
    inputs: u64,
    records: u64,
    role_assumptions: u64,
    alerts: u64,
    suppressed: u64,
    suppressed_by_rule: Vec<SuppressedByRule<'a>>,
    skipped: u64,
    skipped_by_reason: BTreeMap<SkipReason, u64>,
    failed: u64,
    bad_records: u64,
    roaming_principals: usize,
    bytes: u64,
    elapsed_seconds: f64,
    detectors: &'a BTreeMap<String, DetectorCounts>,
}

impl ReplaySummary {
    pub fn skipped(&self) -> u64 {
        self.skips.total()
    }

    /// The closing line: the contract's figures, then the throughput.
    pub fn line(&self) -> String {
        let seconds = self.elapsed.as_secs_f64().max(1e-9);
        let mb = self.bytes as f64 / 1e6;
        format!(
            "files: {}, records: {}, role assumptions: {}, alerts: {}, suppressed: {}, skipped: {} ({} already processed), failed: {}, \
             bad records: {}, roaming principals: {}, throughput: {:.1} MB/s ({:.1} MB in {:.3} s, {:.0} records/s)",
            self.files,
            self.records,
            self.role_assumptions,
            self.alerts,
            self.suppressed,
            self.skipped(),
            self.skips.get(SkipReason::AlreadyProcessed),
            self.failed,
            self.bad_records,
            self.roaming_principals,
            mb / seconds,
            mb,
            seconds,
            self.records as f64 / seconds,
        )
    }

    /// The table, one string per line, then the closing line.
    pub fn table(&self) -> Vec<String> {
        let columns: Vec<&Column> =
            DETECTOR_COLUMNS.iter().filter(|(_, get)| self.detectors.values().any(|c| get(c).is_some())).collect();
        let mut lines = Vec::new();
        if self.detectors.is_empty() {
            lines.push("detectors: nothing raised or held".to_owned());
        } else {
            let width = self.detectors.keys().map(String::len).max().unwrap_or(0).max("detector".len());
            let mut header = format!("{:<width$}", "detector");
            for (name, _) in &columns {
                header.push_str(&format!("  {name:>w$}", w = name.len().max(6)));
            }
            lines.push(header);
            for (detector, counts) in &self.detectors {
                let mut row = format!("{detector:<width$}");
                for (name, get) in &columns {
                    let shown = get(counts).map_or_else(|| "-".to_owned(), |n| n.to_string());
                    row.push_str(&format!("  {shown:>w$}", w = name.len().max(6)));
                }
                lines.push(row);
            }
        }
        let read = self.files.saturating_sub(self.failed);
        let mut inputs = format!("inputs: read {read}, failed {}, skipped {}", self.failed, self.skipped());
        if !self.skips.0.is_empty() {
            let reasons: Vec<String> = self.skips.0.iter().map(|(r, n)| format!("{} {n}", r.label())).collect();
            inputs.push_str(&format!(" ({})", reasons.join(", ")));
        }
        lines.push(inputs);
        lines.extend(self.rule_lines());
        lines.push(self.line());
        lines
    }

    /// One line per `[[suppress]]` rule, numbered as the configuration
    /// errors number them, so a team sees what each accepted pattern hid.
    pub fn rule_lines(&self) -> Vec<String> {
        self.suppressed_by_rule
            .iter()
            .enumerate()
            .map(|(i, (reason, n))| format!("[[suppress]] rule {} ({reason:?}): {n} alerts suppressed", i + 1))
            .collect()
    }

    pub fn to_json(&self) -> String {
        let json = JsonSummary {
            schema: "rolewatch.replay-summary.v1",
            inputs: self.files,
            records: self.records,
            role_assumptions: self.role_assumptions,
            alerts: self.alerts,
            suppressed: self.suppressed,
            suppressed_by_rule: self
                .suppressed_by_rule
                .iter()
                .enumerate()
                .map(|(i, (reason, n))| SuppressedByRule { rule: i + 1, reason, suppressed: *n })
                .collect(),
            skipped: self.skipped(),
            skipped_by_reason: self.skips.0.clone(),
            failed: self.failed,
            bad_records: self.bad_records,
            roaming_principals: self.roaming_principals,
            bytes: self.bytes,
            elapsed_seconds: self.elapsed.as_secs_f64(),
            detectors: &self.detectors,
        };
        serde_json::to_string(&json).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> ReplaySummary {
        let mut s = ReplaySummary { files: 5, failed: 1, ..Default::default() };
        s.skips.add(SkipReason::Digest, 2);
        s.detectors.insert("long_session".into(), DetectorCounts { raised: 1, cooldown_held: 3, suppressed: None });
        s.detectors.insert("repeated_failures".into(), DetectorCounts { raised: 12, ..Default::default() });
        s
    }

    #[test]
    fn the_table_has_a_row_per_detector_and_only_columns_with_counts() {
        let lines = summary().table();
        assert_eq!(lines[0], "detector           raised  cooldown-held");
        assert_eq!(lines[1], "long_session            1              3");
        assert_eq!(lines[2], "repeated_failures      12              0");
        assert_eq!(lines[3], "inputs: read 4, failed 1, skipped 2 (digest 2)");
        assert!(lines[4].starts_with("files: 5, "));
    }

    #[test]
    fn a_suppressed_count_is_a_column_once_the_engine_gives_one() {
        let mut s = summary();
        s.detectors.get_mut("long_session").unwrap().suppressed = Some(4);
        let lines = s.table();
        assert_eq!(lines[0], "detector           raised  suppressed  cooldown-held");
        assert_eq!(lines[2], "repeated_failures      12           -              0");
    }

    #[test]
    fn the_json_summary_names_reasons_and_detectors() {
        let json: serde_json::Value = serde_json::from_str(&summary().to_json()).unwrap();
        assert_eq!(json["skipped_by_reason"], serde_json::json!({"digest": 2}));
        assert_eq!(json["detectors"]["long_session"], serde_json::json!({"raised": 1, "cooldown_held": 3}));
        assert_eq!(json["inputs"], 5);
    }
}
