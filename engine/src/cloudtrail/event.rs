//! `AssumeRoleEvent`: the lean, owned view of one STS role assumption.
//!
//! Parsing is lenient where real CloudTrail is messy (`requestParameters:
//! null` on AccessDenied, `durationSeconds` as a string, odd timestamps,
//! unparsable IPs, unknown identity types) and strict where a value of the
//! wrong type means the record cannot be trusted.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::time::{parse_event_time, EpochSeconds};

/// The STS calls that hand out role credentials.
pub const ASSUME_ROLE_FAMILY: [&str; 3] = ["AssumeRole", "AssumeRoleWithSAML", "AssumeRoleWithWebIdentity"];
pub const STS_EVENT_SOURCE: &str = "sts.amazonaws.com";

/// Where a call came from, as CloudTrail's `sourceIPAddress` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceAddress {
    Ip(IpAddr),
    /// An AWS service acting for the caller (`lambda.amazonaws.com`).
    AwsService(String),
    /// `AWS Internal`: a call made by AWS itself.
    AwsInternal,
    /// Present but not an address (anonymised or corrupted logs).
    Unparsable(String),
    Missing,
}

impl SourceAddress {
    pub fn parse(text: Option<&str>) -> SourceAddress {
        let Some(text) = text.map(str::trim) else {
            return SourceAddress::Missing;
        };
        if text.is_empty() {
            return SourceAddress::Missing;
        }
        if text.eq_ignore_ascii_case("AWS Internal") {
            return SourceAddress::AwsInternal;
        }
        if let Ok(ip) = text.parse::<IpAddr>() {
            // IPv4-mapped IPv6 is the same host; keep networks comparable.
            return SourceAddress::Ip(match ip {
                IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
                v4 => v4,
            });
        }
        if text.ends_with(".amazonaws.com") || text.ends_with(".amazonaws.com.cn") {
            return SourceAddress::AwsService(text.to_owned());
        }
        SourceAddress::Unparsable(text.to_owned())
    }

    /// The text CloudTrail wrote, for alerts.
    pub fn as_text(&self) -> Option<String> {
        match self {
            SourceAddress::Ip(ip) => Some(ip.to_string()),
            SourceAddress::AwsService(s) | SourceAddress::Unparsable(s) => Some(s.clone()),
            SourceAddress::AwsInternal => Some("AWS Internal".to_owned()),
            SourceAddress::Missing => None,
        }
    }
}

/// One AssumeRole-family call, success or failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssumeRoleEvent {
    pub event_id: String,
    pub event_time: EpochSeconds,
    pub event_name: String,
    /// `userIdentity.arn`, else the best identifier CloudTrail gives.
    pub principal: String,
    /// `userIdentity.type`: `IAMUser`, `AssumedRole`, `AWSAccount` (a role
    /// owner's copy of a cross-account call), `SAMLUser`, `AWSService`...
    pub identity_type: String,
    /// `userIdentity.accountId`, else the account in `userIdentity.arn`;
    /// `None` for SAML, web identity and AWS services.
    pub caller_account: Option<String>,
    /// `userIdentity.sessionContext.sessionIssuer.arn`: the role a session
    /// caller's session belongs to.
    pub session_issuer_arn: Option<String>,
    /// `sharedEventID`: the same call logged in two accounts shares it.
    pub shared_event_id: Option<String>,
    /// Whether `requestParameters.serialNumber` (an MFA device) was given.
    pub serial_number_given: bool,
    pub role_arn: Option<String>,
    /// The role an error message names when `requestParameters` is null.
    pub denied_role_arn: Option<String>,
    pub role_session_name: Option<String>,
    pub source: SourceAddress,
    pub user_agent: Option<String>,
    /// Requested `DurationSeconds`, when the request named one.
    pub duration_seconds: Option<u64>,
    /// Whether an external ID was given; its value is never kept.
    pub external_id_given: bool,
    pub mfa_authenticated: Option<bool>,
    pub error_code: Option<String>,
    /// Account that owns the role (from `roleArn`), else `recipientAccountId`.
    pub account_id: String,
    pub recipient_account_id: Option<String>,
    pub aws_region: Option<String>,
}

impl AssumeRoleEvent {
    pub fn succeeded(&self) -> bool {
        self.error_code.is_none()
    }
}

