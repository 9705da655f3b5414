//! The organisation and its month: 20 accounts under one organisation
//! trail; platform engineers with IAM users in an identity account who
//! assume roles across accounts (MFA for admin roles); developers through
//! IAM Identity Center; CI on GitHub-hosted runners (OIDC, a new session and
//! network every run, chained into deploy roles) and a Jenkins NAT; AWS
//! services; roles that always get long sessions; vendors outside the
//! organisation assuming roles daily with an ExternalId; stray refusals.
//! Then two planted incidents of each detector.

use std::collections::{BTreeMap, BTreeSet};

use super::records::{api_call, Call, Caller, Record};
use super::records::{aws_service, denied, granted, iam_user, role_session, saml_user, web_identity};
use super::{start, Gzipper, LogFile, Month, Planted, Rng};
use rolewatch::cloudtrail::EpochSeconds;

pub const ORG_ID: &str = "o-7kq2m9x4ab";
const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;

pub const ACCOUNTS: [(&str, &str); 20] = [
    ("management", "118273645501"),
    ("log-archive", "229384756102"),
    ("security", "330495867203"),
    ("identity", "441506978304"),
    ("shared-services", "552617089405"),
    ("network", "663728190506"),
    ("prod-web", "774839201607"),
    ("prod-api", "885940312708"),
    ("prod-data", "996051423809"),
    ("prod-payments", "107162534910"),
    ("staging-web", "218273645011"),
    ("staging-api", "329384756112"),
    ("staging-data", "430495867213"),
    ("dev-web", "541506978314"),
    ("dev-api", "652617089415"),
    ("dev-data", "763728190516"),
    ("sandbox-1", "874839201617"),
    ("sandbox-2", "985940312718"),
    ("analytics", "196051423819"),
    ("legacy", "207162534920"),
];

/// A monitoring vendor listed in `trusted_accounts`: polls every account.
pub const VENDOR_A: &str = "712345678901";
/// A cost tool, not listed: learned in the first week.
pub const VENDOR_B: &str = "823456789012";
/// A weekly security scanner, not listed.
pub const VENDOR_C: &str = "934567890123";
/// An outside account nobody expects.
pub const STRANGER: &str = "666677778888";

/// Days whose records reach rolewatch as hourly organisation-wide exports
/// (both copies of a cross-account call in one file) instead of per-account
/// files; `rolewatch replay` reads them after the rest of the month.
const EXPORT_DAYS: std::ops::Range<i64> = 16..18;

pub fn account(name: &str) -> &'static str {
    ACCOUNTS.iter().find(|(n, _)| *n == name).map_or("000000000000", |(_, id)| id)
}

pub(super) fn role(account_name: &str, path: &str) -> String {
    format!("arn:aws:iam::{}:role/{path}", account(account_name))
}

pub(super) const CLI_UA: &str = "aws-cli/2.15.30 md/awscrt#0.19.19 ua/2.0 os/macos#23.3.0 md/arch#arm64 lang/python#3.11.8 md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe md/prompt#off md/command#sts.assume-role";
const CONSOLE_UA: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36";
pub(super) const GHA_UA: &str =
    "aws-sdk-nodejs/2.1570.0 linux/v20.11.1 configure-aws-credentials-for-github-actions promise";
pub(super) const BOTO_UA: &str = "Boto3/1.34.58 md/Botocore#1.34.58 ua/2.0 os/linux#5.10.210-201.852.amzn2.x86_64 md/arch#x86_64 lang/python#3.11.8 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.58";
pub(super) const VENDOR_UA: &str =
    "aws-sdk-go-v2/1.25.2 os/linux lang/go#1.21.8 md/GOOS#linux md/GOARCH#amd64 api/sts#1.28.1";
const SSO_QUALIFIER: &str = "Zx3Qm7Lp0VbN2cR8tYw5Kd1Hs4E=";
pub(super) const ATTACKER_NET: &str = "185.220.101";

/// A host in a network: IPv4 `a.b.c` (/24) or IPv6 `a:b:c:d` (/64).
pub(super) fn host(rng: &mut Rng, net: &str) -> String {
    if net.contains(':') {
        let parts: Vec<String> = (0..4).map(|_| format!("{:x}", rng.range(1, 0xffff))).collect();
        format!("{net}:{}", parts.join(":"))
    } else {
        format!("{net}.{}", rng.range(2, 254))
    }
}

