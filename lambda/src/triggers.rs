//! Every way a CloudTrail delivery reaches the function, turned into object
//! references (bucket, key).
//!
//! Shapes understood (the raw invocation JSON, or an SQS body / SNS message
//! carrying one of them):
//!
//! - a direct S3 event notification (`Records[].s3`; keys are URL-encoded,
//!   `+` is a space);
//! - an EventBridge `Object Created` event from `aws.s3` (keys decoded the
//!   same way);
//! - CloudTrail's own SNS delivery notification, a `Message` of
//!   `{"s3Bucket":"...","s3ObjectKey":["..."]}` (keys are plain);
//! - an SNS Lambda event or an SNS envelope (`"Type":"Notification"`) whose
//!   `Message` is any of the above;
//! - an SQS batch (`Records[].eventSource == "aws:sqs"`) whose bodies are any
//!   of the above. SQS messages are kept apart so that the function can
//!   answer `batchItemFailures` for exactly the messages that failed.
//!
//! `s3:TestEvent` messages and S3 events other than object creation are
//! acknowledged and counted, never treated as errors.

use serde_json::Value;
use thiserror::Error;

/// Envelopes nest (SQS -> SNS -> S3 notification); deeper than this is not a
/// delivery we know.
const MAX_NESTING: usize = 4;

/// One S3 object named by a trigger.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    pub bucket: String,
    pub key: String,
}

impl ObjectRef {
    pub fn new(bucket: impl Into<String>, key: impl Into<String>) -> Self {
        Self { bucket: bucket.into(), key: key.into() }
    }

    /// `s3://bucket/key`: the engine's input id and the name used in errors.
    pub fn uri(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// What one delivery (the whole event, or one SQS message) asks for.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Objects to consider, in the order the trigger named them.
    pub objects: Vec<ObjectRef>,
    /// `s3:TestEvent` messages (sent when a notification is configured).
    pub test_events: usize,
    /// S3 events that are not object creation (deletes, restores, ...).
    pub ignored_events: usize,
}

impl Delivery {
    fn merge(&mut self, other: Delivery) {
        self.objects.extend(other.objects);
        self.test_events += other.test_events;
        self.ignored_events += other.ignored_events;
    }
}

/// The trigger shape, for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerKind {
    S3Notification,
    EventBridge,
    Sns,
    CloudTrailNotification,
    TestEvent,
    Sqs,
    Empty,
}

impl TriggerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerKind::S3Notification => "s3_notification",
            TriggerKind::EventBridge => "eventbridge",
            TriggerKind::Sns => "sns",
            TriggerKind::CloudTrailNotification => "cloudtrail_notification",
            TriggerKind::TestEvent => "s3_test_event",
            TriggerKind::Sqs => "sqs",
            TriggerKind::Empty => "empty",
        }
    }
}

/// One SQS message of a batch, parsed on its own: a bad message fails alone.
#[derive(Debug)]
pub struct SqsMessage {
    pub message_id: String,
    pub delivery: Result<Delivery, TriggerError>,
}

/// A parsed invocation.
#[derive(Debug)]
pub enum Invocation {
    /// One delivery; any failure fails the whole invocation (Lambda retries it).
    Single { kind: TriggerKind, delivery: Delivery },
    /// An SQS batch; failures are reported per message (`batchItemFailures`).
    SqsBatch { messages: Vec<SqsMessage> },
}

#[derive(Debug, Error)]
pub enum TriggerError {
    #[error("unrecognised event: {what}")]
    Unrecognised { what: String },
    #[error("{shape}: missing or non-string field `{field}`")]
    MissingField { shape: &'static str, field: &'static str },
    #[error("{shape}: body is not JSON: {source}")]
    BadJson {
        shape: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("S3 key {key:?} is not valid URL encoding: {source}")]
    BadKeyEncoding {
        key: String,
        #[source]
        source: std::string::FromUtf8Error,
    },
    #[error("envelopes nested deeper than {MAX_NESTING} levels")]
    TooDeep,
}

/// Parse the raw invocation JSON.
pub fn parse_invocation(event: &Value) -> Result<Invocation, TriggerError> {
    if let Some(records) = event.get("Records").and_then(Value::as_array) {
        let is_sqs = |r: &Value| event_source(r) == Some("aws:sqs");
        if !records.is_empty() && records.iter().all(is_sqs) {
            let messages = records.iter().map(parse_sqs_record).collect::<Result<Vec<_>, _>>()?;
            return Ok(Invocation::SqsBatch { messages });
        }
        if records.iter().any(is_sqs) {
            return Err(TriggerError::Unrecognised {
                what: "a Records array mixing SQS messages with other sources".into(),
            });
        }
    }
    let (kind, delivery) = parse_delivery(event, 0)?;
    Ok(Invocation::Single { kind, delivery })
}

