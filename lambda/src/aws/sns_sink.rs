//! Alerts to an SNS topic with `PublishBatch`, at most 10 messages (and
//! 256 KiB) a request.
//!
//! Each message has the alert's SNS subject, `MessageStructure=json` with
//! `default` (the alert JSON, what queues, Lambda and HTTPS subscribers get)
//! and `email` (the person-readable text), and the String message attributes
//! `severity`, `detector` and `account_id` for subscription filter policies.
//!
//! With a chat topic, each alert is also published there as the custom
//! notification AWS's chat integration renders (`rolewatch::chat`), after
//! the alert topic. The alert topic stays the record machines read and page
//! from: a failed chat publish is logged, and does not fail the invocation,
//! whose retry would publish every alert of it to the alert topic again.

use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use aws_sdk_sns::Client;
use rolewatch::alert::Alert;

use crate::ports::{AlertSink, SinkError};

/// SNS accepts at most 10 entries a batch ...
const MAX_BATCH_ENTRIES: usize = 10;
/// ... and 256 KiB for the whole request's messages and attributes; keep a margin.
const MAX_BATCH_BYTES: usize = 240 * 1024;

#[derive(Debug, Clone)]
pub struct SnsSink {
    client: Client,
    topic_arn: String,
    chat_topic_arn: Option<String>,
}

impl SnsSink {
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        Self { client, topic_arn: topic_arn.into(), chat_topic_arn: None }
    }

    /// Also publish every alert as a chat notification to `topic_arn`.
    pub fn with_chat_topic(self, topic_arn: Option<String>) -> Self {
        Self { chat_topic_arn: topic_arn, ..self }
    }
}

impl AlertSink for SnsSink {
    async fn publish(&self, alerts: &[Alert]) -> Result<(), SinkError> {
        self.publish_batches(&self.topic_arn, sns_entries(alerts)?).await?;
        if let Some(chat_topic) = &self.chat_topic_arn {
            let published = match chat_entries(alerts) {
                Ok(batches) => self.publish_batches(chat_topic, batches).await,
                Err(err) => Err(err),
            };
            if let Err(err) = published {
                tracing::error!(topic = %chat_topic, alerts = alerts.len(), error = %err, "chat notifications failed");
            }
        }
        Ok(())
    }
}