fn is_weekend(day: i64) -> bool {
    day % 7 >= 5 // the month starts on a Monday
}

/// Someone at a keyboard: a few stable networks, visited in turn on the
/// first working days (so the baseline knows them all before it matures).
struct Person {
    caller: Caller,
    name: String,
    nets: Vec<String>,
    weights: Vec<i64>,
    start_day: i64,
    away: std::ops::Range<i64>,
    worked: usize,
}

impl Person {
    fn network_today(&mut self, rng: &mut Rng) -> String {
        let k = self.worked;
        self.worked += 1;
        if k < self.nets.len() {
            return self.nets[k].clone();
        }
        let total: i64 = self.weights.iter().sum();
        let mut roll = rng.range(0, total);
        for (net, w) in self.nets.iter().zip(&self.weights) {
            if roll < *w {
                return net.clone();
            }
            roll -= w;
        }
        self.nets[0].clone()
    }

    fn works(&self, rng: &mut Rng, day: i64) -> bool {
        day >= self.start_day && !self.away.contains(&day) && (!is_weekend(day) || rng.chance(0.08))
    }
}

pub(super) struct Gen {
    pub(super) rng: Rng,
    pub(super) start: EpochSeconds,
    pub(super) org: BTreeSet<String>,
    pub(super) records: Vec<Record>,
    pub(super) call_of_event: BTreeMap<String, String>,
    pub(super) role_assumptions: u64,
    pub(super) calls_logged_twice: u64,
    pub(super) planted: Vec<Planted>,
}

impl Gen {
    /// A moment on `day` between the hours `from` and `to`.
    pub(super) fn at(&mut self, day: i64, from: i64, to: i64) -> EpochSeconds {
        self.start + day * DAY + self.rng.range(from * HOUR, to * HOUR)
    }

    /// Writes a granted call where CloudTrail logs it; its event ids.
    pub(super) fn grant(&mut self, caller: &Caller, call: &Call) -> Vec<String> {
        let records = granted(&mut self.rng, caller, call, &self.org);
        self.note(records)
    }

    pub(super) fn deny(&mut self, caller: &Caller, call: &Call) -> Vec<String> {
        let records = denied(&mut self.rng, caller, call, &self.org).into_iter().collect();
        self.note(records)
    }

    fn note(&mut self, records: Vec<Record>) -> Vec<String> {
        if records.len() == 2 {
            self.calls_logged_twice += 1;
        }
        let mut ids = Vec::new();
        for record in records {
            let call = record.value["sharedEventID"].as_str().unwrap_or(&record.event_id).to_owned();
            self.call_of_event.insert(record.event_id.clone(), call);
            self.role_assumptions += 1;
            ids.push(record.event_id.clone());
            self.records.push(record);
        }
        ids
    }

    /// What a new session does next: a few API calls in the role's account.
    pub(super) fn follow_up(&mut self, call: &Call, mfa: bool) {
        let session = role_session(&call.role_arn, &call.session, call.time, mfa);
        for i in 0..self.rng.range(0, 2) {
            let t = call.time + 5 + i * self.rng.range(5, 300);
            let record = api_call(&mut self.rng, &session, t, &call.source_ip, &call.user_agent);
            self.records.push(record);
        }
    }

    pub(super) fn plant(
        &mut self,
        detector: &'static str,
        what: &'static str,
        principal: &str,
        call: &Call,
        ids: &[String],
    ) {
        self.planted.push(Planted {
            detector,
            what,
            principal: principal.to_owned(),
            role_arn: Some(call.role_arn.clone()),
            around_time: call.time,
            event_ids: ids.iter().cloned().collect(),
        });
    }
}

const ENGINEERS: [&str; 8] = ["amara", "bruno", "chloe", "dmitri", "elif", "farid", "greta", "hiro"];
const DEVELOPERS: [&str; 22] = [
    "ana", "ben", "chen", "dara", "eli", "fatima", "gus", "hana", "ivan", "jo", "kai", "lena", "mo", "nia", "omar",
    "pia", "quinn", "raj", "sara", "tom", "uma", "noor",
];
const ADMIN_TARGETS: [&str; 7] =
    ["management", "security", "network", "prod-web", "prod-api", "prod-data", "prod-payments"];