fn parse_sqs_record(record: &Value) -> Result<SqsMessage, TriggerError> {
    let message_id = str_field(record, "messageId", "SQS message")?.to_owned();
    let delivery = str_field(record, "body", "SQS message")
        .and_then(|body| parse_text(body, "SQS message body", 1))
        .map(|(_, delivery)| delivery);
    Ok(SqsMessage { message_id, delivery })
}

fn parse_text(text: &str, shape: &'static str, depth: usize) -> Result<(TriggerKind, Delivery), TriggerError> {
    let value: Value = serde_json::from_str(text).map_err(|source| TriggerError::BadJson { shape, source })?;
    parse_delivery(&value, depth)
}

/// Any non-SQS shape, possibly inside an envelope.
fn parse_delivery(value: &Value, depth: usize) -> Result<(TriggerKind, Delivery), TriggerError> {
    if depth > MAX_NESTING {
        return Err(TriggerError::TooDeep);
    }
    let Some(object) = value.as_object() else {
        return Err(TriggerError::Unrecognised { what: format!("expected a JSON object, got {}", json_type(value)) });
    };

    if let Some(records) = object.get("Records").and_then(Value::as_array) {
        return parse_records(records, depth);
    }
    if object.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok((TriggerKind::TestEvent, Delivery { test_events: 1, ..Delivery::default() }));
    }
    if object.contains_key("detail-type") {
        return parse_eventbridge(value);
    }
    if object.contains_key("s3Bucket") {
        return parse_cloudtrail_notification(value);
    }
    if object.get("Type").and_then(Value::as_str) == Some("Notification") {
        let message = str_field(value, "Message", "SNS notification")?;
        let (_, delivery) = parse_text(message, "SNS message", depth + 1)?;
        return Ok((TriggerKind::Sns, delivery));
    }
    let mut keys: Vec<&str> = object.keys().map(String::as_str).take(8).collect();
    keys.sort_unstable();
    Err(TriggerError::Unrecognised { what: format!("an object with fields {keys:?}") })
}

fn parse_records(records: &[Value], depth: usize) -> Result<(TriggerKind, Delivery), TriggerError> {
    let mut delivery = Delivery::default();
    let mut kind = TriggerKind::Empty;
    for record in records {
        match event_source(record) {
            Some("aws:s3") => {
                kind = TriggerKind::S3Notification;
                delivery.merge(parse_s3_record(record)?);
            }
            Some("aws:sns") => {
                kind = TriggerKind::Sns;
                let sns = record.get("Sns").ok_or(TriggerError::MissingField { shape: "SNS record", field: "Sns" })?;
                let message = str_field(sns, "Message", "SNS record")?;
                let (_, inner) = parse_text(message, "SNS message", depth + 1)?;
                delivery.merge(inner);
            }
            other => return Err(TriggerError::Unrecognised { what: format!("a record with eventSource {other:?}") }),
        }
    }
    Ok((kind, delivery))
}

fn parse_s3_record(record: &Value) -> Result<Delivery, TriggerError> {
    const SHAPE: &str = "S3 notification record";
    let event_name = record.get("eventName").and_then(Value::as_str).unwrap_or("ObjectCreated:");
    if !event_name.starts_with("ObjectCreated:") {
        return Ok(Delivery { ignored_events: 1, ..Delivery::default() });
    }
    let s3 = record.get("s3").ok_or(TriggerError::MissingField { shape: SHAPE, field: "s3" })?;
    let bucket = s3
        .get("bucket")
        .and_then(|b| b.get("name"))
        .and_then(Value::as_str)
        .ok_or(TriggerError::MissingField { shape: SHAPE, field: "s3.bucket.name" })?;
    let key = s3
        .get("object")
        .and_then(|o| o.get("key"))
        .and_then(Value::as_str)
        .ok_or(TriggerError::MissingField { shape: SHAPE, field: "s3.object.key" })?;
    Ok(Delivery { objects: vec![ObjectRef::new(bucket, decode_key(key)?)], ..Delivery::default() })
}