/// Why an AssumeRole-family record could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("malformed record: {0}")]
    Malformed(String),
    #[error("eventTime {0:?} is not a timestamp")]
    BadTime(String),
    #[error("eventTime is missing")]
    MissingTime,
    #[error("durationSeconds {0:?} is not a whole number of seconds")]
    BadDuration(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRecord<'a> {
    #[serde(borrow)]
    event_source: Option<Cow<'a, str>>,
    #[serde(borrow)]
    event_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    event_time: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "eventID")]
    event_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    aws_region: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "sourceIPAddress")]
    source_ip_address: Option<Cow<'a, str>>,
    #[serde(borrow)]
    user_agent: Option<Cow<'a, str>>,
    #[serde(borrow)]
    error_code: Option<Cow<'a, str>>,
    #[serde(borrow)]
    error_message: Option<Cow<'a, str>>,
    #[serde(borrow)]
    recipient_account_id: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "sharedEventID")]
    shared_event_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    user_identity: Option<RawIdentity<'a>>,
    #[serde(borrow)]
    request_parameters: Option<RawRequest<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawIdentity<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    principal_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    arn: Option<Cow<'a, str>>,
    #[serde(borrow)]
    account_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    user_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    identity_provider: Option<Cow<'a, str>>,
    #[serde(borrow)]
    invoked_by: Option<Cow<'a, str>>,
    #[serde(borrow)]
    session_context: Option<RawSessionContext<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSessionContext<'a> {
    attributes: Option<RawSessionAttributes>,
    #[serde(borrow)]
    session_issuer: Option<RawSessionIssuer<'a>>,
}

#[derive(Deserialize)]
struct RawSessionIssuer<'a> {
    #[serde(borrow)]
    arn: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSessionAttributes {
    #[serde(default, deserialize_with = "lenient_bool")]
    mfa_authenticated: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRequest<'a> {
    #[serde(borrow)]
    role_arn: Option<Cow<'a, str>>,
    #[serde(borrow)]
    role_session_name: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "lenient_duration")]
    duration_seconds: Option<DurationField>,
    /// Only its presence is read: the value is a secret shared with a third
    /// party, dropped unread by the parser, so no code can keep it.
    #[serde(default, deserialize_with = "presence")]
    external_id: bool,
    /// An MFA device's serial number; only its presence matters.
    #[serde(default, deserialize_with = "presence")]
    serial_number: bool,
}

#[derive(Debug)]
enum DurationField {
    Seconds(u64),
    Invalid(String),
}

/// What a record turned out to be.
pub enum Classified {
    AssumeRole(Box<AssumeRoleEvent>),
    Other,
}

/// Reads one record's JSON text. `Ok(Other)` for anything that is not an
/// STS AssumeRole-family call; `Err` only for family records (or records
/// too broken to tell) that cannot be understood.
pub fn classify_record(json: &[u8]) -> Result<Classified, EventError> {
    let raw: RawRecord<'_> = match serde_json::from_slice(json) {
        Ok(raw) => raw,
        Err(err) => {
            // A type error in a field we never read for other events must not
            // cost an unrelated record; decide with a lenient second look.
            return if is_family_record_loosely(json) {
                Err(EventError::Malformed(excerpt(&err.to_string(), 200, 100)))
            } else {
                Ok(Classified::Other)
            };
        }
    };
    let is_family = raw.event_source.as_deref() == Some(STS_EVENT_SOURCE)
        && raw.event_name.as_deref().is_some_and(|n| ASSUME_ROLE_FAMILY.contains(&n));
    if !is_family {
        return Ok(Classified::Other);
    }
    build_event(raw, json).map(|e| Classified::AssumeRole(Box::new(e)))
}

fn is_family_record_loosely(json: &[u8]) -> bool {
    match serde_json::from_slice::<serde_json::Value>(json) {
        Ok(value) => {
            value.get("eventSource").and_then(|v| v.as_str()) == Some(STS_EVENT_SOURCE)
                && value.get("eventName").and_then(|v| v.as_str()).is_some_and(|n| ASSUME_ROLE_FAMILY.contains(&n))
        }
        // Not even JSON: it mentioned STS (the caller's cheap filter), so report it.
        Err(_) => true,
    }
}