fn people(rng: &mut Rng) -> (Vec<Person>, Vec<Person>) {
    let mut make = |i: usize, name: &str, caller: Caller| {
        let home = if i % 4 == 0 {
            format!("2001:db8:{:x}:{:x}", 0x100 + i, rng.range(1, 0xffff))
        } else {
            format!("100.{}.{}", 70 + i, rng.range(0, 256))
        };
        let office = if i % 5 == 0 { "198.51.100" } else { "192.0.2" }.to_owned();
        let (nets, weights) = match i % 6 {
            0 => (vec![home], vec![1]),
            1..=3 => (vec![office, home], vec![5, 3]),
            _ => (vec![office, home, "100.64.10".to_owned()], vec![5, 3, 1]),
        };
        let away = if i % 7 == 3 { 10 + (i as i64 % 9)..15 + (i as i64 % 9) } else { 0..0 };
        Person { caller, name: name.to_owned(), nets, weights, start_day: 0, away, worked: 0 }
    };
    let engineers = ENGINEERS.iter().enumerate().map(|(i, n)| make(i, n, iam_user(account("identity"), n))).collect();
    let mut developers: Vec<Person> = DEVELOPERS
        .iter()
        .enumerate()
        .map(|(i, n)| make(i + 8, n, saml_user(SSO_QUALIFIER, &format!("{n}@example.com"))))
        .collect();
    if let Some(new_hire) = developers.iter_mut().find(|p| p.name == "noor") {
        new_hire.start_day = 16;
    }
    (engineers, developers)
}

/// An IAM Identity Center permission set's role in an account.
fn sso_role(account_name: &str, set: &str) -> String {
    let suffix = format!("{:016x}", twox_hash::XxHash3_64::oneshot(format!("{account_name}{set}").as_bytes()));
    role(account_name, &format!("aws-reserved/sso.amazonaws.com/AWSReservedSSO_{set}_{suffix}"))
}

/// Engineers keep to habits: their own admin account every working day
/// (some go through the management account and on from there), ReadOnly
/// in their team's accounts, now and then ReadOnly somewhere else.
fn engineer_day(g: &mut Gen, p: &mut Person, index: usize, day: i64) {
    if !p.works(&mut g.rng, day) {
        return;
    }
    let net = p.network_today(&mut g.rng);
    let serial = format!("arn:aws:iam::{}:mfa/{}", account("identity"), p.name);
    let via_management = index % 3 == 0;
    let admin = if via_management { "management" } else { ADMIN_TARGETS[1 + index % 6] };
    // Admin work, always with an MFA code: the trust policy demands it.
    let t = g.at(day, 8, 17);
    let ip = host(&mut g.rng, &net);
    let mut call = Call::new(t, &role(admin, "OrgAdmin"), &p.name, &ip, CLI_UA);
    call.mfa_serial = Some(serial);
    g.grant(&p.caller, &call);
    g.follow_up(&call, true);
    if via_management {
        // One hop on from the management account's admin session, which
        // passed MFA itself.
        let session = role_session(&call.role_arn, &p.name, t, true);
        let next = ADMIN_TARGETS[3 + index % 4];
        let chained = Call::new(t + g.rng.range(30, 900), &role(next, "OrgAdmin"), &p.name, &ip, CLI_UA);
        g.grant(&session, &chained);
        g.follow_up(&chained, true);
    }
    let team = [ACCOUNTS[(6 + index) % 20].0, ACCOUNTS[(12 + index) % 20].0];
    for target in team {
        let t = g.at(day, 8, 18);
        let ip = host(&mut g.rng, &net);
        let call = Call::new(t, &role(target, "ReadOnly"), &p.name, &ip, CLI_UA);
        g.grant(&p.caller, &call);
        g.follow_up(&call, false);
    }
    if g.rng.chance(0.2) {
        let target = ACCOUNTS[g.rng.range(0, 20) as usize].0;
        let t = g.at(day, 8, 18);
        let ip = host(&mut g.rng, &net);
        g.grant(&p.caller, &Call::new(t, &role(target, "ReadOnly"), &p.name, &ip, CLI_UA));
    }
}

