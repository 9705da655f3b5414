//! CloudTrail records in the shapes CloudTrail writes them: a caller's copy
//! and a role owner's copy of a cross-account call, sessions of roles with
//! their session context, Identity Center, SAML, web identity, AWS services.

use serde_json::{json, Value};

pub const DAY: i64 = 86_400;
/// 2026-10-01T00:00:00Z.
pub const T0: i64 = 1_790_812_800;

#[derive(Clone)]
pub enum Caller {
    /// An IAM user.
    User {
        account: &'static str,
        name: &'static str,
        mfa: bool,
    },
    /// A session of `role` (its path included, e.g. `aws-reserved/sso.amazonaws.com/AWSReservedSSO_Admin_1`).
    Session {
        account: &'static str,
        role: &'static str,
        session: &'static str,
        mfa: bool,
    },
    Saml,
    WebIdentity,
    Service(&'static str),
}

impl Caller {
    pub fn arn(&self) -> Option<String> {
        match self {
            Caller::User { account, name, .. } => Some(format!("arn:aws:iam::{account}:user/{name}")),
            Caller::Session { account, role, session, .. } => {
                Some(format!("arn:aws:sts::{account}:assumed-role/{}/{session}", role.rsplit('/').next().unwrap()))
            }
            _ => None,
        }
    }

    fn account(&self) -> Option<&'static str> {
        match self {
            Caller::User { account, .. } | Caller::Session { account, .. } => Some(account),
            _ => None,
        }
    }

    fn principal_id(&self) -> String {
        match self {
            Caller::User { name, .. } => format!("AIDA{}", name.to_ascii_uppercase()),
            Caller::Session { session, .. } => format!("AROAEXAMPLEROLEID:{session}"),
            _ => String::new(),
        }
    }
}

/// One AssumeRole-family call.
#[derive(Clone)]
pub struct Call {
    pub id: String,
    pub time: i64,
    pub caller: Caller,
    pub role: String,
    pub ip: String,
    /// AccessDenied, logged with `requestParameters: null` as CloudTrail does.
    pub denied: bool,
    pub duration: Option<u64>,
    pub external_id: Option<&'static str>,
    pub serial_number: bool,
}

impl Call {
    pub fn new(id: &str, time: i64, caller: Caller, role: &str) -> Call {
        Call {
            id: id.to_owned(),
            time,
            caller,
            role: role.to_owned(),
            ip: "198.51.100.7".to_owned(),
            denied: false,
            duration: None,
            external_id: None,
            serial_number: false,
        }
    }

    fn role_account(&self) -> &str {
        self.role.split(':').nth(4).unwrap()
    }