fn build_event(raw: RawRecord<'_>, json: &[u8]) -> Result<AssumeRoleEvent, EventError> {
    let time_text = raw.event_time.as_deref().ok_or(EventError::MissingTime)?;
    let event_time = parse_event_time(time_text).ok_or_else(|| EventError::BadTime(excerpt(time_text, 64, 0)))?;
    let identity = raw.user_identity.as_ref();
    let request = raw.request_parameters.as_ref();
    let duration_seconds = match request.and_then(|r| r.duration_seconds.as_ref()) {
        Some(DurationField::Seconds(s)) => Some(*s),
        Some(DurationField::Invalid(text)) => return Err(EventError::BadDuration(excerpt(text, 64, 0))),
        None => None,
    };
    // AccessDenied records carry `requestParameters: null`; the role is still
    // named in the error message, and it matters for whose role was probed.
    // The contract's role_arn is requestParameters.roleArn only. AccessDenied
    // records carry `requestParameters: null`, but the probed role is still
    // named in the error message, which the person paged wants to see.
    let role_arn = request.and_then(|r| r.role_arn.as_deref()).map(str::to_owned);
    let denied_role_arn =
        if role_arn.is_none() { raw.error_message.as_deref().and_then(role_arn_in_message) } else { None };
    let recipient = raw.recipient_account_id.as_deref().map(str::to_owned);
    let event_name = raw.event_name.as_deref().unwrap_or_default();
    let session_context = identity.and_then(|i| i.session_context.as_ref());
    let account_id = role_arn
        .as_deref()
        .and_then(account_of_arn)
        .map(str::to_owned)
        .or_else(|| recipient.clone())
        .or_else(|| identity.and_then(|i| i.account_id.as_deref()).map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned());
    Ok(AssumeRoleEvent {
        // A stable stand-in keeps redelivery and dedup working without an id.
        event_id: raw
            .event_id
            .as_deref()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("xxh3:{:016x}", twox_hash::XxHash3_64::oneshot(json))),
        event_time,
        event_name: event_name.to_owned(),
        principal: principal_of(identity),
        identity_type: identity.and_then(|i| i.kind.as_deref()).unwrap_or("Unknown").to_owned(),
        caller_account: caller_account_of(event_name, identity),
        session_issuer_arn: session_context
            .and_then(|c| c.session_issuer.as_ref())
            .and_then(|i| i.arn.as_deref())
            .filter(|a| !a.is_empty())
            .map(str::to_owned),
        shared_event_id: raw.shared_event_id.as_deref().filter(|s| !s.is_empty()).map(str::to_owned),
        serial_number_given: request.is_some_and(|r| r.serial_number),
        role_arn,
        denied_role_arn,
        role_session_name: request.and_then(|r| r.role_session_name.as_deref()).map(str::to_owned),
        source: SourceAddress::parse(raw.source_ip_address.as_deref()),
        user_agent: raw.user_agent.as_deref().map(str::to_owned),
        duration_seconds,
        external_id_given: request.is_some_and(|r| r.external_id),
        mfa_authenticated: session_context.and_then(|c| c.attributes.as_ref()).and_then(|a| a.mfa_authenticated),
        error_code: raw.error_code.as_deref().map(str::to_owned),
        account_id,
        recipient_account_id: recipient,
        aws_region: raw.aws_region.as_deref().map(str::to_owned),
    })
}

/// At most `head + tail` characters of `text`, marked where cut: error messages
/// quote record values, which an attacker can make megabytes long.
fn excerpt(text: &str, head: usize, tail: usize) -> String {
    let count = text.chars().count();
    if count <= head + tail {
        return text.to_owned();
    }
    let start: String = text.chars().take(head).collect();
    let end: String = text.chars().skip(count - tail).collect();
    format!("{start}…[{} characters cut]…{end}", count - head - tail)
}

/// `userIdentity.arn`, else the most specific identifier the identity type has.
fn principal_of(identity: Option<&RawIdentity<'_>>) -> String {
    let Some(id) = identity else {
        return "unknown".to_owned();
    };
    if let Some(arn) = id.arn.as_deref().filter(|a| !a.is_empty()) {
        return arn.to_owned();
    }
    let kind = id.kind.as_deref().unwrap_or("Unknown");
    let provider = id.identity_provider.as_deref();
    match (kind, provider, id.user_name.as_deref()) {
        ("SAMLUser" | "WebIdentityUser", Some(p), Some(u)) => return format!("{p}/{u}"),
        ("AWSService", _, _) => {
            if let Some(by) = id.invoked_by.as_deref() {
                return by.to_owned();
            }
        }
        _ => {}
    }
    if let Some(pid) = id.principal_id.as_deref().filter(|p| !p.is_empty()) {
        return match id.account_id.as_deref() {
            Some(acct) if kind == "AWSAccount" => format!("{acct}:{pid}"),
            _ => pid.to_owned(),
        };
    }
    id.user_name.as_deref().or(id.account_id.as_deref()).map_or_else(|| "unknown".to_owned(), str::to_owned)
}