const DEV_HOMES: [(&str, &str); 8] = [
    ("dev-web", "Developer"),
    ("dev-api", "Developer"),
    ("dev-data", "Developer"),
    ("staging-web", "Developer"),
    ("staging-api", "Developer"),
    ("staging-data", "Developer"),
    ("sandbox-2", "Developer"),
    ("prod-web", "ReadOnly"),
];

/// Developers sign in through IAM Identity Center: their home account and
/// permission set every working day, sometimes another; analysts go on
/// from the home session into the analytics account daily, seniors from an
/// admin session into the management account's admin role.
fn developer_day(g: &mut Gen, p: &mut Person, index: usize, day: i64) {
    if !p.works(&mut g.rng, day) {
        return;
    }
    let net = p.network_today(&mut g.rng);
    let data_scientist = index % 11 == 4;
    let senior = index % 7 == 2;
    let analyst = index % 4 == 1 && !data_scientist && !senior;
    let (home, home_set) = DEV_HOMES[index % DEV_HOMES.len()];
    let mut sessions: Vec<(&str, &str, u64)> = vec![if data_scientist {
        ("analytics", "DataScience", 43_200) // a 12 h permission set: habitually long
    } else if senior {
        ("sandbox-1", "AdministratorAccess", 3600)
    } else {
        (home, home_set, 3600)
    }];
    for _ in 0..g.rng.range(0, 2) {
        let (other, set) = *g.rng.pick(&DEV_HOMES);
        sessions.push((other, set, 3600));
    }
    for (n, (target, set, duration)) in sessions.into_iter().enumerate() {
        let email = format!("{}@example.com", p.name);
        let t = g.at(day, 8, 18);
        let ip = host(&mut g.rng, &net);
        let role_arn = sso_role(target, set);
        let mut call = Call::new(t, &role_arn, &email, &ip, CONSOLE_UA);
        call.event_name = "AssumeRoleWithSAML";
        call.duration_seconds = Some(duration);
        let provider = format!(
            "arn:aws:iam::{}:saml-provider/AWSSSO_{:016x}_DO_NOT_DELETE",
            account(target),
            twox_hash::XxHash3_64::oneshot(target.as_bytes())
        );
        call.request_extra.insert("sAMLAssertionID".into(), format!("_{}", g.rng.uuid().replace('-', "")).into());
        call.request_extra.insert("principalArn".into(), provider.into());
        for (k, v) in [
            ("subject", email.as_str()),
            ("subjectType", "persistent"),
            ("issuer", "https://portal.sso.us-east-1.amazonaws.com/saml/assertion/RXhhbXBsZU9yZw"),
            ("audience", "https://signin.aws.amazon.com/saml"),
            ("nameQualifier", SSO_QUALIFIER),
        ] {
            call.response_extra.insert(k.into(), v.into());
        }
        g.grant(&p.caller, &call);
        g.follow_up(&call, false);
        if n > 0 || !(analyst || senior) {
            continue;
        }
        // Chained from the Identity Center session (which shows
        // mfaAuthenticated "false" although the portal asked for MFA).
        let session = role_session(&role_arn, &email, t, false);
        let next = if senior { role("management", "OrgAdmin") } else { role("analytics", "analytics-read") };
        let chained = Call::new(t + g.rng.range(60, 1800), &next, &p.name, &ip, CLI_UA);
        if g.rng.chance(0.95) {
            g.grant(&session, &chained);
        } else {
            // Now and then a role the permission set does not reach.
            g.deny(&session, &Call { role_arn: role("analytics", "analytics-admin"), ..chained });
        }
    }
}

const REPOS: [(&str, &[&str]); 4] = [
    ("storefront", &["prod-web", "staging-web"]),
    ("api", &["prod-api", "staging-api", "prod-payments"]),
    ("data-pipeline", &["prod-data", "staging-data", "analytics"]),
    ("infra", &["network", "prod-web", "prod-api"]),
];

fn gha_provider() -> String {
    format!("arn:aws:iam::{}:oidc-provider/token.actions.githubusercontent.com", account("shared-services"))
}