fn parse_eventbridge(value: &Value) -> Result<(TriggerKind, Delivery), TriggerError> {
    const SHAPE: &str = "EventBridge event";
    let source = value.get("source").and_then(Value::as_str);
    let detail_type = str_field(value, "detail-type", SHAPE)?;
    if source != Some("aws.s3") {
        return Err(TriggerError::Unrecognised {
            what: format!("an EventBridge event from {source:?} ({detail_type})"),
        });
    }
    if detail_type != "Object Created" {
        return Ok((TriggerKind::EventBridge, Delivery { ignored_events: 1, ..Delivery::default() }));
    }
    let detail = value.get("detail").ok_or(TriggerError::MissingField { shape: SHAPE, field: "detail" })?;
    let bucket = detail
        .get("bucket")
        .and_then(|b| b.get("name"))
        .and_then(Value::as_str)
        .ok_or(TriggerError::MissingField { shape: SHAPE, field: "detail.bucket.name" })?;
    let key = detail
        .get("object")
        .and_then(|o| o.get("key"))
        .and_then(Value::as_str)
        .ok_or(TriggerError::MissingField { shape: SHAPE, field: "detail.object.key" })?;
    Ok((
        TriggerKind::EventBridge,
        Delivery { objects: vec![ObjectRef::new(bucket, decode_key(key)?)], ..Delivery::default() },
    ))
}

/// CloudTrail's SNS notification: `{"s3Bucket":"b","s3ObjectKey":["k",...]}`.
/// The keys are plain, not URL-encoded.
fn parse_cloudtrail_notification(value: &Value) -> Result<(TriggerKind, Delivery), TriggerError> {
    const SHAPE: &str = "CloudTrail notification";
    let bucket = str_field(value, "s3Bucket", SHAPE)?;
    let keys = match value.get("s3ObjectKey") {
        Some(Value::Array(keys)) => keys
            .iter()
            .map(|k| k.as_str().ok_or(TriggerError::MissingField { shape: SHAPE, field: "s3ObjectKey[]" }))
            .collect::<Result<Vec<_>, _>>()?,
        Some(Value::String(key)) => vec![key.as_str()],
        _ => return Err(TriggerError::MissingField { shape: SHAPE, field: "s3ObjectKey" }),
    };
    Ok((
        TriggerKind::CloudTrailNotification,
        Delivery { objects: keys.into_iter().map(|k| ObjectRef::new(bucket, k)).collect(), ..Delivery::default() },
    ))
}

/// S3 notification keys are form-encoded: `+` is a space, `%2B` a plus.
pub fn decode_key(key: &str) -> Result<String, TriggerError> {
    let spaced = key.replace('+', " ");
    urlencoding::decode(&spaced)
        .map(|k| k.into_owned())
        .map_err(|source| TriggerError::BadKeyEncoding { key: key.to_owned(), source })
}

fn event_source(record: &Value) -> Option<&str> {
    record.get("eventSource").or_else(|| record.get("EventSource")).and_then(Value::as_str)
}