/// The account id in an ARN (`arn:partition:service:region:ACCOUNT:...`).
pub fn account_of_arn(arn: &str) -> Option<&str> {
    let account = arn.split(':').nth(4)?;
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())).then_some(account)
}

/// The role named in an AccessDenied message: the
/// `arn:<partition>:iam::<account>:role/...` token after `on resource: `,
/// up to the next space (`User: arn:...:user/x is not authorized to perform:
/// sts:AssumeRole on resource: arn:aws:iam::1:role/y`).
fn role_arn_in_message(message: &str) -> Option<String> {
    let (_, rest) = message.split_once("on resource: ")?;
    let token = rest.split_whitespace().next()?.trim_end_matches(['.', ',', '"']);
    let parts: Vec<&str> = token.splitn(6, ':').collect();
    let is_role = matches!(parts.as_slice(), ["arn", partition, "iam", "", _, resource]
        if partition.starts_with("aws") && resource.starts_with("role/") && resource.len() > 5);
    (is_role && account_of_arn(token).is_some()).then(|| token.to_owned())
}

/// The caller account: `userIdentity.accountId`, else the account in
/// `userIdentity.arn`. SAML and web-identity callers and AWS services have
/// none: no account of theirs made the call.
fn caller_account_of(event_name: &str, identity: Option<&RawIdentity<'_>>) -> Option<String> {
    if event_name != "AssumeRole" {
        return None;
    }
    let identity = identity?;
    if matches!(identity.kind.as_deref(), Some("SAMLUser" | "WebIdentityUser" | "AWSService")) {
        return None;
    }
    let is_account = |a: &&str| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit());
    identity
        .account_id
        .as_deref()
        .filter(is_account)
        .or_else(|| identity.arn.as_deref().and_then(account_of_arn))
        .map(str::to_owned)
}

fn lenient_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DurationField>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<DurationField>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a number of seconds, as a number or a string")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(DurationField::Seconds(v)))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(u64::try_from(v).map_or_else(|_| DurationField::Invalid(v.to_string()), DurationField::Seconds)))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(if v.fract() == 0.0 && (0.0..1e12).contains(&v) {
                DurationField::Seconds(v as u64)
            } else {
                DurationField::Invalid(v.to_string())
            }))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(
                v.trim().parse::<u64>().map_or_else(|_| DurationField::Invalid(v.to_owned()), DurationField::Seconds),
            ))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(V)
        }
    }
    d.deserialize_option(V)
}

/// `"true"`/`"false"` strings (CloudTrail's form) or booleans.
fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    Ok(match value {
        serde_json::Value::Bool(b) => Some(b),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    })
}

