//! CloudTrail record shapes for STS role assumptions, as AWS writes them
//! (compare /work/shared/data/cloudtrail-public and the CloudTrail
//! userIdentity reference): who called, both copies of a cross-account
//! call, refused calls, and the API calls a session makes afterwards.

use std::collections::BTreeSet;

use rolewatch::cloudtrail::{format_rfc3339, EpochSeconds};
use serde_json::{json, Map, Value};

use super::Rng;

/// Who makes a call, as the caller's copy of the record shows it.
#[derive(Debug, Clone)]
pub struct Caller {
    pub identity: Value,
    /// The caller account; `None` for SAML, web identity and AWS services.
    pub account: Option<String>,
    /// `userIdentity.principalId`, which a role owner's copy keeps.
    pub principal_id: String,
    /// What rolewatch calls it on the caller's copy.
    pub principal: String,
}

impl Caller {
    /// What rolewatch calls it on a role owner's copy (`AWSAccount`).
    pub fn owner_copy_principal(&self) -> String {
        format!("{}:{}", self.account.as_deref().unwrap_or("unknown"), self.principal_id)
    }
}

/// A stable IAM-style unique id (`AIDA…`, `AROA…`) for a name.
pub fn unique_id(prefix: &str, name: &str) -> String {
    let hash = twox_hash::XxHash3_64::oneshot(name.as_bytes());
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let tail: String = (0..17).map(|i| alphabet[((hash >> (i * 3)) & 31) as usize] as char).collect();
    format!("{prefix}{tail}")
}

pub fn iam_user(account: &str, name: &str) -> Caller {
    let arn = format!("arn:aws:iam::{account}:user/{name}");
    let principal_id = unique_id("AIDA", &arn);
    Caller {
        identity: json!({
            "type": "IAMUser", "principalId": principal_id, "arn": arn, "accountId": account,
            "accessKeyId": unique_id("AKIA", &format!("key:{arn}")).get(..20).unwrap_or_default(), "userName": name
        }),
        account: Some(account.to_owned()),
        principal_id,
        principal: arn,
    }
}

/// A role session (`AssumedRole`) making a further call: a chained
/// assumption, or a Lambda function acting with its role.
pub fn role_session(role_arn: &str, session: &str, created: EpochSeconds, mfa: bool) -> Caller {
    let account = role_arn.split(':').nth(4).unwrap_or_default().to_owned();
    let role_path = role_arn.split_once(":role/").map_or("", |(_, p)| p);
    let role_name = role_path.rsplit('/').next().unwrap_or(role_path);
    let role_id = unique_id("AROA", role_arn);
    let arn = format!("arn:aws:sts::{account}:assumed-role/{role_name}/{session}");
    let principal_id = format!("{role_id}:{session}");
    Caller {
        identity: json!({
            "type": "AssumedRole", "principalId": principal_id, "arn": arn, "accountId": account,
            "accessKeyId": unique_id("ASIA", &format!("{arn}{created}")).get(..20).unwrap_or_default(),
            "sessionContext": {
                "sessionIssuer": {"type": "Role", "principalId": role_id, "arn": role_arn,
                                  "accountId": account, "userName": role_name},
                "webIdFederationData": {},
                "attributes": {"creationDate": format_rfc3339(created),
                               "mfaAuthenticated": if mfa { "true" } else { "false" }}
            }
        }),
        account: Some(account),
        principal_id,
        principal: arn,
    }
}

/// An IAM Identity Center (or other SAML) user signing in to a role.
pub fn saml_user(qualifier: &str, email: &str) -> Caller {
    Caller {
        identity: json!({"type": "SAMLUser", "principalId": format!("{qualifier}:{email}"),
                         "userName": email, "identityProvider": qualifier}),
        account: None,
        principal_id: format!("{qualifier}:{email}"),
        principal: format!("{qualifier}/{email}"),
    }
}

pub fn web_identity(provider_arn: &str, subject: &str) -> Caller {
    Caller {
        identity: json!({"type": "WebIdentityUser",
                         "principalId": format!("{provider_arn}:sts.amazonaws.com:{subject}"),
                         "userName": subject, "identityProvider": provider_arn}),
        account: None,
        principal_id: format!("{provider_arn}:sts.amazonaws.com:{subject}"),
        principal: format!("{provider_arn}/{subject}"),
    }
}

pub fn aws_service(name: &str) -> Caller {
    Caller {
        identity: json!({"type": "AWSService", "invokedBy": name}),
        account: None,
        principal_id: name.to_owned(),
        principal: name.to_owned(),
    }
}

/// One STS call, before it is written into one or two logs.
#[derive(Debug, Clone)]
pub struct Call {
    pub time: EpochSeconds,
    pub event_name: &'static str,
    pub role_arn: String,
    pub session: String,
    pub source_ip: String,
    pub user_agent: String,
    pub region: &'static str,
    pub duration_seconds: Option<u64>,
    /// The external id a vendor passes; never printed by rolewatch.
    pub external_id: Option<String>,
    /// The MFA device, when the caller passed a code.
    pub mfa_serial: Option<String>,
    /// SAML and web-identity request and response fields.
    pub request_extra: Map<String, Value>,
    pub response_extra: Map<String, Value>,
}