/// GitHub-hosted runners: a new network and session every run.
pub(super) fn runner(g: &mut Gen, day: i64, repo: &str) -> (Caller, Call) {
    let t = g.at(day, 6, 22);
    let ip = format!("198.{}.{}.{}", g.rng.range(18, 20), g.rng.range(0, 256), g.rng.range(2, 254));
    let subject = format!("repo:example-org/{repo}:ref:refs/heads/main");
    let run = g.rng.range(7_000_000_000, 9_999_999_999);
    let mut call = Call::new(t, &role("shared-services", &format!("gha-{repo}")), &format!("gha-{run}"), &ip, GHA_UA);
    call.event_name = "AssumeRoleWithWebIdentity";
    call.duration_seconds = Some(3600);
    call.response_extra.insert("subjectFromWebIdentityToken".into(), subject.clone().into());
    call.response_extra.insert("provider".into(), gha_provider().into());
    call.response_extra.insert("audience".into(), "sts.amazonaws.com".into());
    (web_identity(&gha_provider(), &subject), call)
}

fn ci_day(g: &mut Gen, day: i64) {
    for (repo, targets) in REPOS {
        let runs = if is_weekend(day) { g.rng.range(0, 2) } else { g.rng.range(3, 9) };
        for _ in 0..runs {
            let (caller, call) = runner(g, day, repo);
            g.grant(&caller, &call);
            let session = role_session(&call.role_arn, &call.session, call.time, false);
            for (i, target) in targets.iter().enumerate() {
                if i > 0 && g.rng.chance(0.5) {
                    continue;
                }
                let t = call.time + 40 + i as i64 * g.rng.range(30, 400);
                let deploy = Call::new(t, &role(target, "deploy"), &call.session, &call.source_ip, GHA_UA);
                g.grant(&session, &deploy);
                g.follow_up(&deploy, false);
            }
        }
    }
    // Pull requests from forks: the role does not trust them.
    if !is_weekend(day) {
        for _ in 0..g.rng.range(0, 3) {
            let (_, mut call) = runner(g, day, "storefront");
            let subject = "repo:example-org/storefront:pull_request";
            call.response_extra.clear();
            g.deny(&web_identity(&gha_provider(), subject), &call);
        }
    }
    // Jenkins behind one NAT gateway, building in the dev accounts.
    let jenkins = iam_user(account("shared-services"), "jenkins");
    for _ in 0..(if is_weekend(day) { g.rng.range(1, 4) } else { g.rng.range(6, 14) }) {
        let t = g.at(day, 0, 24);
        let target = *g.rng.pick(&["dev-web", "dev-api", "dev-data"]);
        let session = format!("jenkins-{}", g.rng.range(10_000, 99_999));
        let call = Call::new(t, &role(target, "jenkins-build"), &session, "100.100.1.10", BOTO_UA);
        g.grant(&jenkins, &call);
        g.follow_up(&call, false);
    }
}

fn services_day(g: &mut Gen, day: i64) {
    for (i, (name, _)) in ACCOUNTS.iter().enumerate() {
        for _ in 0..g.rng.range(2, 6) {
            let t = g.at(day, 0, 24);
            let function = ["orders", "thumbnailer", "mailer", "indexer"][(i + g.rng.range(0, 2) as usize) % 4];
            let role_arn = role(name, &format!("service-role/{function}-role-{}", &account(name)[..5]));
            let mut call = Call::new(t, &role_arn, function, "lambda.amazonaws.com", "lambda.amazonaws.com");
            call.region = if i % 3 == 0 { "eu-west-1" } else { "us-east-1" };
            g.grant(&aws_service("lambda.amazonaws.com"), &call);
        }
        // The AWS Config recorder, as AWS itself ("AWS Internal").
        let t = g.at(day, 2, 3);
        let config = role(name, "aws-service-role/config.amazonaws.com/AWSServiceRoleForConfig");
        let mut call = Call::new(t, &config, "AWSConfig-Describe", "AWS Internal", "AWS Internal");
        call.duration_seconds = Some(900);
        g.grant(&aws_service("config.amazonaws.com"), &call);
        if name.starts_with("prod") {
            for _ in 0..g.rng.range(1, 4) {
                let t = g.at(day, 0, 24);
                let session = g.rng.uuid().replace('-', "");
                let call = Call::new(
                    t,
                    &role(name, "ecs-task-app"),
                    &session,
                    "ecs-tasks.amazonaws.com",
                    "ecs-tasks.amazonaws.com",
                );
                g.grant(&aws_service("ecs-tasks.amazonaws.com"), &call);
            }
        }
    }
    // The audit shipper (a Lambda in a VPC, one NAT address) reads every account nightly.
    let shipper_role = role("security", "service-role/audit-shipper-role");
    let t = g.at(day, 2, 3);
    let shipper = role_session(&shipper_role, "audit-shipper", t - 5, false);
    for (name, _) in ACCOUNTS.iter().filter(|(n, _)| *n != "security") {
        let call =
            Call::new(t + g.rng.range(0, 120), &role(name, "security-audit"), "audit-shipper", "100.100.2.10", BOTO_UA);
        g.grant(&shipper, &call);
    }
}