impl SnsSink {
    async fn publish_batches(
        &self,
        topic_arn: &str,
        batches: Vec<Vec<PublishBatchRequestEntry>>,
    ) -> Result<(), SinkError> {
        for batch in batches {
            let total = batch.len();
            let output = self
                .client
                .publish_batch()
                .topic_arn(topic_arn)
                .set_publish_batch_request_entries(Some(batch))
                .send()
                .await
                .map_err(|err| SinkError::Request(err.into()))?;
            let failed = output.failed();
            if !failed.is_empty() {
                let details = failed
                    .iter()
                    .map(|f| {
                        format!(
                            "{}: {} {}{}",
                            f.id(),
                            f.code(),
                            f.message().unwrap_or(""),
                            if f.sender_fault() { " (sender fault)" } else { "" }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                return Err(SinkError::Rejected { failed: failed.len(), total, details });
            }
        }
        Ok(())
    }
}

/// The `PublishBatch` entries for `alerts`, split into requests SNS accepts.
pub fn sns_entries(alerts: &[Alert]) -> Result<Vec<Vec<PublishBatchRequestEntry>>, SinkError> {
    batches(alerts, Rendering::V1)
}

/// The same for the chat topic: each message is one custom notification.
pub fn chat_entries(alerts: &[Alert]) -> Result<Vec<Vec<PublishBatchRequestEntry>>, SinkError> {
    batches(alerts, Rendering::Chat)
}

#[derive(Clone, Copy)]
enum Rendering {
    V1,
    Chat,
}

fn batches(alerts: &[Alert], rendering: Rendering) -> Result<Vec<Vec<PublishBatchRequestEntry>>, SinkError> {
    let mut batches: Vec<Vec<PublishBatchRequestEntry>> = Vec::new();
    let mut current: Vec<PublishBatchRequestEntry> = Vec::new();
    let mut current_bytes = 0;
    // Ids need only be unique within a request; the position in `alerts` is.
    for (index, alert) in alerts.iter().enumerate() {
        let (entry, bytes) = entry(alert, index, rendering)?;
        if !current.is_empty() && (current.len() == MAX_BATCH_ENTRIES || current_bytes + bytes > MAX_BATCH_BYTES) {
            batches.push(std::mem::take(&mut current));
            current_bytes = 0;
        }
        current.push(entry);
        current_bytes += bytes;
    }
    if !current.is_empty() {
        batches.push(current);
    }
    Ok(batches)
}

/// One entry and its size as SNS counts it.
fn entry(alert: &Alert, index: usize, rendering: Rendering) -> Result<(PublishBatchRequestEntry, usize), SinkError> {
    let invalid = |reason: String| SinkError::Invalid { dedup_key: alert.dedup_key.clone(), reason };
    let subject = alert.sns_subject();
    let mut builder = PublishBatchRequestEntry::builder().id(format!("a{index}")).subject(subject.clone());
    let message = match rendering {
        Rendering::V1 => {
            builder = builder.message_structure("json");
            serde_json::json!({
                "default": alert.to_json(),
                "email": alert.to_text(),
            })
            .to_string()
        }
        Rendering::Chat => rolewatch::chat::notification(alert).to_string(),
    };
    let mut bytes = message.len() + subject.len();
    builder = builder.message(message);
    for (name, value) in [
        ("severity", alert.severity.as_str()),
        ("detector", alert.detector.as_str()),
        ("account_id", alert.account_id.as_str()),
    ] {
        // SNS rejects empty attribute values; an absent attribute simply
        // does not match a filter on it.
        if value.is_empty() {
            continue;
        }
        let attribute = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(value)
            .build()
            .map_err(|err| invalid(err.to_string()))?;
        bytes += name.len() + "String".len() + value.len();
        builder = builder.message_attributes(name, attribute);
    }
    let entry = builder.build().map_err(|err| invalid(err.to_string()))?;
    if bytes > MAX_BATCH_BYTES {
        return Err(invalid(format!("message of {bytes} bytes is larger than SNS accepts")));
    }
    Ok((entry, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rolewatch::alert::{NewAlert, Severity};
    use serde_json::Value;

    fn alert(i: usize, account: &str) -> Alert {
        Alert::new(NewAlert {
            detector: "repeated_failures",
            severity: Severity::High,
            title: &format!("Burst of failed role assumptions #{i}"),
            summary: "Seven AccessDenied in two minutes.",
            dedup_key: format!("repeated_failures:{i:016x}"),
            account_id: account,
            principal: "arn:aws:iam::111122223333:user/legacy-build",
            caller_account: Some("111122223333"),
            role_arn: None,
            source_ip: Some("198.18.9.20"),
            event_name: "AssumeRole",
            first_event_time: 1_790_935_269,
            last_event_time: 1_790_935_406,
        })
    }

    #[test]
    fn batches_hold_at_most_ten_entries_with_unique_ids() {
        let alerts: Vec<Alert> = (0..23).map(|i| alert(i, "111122223333")).collect();
        let batches = sns_entries(&alerts).map_err(|e| e.to_string());
        let sizes: Vec<usize> = batches.iter().flatten().map(Vec::len).collect();
        assert_eq!(sizes, [10, 10, 3]);
        for batch in batches.iter().flatten() {
            let mut ids: Vec<&str> = batch.iter().map(|e| e.id()).collect();
            ids.sort_unstable();
            ids.dedup();
            assert_eq!(ids.len(), batch.len());
        }
    }

    #[test]
    fn each_entry_carries_json_for_machines_text_for_people_and_filterable_attributes() {
        let a = alert(7, "111122223333");
        let batches = sns_entries(std::slice::from_ref(&a)).map_err(|e| e.to_string());
        let Some(entry) = batches.as_ref().ok().and_then(|b| b.first()).and_then(|b| b.first()) else {
            panic!("one entry expected: {batches:?}");
        };
        assert_eq!(entry.message_structure(), Some("json"));
        assert_eq!(entry.subject(), Some(a.sns_subject().as_str()));
        let message: Value = serde_json::from_str(entry.message()).unwrap_or_default();
        assert_eq!(message["default"].as_str(), Some(a.to_json().as_str()));
        assert_eq!(message["email"].as_str(), Some(a.to_text().as_str()));
        let attrs = entry.message_attributes().cloned().unwrap_or_default();
        let attr =
            |name: &str| attrs.get(name).map(|v| (v.data_type().to_owned(), v.string_value().map(str::to_owned)));
        assert_eq!(attr("severity"), Some(("String".to_owned(), Some("high".to_owned()))));
        assert_eq!(attr("detector"), Some(("String".to_owned(), Some("repeated_failures".to_owned()))));
        assert_eq!(attr("account_id"), Some(("String".to_owned(), Some("111122223333".to_owned()))));
    }

    #[test]
    fn chat_entries_are_plain_custom_notifications_with_the_same_attributes() {
        let a = alert(7, "111122223333");
        let batches = chat_entries(std::slice::from_ref(&a)).map_err(|e| e.to_string());
        let Some(entry) = batches.as_ref().ok().and_then(|b| b.first()).and_then(|b| b.first()) else {
            panic!("one entry expected: {batches:?}");
        };
        assert_eq!(entry.message_structure(), None, "the chat integration reads the message itself");
        let message: Value = serde_json::from_str(entry.message()).unwrap_or_default();
        assert_eq!(message["version"], "1.0");
        assert_eq!(message["source"], "custom");
        assert_eq!(message["metadata"]["threadId"].as_str(), Some(a.dedup_key.as_str()));
        let attrs = entry.message_attributes().cloned().unwrap_or_default();
        assert!(attrs.contains_key("severity") && attrs.contains_key("detector"));
    }

    #[test]
    fn an_empty_account_id_is_left_out_rather_than_rejected_by_sns() {
        let batches = sns_entries(&[alert(1, "")]).map_err(|e| e.to_string());
        let entry = batches.as_ref().ok().and_then(|b| b.first()).and_then(|b| b.first()).cloned();
        let attrs = entry.and_then(|e| e.message_attributes().cloned()).unwrap_or_default();
        assert!(!attrs.contains_key("account_id"));
        assert!(attrs.contains_key("severity"));
    }

    #[test]
    fn large_alerts_split_batches_by_size() {
        let big: Vec<Alert> = (0..6)
            .map(|i| {
                let mut a = alert(i, "111122223333");
                a.details.insert("note".to_owned(), Value::String("x".repeat(60 * 1024)));
                a
            })
            .collect();
        let batches = sns_entries(&big).map_err(|e| e.to_string());
        let sizes: Vec<usize> = batches.iter().flatten().map(Vec::len).collect();
        assert!(sizes.len() > 1 && sizes.iter().sum::<usize>() == 6, "{sizes:?}");
    }
}