impl Call {
    pub fn new(time: EpochSeconds, role_arn: &str, session: &str, source_ip: &str, user_agent: &str) -> Call {
        Call {
            time,
            event_name: "AssumeRole",
            role_arn: role_arn.to_owned(),
            session: session.to_owned(),
            source_ip: source_ip.to_owned(),
            user_agent: user_agent.to_owned(),
            region: "us-east-1",
            duration_seconds: None,
            external_id: None,
            mfa_serial: None,
            request_extra: Map::new(),
            response_extra: Map::new(),
        }
    }

    pub fn role_account(&self) -> &str {
        self.role_arn.split(':').nth(4).unwrap_or_default()
    }
}

/// One record, and the account whose log it is written into.
#[derive(Debug, Clone)]
pub struct Record {
    pub account: String,
    pub region: &'static str,
    pub time: EpochSeconds,
    pub event_id: String,
    pub value: Value,
}

fn envelope(rng: &mut Rng, call: &Call, identity: &Value, recipient: &str) -> Map<String, Value> {
    let mut record = Map::new();
    record.insert("eventVersion".into(), "1.08".into());
    record.insert("userIdentity".into(), identity.clone());
    record.insert("eventTime".into(), format_rfc3339(call.time).into());
    record.insert("eventSource".into(), "sts.amazonaws.com".into());
    record.insert("eventName".into(), call.event_name.into());
    record.insert("awsRegion".into(), call.region.into());
    record.insert("sourceIPAddress".into(), call.source_ip.clone().into());
    record.insert("userAgent".into(), call.user_agent.clone().into());
    record.insert("requestID".into(), rng.uuid().into());
    record.insert("eventID".into(), rng.uuid().into());
    record.insert("readOnly".into(), true.into());
    record.insert("eventType".into(), "AwsApiCall".into());
    record.insert("managementEvent".into(), true.into());
    record.insert("recipientAccountId".into(), recipient.into());
    record.insert("eventCategory".into(), "Management".into());
    if call.source_ip.parse::<std::net::IpAddr>().is_ok() {
        record.insert(
            "tlsDetails".into(),
            json!({"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256",
                   "clientProvidedHostHeader": if call.region == "us-east-1" { "sts.amazonaws.com".to_owned() }
                                               else { format!("sts.{}.amazonaws.com", call.region) }}),
        );
    }
    record
}

/// "Mar 2, 2026, 1:04:05 PM", the form `credentials.expiration` takes.
fn expiration(t: EpochSeconds) -> String {
    chrono::DateTime::from_timestamp(t, 0).map(|d| d.format("%b %-d, %Y, %-I:%M:%S %p").to_string()).unwrap_or_default()
}

fn request(call: &Call) -> Value {
    let mut req = Map::new();
    req.insert("roleArn".into(), call.role_arn.clone().into());
    req.insert("roleSessionName".into(), call.session.clone().into());
    if let Some(d) = call.duration_seconds {
        req.insert("durationSeconds".into(), d.into());
    }
    if let Some(id) = &call.external_id {
        req.insert("externalId".into(), id.clone().into());
    }
    if let Some(serial) = &call.mfa_serial {
        req.insert("serialNumber".into(), serial.clone().into());
    }
    req.extend(call.request_extra.clone());
    Value::Object(req)
}

fn response(rng: &mut Rng, call: &Call) -> Value {
    let role_name = call.role_arn.rsplit('/').next().unwrap_or_default();
    let mut resp = Map::new();
    resp.insert(
        "credentials".into(),
        json!({
            "accessKeyId": format!("ASIA{}", rng.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)),
            "sessionToken": session_token(rng),
            "expiration": expiration(call.time + call.duration_seconds.unwrap_or(3600) as i64)
        }),
    );
    resp.insert(
        "assumedRoleUser".into(),
        json!({
            "assumedRoleId": format!("{}:{}", unique_id("AROA", &call.role_arn), call.session),
            "arn": format!("arn:aws:sts::{}:assumed-role/{role_name}/{}", call.role_account(), call.session)
        }),
    );
    resp.extend(call.response_extra.clone());
    Value::Object(resp)
}

