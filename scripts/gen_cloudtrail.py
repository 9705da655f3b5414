#!/usr/bin/env python3
# Copy of the team's ../shared/tools/gen_cloudtrail.py (our own tool, MIT like rolewatch), kept so
# scripts/bench.sh builds the same workload where the shared tree is absent.
"""Generate realistic CloudTrail log files for benchmarks.

The output is what CloudTrail delivers to S3: a gzip file holding one
minified JSON object {"Records": [...]}. The record mix follows what an
organisation trail carries: mostly non-STS management and read events from
many services, a few percent STS role assumptions (most of them by AWS
services for service roles), a small share of failed calls.

Usage:
  gen_cloudtrail.py --records 150000 --seed 7 OUT.json.gz
  gen_cloudtrail.py --records 2000 --files 20 --seed 7 OUTDIR/

With --files N, OUT is a folder and N files named like real CloudTrail
objects are written there. Output is deterministic for a given seed.
"""
import argparse
import datetime as dt
import gzip
import json
import os
import random
import uuid

ACCOUNTS = ["111122223333", "444455556666", "777788889999", "123456789012"]
REGIONS = ["us-east-1", "us-west-2", "eu-west-1", "ap-southeast-2"]
SERVICES = [
    ("ec2.amazonaws.com", ["DescribeInstances", "DescribeSecurityGroups", "RunInstances", "DescribeVolumes"]),
    ("s3.amazonaws.com", ["GetBucketAcl", "ListBuckets", "GetBucketPolicy", "PutBucketTagging"]),
    ("iam.amazonaws.com", ["GetRole", "ListRoles", "ListAttachedRolePolicies", "GetPolicyVersion"]),
    ("kms.amazonaws.com", ["Decrypt", "GenerateDataKey", "Encrypt"]),
    ("logs.amazonaws.com", ["CreateLogStream", "DescribeLogGroups", "PutRetentionPolicy"]),
    ("lambda.amazonaws.com", ["ListFunctions20150331", "GetFunction20150331v2", "Invoke"]),
    ("dynamodb.amazonaws.com", ["DescribeTable", "ListTables", "DescribeContinuousBackups"]),
    ("cloudformation.amazonaws.com", ["DescribeStacks", "ListStackResources"]),
    ("monitoring.amazonaws.com", ["DescribeAlarms", "GetMetricData"]),
    ("sts.amazonaws.com", ["GetCallerIdentity", "GetSessionToken"]),
]
SERVICE_PRINCIPALS = ["lambda.amazonaws.com", "ec2.amazonaws.com", "ecs-tasks.amazonaws.com",
                      "config.amazonaws.com", "cloudformation.amazonaws.com", "glue.amazonaws.com"]
USER_AGENTS = [
    "aws-cli/2.17.20 md/awscrt#0.20.11 ua/2.0 os/linux#6.8.0 md/arch#x86_64 lang/python#3.11.9 md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe exec-env/CloudShell md/prompt#off md/command#sts.assume-role",
    "Boto3/1.34.140 md/Botocore#1.34.140 ua/2.0 os/linux#5.10.219-208.866.amzn2.x86_64 md/arch#x86_64 lang/python#3.12.4 md/pyimpl#CPython exec-env/AWS_Lambda_python3.12 cfg/retry-mode#legacy Botocore/1.34.140",
    "aws-sdk-go-v2/1.30.3 os/linux lang/go#1.22.5 md/GOOS#linux md/GOARCH#amd64 api/sts#1.30.3",
    "Terraform/1.9.2 (+https://www.terraform.io) terraform-provider-aws/5.59.0 aws-sdk-go-v2/1.30.3",
    "console.amazonaws.com",
]


def ip(rng):
    if rng.random() < 0.04:
        return "2001:db8:%x:%x::%x" % (rng.randrange(65536), rng.randrange(65536), rng.randrange(65536))
    return "%d.%d.%d.%d" % (rng.choice([198, 203, 192, 52, 34]), rng.randrange(256), rng.randrange(256), rng.randrange(1, 255))


def access_key(rng, prefix):
    return prefix + "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16))


def uid(rng):
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def identity(rng, account):
    kind = rng.random()
    if kind < 0.5:
        role = rng.choice(["OrgAdmin", "ReadOnly", "DeployRole", "DataPipeline", "SecurityAudit"])
        session = rng.choice(["alice", "bob", "ci-run-%d" % rng.randrange(9999), "i-0%011x" % rng.getrandbits(44)])
        return {
            "type": "AssumedRole",
            "principalId": "AROA%s:%s" % (access_key(rng, "")[:17], session),
            "arn": "arn:aws:sts::%s:assumed-role/%s/%s" % (account, role, session),
            "accountId": account,
            "accessKeyId": access_key(rng, "ASIA"),
            "sessionContext": {
                "sessionIssuer": {"type": "Role", "principalId": "AROA" + access_key(rng, "")[:17],
                                  "arn": "arn:aws:iam::%s:role/%s" % (account, role), "accountId": account,
                                  "userName": role},
                "webIdFederationData": {},
                "attributes": {"creationDate": "2026-11-21T09:12:44Z", "mfaAuthenticated": "false"},
            },
        }
    if kind < 0.8:
        user = rng.choice(["alice", "bob", "carol", "deploy-bot", "backup"])
        return {"type": "IAMUser", "principalId": "AIDA" + access_key(rng, "")[:17],
                "arn": "arn:aws:iam::%s:user/%s" % (account, user), "accountId": account,
                "accessKeyId": access_key(rng, "AKIA"), "userName": user}
    svc = rng.choice(SERVICE_PRINCIPALS)
    return {"type": "AWSService", "invokedBy": svc}