fn long_sessions_day(g: &mut Gen, day: i64) {
    // The nightly batch always asks for 12 h: alerts on its first grant only.
    let t = g.at(day, 1, 2);
    let ip = host(&mut g.rng, "100.100.3");
    let mut call = Call::new(t, &role("prod-data", "nightly-batch"), "nightly", &ip, BOTO_UA);
    call.duration_seconds = Some(43_200);
    g.grant(&iam_user(account("prod-data"), "batch-runner"), &call);
    g.follow_up(&call, false);
    // The reporting service: one network, every morning.
    let t = g.at(day, 5, 6);
    let ip = host(&mut g.rng, "100.100.5");
    let call = Call::new(t, &role("analytics", "reporting-read"), "reporting", &ip, BOTO_UA);
    g.grant(&iam_user(account("analytics"), "svc-reporting"), &call);
}

/// An outside account's role session, as the vendor's software runs it.
pub(super) fn vendor(account_id: &str, session: &str) -> Caller {
    role_session(&format!("arn:aws:iam::{account_id}:role/integration"), session, 0, false)
}

pub(super) fn vendor_call(
    g: &mut Gen,
    t: EpochSeconds,
    role_arn: &str,
    session: &str,
    net: &str,
    external_id: &str,
) -> Call {
    let ip = host(&mut g.rng, net);
    let mut call = Call::new(t, role_arn, session, &ip, VENDOR_UA);
    call.external_id = Some(external_id.to_owned());
    call.duration_seconds = Some(3600);
    call
}

/// ExternalId values the vendors pass: rolewatch must never print one.
pub const EXTERNAL_IDS: [&str; 3] =
    ["ext-7f3a9c2e4b1d8f60a5c3e9b7d2f4a1c8", "cost-0d9e8f7a6b5c4d3e2f1a", "scan-4c1e7b9a2d5f8e3a6b0c9d2e"];

fn vendors_day(g: &mut Gen, day: i64) {
    let a = vendor(VENDOR_A, "vendor-a-poller");
    for hour in [0, 12] {
        for (name, _) in ACCOUNTS {
            let t = g.at(day, hour, hour + 1);
            let net = if (hour / 12 + day) % 2 == 0 { "44.210.5" } else { "44.210.6" };
            let call = vendor_call(g, t, &role(name, "vendor-a-integration"), "vendor-a-poller", net, EXTERNAL_IDS[0]);
            g.grant(&a, &call);
        }
    }
    for name in ["management", "prod-web", "prod-api", "prod-data", "analytics", "legacy"] {
        let session = format!("vendor-b-{}", g.rng.range(10_000_000, 99_999_999));
        let t = g.at(day, 3, 4);
        let call = vendor_call(g, t, &role(name, "vendor-b-readonly"), &session, "34.201.7", EXTERNAL_IDS[1]);
        g.grant(&vendor(VENDOR_B, &session), &call);
    }
    if day % 7 == 1 {
        for name in ["prod-web", "prod-api", "prod-payments"] {
            let session = format!("scan-{}", g.rng.range(1000, 9999));
            let t = g.at(day, 22, 23);
            let call = vendor_call(g, t, &role(name, "vendor-c-scanner"), &session, "18.206.44", EXTERNAL_IDS[2]);
            g.grant(&vendor(VENDOR_C, &session), &call);
        }
    }
}