    fn event_name(&self) -> &'static str {
        match self.caller {
            Caller::Saml => "AssumeRoleWithSAML",
            Caller::WebIdentity => "AssumeRoleWithWebIdentity",
            _ => "AssumeRole",
        }
    }

    fn user_identity(&self) -> Value {
        match &self.caller {
            Caller::User { account, name, mfa } => {
                let mut id = json!({"type": "IAMUser", "principalId": self.caller.principal_id(),
                    "arn": self.caller.arn(), "accountId": account, "accessKeyId": "AKIAEXAMPLEKEY", "userName": name});
                if *mfa {
                    id["sessionContext"] = json!({"sessionIssuer": {}, "webIdFederationData": {},
                        "attributes": {"creationDate": "2026-10-01T00:00:00Z", "mfaAuthenticated": "true"}});
                }
                id
            }
            Caller::Session { account, role, mfa, .. } => json!({
                "type": "AssumedRole", "principalId": self.caller.principal_id(), "arn": self.caller.arn(),
                "accountId": account, "accessKeyId": "ASIAEXAMPLEKEY",
                "sessionContext": {
                    "sessionIssuer": {"type": "Role", "principalId": "AROAEXAMPLEROLEID",
                        "arn": format!("arn:aws:iam::{account}:role/{role}"), "accountId": account,
                        "userName": role.rsplit('/').next().unwrap()},
                    "webIdFederationData": {},
                    "attributes": {"creationDate": "2026-10-01T00:00:00Z", "mfaAuthenticated": if *mfa { "true" } else { "false" }}
                }
            }),
            Caller::Saml => json!({"type": "SAMLUser", "principalId": "/nQTosBbaHrvuioiTKQkrbl3/WM=:alice@example.com",
                "userName": "alice@example.com", "identityProvider": "/nQTosBbaHrvuioiTKQkrbl3/WM="}),
            Caller::WebIdentity => json!({"type": "WebIdentityUser",
                "principalId": "arn:aws:iam::333333333333:oidc-provider/token.actions.githubusercontent.com:sts.amazonaws.com:repo:org/app:ref:refs/heads/main",
                "userName": "repo:org/app:ref:refs/heads/main",
                "identityProvider": "arn:aws:iam::333333333333:oidc-provider/token.actions.githubusercontent.com"}),
            Caller::Service(name) => json!({"type": "AWSService", "invokedBy": name}),
        }
    }

    fn record(&self, event_id: String, recipient: &str, user_identity: Value, shared: bool) -> Value {
        // CloudTrail's own odd shapes: eventTime without T in some exports is
        // covered by the reader's tests; here the delivery format.
        let time = chrono::DateTime::from_timestamp(self.time, 0).unwrap().format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let source = match &self.caller {
            Caller::Service(name) => (*name).to_owned(),
            _ => self.ip.clone(),
        };
        let mut record = json!({
            "eventVersion": "1.08", "userIdentity": user_identity, "eventTime": time,
            "eventSource": "sts.amazonaws.com", "eventName": self.event_name(), "awsRegion": "us-east-1",
            "sourceIPAddress": source, "userAgent": "aws-cli/2.13.25 Python/3.11.5 Linux/6.1 exe/x86_64",
            "requestID": format!("req-{}", self.id), "eventID": event_id, "readOnly": true,
            "eventType": "AwsApiCall", "managementEvent": true, "recipientAccountId": recipient,
            "eventCategory": "Management",
            "tlsDetails": {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256",
                "clientProvidedHostHeader": "sts.us-east-1.amazonaws.com"}
        });
        if self.denied {
            record["errorCode"] = json!("AccessDenied");
            let who = self.caller.arn().unwrap_or_default();
            record["errorMessage"] =
                json!(format!("User: {who} is not authorized to perform: sts:AssumeRole on resource: {}", self.role));
            record["requestParameters"] = Value::Null;
            record["responseElements"] = Value::Null;
        } else {
            let mut request = json!({"roleArn": self.role, "roleSessionName": format!("s-{}", self.id)});
            if let Some(d) = self.duration {
                // The console and some SDKs log it as a string.
                request["durationSeconds"] = json!(d.to_string());
            }
            if let Some(x) = self.external_id {
                request["externalId"] = json!(x);
            }
            if self.serial_number {
                request["serialNumber"] = json!("arn:aws:iam::111111111111:mfa/engineer");
                request["tokenCode"] = json!("123456");
            }
            record["requestParameters"] = request;
            record["responseElements"] = json!({
                "credentials": {"accessKeyId": "ASIAEXAMPLE", "sessionToken": "IQoJb3JpZ2luX2VjEXAMPLE",
                    "expiration": "Oct 5, 2026, 11:00:00 AM"},
                "assumedRoleUser": {"assumedRoleId": format!("AROAEXAMPLE:s-{}", self.id),
                    "arn": format!("arn:aws:sts::{}:assumed-role/x/s-{}", self.role_account(), self.id)}
            });
            record["resources"] =
                json!([{"accountId": self.role_account(), "type": "AWS::IAM::Role", "ARN": self.role}]);
            if shared {
                record["sharedEventID"] = json!(format!("shared-{}", self.id));
            }
        }
        record
    }

    /// The copy logged in the caller's account (for SAML, web identity and
    /// services, the only copy, logged in the role's account).
    pub fn caller_copy(&self) -> Value {
        let crosses = !self.denied && self.caller.account().is_some_and(|a| a != self.role_account());
        let recipient = self.caller.account().unwrap_or(self.role_account()).to_owned();
        self.record(format!("{}-caller", self.id), &recipient, self.user_identity(), crosses)
    }

    /// The role owner's copy of a successful cross-account call: no caller
    /// ARN, no session context.
    pub fn owner_copy(&self) -> Value {
        let account = self.caller.account().expect("only account callers have an owner's copy");
        let identity = json!({"type": "AWSAccount", "principalId": self.caller.principal_id(), "accountId": account});
        self.record(format!("{}-owner", self.id), self.role_account(), identity, true)
    }

    /// Every copy CloudTrail writes of this call.
    pub fn copies(&self) -> Vec<Value> {
        let crosses = !self.denied && self.caller.account().is_some_and(|a| a != self.role_account());
        if crosses {
            vec![self.caller_copy(), self.owner_copy()]
        } else {
            vec![self.caller_copy()]
        }
    }
}

/// A log file's text.
pub fn file(records: &[Value]) -> String {
    json!({ "Records": records }).to_string()
}
