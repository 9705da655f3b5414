//! Alerts as custom notifications for AWS's chat integration (Amazon Q
//! Developer in chat applications, formerly AWS Chatbot), which renders
//! them in Slack, Microsoft Teams and Chime: `version` "1.0", `source`
//! "custom", `content` (textType, title, description, nextSteps, keywords)
//! and `metadata` (threadId, summary, eventType, relatedResources,
//! additionalContext). Only fields the v1 alert already carries are used,
//! so nothing secret can appear; every quoted value is cleaned again and
//! markdown-escaped, as the caller chose it.

use serde_json::{json, Value};

use crate::alert::{clean_text, Alert, Severity};

/// Slack rejects a section text past 3,000 characters; the description
/// stays well within it, whatever an alert's details hold.
const MAX_DESCRIPTION_CHARS: usize = 2_800;
/// The chat title: the alert's title (at most 100) with a severity mark.
const MAX_TITLE_CHARS: usize = 120;
/// Event ids listed in a notification; the v1 alert carries up to 50.
const MAX_EVENT_IDS_SHOWN: usize = 5;

fn mark(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => ":rotating_light:",
        Severity::High => ":red_circle:",
        Severity::Medium => ":large_orange_circle:",
        Severity::Low => ":large_blue_circle:",
    }
}

/// Markdown characters that would change how a quoted value renders
/// (a session name is chosen by the caller) become look-alikes.
fn plain(text: &str, max: usize) -> String {
    clean_text(text, max)
        .chars()
        .map(|c| match c {
            '*' => '∗',
            '_' => 'ˍ',
            '`' => 'ˋ',
            '~' => '∼',
            '<' => '‹',
            '>' => '›',
            '|' => '¦',
            other => other,
        })
        .collect()
}

/// The alert as one custom notification (a JSON object).
pub fn notification(alert: &Alert) -> Value {
    let role = alert.role_arn.as_deref().or(alert.details.get("denied_role_arn").and_then(Value::as_str));
    let mut lines = vec![
        plain(&alert.summary, 1_200),
        String::new(),
        format!("*Account:* {}", plain(&alert.account_id, 64)),
        format!("*Principal:* {}", plain(&alert.principal, 300)),
    ];
    if let Some(role) = role {
        lines.push(format!("*Role:* {}", plain(role, 300)));
    }
    if let Some(ip) = &alert.source_ip {
        lines.push(format!("*Source IP:* {}", plain(ip, 64)));
    }
    lines.push(format!(
        "*Events:* {} {} from {} to {}",
        alert.event_count,
        plain(&alert.event_name, 64),
        alert.first_event_time,
        alert.last_event_time
    ));
    let shown: Vec<String> = alert.event_ids.iter().take(MAX_EVENT_IDS_SHOWN).map(|id| plain(id, 64)).collect();
    if !shown.is_empty() {
        let more = alert.event_count.saturating_sub(shown.len() as u64);
        let tail = if more > 0 { format!(" and {more} more") } else { String::new() };
        lines.push(format!("*Event ids:* {}{tail}", shown.join(", ")));
    }
    lines.push(format!("*Dedup key:* {}", plain(&alert.dedup_key, 128)));
    let description = clean_multiline(&lines.join("\n"), MAX_DESCRIPTION_CHARS);

    let mut context = serde_json::Map::new();
    context.insert("schema".into(), json!(crate::alert::SCHEMA));
    context.insert("detector".into(), json!(alert.detector));
    context.insert("severity".into(), json!(alert.severity.as_str()));
    context.insert("dedup_key".into(), json!(alert.dedup_key));
    context.insert("account_id".into(), json!(alert.account_id));
    context.insert("first_event_time".into(), json!(alert.first_event_time));
    context.insert("last_event_time".into(), json!(alert.last_event_time));
    context.insert("event_count".into(), json!(alert.event_count.to_string()));

    let mut related: Vec<String> = Vec::new();
    related.extend(role.map(|r| clean_text(r, 2048)));
    if alert.principal.starts_with("arn:") {
        related.push(clean_text(&alert.principal, 2048));
    }

    json!({
        "version": "1.0",
        "source": "custom",
        "id": alert.dedup_key,
        "content": {
            "textType": "client-markdown",
            "title": clean_text(&format!("{} {}", mark(alert.severity), alert.title), MAX_TITLE_CHARS),
            "description": description,
            "nextSteps": next_steps(alert),
            "keywords": ["rolewatch", alert.detector.as_str(), alert.severity.as_str(), alert.account_id.as_str()],
        },
        "metadata": {
            // One thread per incident: later alerts of the same key (after
            // the cooldown) reply under the first.
            "threadId": alert.dedup_key,
            "summary": clean_text(&alert.title, 100),
            "eventType": alert.detector,
            "relatedResources": related,
            "additionalContext": context,
        }
    })
}

