#!/usr/bin/env python3
"""Writes events/cloudtrail/: ~12 days of one account's CloudTrail traffic,
laid out and named as an organisation trail delivers it to S3, with one case
of each rolewatch detector on the last day (see events/cloudtrail/README.md).

Deterministic (fixed seed, gzip mtime 0): re-running reproduces the same
bytes, so the committed files can be checked against this script.
Stdlib only. Usage: python3 events/make_samples.py
"""
import datetime as dt
import gzip
import hashlib
import json
import pathlib
import random
import shutil
import string
import uuid

SEED = 20261005
ACCOUNT = "111122223333"
ORG = "o-exampleorg"
REGION = "us-east-1"
TRAIL = "org-trail"
START = dt.datetime(2026, 9, 24, tzinfo=dt.timezone.utc)
DAYS = 12  # 2026-09-24 .. 2026-10-05: the baselines mature after 7 days
OUT = pathlib.Path(__file__).resolve().parent / "cloudtrail"

rng = random.Random(SEED)


def role(name):
    return f"arn:aws:iam::{ACCOUNT}:role/{name}"


# Networks. Documentation ranges hold only three IPv4 /24s, so people's home
# networks and CI runners also use 198.18.0.0/15 (RFC 2544, never routed) and
# 2001:db8::/32. 203.0.113.0/24 is kept for the attacker alone.
OFFICE = "192.0.2"
VPN = "198.51.100"
ATTACKER_IP = "203.0.113.66"

PEOPLE = [
    # name, kind, networks (IPv4 /24 prefixes or IPv6 /64 prefixes), roles
    ("alice", "iam", [OFFICE, "198.19.12", VPN], ["Developer", "ReadOnlyAudit"]),
    ("bob", "iam", [OFFICE, "2001:db8:b0b:1"], ["Developer", "ReadOnlyAudit"]),
    ("carol", "iam", ["198.19.40", VPN], ["DataEngineer"]),
    ("dave.ng@example.com", "saml", [OFFICE, "198.19.77"], ["AWSReservedSSO_PowerUser_1a2b3c4d5e6f7a8b"]),
    ("erin.ko@example.com", "saml", ["2001:db8:e71:7", VPN, OFFICE], ["AWSReservedSSO_ReadOnly_9f8e7d6c5b4a3f2e"]),
]
CI_SUB = "repo:example-org/storefront:ref:refs/heads/main"
CI_ROLE = role("github-actions-deploy")
BATCH_USER = "batch-scheduler"
BATCH_ROLE = role("nightly-batch")      # habitually granted 43200 s, every night
BATCH_NET = "198.18.250"
LAMBDA_ROLES = [role("service-role/orders-api-role-7hx2k"), role("service-role/thumbnailer-role-p0q9z")]
CONFIG_ROLE = role("aws-service-role/config.amazonaws.com/AWSServiceRoleForConfig")
GUESSER = "legacy-build"                 # IAM user whose key is used to guess roles
GUESS_NET = "198.18.9"

CLI_UA = "aws-cli/2.17.40 md/awscrt#0.21.2 ua/2.0 os/linux#6.8.0-1015-aws md/arch#x86_64 lang/python#3.11.9 md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe md/distrib#ubuntu.24 md/prompt#off md/command#sts.assume-role"
BROWSER_UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36"
GHA_UA = "aws-sdk-nodejs/2.1691.0 linux/v20.17.0 configure-aws-credentials-for-github-actions promise"
BOTO_UA = "Boto3/1.35.20 md/Botocore#1.35.20 ua/2.0 os/linux#5.10.225-213.878.amzn2.x86_64 md/arch#x86_64 lang/python#3.12.5 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.35.20"
SAML_IDP = f"arn:aws:iam::{ACCOUNT}:saml-provider/AWSSSO_0a1b2c3d4e5f6a7b_DO_NOT_DELETE"
OIDC = f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"

records = []          # (datetime, record)
injected = {}         # what the README lists, by case