/// A session token's shape; tests check that none reaches an alert.
pub fn session_token(rng: &mut Rng) -> String {
    format!("IQoJb3JpZ2luX2VjE{}", rng.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", 120))
}

/// A granted call, written where CloudTrail writes it: once in the role's
/// account for same-account calls, SAML, web identity and AWS services;
/// twice for a cross-account call by a caller inside `organization` (the
/// caller's copy naming the caller, the owner's copy showing only its
/// account and principal id, same `sharedEventID`); once, the owner's
/// copy, for a caller outside it (its logs are not ours).
pub fn granted(rng: &mut Rng, caller: &Caller, call: &Call, organization: &BTreeSet<String>) -> Vec<Record> {
    let owner = call.role_account().to_owned();
    let cross_account = caller.account.as_deref().is_some_and(|a| a != owner);
    let shared =
        (cross_account || caller.account.is_none() && caller.identity["type"] == "AWSService").then(|| rng.uuid());
    let resources = json!([{"accountId": owner, "type": "AWS::IAM::Role", "ARN": call.role_arn}]);
    let mut copy = |identity: &Value, recipient: &str| {
        let mut record = envelope(rng, call, identity, recipient);
        record.insert("requestParameters".into(), request(call));
        record.insert("responseElements".into(), response(rng, call));
        record.insert("resources".into(), resources.clone());
        if let Some(shared) = &shared {
            record.insert("sharedEventID".into(), shared.clone().into());
        }
        Record {
            account: recipient.to_owned(),
            region: call.region,
            time: call.time,
            event_id: record["eventID"].as_str().unwrap_or_default().to_owned(),
            value: Value::Object(record),
        }
    };
    if !cross_account {
        return vec![copy(&caller.identity, &owner)];
    }
    let caller_account = caller.account.clone().unwrap_or_default();
    let owner_identity = json!({"type": "AWSAccount", "principalId": caller.principal_id, "accountId": caller_account});
    let mut out = Vec::new();
    if organization.contains(&caller_account) {
        out.push(copy(&caller.identity, &caller_account));
    }
    out.push(copy(&owner_identity, &owner));
    out
}

/// A refused call, where CloudTrail writes it: the caller's account only
/// (an outsider's probes are in the outsider's logs, not ours), or the
/// role's account for callers without an account. AssumeRole refusals
/// carry `requestParameters: null` and name the role in `errorMessage`.
pub fn denied(rng: &mut Rng, caller: &Caller, call: &Call, organization: &BTreeSet<String>) -> Option<Record> {
    let recipient = caller.account.clone().unwrap_or_else(|| call.role_account().to_owned());
    if !organization.contains(&recipient) {
        return None;
    }
    let mut record = envelope(rng, call, &caller.identity, &recipient);
    record.insert("errorCode".into(), "AccessDenied".into());
    let message = if call.event_name == "AssumeRole" {
        record.insert("requestParameters".into(), Value::Null);
        format!(
            "User: {} is not authorized to perform: sts:AssumeRole on resource: {}",
            caller.principal, call.role_arn
        )
    } else {
        record.insert("requestParameters".into(), request(call));
        format!("Not authorized to perform sts:{}", call.event_name)
    };
    record.insert("errorMessage".into(), message.into());
    record.insert("responseElements".into(), Value::Null);
    Some(Record {
        account: recipient,
        region: call.region,
        time: call.time,
        event_id: record["eventID"].as_str().unwrap_or_default().to_owned(),
        value: Value::Object(record),
    })
}

/// An API call a session makes with its credentials (not a role
/// assumption: the reader must pass over it).
pub fn api_call(rng: &mut Rng, session: &Caller, t: EpochSeconds, ip: &str, user_agent: &str) -> Record {
    let account = session.account.clone().unwrap_or_default();
    let (source, name, params) = match rng.range(0, 6) {
        0 => ("ec2.amazonaws.com", "DescribeInstances", json!({"instancesSet": {}, "filterSet": {}})),
        1 => ("s3.amazonaws.com", "ListBuckets", json!({"Host": "s3.amazonaws.com"})),
        2 => ("sts.amazonaws.com", "GetCallerIdentity", Value::Null),
        3 => ("cloudformation.amazonaws.com", "DescribeStacks", Value::Null),
        4 => ("iam.amazonaws.com", "ListRoles", Value::Null),
        _ => ("logs.amazonaws.com", "DescribeLogGroups", json!({"limit": 50})),
    };
    let mut record = Map::new();
    record.insert("eventVersion".into(), "1.09".into());
    record.insert("userIdentity".into(), session.identity.clone());
    record.insert("eventTime".into(), format_rfc3339(t).into());
    record.insert("eventSource".into(), source.into());
    record.insert("eventName".into(), name.into());
    record.insert("awsRegion".into(), "us-east-1".into());
    record.insert("sourceIPAddress".into(), ip.into());
    record.insert("userAgent".into(), user_agent.into());
    record.insert("requestParameters".into(), params);
    record.insert("responseElements".into(), Value::Null);
    record.insert("requestID".into(), rng.uuid().into());
    let event_id = rng.uuid();
    record.insert("eventID".into(), event_id.clone().into());
    record.insert("readOnly".into(), true.into());
    record.insert("eventType".into(), "AwsApiCall".into());
    record.insert("managementEvent".into(), true.into());
    record.insert("recipientAccountId".into(), account.clone().into());
    record.insert("eventCategory".into(), "Management".into());
    Record { account, region: "us-east-1", time: t, event_id, value: Value::Object(record) }
}