/// Keeps the line breaks of the description, cleans everything else.
fn clean_multiline(text: &str, max: usize) -> String {
    let lines: Vec<String> = text.split('\n').map(|l| clean_text(l, max)).collect();
    clean_text_keep_newlines(&lines.join("\n"), max)
}

fn clean_text_keep_newlines(text: &str, max: usize) -> String {
    let mut out: String = text.chars().take(max).collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

/// What the person paged does first: the runbook, then the detector's own check.
fn next_steps(alert: &Alert) -> Vec<String> {
    let check = match alert.detector.as_str() {
        "repeated_failures" => "Ask the principal's owner whether the failures are theirs; look for a changed trust policy or a credential being tried.",
        "unexpected_source_ip" => "Confirm the source network with the principal's owner; if unknown, revoke the role's sessions and rotate the caller's credentials.",
        "long_session" => "Check who requested the long session and why; shorten the role's MaxSessionDuration if it is not needed.",
        "role_enumeration" => "Treat as reconnaissance: find where the principal's credentials are used and contain them.",
        "external_id_missing" => "Add an sts:ExternalId condition to the role's trust policy for the third party.",
        "mfa_missing" => "Require aws:MultiFactorAuthPresent in the role's trust policy, or confirm the caller's MFA.",
        "outside_organization" => "Confirm the outside account is a known partner; if not, remove it from the role's trust policy.",
        _ => "Check the input named in the alert's details.",
    };
    vec![
        check.to_owned(),
        format!("Runbook: docs/detectors.md, section {}", alert.detector),
        format!(
            "Search CloudTrail for event ids {}",
            alert.event_ids.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::NewAlert;

    fn alert(summary: &str) -> Alert {
        let mut a = Alert::new(NewAlert {
            detector: "repeated_failures",
            severity: Severity::High,
            title: "Repeated failed role assumptions by mallory",
            summary,
            dedup_key: "repeated_failures:0123456789abcdef".into(),
            account_id: "111122223333",
            principal: "arn:aws:iam::111122223333:user/*mallory*",
            caller_account: Some("111122223333"),
            role_arn: Some("arn:aws:iam::111122223333:role/deploy"),
            source_ip: Some("203.0.113.7"),
            event_name: "AssumeRole",
            first_event_time: 1_790_000_000,
            last_event_time: 1_790_000_060,
        });
        for i in 0..8 {
            a.add_event(&format!("e{i}"));
        }
        a
    }

    #[test]
    fn a_notification_has_the_documented_shape() {
        let n = notification(&alert("Five failures."));
        assert_eq!(n["version"], "1.0");
        assert_eq!(n["source"], "custom");
        assert_eq!(n["content"]["textType"], "client-markdown");
        assert!(n["content"]["title"].as_str().unwrap().starts_with(":red_circle: Repeated failed"));
        assert_eq!(n["metadata"]["threadId"], "repeated_failures:0123456789abcdef");
        let description = n["content"]["description"].as_str().unwrap();
        assert!(description.contains("*Event ids:* e0, e1, e2, e3, e4 and 3 more"), "{description}");
        assert!(description.contains("∗mallory∗"), "quoted markdown is defused: {description}");
    }

    #[test]
    fn the_description_stays_within_the_limit() {
        let n = notification(&alert(&"x".repeat(50_000)));
        assert!(n["content"]["description"].as_str().unwrap().chars().count() <= MAX_DESCRIPTION_CHARS + 1);
        assert!(n.to_string().len() < 16_000);
    }
}