def base(rng, when, account, region, source, name):
    return {
        "eventVersion": "1.10",
        "eventTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": source,
        "eventName": name,
        "awsRegion": region,
        "requestID": uid(rng),
        "eventID": uid(rng),
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account,
        "eventCategory": "Management",
    }


def other_event(rng, when, account, region):
    source, names = rng.choice(SERVICES)
    rec = base(rng, when, account, region, source, rng.choice(names))
    ident = identity(rng, account)
    rec["userIdentity"] = ident
    rec["sourceIPAddress"] = ident.get("invokedBy") or ip(rng)
    rec["userAgent"] = ident.get("invokedBy") or rng.choice(USER_AGENTS)
    rec["readOnly"] = rec["eventName"].startswith(("Describe", "List", "Get"))
    rec["requestParameters"] = {
        "filterSet": {"items": [{"name": "tag:Team", "valueSet": {"items": [{"value": "platform"}]}}]},
        "maxResults": rng.choice([50, 100, 1000]),
        "resourceArn": "arn:aws:%s:%s:%s:resource/%s" % (source.split(".")[0], region, account, uid(rng)),
    } if rng.random() < 0.8 else None
    rec["responseElements"] = None
    if rng.random() < 0.03:
        rec["errorCode"] = rng.choice(["AccessDenied", "ThrottlingException", "Client.UnauthorizedOperation"])
        rec["errorMessage"] = "User: %s is not authorized to perform this operation" % ident.get("arn", "service")
    rec["tlsDetails"] = {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256",
                         "clientProvidedHostHeader": "%s.%s.amazonaws.com" % (source.split(".")[0], region)}
    return rec


def assume_role_event(rng, when, account, region):
    role_account = rng.choice(ACCOUNTS)
    role = rng.choice(["OrgAdmin", "ReadOnly", "DeployRole", "DataPipeline", "SecurityAudit", "LambdaExec"])
    rec = base(rng, when, role_account, region, "sts.amazonaws.com", "AssumeRole")
    ident = identity(rng, account)
    rec["userIdentity"] = ident
    service = ident.get("invokedBy")
    session = service.split(".")[0] + "-" + uid(rng)[:8] if service else rng.choice(["alice", "bob", "ci-%d" % rng.randrange(999)])
    role_arn = "arn:aws:iam::%s:role/%s" % (role_account, role)
    rec["sourceIPAddress"] = service or ip(rng)
    rec["userAgent"] = service or rng.choice(USER_AGENTS)
    params = {"roleArn": role_arn, "roleSessionName": session}
    if rng.random() < 0.6:
        params["durationSeconds"] = rng.choice([900, 3600, 3600, 3600, 7200, 43200])
    if rng.random() < 0.1:
        params["externalId"] = uid(rng)
    rec["requestParameters"] = params
    rec["readOnly"] = True
    rec["resources"] = [{"accountId": role_account, "type": "AWS::IAM::Role", "ARN": role_arn}]
    if rng.random() < 0.02:
        rec["errorCode"] = "AccessDenied"
        rec["errorMessage"] = "User: %s is not authorized to perform: sts:AssumeRole on resource: %s" % (
            ident.get("arn", service), role_arn)
        rec["responseElements"] = None
    else:
        rec["responseElements"] = {
            "credentials": {"accessKeyId": access_key(rng, "ASIA"), "sessionToken": "IQoJb3JpZ2luX2VjE" + uid(rng) * 6,
                            "expiration": "Nov 21, 2026, 11:00:00 AM"},
            "assumedRoleUser": {"assumedRoleId": "AROA%s:%s" % (access_key(rng, "")[:17], session),
                                "arn": "arn:aws:sts::%s:assumed-role/%s/%s" % (role_account, role, session)},
        }
    if role_account != account:
        rec["sharedEventID"] = uid(rng)
    return rec


def records(rng, n, start, account, region, sts_share):
    out = []
    for i in range(n):
        when = start + dt.timedelta(seconds=i * 300 / max(n, 1))
        if rng.random() < sts_share:
            out.append(assume_role_event(rng, when, account, region))
        else:
            out.append(other_event(rng, when, account, region))
    return out


def write(path, recs):
    data = json.dumps({"Records": recs}, separators=(",", ":")).encode()
    with gzip.open(path, "wb", compresslevel=6) as f:
        f.write(data)
    return len(data)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--records", type=int, default=10000, help="records per file")
    p.add_argument("--files", type=int, default=0, help="write N files into the folder OUT")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--sts-share", type=float, default=0.05, help="share of records that are AssumeRole calls")
    a = p.parse_args()
    rng = random.Random(a.seed)
    start = dt.datetime(2026, 11, 21, 10, 0, 0)
    if a.files:
        os.makedirs(a.out, exist_ok=True)
        total = 0
        for k in range(a.files):
            account, region = ACCOUNTS[k % len(ACCOUNTS)], REGIONS[k % len(REGIONS)]
            when = start + dt.timedelta(minutes=5 * k)
            name = "%s_CloudTrail_%s_%s_%s.json.gz" % (account, region, when.strftime("%Y%m%dT%H%MZ"), uid(rng)[:16].replace("-", ""))
            total += write(os.path.join(a.out, name), records(rng, a.records, when, account, region, a.sts_share))
        print("wrote %d files, %d bytes of JSON" % (a.files, total))
    else:
        size = write(a.out, records(rng, a.records, start, ACCOUNTS[0], REGIONS[0], a.sts_share))
        print("wrote %s: %d records, %d bytes of JSON" % (a.out, a.records, size))


if __name__ == "__main__":
    main()