fn str_field<'a>(value: &'a Value, field: &'static str, shape: &'static str) -> Result<&'a str, TriggerError> {
    value.get(field).and_then(Value::as_str).ok_or(TriggerError::MissingField { shape, field })
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn single(event: Value) -> (TriggerKind, Delivery) {
        match parse_invocation(&event) {
            Ok(Invocation::Single { kind, delivery }) => (kind, delivery),
            other => panic!("expected a single delivery, got {other:?}"),
        }
    }

    fn s3_notification(bucket: &str, key: &str) -> Value {
        json!({"Records": [{
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 10}}
        }]})
    }

    #[test]
    fn s3_notification_keys_are_url_decoded_with_plus_as_space() {
        let (kind, delivery) = single(s3_notification("trail", "AWSLogs/a+b%2Bc%3D/x.json.gz"));
        assert_eq!(kind, TriggerKind::S3Notification);
        assert_eq!(delivery.objects, vec![ObjectRef::new("trail", "AWSLogs/a b+c=/x.json.gz")]);
    }

    #[test]
    fn s3_delete_events_are_ignored_not_processed() {
        let event = json!({"Records": [{
            "eventSource": "aws:s3", "eventName": "ObjectRemoved:Delete",
            "s3": {"bucket": {"name": "b"}, "object": {"key": "k"}}
        }]});
        let (_, delivery) = single(event);
        assert!(delivery.objects.is_empty());
        assert_eq!(delivery.ignored_events, 1);
    }

    #[test]
    fn eventbridge_object_created() {
        let event = json!({
            "version": "0", "id": "x", "detail-type": "Object Created", "source": "aws.s3",
            "account": "111122223333", "time": "2026-10-01T00:00:00Z", "region": "us-east-1",
            "resources": ["arn:aws:s3:::trail"],
            "detail": {"version": "0", "bucket": {"name": "trail"},
                       "object": {"key": "AWSLogs/111122223333/CloudTrail/us-east-1/2026/10/01/f.json.gz"}}
        });
        let (kind, delivery) = single(event);
        assert_eq!(kind, TriggerKind::EventBridge);
        assert_eq!(
            delivery.objects,
            vec![ObjectRef::new("trail", "AWSLogs/111122223333/CloudTrail/us-east-1/2026/10/01/f.json.gz")]
        );
    }

    #[test]
    fn eventbridge_from_another_source_is_an_error() {
        let event = json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}});
        assert!(matches!(parse_invocation(&event), Err(TriggerError::Unrecognised { .. })));
    }

    #[test]
    fn cloudtrail_sns_notification_lists_plain_keys() {
        let message = json!({"s3Bucket": "trail", "s3ObjectKey": ["AWSLogs/1/a+b.json.gz", "AWSLogs/1/c.json.gz"]});
        let event = json!({"Records": [{
            "EventSource": "aws:sns", "EventVersion": "1.0",
            "Sns": {"Type": "Notification", "Message": message.to_string()}
        }]});
        let (kind, delivery) = single(event);
        assert_eq!(kind, TriggerKind::Sns);
        assert_eq!(
            delivery.objects,
            vec![ObjectRef::new("trail", "AWSLogs/1/a+b.json.gz"), ObjectRef::new("trail", "AWSLogs/1/c.json.gz")]
        );
    }

    #[test]
    fn sqs_batch_keeps_messages_apart_and_a_bad_body_fails_alone() {
        let sns_envelope = json!({
            "Type": "Notification", "MessageId": "m",
            "Message": s3_notification("trail", "AWSLogs/k2").to_string()
        });
        let eventbridge = json!({"detail-type": "Object Created", "source": "aws.s3",
            "detail": {"bucket": {"name": "trail"}, "object": {"key": "AWSLogs/k3"}}});
        let event = json!({"Records": [
            {"messageId": "1", "eventSource": "aws:sqs", "body": s3_notification("trail", "AWSLogs/k1").to_string()},
            {"messageId": "2", "eventSource": "aws:sqs", "body": sns_envelope.to_string()},
            {"messageId": "3", "eventSource": "aws:sqs", "body": eventbridge.to_string()},
            {"messageId": "4", "eventSource": "aws:sqs", "body": "not json"},
            {"messageId": "5", "eventSource": "aws:sqs",
             "body": json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "trail"}).to_string()}
        ]});
        let Ok(Invocation::SqsBatch { messages }) = parse_invocation(&event) else {
            panic!("expected an SQS batch");
        };
        let keys: Vec<(String, Vec<String>)> = messages
            .iter()
            .filter_map(|m| {
                let d = m.delivery.as_ref().ok()?;
                Some((m.message_id.clone(), d.objects.iter().map(|o| o.key.clone()).collect()))
            })
            .collect();
        assert_eq!(
            keys,
            vec![
                ("1".to_owned(), vec!["AWSLogs/k1".to_owned()]),
                ("2".to_owned(), vec!["AWSLogs/k2".to_owned()]),
                ("3".to_owned(), vec!["AWSLogs/k3".to_owned()]),
                ("5".to_owned(), vec![]),
            ]
        );
        assert!(matches!(messages[3].delivery, Err(TriggerError::BadJson { .. })));
        assert_eq!(messages[4].delivery.as_ref().map(|d| d.test_events).ok(), Some(1));
    }

    #[test]
    fn s3_test_event_is_acknowledged() {
        let event = json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2026-10-01T00:00:00.000Z", "Bucket": "trail"});
        let (kind, delivery) = single(event);
        assert_eq!(kind, TriggerKind::TestEvent);
        assert_eq!(delivery.test_events, 1);
        assert!(delivery.objects.is_empty());
    }

    #[test]
    fn unknown_shapes_and_missing_fields_are_errors_not_panics() {
        for event in [
            json!(null),
            json!([1, 2]),
            json!({"hello": "world"}),
            json!({"Records": [{"eventSource": "aws:s3", "s3": {"bucket": {}}}]}),
            json!({"Records": [{"eventSource": "aws:kinesis"}]}),
            json!({"Records": [{"eventSource": "aws:sqs", "body": "{}"}]}),
            json!({"s3Bucket": "b", "s3ObjectKey": [1]}),
            json!({"Records": [{"eventSource": "aws:s3", "s3": {"bucket": {"name": "b"}, "object": {"key": "%FF"}}}]}),
        ] {
            assert!(parse_invocation(&event).is_err(), "{event} should not parse");
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let mut text = s3_notification("b", "k").to_string();
        for _ in 0..10 {
            text = json!({"Type": "Notification", "Message": text}).to_string();
        }
        let event: Value = serde_json::from_str(&text).unwrap_or_default();
        assert!(matches!(parse_invocation(&event), Err(TriggerError::TooDeep)));
    }
}
