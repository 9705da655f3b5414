#!/usr/bin/env python3
"""One month of an organisation's CloudTrail traffic, for noise testing.

    python3 tests/data/gen_month.py OUT_DIR

Writes gzip CloudTrail log files (one per 5 minutes with traffic, named and
laid out as an organisation trail delivers them, plus hourly digest files)
under OUT_DIR, and prints a JSON manifest on stdout: record counts and the
injected attacks with their eventIDs and the detector that must catch them.

Deterministic (fixed seed, gzip mtime 0), stdlib only. The month is what a
normal organisation looks like to rolewatch's detectors:
  * ~40 people on 1-3 stable networks each (office, VPN, home), a new hire,
    a travelling salesperson on many networks, and a few one-off new networks
    (a conference, a home ISP renumbering) - the realistic noise;
  * CI: GitHub Actions OIDC runners and a hosted CI IAM user on many networks,
    Jenkins on one NAT network;
  * AWS services assuming roles (lambda/ecs-tasks/ec2 .amazonaws.com, AWS Internal);
  * roles that always get long sessions (nightly batch, a 12 h SSO set);
  * stray denied calls (typos, retries, pull-request workflows);
and three injected attacks late in the month.
"""
import datetime as dt
import gzip
import hashlib
import json
import pathlib
import random
import string
import sys
import uuid

SEED = 4242
ACCOUNT = "111122223333"
ORG = "o-exampleorg"
REGION = "us-east-1"
START = dt.datetime(2026, 3, 2, tzinfo=dt.timezone.utc)   # a Monday
DAYS = 30
FAMILY = ("AssumeRole", "AssumeRoleWithSAML", "AssumeRoleWithWebIdentity")

rng = random.Random(SEED)
records = []   # (event time, record)


# ---------------------------------------------------------------- helpers
def role(name):
    return f"arn:aws:iam::{ACCOUNT}:role/{name}"