/// True when a non-null, non-empty value is present; the value is dropped unread.
fn presence<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Option::<serde::de::IgnoredAny>::deserialize(d).map(|v| v.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: &str) -> AssumeRoleEvent {
        match classify_record(json.as_bytes()) {
            Ok(Classified::AssumeRole(e)) => *e,
            Ok(Classified::Other) => panic!("not classified as a role assumption: {json}"),
            Err(e) => panic!("{e}: {json}"),
        }
    }

    #[test]
    fn access_denied_with_null_request_keeps_role_from_message() {
        let e = event(
            r#"{"eventSource":"sts.amazonaws.com","eventName":"AssumeRole","eventTime":"2023-07-10T11:54:42Z",
            "eventID":"e1","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::123837392027:user/bert-jan","accountId":"123837392027"},
            "sourceIPAddress":"192.168.10.20","errorCode":"AccessDenied",
            "errorMessage":"User: arn:aws:iam::123837392027:user/bert-jan is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::999988887777:role/target",
            "requestParameters":null,"recipientAccountId":"123837392027"}"#,
        );
        assert_eq!(e.principal, "arn:aws:iam::123837392027:user/bert-jan");
        assert_eq!(e.role_arn, None, "role_arn is requestParameters.roleArn only");
        assert_eq!(e.denied_role_arn.as_deref(), Some("arn:aws:iam::999988887777:role/target"));
        assert_eq!(e.account_id, "123837392027", "recipientAccountId when there is no roleArn");
        assert!(!e.succeeded());
    }

    #[test]
    fn a_role_owner_s_copy_names_the_caller_account_and_the_shared_event() {
        // The shape of the owner's copy in aws-samples/security-analytics-immersion-day.
        let e = event(
            r#"{"eventVersion":"1.08","userIdentity":{"type":"AWSAccount","principalId":"AIDAI7NZET22FBMGKUWIU","accountId":"727820809195"},
            "eventTime":"2022-11-17 22:10:30","eventSource":"sts.amazonaws.com","eventName":"AssumeRole","awsRegion":"us-east-1",
            "sourceIPAddress":"AWS Internal","requestParameters":{"roleArn":"arn:aws:iam::999999999999:role/partner",
            "roleSessionName":"IsengardUser","durationSeconds":900,"externalId":"IsengardExternalIdUZH7R13XTckk"},
            "eventID":"a12a83f5-5e36-4b21-866c-7a253d025b91","recipientAccountId":"999999999999",
            "sharedEventID":"d2c572bf-817e-4cf4-add0-7abad5df00ee"}"#,
        );
        assert_eq!(e.identity_type, "AWSAccount");
        assert_eq!(e.principal, "727820809195:AIDAI7NZET22FBMGKUWIU");
        assert_eq!(e.caller_account.as_deref(), Some("727820809195"));
        assert_eq!(e.shared_event_id.as_deref(), Some("d2c572bf-817e-4cf4-add0-7abad5df00ee"));
        assert_eq!(e.session_issuer_arn, None);
        assert!(e.external_id_given && !e.serial_number_given);
        assert!(!format!("{e:?}").contains("IsengardExternalId"), "only the presence is kept");
    }

    #[test]
    fn a_session_names_its_issuer_and_mfa_and_a_request_its_serial_number() {
        let e = event(
            r#"{"eventSource":"sts.amazonaws.com","eventName":"AssumeRole","eventTime":"2026-10-05T10:00:00Z","eventID":"e",
            "userIdentity":{"type":"AssumedRole","principalId":"AROAEXAMPLE:alice","arn":"arn:aws:sts::111111111111:assumed-role/AWSReservedSSO_Admin_0123/alice",
            "accountId":"111111111111","sessionContext":{"sessionIssuer":{"type":"Role","principalId":"AROAEXAMPLE",
            "arn":"arn:aws:iam::111111111111:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_Admin_0123","accountId":"111111111111","userName":"AWSReservedSSO_Admin_0123"},
            "webIdFederationData":{},"attributes":{"creationDate":"2026-10-05T09:00:00Z","mfaAuthenticated":"false"}}},
            "requestParameters":{"roleArn":"arn:aws:iam::222222222222:role/admin","roleSessionName":"alice","serialNumber":"arn:aws:iam::111111111111:mfa/alice","tokenCode":"123456"},
            "recipientAccountId":"111111111111","sharedEventID":"s"}"#,
        );
        assert_eq!(
            e.session_issuer_arn.as_deref(),
            Some("arn:aws:iam::111111111111:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_Admin_0123")
        );
        assert_eq!(e.mfa_authenticated, Some(false));
        assert!(e.serial_number_given);
        assert_eq!(e.caller_account.as_deref(), Some("111111111111"));
    }

    #[test]
    fn federated_callers_and_services_have_no_caller_account() {
        let saml = event(
            r#"{"eventSource":"sts.amazonaws.com","eventName":"AssumeRoleWithSAML","eventTime":"2026-07-01T00:08:20Z",
            "userIdentity":{"type":"SAMLUser","principalId":"x:alice","userName":"alice","identityProvider":"x"},
            "requestParameters":{"roleArn":"arn:aws:iam::950363612855:role/r","principalArn":"arn:aws:iam::950363612855:saml-provider/p"},
            "recipientAccountId":"950363612855"}"#,
        );
        assert_eq!(saml.caller_account, None);
        let service = event(
            r#"{"eventSource":"sts.amazonaws.com","eventName":"AssumeRole","eventTime":"2018-11-28T22:31:59Z",
            "userIdentity":{"type":"AWSService","invokedBy":"ecs-tasks.amazonaws.com"},"sourceIPAddress":"ecs-tasks.amazonaws.com",
            "requestParameters":{"roleArn":"arn:aws:iam::653711331788:role/level3"},"recipientAccountId":"653711331788",
            "sharedEventID":"1d18bf74-8392-4496-9dc4-a45cb799b8b4"}"#,
        );
        assert_eq!(service.caller_account, None);
        let by_arn = event(
            r#"{"eventSource":"sts.amazonaws.com","eventName":"AssumeRole","eventTime":"2018-11-28T22:31:59Z",
            "userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::123456789012:user/u"},"requestParameters":null}"#,
        );
        assert_eq!(by_arn.caller_account.as_deref(), Some("123456789012"), "the account in the ARN");
    }

    #[test]
    fn the_denied_role_is_the_token_after_on_resource() {
        let role = |m: &str| role_arn_in_message(m);
        assert_eq!(
            role("User: arn:aws:sts::111111111111:assumed-role/ci/run-7 is not authorized to perform: sts:AssumeRole on resource: arn:aws-us-gov:iam::222222222222:role/path/deploy").as_deref(),
            Some("arn:aws-us-gov:iam::222222222222:role/path/deploy")
        );
        assert_eq!(
            role("User: arn:aws:iam::1:user/x is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::222222222222:role/r because no identity-based policy allows it").as_deref(),
            Some("arn:aws:iam::222222222222:role/r")
        );
        assert_eq!(role("arn:aws:iam::222222222222:role/r is mentioned but not as the resource"), None);
        assert_eq!(role("... on resource: arn:aws:iam::222222222222:user/bob"), None, "not a role");
        assert_eq!(role("... on resource: *"), None);
    }

    #[test]
    fn duration_as_string_and_space_separated_time() {
        let e = event(
            r#"{"eventSource":"sts.amazonaws.com","eventName":"AssumeRole","eventTime":"2024-06-02 19:41:40.000000000",
            "requestParameters":{"roleArn":"arn:aws:iam::111122223333:role/r","durationSeconds":"900","externalId":"s3cr3t"},
            "sourceIPAddress":"06.237.252.245","recipientAccountId":"111122223333"}"#,
        );
        assert_eq!(e.duration_seconds, Some(900));
        assert!(e.external_id_given);
        assert_eq!(e.source, SourceAddress::Unparsable("06.237.252.245".into()));
        assert!(e.event_id.starts_with("xxh3:"), "missing eventID gets a stable stand-in");
        assert!(!format!("{e:?}").contains("s3cr3t"), "the external id value is never kept");
    }

    #[test]
    fn federated_callers_without_arn_are_named_by_provider() {
        let e = event(
            r#"{"eventSource":"sts.amazonaws.com","eventName":"AssumeRoleWithWebIdentity","eventTime":"2024-01-01T00:00:00Z",
            "userIdentity":{"type":"WebIdentityUser","principalId":"x","userName":"repo:org/app:ref:refs/heads/main","identityProvider":"token.actions.githubusercontent.com"},
            "sourceIPAddress":"2001:db8::1","requestParameters":{"roleArn":"arn:aws:iam::111122223333:role/ci"}}"#,
        );
        assert_eq!(e.principal, "token.actions.githubusercontent.com/repo:org/app:ref:refs/heads/main");
        assert!(matches!(e.source, SourceAddress::Ip(IpAddr::V6(_))));
    }

    #[test]
    fn services_and_other_events() {
        assert_eq!(
            SourceAddress::parse(Some("lambda.amazonaws.com")),
            SourceAddress::AwsService("lambda.amazonaws.com".into())
        );
        assert_eq!(SourceAddress::parse(Some("AWS Internal")), SourceAddress::AwsInternal);
        assert_eq!(SourceAddress::parse(Some("::ffff:192.0.2.1")), SourceAddress::Ip("192.0.2.1".parse().unwrap()));
        let other =
            classify_record(br#"{"eventSource":"sts.amazonaws.com","eventName":"GetCallerIdentity","eventTime":"x"}"#);
        assert!(matches!(other, Ok(Classified::Other)));
    }

    #[test]
    fn wrong_types_in_family_records_are_errors() {
        let bad = classify_record(br#"{"eventSource":"sts.amazonaws.com","eventName":"AssumeRole","eventTime":"2024-01-01T00:00:00Z","sourceIPAddress":7}"#);
        assert!(matches!(bad, Err(EventError::Malformed(_))));
        let bad_time =
            classify_record(br#"{"eventSource":"sts.amazonaws.com","eventName":"AssumeRole","eventTime":"soon"}"#);
        assert!(matches!(bad_time, Err(EventError::BadTime(_))));
        let bad_duration = classify_record(br#"{"eventSource":"sts.amazonaws.com","eventName":"AssumeRole","eventTime":"2024-01-01T00:00:00Z","requestParameters":{"durationSeconds":"long"}}"#);
        assert!(matches!(bad_duration, Err(EventError::BadDuration(_))));
    }
}