/// Single refused calls here and there, and one person retrying four
/// times (one below the default threshold).
fn stray_refusals(g: &mut Gen, engineers: &[Person], days: i64) {
    for _ in 0..16 {
        let p = g.rng.pick(engineers).caller.clone();
        let day = g.rng.range(0, days);
        let t = g.at(day, 8, 18);
        let target = ACCOUNTS[g.rng.range(0, 20) as usize].0;
        let wanted = *g.rng.pick(&["Admin", "BillingAdmin", "prod-deployer", "OrgAdmin", "DataAdmin"]);
        let ip = host(&mut g.rng, "192.0.2");
        for r in 0..g.rng.range(1, 3) {
            let call = Call::new(t + r * 20, &role(target, wanted), "retry", &ip, CLI_UA);
            g.deny(&p, &call);
        }
    }
    let greta = iam_user(account("identity"), "greta");
    let t = g.at(12, 15, 16);
    for r in 0..4 {
        let wanted = if r < 2 { "prod-admin" } else { "Admin" };
        let call = Call::new(t + r * 80, &role("prod-data", wanted), "greta", "192.0.2.44", CLI_UA);
        g.deny(&greta, &call);
    }
}

pub fn generate(seed: u64, days: i64) -> Month {
    let mut g = Gen {
        rng: Rng::new(seed),
        start: start(),
        org: ACCOUNTS.iter().map(|(_, id)| (*id).to_owned()).collect(),
        records: Vec::new(),
        call_of_event: BTreeMap::new(),
        role_assumptions: 0,
        calls_logged_twice: 0,
        planted: Vec::new(),
    };
    let (mut engineers, mut developers) = people(&mut g.rng);
    for day in 0..days {
        for (i, p) in engineers.iter_mut().enumerate() {
            engineer_day(&mut g, p, i, day);
        }
        for (i, p) in developers.iter_mut().enumerate() {
            developer_day(&mut g, p, i, day);
        }
        ci_day(&mut g, day);
        services_day(&mut g, day);
        long_sessions_day(&mut g, day);
        vendors_day(&mut g, day);
    }
    stray_refusals(&mut g, &engineers, days);
    super::planted::plant_all(&mut g);
    deliver(g)
}

/// CloudTrail's delivery: one file per account, region and 5 minutes
/// (a few records a file or more late), records unordered inside; the
/// export days as hourly organisation-wide files.
fn deliver(mut g: Gen) -> Month {
    let mut slots: BTreeMap<(String, &'static str, EpochSeconds), Vec<serde_json::Value>> = BTreeMap::new();
    let records = std::mem::take(&mut g.records);
    let record_count = records.len() as u64;
    for record in records {
        let day = (record.time - g.start) / DAY;
        let key = if EXPORT_DAYS.contains(&day) {
            ("export".to_owned(), "all", record.time - record.time.rem_euclid(HOUR) + HOUR)
        } else {
            let mut slot = record.time - record.time.rem_euclid(300) + 300;
            if g.rng.chance(0.02) {
                slot += 300 * g.rng.range(1, 7);
            }
            (record.account, record.region, slot)
        };
        slots.entry(key).or_default().push(record.value);
    }
    let mut files = Vec::new();
    let mut gzipper = Gzipper::default();
    for ((account_id, region, delivered), mut batch) in slots {
        // Records inside a file are not in event-time order.
        for i in (1..batch.len()).rev() {
            batch.swap(i, g.rng.range(0, i as i64 + 1) as usize);
        }
        let when = chrono::DateTime::from_timestamp(delivered, 0).unwrap_or_default();
        let suffix = g.rng.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", 16);
        let key = if account_id == "export" {
            format!("exports/{}/org-trail-export_{}.json.gz", when.format("%Y/%m/%d"), when.format("%Y%m%dT%H%MZ"))
        } else {
            format!(
                "AWSLogs/{ORG_ID}/{account_id}/CloudTrail/{region}/{}/{account_id}_CloudTrail_{region}_{}_{suffix}.json.gz",
                when.format("%Y/%m/%d"),
                when.format("%Y%m%dT%H%MZ")
            )
        };
        files.push(LogFile { key, delivered, gzip: gzipper.file(batch) });
    }
    files.sort_by(|a, b| a.key.cmp(&b.key));
    Month {
        files,
        planted: g.planted,
        call_of_event: g.call_of_event,
        organization: g.org.into_iter().collect(),
        trusted_vendors: vec![VENDOR_A.to_owned()],
        mfa_roles: vec!["arn:aws:iam::*:role/OrgAdmin".to_owned(), "arn:aws:iam::*:role/BreakGlass".to_owned()],
        records: record_count,
        role_assumptions: g.role_assumptions,
        calls_logged_twice: g.calls_logged_twice,
    }
}