def uid():
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def ts(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def expiry(t, seconds):
    return (t + dt.timedelta(seconds=seconds)).strftime("%b %-d, %Y, %-I:%M:%S %p")


def host(net):
    """One address inside a /24 (a.b.c) or /64 (a:b:c:d) prefix."""
    if ":" in net:
        return f"{net}:{rng.randrange(1, 0xffff):x}:{rng.randrange(1, 0xffff):x}:{rng.randrange(1, 0xffff):x}:{rng.randrange(1, 0xffff):x}"
    return f"{net}.{rng.randrange(2, 250)}"


def token():
    # Real session tokens are ~800 random characters; shortened to keep the
    # samples small (they are never read by rolewatch).
    return "IQoJb3JpZ2luX2VjE" + "".join(rng.choices(string.ascii_letters + string.digits + "+/", k=48)) + "=="


def key_id(prefix="ASIA"):
    return prefix + "".join(rng.choices(string.ascii_uppercase + "234567", k=16))


def base(t, identity, name, ip, ua, source="sts.amazonaws.com"):
    return {"eventVersion": "1.08", "userIdentity": identity, "eventTime": ts(t), "eventSource": source,
            "eventName": name, "awsRegion": REGION, "sourceIPAddress": ip, "userAgent": ua}


def finish(rec, read_only=True, resources=None, tls=True):
    rec.update({"requestID": uid(), "eventID": uid(), "readOnly": read_only})
    if resources:
        rec["resources"] = resources
    rec.update({"eventType": "AwsApiCall", "managementEvent": True, "recipientAccountId": ACCOUNT,
                "eventCategory": "Management"})
    if tls:
        rec["tlsDetails"] = {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256",
                             "clientProvidedHostHeader": f"sts.{REGION}.amazonaws.com"}
    return rec


def assume(t, identity, ip, ua, role_arn, session, duration=None, name="AssumeRole", extra=None,
           response_extra=None, tls=True):
    req = {"roleArn": role_arn, "roleSessionName": session}
    if duration is not None:
        req["durationSeconds"] = duration
    req.update(extra or {})
    rec = base(t, identity, name, ip, ua)
    rec["requestParameters"] = req
    role_name = role_arn.rsplit("/", 1)[1]
    resp = {"credentials": {"accessKeyId": key_id(), "sessionToken": token(),
                            "expiration": expiry(t, duration or 3600)},
            "assumedRoleUser": {"assumedRoleId": "AROA" + key_id("")[:17] + ":" + session,
                                "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role_name}/{session}"}}
    resp.update(response_extra or {})
    rec["responseElements"] = resp
    res = [{"accountId": ACCOUNT, "type": "AWS::IAM::Role", "ARN": role_arn}]
    records.append((t, finish(rec, resources=res, tls=tls)))
    return rec


def iam_user(name):
    return {"type": "IAMUser", "principalId": "AIDA" + hashlib.sha1(name.encode()).hexdigest()[:17].upper(),
            "arn": f"arn:aws:iam::{ACCOUNT}:user/{name}", "accountId": ACCOUNT,
            "accessKeyId": "AKIA" + hashlib.sha1(b"k" + name.encode()).hexdigest()[:16].upper(), "userName": name}


def saml_user(email):
    q = "K7sX0p2VbQm9fT4wLc8yRn5aJ1E="
    return {"type": "SAMLUser", "principalId": f"{q}:{email}", "userName": email, "identityProvider": q}


def gha_user():
    return {"type": "WebIdentityUser", "principalId": f"{OIDC}:sts.amazonaws.com:{CI_SUB}",
            "userName": CI_SUB, "identityProvider": OIDC}


def session_identity(role_arn, session, t):
    role_name = role_arn.rsplit("/", 1)[1]
    return {"type": "AssumedRole", "principalId": "AROA" + hashlib.sha1(role_arn.encode()).hexdigest()[:17].upper() + ":" + session,
            "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role_name}/{session}", "accountId": ACCOUNT,
            "accessKeyId": key_id(),
            "sessionContext": {"sessionIssuer": {"type": "Role", "principalId": "AROA" + hashlib.sha1(role_arn.encode()).hexdigest()[:17].upper(),
                                                 "arn": role_arn, "accountId": ACCOUNT, "userName": role_name},
                               "attributes": {"creationDate": ts(t), "mfaAuthenticated": "false"}}}


NOISE = [
    ("ec2.amazonaws.com", "DescribeInstances", {"instancesSet": {}, "filterSet": {}}),
    ("s3.amazonaws.com", "GetObject", None),
    ("s3.amazonaws.com", "ListBuckets", {"Host": "s3.amazonaws.com"}),
    ("logs.amazonaws.com", "DescribeLogGroups", {"limit": 50}),
    ("cloudformation.amazonaws.com", "DescribeStacks", None),
    ("sts.amazonaws.com", "GetCallerIdentity", None),
]


def noise(t, role_arn, session, ip, ua):
    """What a session does after assuming a role: reads, mostly."""
    for _ in range(rng.randint(1, 3)):
        t = t + dt.timedelta(seconds=rng.randint(5, 200))
        source, name, req = rng.choice(NOISE)
        rec = base(t, session_identity(role_arn, session, t), name, ip, ua, source)
        if name == "GetObject":
            req = {"bucketName": "example-org-artifacts", "Host": "example-org-artifacts.s3.us-east-1.amazonaws.com",
                   "key": f"builds/{rng.randrange(1000, 9999)}/manifest.json"}
            rec["additionalEventData"] = {"bytesTransferredIn": 0, "bytesTransferredOut": rng.randrange(300, 9000)}
        rec["requestParameters"] = req
        rec["responseElements"] = None
        finish(rec, tls=source != "s3.amazonaws.com")
        if source == "s3.amazonaws.com":
            rec["managementEvent"] = name == "ListBuckets"
            rec["eventCategory"] = "Management" if name == "ListBuckets" else "Data"
        records.append((t, rec))


def at(day, hour, minute=None, second=None):
    return START + dt.timedelta(days=day, hours=hour, minutes=rng.randrange(60) if minute is None else minute,
                                seconds=rng.randrange(60) if second is None else second)


def person_day(day, person):
    name, kind, nets, roles = person
    # Each network is used in the first days so the baseline knows all of
    # them before it matures; later days pick among them at random.
    for k in range(rng.randint(1, 2)):
        net = nets[day] if day < len(nets) and k == 0 else rng.choice(nets)
        t = at(day, rng.choice([8, 9, 10, 13, 14, 15, 16]))
        ip = host(net)
        role_arn = role(rng.choice(roles))
        if kind == "iam":
            assume(t, iam_user(name), ip, CLI_UA, role_arn, name, 3600)
            noise(t, role_arn, name, ip, CLI_UA)
        else:
            assume(t, saml_user(name), ip, BROWSER_UA, role_arn, name, 3600, name="AssumeRoleWithSAML",
                   extra={"sAMLAssertionID": "_" + uid().replace("-", ""), "principalArn": SAML_IDP},
                   response_extra={"subject": name, "subjectType": "persistent", "audience": "https://signin.aws.amazon.com/saml",
                                   "issuer": "https://portal.sso.us-east-1.amazonaws.com/saml/assertion/RXhhbXBsZU9yZ0lkcA",
                                   "nameQualifier": "K7sX0p2VbQm9fT4wLc8yRn5aJ1E="})
            noise(t, role_arn, name, ip, BROWSER_UA)


def ci_run(t):
    # GitHub-hosted runners: a different network almost every run (roaming).
    ip = f"198.{rng.choice([18, 19])}.{rng.randrange(100, 240)}.{rng.randrange(2, 250)}"
    session = f"GitHubActions-{rng.randrange(10**9, 10**10)}"
    assume(t, gha_user(), ip, GHA_UA, CI_ROLE, session, 3600, name="AssumeRoleWithWebIdentity",
           response_extra={"subjectFromWebIdentityToken": CI_SUB, "provider": OIDC, "audience": "sts.amazonaws.com"})
    noise(t, CI_ROLE, session, ip, GHA_UA)


def service_assumptions(day):
    for _ in range(rng.randint(4, 7)):     # Lambda cold starts
        t = at(day, rng.randrange(24))
        fn_role = rng.choice(LAMBDA_ROLES)
        assume(t, {"type": "AWSService", "invokedBy": "lambda.amazonaws.com"}, "lambda.amazonaws.com",
               "lambda.amazonaws.com", fn_role, fn_role.rsplit("/", 1)[1].rsplit("-", 1)[0], tls=False)
    for hour in (2, 14):                  # AWS Config recorder
        assume(at(day, hour), {"type": "AWSService", "invokedBy": "AWS Internal"}, "AWS Internal", "AWS Internal",
               CONFIG_ROLE, "AWSConfig-Describe", 900, tls=False)


def batch_night(day):
    t = at(day, 1, rng.randrange(0, 4))
    rec = assume(t, iam_user(BATCH_USER), host(BATCH_NET), BOTO_UA, BATCH_ROLE, "nightly-batch", 43200)
    if day == 0:
        injected["habitual_first"] = rec["eventID"]


for day in range(DAYS):
    for person in PEOPLE:
        if day >= 11 and person[0] == "alice":
            continue  # alice's last day is the attack below; she is asleep
        person_day(day, person)
    for _ in range(rng.randint(3, 5)):
        ci_run(at(day, rng.choice([9, 11, 14, 16, 18])))
    service_assumptions(day)
    batch_night(day)
    if day == 6:
        # a stray denied call: one typo'd role, not a burst
        t = at(day, 15)
        rec = base(t, iam_user("bob"), "AssumeRole", host(OFFICE), CLI_UA)
        rec.update({"errorCode": "AccessDenied",
                    "errorMessage": f"User: arn:aws:iam::{ACCOUNT}:user/bob is not authorized to perform: sts:AssumeRole on resource: {role('Developers')}",
                    "requestParameters": None, "responseElements": None})
        records.append((t, finish(rec)))

# --- the last day (2026-10-05): one case per detector ------------------------
LAST = DAYS - 1
# (a) repeated_failures: a leaked build key guessing role names, 7 denials in < 3 min.
t0 = at(LAST, 10, 1, 7)
injected["repeated_failures"] = []
for i, guess in enumerate(["Admin", "OrganizationAccountAccessRole", "admin-role", "Administrator",
                           "devops", "Deploy", "PowerUser"]):
    t = t0 + dt.timedelta(seconds=i * 23 + rng.randrange(0, 5))
    rec = base(t, iam_user(GUESSER), "AssumeRole", f"{GUESS_NET}.31", BOTO_UA)
    rec.update({"errorCode": "AccessDenied",
                "errorMessage": f"User: arn:aws:iam::{ACCOUNT}:user/{GUESSER} is not authorized to perform: sts:AssumeRole on resource: {role(guess)}",
                "requestParameters": None, "responseElements": None})
    records.append((t, finish(rec)))
    injected["repeated_failures"].append(rec["eventID"])
# (b) unexpected_source_ip: alice's access key used from a network she never used,
#     ten days after she was first seen.
t = at(LAST, 3, 12, 40)
rec = assume(t, iam_user("alice"), ATTACKER_IP, "python-requests/2.32.3", role("Developer"), "alice", 3600)
injected["unexpected_source_ip"] = rec["eventID"]
noise(t, role("Developer"), "alice", ATTACKER_IP, "python-requests/2.32.3")
# (c) long_session: bob asks for a 12-hour session on a role only ever used for an hour.
t = at(LAST, 9, 47, 5)
rec = assume(t, iam_user("bob"), host(OFFICE), CLI_UA, role("ReadOnlyAudit"), "bob", 43200)
injected["long_session"] = rec["eventID"]


# --- write files as CloudTrail delivers them ---------------------------------
def alnum16():
    return "".join(rng.choices(string.ascii_letters + string.digits, k=16))


if (OUT / "AWSLogs").exists():
    shutil.rmtree(OUT / "AWSLogs")
slots = {}
for t, rec in records:
    slot = t.replace(minute=t.minute - t.minute % 5, second=0)
    slots.setdefault(slot, []).append((t, rec))
written = []
for slot in sorted(slots):
    delivered = slot + dt.timedelta(minutes=5)
    folder = OUT / "AWSLogs" / ORG / ACCOUNT / "CloudTrail" / REGION / slot.strftime("%Y/%m/%d")
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{ACCOUNT}_CloudTrail_{REGION}_{delivered.strftime('%Y%m%dT%H%MZ')}_{alnum16()}.json.gz"
    body = json.dumps({"Records": [r for _, r in sorted(slots[slot], key=lambda x: x[0])]},
                      separators=(",", ":")).encode()
    data = gzip.compress(body, compresslevel=9, mtime=0)
    (folder / name).write_bytes(data)
    written.append((slot, delivered, folder / name, data))

# One digest file (the last hour), as CloudTrail writes it: it lists the log
# files' SHA-256 and must be skipped by rolewatch, not read as events.
d_end = written[-1][1].replace(minute=0) + dt.timedelta(hours=1)
d_start = d_end - dt.timedelta(hours=1)
listed = [w for w in written if d_start <= w[1] < d_end]
digest = {
    "awsAccountId": ACCOUNT,
    "digestStartTime": ts(d_start), "digestEndTime": ts(d_end),
    "digestS3Bucket": "example-org-cloudtrail",
    "digestS3Object": "",
    "digestPublicKeyFingerprint": hashlib.md5(b"example public key").hexdigest(),
    "digestSignatureAlgorithm": "SHA256withRSA",
    "newestEventTime": ts(max(t for t, _ in records)), "oldestEventTime": ts(min(t for t, _ in records if t >= d_start - dt.timedelta(hours=1))),
    "previousDigestS3Bucket": "example-org-cloudtrail",
    "previousDigestS3Object": "",
    "previousDigestHashValue": hashlib.sha256(b"previous digest").hexdigest(),
    "previousDigestHashAlgorithm": "SHA-256",
    "previousDigestSignature": hashlib.sha512(b"previous signature").hexdigest(),
    "logFiles": [],
}
dfolder = OUT / "AWSLogs" / ORG / ACCOUNT / "CloudTrail-Digest" / REGION / d_end.strftime("%Y/%m/%d")
dfolder.mkdir(parents=True, exist_ok=True)
dname = f"{ACCOUNT}_CloudTrail-Digest_{REGION}_{TRAIL}_{REGION}_{d_end.strftime('%Y%m%dT%H%M%SZ')}.json.gz"
digest["digestS3Object"] = str((dfolder / dname).relative_to(OUT))
prev_end = d_start
digest["previousDigestS3Object"] = f"AWSLogs/{ORG}/{ACCOUNT}/CloudTrail-Digest/{REGION}/{prev_end.strftime('%Y/%m/%d')}/{ACCOUNT}_CloudTrail-Digest_{REGION}_{TRAIL}_{REGION}_{prev_end.strftime('%Y%m%dT%H%M%SZ')}.json.gz"
for slot, delivered, path, data in listed:
    evs = [t for t, _ in slots[slot]]
    digest["logFiles"].append({"s3Bucket": "example-org-cloudtrail", "s3Object": str(path.relative_to(OUT)),
                               "hashValue": hashlib.sha256(data).hexdigest(), "hashAlgorithm": "SHA-256",
                               "newestEventTime": ts(max(evs)), "oldestEventTime": ts(min(evs))})
(dfolder / dname).write_bytes(gzip.compress(json.dumps(digest, indent=1).encode(), compresslevel=9, mtime=0))

total = sum(len(w[3]) for w in written)
family = sum(1 for _, r in records if r["eventSource"] == "sts.amazonaws.com"
             and r["eventName"] in ("AssumeRole", "AssumeRoleWithSAML", "AssumeRoleWithWebIdentity"))
print(f"{len(written)} log files ({total} bytes gzip), 1 digest; {len(records)} records, {family} role assumptions")
print(json.dumps(injected, indent=1))