def uid():
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def ts(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def at(day, hour, minute=None, second=None):
    return START + dt.timedelta(days=day, hours=hour,
                                minutes=rng.randrange(60) if minute is None else minute,
                                seconds=rng.randrange(60) if second is None else second)


def host(net):
    """An address in a /24 ("a.b.c") or /64 ("a:b:c:d") network."""
    if ":" in net:
        return net + ":" + ":".join(f"{rng.randrange(1, 0xffff):x}" for _ in range(4))
    return f"{net}.{rng.randrange(2, 254)}"


def key_id(prefix="ASIA"):
    return prefix + "".join(rng.choices(string.ascii_uppercase + "234567", k=16))


def stable_id(prefix, text):
    return prefix + hashlib.sha1(text.encode()).hexdigest()[:17].upper()


def iam_user(name):
    return {"type": "IAMUser", "principalId": stable_id("AIDA", name), "arn": f"arn:aws:iam::{ACCOUNT}:user/{name}",
            "accountId": ACCOUNT, "accessKeyId": stable_id("AKIA", "key" + name)[:20], "userName": name}


SSO_QUALIFIER = "Zx3Qm7Lp0VbN2cR8tYw5Kd1Hs4E="
SAML_PROVIDER = f"arn:aws:iam::{ACCOUNT}:saml-provider/AWSSSO_5e6f7a8b9c0d1e2f_DO_NOT_DELETE"
OIDC = f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"


def saml_user(email):
    return {"type": "SAMLUser", "principalId": f"{SSO_QUALIFIER}:{email}", "userName": email,
            "identityProvider": SSO_QUALIFIER}


def web_identity(sub):
    return {"type": "WebIdentityUser", "principalId": f"{OIDC}:sts.amazonaws.com:{sub}", "userName": sub,
            "identityProvider": OIDC}


def service(name):
    return {"type": "AWSService", "invokedBy": name}


def session_identity(role_arn, session, t):
    role_name = role_arn.rsplit("/", 1)[1]
    rid = stable_id("AROA", role_arn)
    return {"type": "AssumedRole", "principalId": f"{rid}:{session}",
            "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role_name}/{session}", "accountId": ACCOUNT,
            "accessKeyId": key_id(),
            "sessionContext": {"sessionIssuer": {"type": "Role", "principalId": rid, "arn": role_arn,
                                                 "accountId": ACCOUNT, "userName": role_name},
                               "attributes": {"creationDate": ts(t), "mfaAuthenticated": "false"}}}


def envelope(t, identity, source, name, ip, ua):
    return {"eventVersion": "1.09", "userIdentity": identity, "eventTime": ts(t), "eventSource": source,
            "eventName": name, "awsRegion": REGION, "sourceIPAddress": ip, "userAgent": ua}


def close(rec, read_only=True, resources=None, category="Management"):
    rec["requestID"] = uid()
    rec["eventID"] = uid()
    rec["readOnly"] = read_only
    if resources:
        rec["resources"] = resources
    rec["eventType"] = "AwsApiCall"
    rec["managementEvent"] = category == "Management"
    rec["recipientAccountId"] = ACCOUNT
    rec["eventCategory"] = category
    return rec


def assume(t, identity, ip, ua, role_arn, session, duration=None, name="AssumeRole", extra=None, response=None):
    """A granted role assumption; returns its record."""
    req = {"roleArn": role_arn, "roleSessionName": session}
    if duration is not None:
        req["durationSeconds"] = duration
    if extra:
        req.update(extra)
    rec = envelope(t, identity, "sts.amazonaws.com", name, ip, ua)
    rec["requestParameters"] = req
    exp = t + dt.timedelta(seconds=duration or 3600)
    resp = {"credentials": {"accessKeyId": key_id(), "sessionToken": "IQoJb3JpZ2luX2Vj" + key_id("")[:12] + "...",
                            "expiration": exp.strftime("%b %-d, %Y, %-I:%M:%S %p")},
            "assumedRoleUser": {"assumedRoleId": stable_id("AROA", role_arn) + ":" + session,
                                "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role_arn.rsplit('/', 1)[1]}/{session}"}}
    if response:
        resp.update(response)
    rec["responseElements"] = resp
    records.append((t, close(rec, resources=[{"accountId": ACCOUNT, "type": "AWS::IAM::Role", "ARN": role_arn}])))
    return rec


def denied(t, identity, ip, ua, role_arn, name="AssumeRole", caller_arn=None, request=None, error="AccessDenied",
           message=None):
    """A refused role assumption. For AssumeRole, real CloudTrail writes
    requestParameters null and names the role only in errorMessage."""
    rec = envelope(t, identity, "sts.amazonaws.com", name, ip, ua)
    rec["errorCode"] = error
    if message is None:
        who = caller_arn or identity.get("arn") or identity.get("userName")
        message = (f"User: {who} is not authorized to perform: sts:{name} on resource: {role_arn}"
                   if name == "AssumeRole" else f"Not authorized to perform sts:{name}")
    rec["errorMessage"] = message
    rec["requestParameters"] = request
    rec["responseElements"] = None
    records.append((t, close(rec)))
    return rec


READS = [
    ("ec2.amazonaws.com", "DescribeInstances", lambda: {"instancesSet": {}, "filterSet": {}}),
    ("ec2.amazonaws.com", "DescribeSecurityGroups", lambda: {"securityGroupSet": {}, "filterSet": {}}),
    ("s3.amazonaws.com", "ListBuckets", lambda: {"Host": "s3.amazonaws.com"}),
    ("cloudformation.amazonaws.com", "DescribeStacks", lambda: None),
    ("logs.amazonaws.com", "DescribeLogGroups", lambda: {"limit": 50}),
    ("sts.amazonaws.com", "GetCallerIdentity", lambda: None),
    ("iam.amazonaws.com", "ListRoles", lambda: None),
    ("ssm.amazonaws.com", "GetParameter", lambda: {"name": f"/app/config/{rng.choice(['db', 'cache', 'flags'])}", "withDecryption": False}),
]
DATA = [
    ("s3.amazonaws.com", "GetObject", lambda: {"bucketName": "example-org-artifacts", "Host": "example-org-artifacts.s3.us-east-1.amazonaws.com", "key": f"builds/{rng.randrange(10000, 99999)}/app.tar.gz"}),
    ("s3.amazonaws.com", "PutObject", lambda: {"bucketName": "example-org-artifacts", "Host": "example-org-artifacts.s3.us-east-1.amazonaws.com", "key": f"builds/{rng.randrange(10000, 99999)}/app.tar.gz"}),
    ("dynamodb.amazonaws.com", "GetItem", lambda: {"tableName": "orders", "key": {"pk": "HIDDEN_DUE_TO_SECURITY_REASONS"}}),
    ("kms.amazonaws.com", "Decrypt", lambda: {"encryptionAlgorithm": "SYMMETRIC_DEFAULT"}),
]


def follow_up(t, role_arn, session, ip, ua, n, pool=READS):
    """What a session does after it got credentials."""
    for _ in range(n):
        t = t + dt.timedelta(seconds=rng.randint(2, 240))
        source, name, req = rng.choice(pool)
        rec = envelope(t, session_identity(role_arn, session, t), source, name, ip, ua)
        rec["requestParameters"] = req()
        rec["responseElements"] = None
        category = "Data" if source in ("s3.amazonaws.com", "dynamodb.amazonaws.com") and name != "ListBuckets" else "Management"
        records.append((t, close(rec, read_only=name not in ("PutObject",), category=category)))


# ---------------------------------------------------------------- the organisation
CLI_UA = "aws-cli/2.15.{v} md/awscrt#0.19.19 ua/2.0 os/{os} md/arch#x86_64 lang/python#3.11.8 md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe md/prompt#off md/command#sts.assume-role"
BROWSER_UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36"
GHA_UA = "aws-sdk-nodejs/2.1570.0 linux/v20.11.1 configure-aws-credentials-for-github-actions promise"
BOTO_UA = "Boto3/1.34.58 md/Botocore#1.34.58 ua/2.0 os/linux#5.10.210-201.852.amzn2.x86_64 md/arch#x86_64 lang/python#3.11.8 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.58"
TF_UA = "APN/1.0 HashiCorp/1.0 Terraform/1.7.4 (+https://www.terraform.io) terraform-provider-aws/5.39.1 aws-sdk-go-v2/1.25.2 os/linux lang/go#1.21.8 md/GOOS#linux md/GOARCH#amd64 api/sts#1.28.1"

HQ, BRANCH, VPN = "192.0.2", "198.51.100", "198.18.1"
JENKINS_NET, BATCH_NET, REPORTING_NET = "198.18.2", "198.18.3", "198.18.4"
ATTACKER = "203.0.113"           # used by the injected attacks only

ENG_ROLES = [role("Developer"), role("ReadOnly"), role("Deployer")]
OPS_ROLES = [role("OpsAdmin"), role("ReadOnly"), role("NetworkAdmin")]
FIN_ROLES = [role("billing-readonly"), role("ReadOnly")]
SSO_DEV = role("aws-reserved/sso.amazonaws.com/AWSReservedSSO_Developer_3c4d5e6f7a8b9c0d")
SSO_READ = role("aws-reserved/sso.amazonaws.com/AWSReservedSSO_ReadOnly_1a2b3c4d5e6f7a8b")
SSO_DS = role("aws-reserved/sso.amazonaws.com/AWSReservedSSO_DataScience_9f8e7d6c5b4a3f2e")  # 12 h permission set

FIRST = ["ana", "ben", "chen", "dara", "eli", "fatima", "gus", "hana", "ivan", "jo", "kai", "lena", "mo", "nia",
         "omar", "pia", "quinn", "raj", "sara", "tom", "uma", "vik", "wen", "xavi", "yara", "zoe", "arno", "bea",
         "cruz", "dev", "emil", "fay", "gia", "hugo", "ines", "jon", "kira", "luis", "maya", "noor"]


class Person:
    def __init__(self, i, name):
        self.name = name
        self.saml = i % 5 in (1, 3)                       # 40% through IAM Identity Center
        self.identity = saml_user(f"{name}@example.com") if self.saml else iam_user(name)
        self.ua = BROWSER_UA if self.saml else CLI_UA.format(v=rng.randrange(10, 40), os=rng.choice(["linux#6.5.0", "macos#23.3.0"]))
        home = f"2001:db8:{0x100 + i:x}:{rng.randrange(1, 0xffff):x}" if i % 4 == 0 else f"198.19.{i + 1}"
        office = BRANCH if i % 7 == 0 else HQ
        kind = i % 6
        # 1-3 stable networks: remote-only, office+home, office+home+VPN
        self.nets = [home] if kind == 0 else [office, home] if kind in (1, 2, 3) else [office, home, VPN]
        self.weights = [1] if kind == 0 else [5, 3] if len(self.nets) == 2 else [5, 3, 1]
        if self.saml:
            self.roles, self.durations = ([SSO_DS], [43200]) if i in (3, 13) else ([SSO_DEV, SSO_READ], [3600])
        else:
            self.roles = [ENG_ROLES, OPS_ROLES, FIN_ROLES][i % 3]
            self.durations = [None, 3600, 900]
        self.start_day = 0
        self.away = set()
        self.weekend = rng.random() < 0.15
        self.worked = 0


people = [Person(i, n) for i, n in enumerate(FIRST)]
by_name = {p.name: p for p in people}
# Two weeks of holiday for some; a new hire who starts on day 18.
for p in rng.sample(people[5:], 6):
    first = rng.randrange(3, 20)
    p.away = set(range(first, first + rng.choice([3, 5, 9])))
new_hire = by_name["noor"]
new_hire.start_day = 18

# The injected attacks use these identities; keep them plain office workers.
VICTIM = by_name["jo"]              # IAM user, office + home; credential theft on day 24
LONG_ASKER = by_name["omar"]        # IAM user in finance; billing-readonly for 12 h on day 21
for name in ("jo", "omar", "hugo", "kai", "hana"):
    by_name[name].away = set()      # the scripted cases below need them at work
assert not VICTIM.saml and not LONG_ASKER.saml and LONG_ASKER.roles is FIN_ROLES

one_off = {  # realistic one-off new networks: (person, day) -> network
    ("hugo", 16): "198.19.105",     # a conference, once (mature: alerts, a false alarm)
    ("noor", 22): "198.19.106",     # the new hire at a hotel (immature: quiet)
}
renumbered = ("kai", 20, "198.19.107")  # kai's home ISP moves him to a new /24 from day 20 (one alert)

manifest = {"seed": SEED, "start": ts(START), "days": DAYS, "attacks": [], "expected_quiet_cases": []}


def person_day(p, day):
    if day < p.start_day or day in p.away:
        return
    weekend = (START + dt.timedelta(days=day)).weekday() >= 5
    if weekend and not (p.weekend and rng.random() < 0.5):
        return
    nets, weights = list(p.nets), list(p.weights)
    if p.name == renumbered[0] and day >= renumbered[1]:
        nets = [renumbered[2] if n == p.nets[1] else n for n in nets]
    # The first working days visit every stable network once, so the baseline
    # knows them all before it matures (learning period: 7 days).
    k = p.worked
    p.worked += 1
    net = nets[k] if k < len(nets) else (nets[1] if weekend and len(nets) > 1 else rng.choices(nets, weights)[0])
    if (p.name, day) in one_off:
        net = one_off[(p.name, day)]
    for _ in range(rng.choice([1, 1, 2, 2, 3, 4])):
        t = at(day, rng.randrange(7, 19))
        ip = host(net)
        role_arn = rng.choice(p.roles)
        if p.saml:
            extra = {"sAMLAssertionID": "_" + uid().replace("-", ""), "principalArn": SAML_PROVIDER}
            email = p.identity["userName"]
            assume(t, p.identity, ip, p.ua, role_arn, email, p.durations[0], "AssumeRoleWithSAML", extra,
                   {"subject": email, "subjectType": "persistent", "audience": "https://signin.aws.amazon.com/saml",
                    "nameQualifier": SSO_QUALIFIER,
                    "issuer": "https://portal.sso.us-east-1.amazonaws.com/saml/assertion/RXhhbXBsZU9yZw"})
            follow_up(t, role_arn, email, ip, p.ua, rng.randint(1, 4))
        else:
            assume(t, p.identity, ip, p.ua, role_arn, p.name, rng.choice(p.durations))
            follow_up(t, role_arn, p.name, ip, p.ua, rng.randint(1, 4))


def salesperson_day(day):
    """A travelling solutions engineer: hotels, airports, tethering. Many
    networks within days, so rolewatch treats him as roaming."""
    if (START + dt.timedelta(days=day)).weekday() >= 5:
        return
    who = iam_user("sales-eng-max")
    for _ in range(rng.randint(2, 4)):
        t = at(day, rng.randrange(6, 22))
        net = f"2001:db8:5a1e:{rng.randrange(1, 0xffff):x}" if rng.random() < 0.5 else f"198.19.{rng.randrange(110, 128)}"
        ip = host(net)
        assume(t, who, ip, CLI_UA.format(v=22, os="macos#23.3.0"), role("DemoEnvironment"), "max", 3600)
        follow_up(t, role("DemoEnvironment"), "max", ip, CLI_UA.format(v=22, os="macos#23.3.0"), rng.randint(1, 3))


GHA_REPOS = ["repo:example-org/storefront:ref:refs/heads/main", "repo:example-org/infra:environment:production",
             "repo:example-org/data-pipeline:ref:refs/heads/main"]
GHA_ROLES = [role("gha-storefront-deploy"), role("gha-infra-apply"), role("gha-data-pipeline")]


def ci_day(day):
    weekend = (START + dt.timedelta(days=day)).weekday() >= 5
    # GitHub-hosted runners: almost every job from a different /24.
    for sub, role_arn in zip(GHA_REPOS, GHA_ROLES):
        for _ in range(rng.randint(1, 3) if weekend else rng.randint(6, 16)):
            t = at(day, rng.randrange(0, 24) if weekend else rng.randrange(7, 21))
            ip = f"198.18.{rng.randrange(16, 256)}.{rng.randrange(2, 254)}"
            session = f"GitHubActions-{rng.randrange(10**9, 10**10)}"
            assume(t, web_identity(sub), ip, GHA_UA, role_arn, session, 3600, "AssumeRoleWithWebIdentity",
                   response={"subjectFromWebIdentityToken": sub, "provider": OIDC, "audience": "sts.amazonaws.com"})
            follow_up(t, role_arn, session, ip, GHA_UA, rng.randint(2, 6), READS + DATA)
    # Pull requests from forks are not trusted by the role: a denied call each,
    # a few a day, never many within minutes.
    if not weekend:
        for _ in range(rng.randint(0, 3)):
            t = at(day, rng.randrange(8, 20))
            sub = "repo:example-org/storefront:pull_request"
            denied(t, web_identity(sub), f"198.18.{rng.randrange(16, 256)}.{rng.randrange(2, 254)}", GHA_UA,
                   GHA_ROLES[0], "AssumeRoleWithWebIdentity",
                   request={"roleArn": GHA_ROLES[0], "roleSessionName": "GitHubActions"})
    # A hosted CI service with an IAM user key: many networks too.
    for _ in range(rng.randint(2, 4) if weekend else rng.randint(5, 12)):
        t = at(day, rng.randrange(0, 24))
        ip = f"198.19.{rng.randrange(128, 256)}.{rng.randrange(2, 254)}"
        assume(t, iam_user("ci-hosted"), ip, TF_UA, role("terraform-plan"), f"ci-{rng.randrange(10**6, 10**7)}", 900)
        follow_up(t, role("terraform-plan"), "ci", ip, TF_UA, rng.randint(2, 5))
    # Jenkins behind one NAT gateway.
    for _ in range(rng.randint(3, 6) if weekend else rng.randint(10, 20)):
        t = at(day, rng.randrange(0, 24))
        ip = host(JENKINS_NET)
        assume(t, iam_user("jenkins"), ip, BOTO_UA, role("jenkins-build"), "jenkins", None)
        follow_up(t, role("jenkins-build"), "jenkins", ip, BOTO_UA, rng.randint(1, 4), READS + DATA)


LAMBDA_ROLES = [role(f"service-role/{n}") for n in
                ["orders-api-role-7hx2k", "thumbnailer-role-p0q9z", "invoice-mailer-role-3jd8s",
                 "search-indexer-role-k1m4n", "webhook-relay-role-9zq2w", "audit-shipper-role-5tt7r"]]


def services_day(day):
    for _ in range(rng.randint(110, 170)):    # Lambda execution environments starting
        t = at(day, rng.randrange(24))
        fn_role = rng.choice(LAMBDA_ROLES)
        fn = fn_role.rsplit("/", 1)[1].rsplit("-role", 1)[0]
        assume(t, service("lambda.amazonaws.com"), "lambda.amazonaws.com", "lambda.amazonaws.com", fn_role, fn)
        follow_up(t, fn_role, fn, f"3.{rng.randrange(80, 95)}.{rng.randrange(256)}.{rng.randrange(256)}",
                  "aws-sdk-nodejs/3.525.0 (lambda)", rng.randint(0, 4), DATA)
    for _ in range(rng.randint(10, 20)):      # ECS tasks
        t = at(day, rng.randrange(24))
        assume(t, service("ecs-tasks.amazonaws.com"), "ecs-tasks.amazonaws.com", "ecs-tasks.amazonaws.com",
               role("ecs-task-checkout"), uid().replace("-", "")[:32])
    for hour in range(0, 24, 3):              # AWS Config recorder
        assume(at(day, hour), service("config.amazonaws.com"), "AWS Internal", "AWS Internal",
               role("aws-service-role/config.amazonaws.com/AWSServiceRoleForConfig"), "AWSConfig-Describe", 900)
    for _ in range(rng.randint(4, 8)):        # EC2 instance profiles
        t = at(day, rng.randrange(24))
        assume(t, service("ec2.amazonaws.com"), "ec2.amazonaws.com", "ec2.amazonaws.com", role("ec2-web-node"),
               f"i-{uid().replace('-', '')[:17]}")


def long_roles_day(day):
    # The nightly batch always asks for 12 h: habitual, alerts only on its very first grant.
    t = at(day, 1, rng.randrange(0, 10))
    rec = assume(t, iam_user("batch-runner"), host(BATCH_NET), BOTO_UA, role("nightly-batch"), "nightly", 43200)
    if day == 0:
        manifest["expected_quiet_cases"].append(
            {"name": "habitual long role, first grant", "detector": "long_session", "alerts_once": True,
             "event_ids": [rec["eventID"]]})
    follow_up(t, role("nightly-batch"), "nightly", host(BATCH_NET), BOTO_UA, rng.randint(3, 8), READS + DATA)
    # The reporting service: one network, every day.
    t = at(day, 5)
    assume(t, iam_user("svc-reporting"), host(REPORTING_NET), BOTO_UA, role("reporting-read"), "reporting", 3600)
    follow_up(t, role("reporting-read"), "reporting", host(REPORTING_NET), BOTO_UA, rng.randint(2, 5))


def stray_denials():
    """Single denied calls here and there; one person retrying four times
    (one below the default threshold of five)."""
    for _ in range(14):
        p = rng.choice([p for p in people if not p.saml and p not in (VICTIM, LONG_ASKER)])
        day = rng.randrange(max(1, p.start_day), DAYS)
        t = at(day, rng.randrange(8, 18))
        wanted = role(rng.choice(["Admin", "Developers", "ReadOnlyAccess", "prod-deployer", "OpsAdmin"]))
        for r in range(rng.choice([1, 1, 1, 2])):
            denied(t + dt.timedelta(seconds=r * rng.randint(5, 40)), p.identity, host(p.nets[0]), p.ua, wanted)
    p = by_name["hana"]
    t = at(12, 15, 10)
    for r in range(4):
        denied(t + dt.timedelta(seconds=r * 95), p.identity, host(p.nets[0]), p.ua, role("prod-admin"))
    manifest["expected_quiet_cases"].append({"name": "four denials in 5 minutes (threshold is 5)",
                                             "detector": "repeated_failures", "alerts_once": False})


for day in range(DAYS):
    for p in people:
        person_day(p, day)
    salesperson_day(day)
    ci_day(day)
    services_day(day)
    long_roles_day(day)
stray_denials()

# ---------------------------------------------------------------- injected attacks
# 1. Credential theft: lena's access key (she has used the same two networks
#    for three weeks) assumes her usual role at night from a VPS network.
t = at(24, 2, 37, 12)
ip = f"{ATTACKER}.45"
rec = assume(t, VICTIM.identity, ip, "python-requests/2.31.0", VICTIM.roles[0], VICTIM.name, 3600)
follow_up(t, VICTIM.roles[0], VICTIM.name, ip, "python-requests/2.31.0", 6)
manifest["attacks"].append({"name": "credential theft", "detector": "unexpected_source_ip",
                            "principal": VICTIM.identity["arn"], "event_ids": [rec["eventID"]]})

# 2. Role guessing: the reporting service's leaked key tries 14 role names in
#    under four minutes; every call is denied.
t0 = at(27, 4, 11, 3)
ids = []
for i, guess in enumerate(["Admin", "admin", "Administrator", "OrganizationAccountAccessRole", "AWSControlTowerExecution",
                           "root", "devops", "Deploy", "terraform", "PowerUser", "SecurityAudit", "billing",
                           "ReadOnly-Prod", "prod-admin"]):
    t = t0 + dt.timedelta(seconds=i * 15 + rng.randrange(0, 6))
    ids.append(denied(t, iam_user("svc-reporting"), f"{ATTACKER}.200", "aws-cli/1.32.50 Python/3.12.2 Linux/6.1.0 botocore/1.34.50",
                      role(guess))["eventID"])
# 14 distinct roles never granted: role_enumeration, and repeated_failures
# stays quiet for it (one incident, one page).
manifest["attacks"].append({"name": "role guessing", "detector": "role_enumeration",
                            "principal": iam_user("svc-reporting")["arn"], "event_ids": ids})

# 3. Unusual session length: billing-readonly has only ever had 1 h sessions;
#    sara asks for 12 h from her usual office network.
t = at(21, 16, 2, 44)
rec = assume(t, LONG_ASKER.identity, host(LONG_ASKER.nets[0]), LONG_ASKER.ua, role("billing-readonly"), "sara", 43200)
manifest["attacks"].append({"name": "unusual session length", "detector": "long_session",
                            "principal": LONG_ASKER.identity["arn"], "event_ids": [rec["eventID"]]})
manifest["expected_quiet_cases"] += [
    {"name": "conference network once (hugo, mature)", "detector": "unexpected_source_ip", "alerts_once": True},
    {"name": "home ISP renumbering (kai, mature)", "detector": "unexpected_source_ip", "alerts_once": True},
    {"name": "12 h SSO DataScience set, first grant", "detector": "long_session", "alerts_once": True},
    {"name": "hotel network of a new hire (immature)", "detector": "unexpected_source_ip", "alerts_once": False},
]


# ---------------------------------------------------------------- delivery
def write(out):
    out = pathlib.Path(out)
    logs = out / "AWSLogs" / ORG / ACCOUNT / "CloudTrail" / REGION
    digests = out / "AWSLogs" / ORG / ACCOUNT / "CloudTrail-Digest" / REGION
    slots = {}
    for t, rec in records:
        slot = t.replace(minute=t.minute - t.minute % 5, second=0)
        # CloudTrail delivers most events within the next file, some later.
        if rng.random() < 0.02:
            slot += dt.timedelta(minutes=5 * rng.randint(1, 6))
        slots.setdefault(slot, []).append(rec)
    hours = {}
    for slot in sorted(slots):
        delivered = slot + dt.timedelta(minutes=5)
        folder = logs / slot.strftime("%Y/%m/%d")
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{ACCOUNT}_CloudTrail_{REGION}_{delivered.strftime('%Y%m%dT%H%MZ')}_{''.join(rng.choices(string.ascii_letters + string.digits, k=16))}.json.gz"
        batch = slots[slot]
        rng.shuffle(batch)   # files are not ordered by event time inside
        data = gzip.compress(json.dumps({"Records": batch}, separators=(",", ":")).encode(), compresslevel=6, mtime=0)
        (folder / name).write_bytes(data)
        hours.setdefault(delivered.replace(minute=0) + dt.timedelta(hours=1), []).append(
            (str((folder / name).relative_to(out)), hashlib.sha256(data).hexdigest()))
    for end, files in hours.items():   # hourly digests: skipped by rolewatch
        folder = digests / end.strftime("%Y/%m/%d")
        folder.mkdir(parents=True, exist_ok=True)
        digest = {"awsAccountId": ACCOUNT, "digestStartTime": ts(end - dt.timedelta(hours=1)), "digestEndTime": ts(end),
                  "digestS3Bucket": "example-org-cloudtrail", "digestSignatureAlgorithm": "SHA256withRSA",
                  "logFiles": [{"s3Bucket": "example-org-cloudtrail", "s3Object": o, "hashValue": h,
                                "hashAlgorithm": "SHA-256"} for o, h in files]}
        name = f"{ACCOUNT}_CloudTrail-Digest_{REGION}_org-trail_{REGION}_{end.strftime('%Y%m%dT%H%M%SZ')}.json.gz"
        (folder / name).write_bytes(gzip.compress(json.dumps(digest).encode(), mtime=0))
    return len(slots), len(hours)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: gen_month.py OUT_DIR")
    log_files, digest_files = write(sys.argv[1])
    fam = [r for _, r in records if r["eventSource"] == "sts.amazonaws.com" and r["eventName"] in FAMILY]
    manifest.update({"log_files": log_files, "digest_files": digest_files, "records": len(records),
                     "role_assumptions": len(fam), "failed_role_assumptions": sum(1 for r in fam if "errorCode" in r)})
    json.dump(manifest, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
