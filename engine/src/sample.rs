//! CloudTrail records shaped as AWS writes them, for the tests of every
//! rolewatch package: one definition of a denied or granted role assumption
//! instead of a copy per test suite. Built for the engine's own tests and,
//! through the `test-support` feature, for the other packages' tests; never
//! part of a release build.

use std::io::{self, Read, Write};

use serde_json::{json, Value};

/// The address failed calls come from in these records.
pub const GUESSER_IP: &str = "198.18.9.20";
/// The office network granted calls come from.
pub const OFFICE_IP: &str = "192.0.2.44";

/// A failed `AssumeRole` (AccessDenied) by the IAM user `user` of `account`.
pub fn denied_assume_role(account: &str, user: &str, event_id: &str, time: &str) -> Value {
    json!({
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "principalId": "AIDAEXAMPLEUSERID0001",
                          "arn": format!("arn:aws:iam::{account}:user/{user}"), "accountId": account,
                          "accessKeyId": "AKIAEXAMPLEKEY000001", "userName": user},
        "eventTime": time, "eventSource": "sts.amazonaws.com", "eventName": "AssumeRole",
        "awsRegion": "us-east-1", "sourceIPAddress": GUESSER_IP, "userAgent": "aws-cli/2.17.0",
        "errorCode": "AccessDenied",
        "errorMessage": "User is not authorized to perform: sts:AssumeRole",
        "requestParameters": null, "responseElements": null,
        "requestID": format!("req-{event_id}"), "eventID": event_id, "readOnly": true,
        "eventType": "AwsApiCall", "managementEvent": true, "recipientAccountId": account,
        "eventCategory": "Management"
    })
}

/// A granted `AssumeRole` of `account`'s role `deploy` by its IAM user
/// `user`, from the office network.
pub fn granted_assume_role(account: &str, user: &str, event_id: &str, time: &str) -> Value {
    let mut record = denied_assume_role(account, user, event_id, time);
    record["errorCode"] = Value::Null;
    record["errorMessage"] = Value::Null;
    record["sourceIPAddress"] = json!(OFFICE_IP);
    record["requestParameters"] =
        json!({"roleArn": format!("arn:aws:iam::{account}:role/deploy"), "roleSessionName": user});
    record["responseElements"] =
        json!({"assumedRoleUser": {"arn": format!("arn:aws:sts::{account}:assumed-role/deploy/{user}")}});
    record
}

/// Some call other than a role assumption, which rolewatch reads past.
pub fn other_call(account: &str, event_id: &str, time: &str) -> Value {
    json!({
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "arn": format!("arn:aws:iam::{account}:user/alice"), "accountId": account},
        "eventTime": time, "eventSource": "ec2.amazonaws.com", "eventName": "DescribeInstances",
        "awsRegion": "us-east-1", "sourceIPAddress": "192.0.2.10", "requestParameters": {"maxResults": 5},
        "responseElements": null, "eventID": event_id, "eventType": "AwsApiCall",
        "recipientAccountId": account
    })
}

/// A CloudTrail log file's JSON holding `records`.
pub fn log_json(records: &[Value]) -> Vec<u8> {
    json!({ "Records": records }).to_string().into_bytes()
}

/// A CloudTrail log file as delivered: gzip of `log_json`.
pub fn log_gz(records: &[Value]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(&log_json(records));
    encoder.finish().unwrap_or_default()
}

/// Reads like a network stream at its worst: one byte per call, so every
/// place a reader resumes from a short read is exercised.
pub struct ByteAtATime<'a>(pub &'a [u8]);

impl Read for ByteAtATime<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.0.split_first() {
            Some((b, rest)) if !buf.is_empty() => {
                buf[0] = *b;
                self.0 = rest;
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}
