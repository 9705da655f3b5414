"""What every template check shares: the accounts, layouts and parameters
deployed offline, the stack's policies looked up, and the runner that
counts checks. Split from check_template.py, which runs them all."""
from __future__ import annotations

import copy
import json
import re
import sys
import tomllib
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from aws_semantics import (Request, decide, eb_matches, eb_wildcard, iam_wildcard,  # noqa: E402
                           pattern_leaves, statements_of, wildcard_problem)
from cfn_eval import NO_VALUE, ParameterRefused, Stack, Unresolved, load, parameter_problem  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SECURITY = "222222222222"     # where the rolewatch stack runs (the stack's own account)
ARCHIVE = "111111111111"      # a log archive account that owns the trail bucket
STRANGER = "333333333333"     # an account that is neither
ORG = "o-a1b2c3d4e5"
REGION = "us-east-1"
SAMPLE_EVENT = ROOT / "events" / "eventbridge-object-created.json"
DOC = ROOT / "docs" / "organisation-layouts.md"

# The contract's detector settings: environment variable -> (parameter, default).
CONTRACT_SETTINGS = {
    "ROLEWATCH_REPEATED_FAILURES_THRESHOLD": ("RepeatedFailuresThreshold", 5),
    "ROLEWATCH_REPEATED_FAILURES_WINDOW_SECONDS": ("RepeatedFailuresWindowSeconds", 600),
    "ROLEWATCH_UNEXPECTED_SOURCE_IP_ALLOWED_CIDRS": ("AllowedCidrs", ""),
    "ROLEWATCH_UNEXPECTED_SOURCE_IP_LEARNING_PERIOD_SECONDS": ("LearningPeriodSeconds", 604800),
    "ROLEWATCH_UNEXPECTED_SOURCE_IP_ROAMING_NETWORKS": ("RoamingNetworks", 10),
    "ROLEWATCH_UNEXPECTED_SOURCE_IP_NETWORK_MEMORY_SECONDS": ("NetworkMemorySeconds", 7776000),
    "ROLEWATCH_LONG_SESSION_MAX_DURATION_SECONDS": ("MaxDurationSeconds", 3600),
    "ROLEWATCH_LONG_SESSION_HABITUAL_SECONDS": ("HabitualSeconds", 1209600),
    "ROLEWATCH_ALERTS_COOLDOWN_SECONDS": ("CooldownSeconds", 3600),
    "ROLEWATCH_ORGANIZATION_ACCOUNT_IDS": ("OrganizationAccountIds", ""),
    "ROLEWATCH_ORGANIZATION_DISCOVERY_SECONDS": ("DiscoverySeconds", 3600),
    "ROLEWATCH_ROLE_ENUMERATION_DISTINCT_ROLES": ("RoleEnumerationDistinctRoles", 5),
    "ROLEWATCH_ROLE_ENUMERATION_WINDOW_SECONDS": ("RoleEnumerationWindowSeconds", 600),
    "ROLEWATCH_ROLE_ENUMERATION_MEMORY_SECONDS": ("RoleEnumerationMemorySeconds", 7776000),
    "ROLEWATCH_EXTERNAL_ID_REPEAT_SECONDS": ("ExternalIdRepeatSeconds", 2592000),
    "ROLEWATCH_MFA_REQUIRED_ROLES": ("MfaRequiredRoles", ""),
    "ROLEWATCH_MFA_REQUIRED_FEDERATED_ROLES": ("MfaFederatedRoles", "arn:aws:iam::*:role/aws-reserved/sso.amazonaws.com/*"),
    "ROLEWATCH_OUTSIDE_ORGANIZATION_TRUSTED_ACCOUNTS": ("TrustedAccounts", ""),
    "ROLEWATCH_OUTSIDE_ORGANIZATION_LEARNING_PERIOD_SECONDS": ("OutsideLearningPeriodSeconds", 604800),
    "ROLEWATCH_OUTSIDE_ORGANIZATION_MEMORY_SECONDS": ("OutsideMemorySeconds", 7776000),
    # [[suppress]] rules: a JSON array, none by default.
    "ROLEWATCH_SUPPRESS": ("SuppressRules", "[]"),
}
# Variables the function reads besides the detector settings (the Lambda
# refuses ROLEWATCH_* names it does not know, so this list is the contract
# between the template and lambda/src/settings.rs).
FUNCTION_VARIABLES = {"ROLEWATCH_ALERT_TOPIC_ARN", "ROLEWATCH_STATE_BUCKET", "ROLEWATCH_STATE_PREFIX",
                      "ROLEWATCH_EXPECTED_BUCKET_OWNER", "ROLEWATCH_LEASE_WAIT_SECONDS", "ROLEWATCH_CHAT_TOPIC_ARN"}
# The function refuses 0 and spans over ten years (src/config.rs validate()).
TEN_YEARS = 10 * 366 * 86_400
ADMIN = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}

# ------------------------------------------------------------------ layouts

BASE = {"TrailBucketName": "org-trail-bucket"}
CT_BUCKET = f"aws-controltower-logs-{ARCHIVE}-{REGION}"
OTHER = {
    "TrailBucketName": CT_BUCKET,
    "TrailBucketAccountId": ARCHIVE,
    "TrailKeyPrefix": f"{ORG}/",
    "TrailOrganizationId": ORG,
    "TrailKmsKeyArn": f"arn:aws:kms:{REGION}:{ARCHIVE}:key/11111111-2222-3333-4444-555555555555",
    "AlertEmail": "security@example.com",
    "AlertHttpsEndpoint": "https://events.pager.example/integration/abc",
    "AlertExtraSubscribers": f"arn:aws:sqs:{REGION}:{SECURITY}:siem-feed",
    "OperationsEmail": "platform@example.com",
    "EnableTracing": "true",
    "StateAdminRoleArn": f"arn:aws:iam::{SECURITY}:role/aws-reserved/sso.amazonaws.com/*/AWSReservedSSO_Admin_*",
    "ExistingStateBucketName": "rolewatch-statebucket-kept",
}
LAYOUTS = {
    "same account, eventbridge": dict(BASE),
    "same account, sqs": dict(BASE, TriggerMode="sqs", AlertHttpsEndpoint="https://pager.example/h",
                             OperationsHttpsEndpoint="https://ops.example/h"),
    "same account named as TrailBucketAccountId, org trail": dict(BASE, TrailBucketAccountId=SECURITY,
                                                                  TrailOrganizationId=ORG, AlertEmail="s@example.com"),
    "same account, operations pager only, tracing, state admin": dict(
        BASE, OperationsHttpsEndpoint="https://ops.example/hook", EnableTracing="true", TrailKeyPrefix="cloudtrail/",
        StateAdminRoleArn=f"arn:aws:iam::{SECURITY}:role/rolewatch-state-admin", ReservedConcurrency="20"),
    "log archive account, eventbridge (Control Tower)": dict(OTHER),
    "log archive account, sqs": dict(OTHER, TriggerMode="sqs", EnableTracing="false", ExistingStateBucketName="",
                                     StateAdminRoleArn="", OperationsEmail="", TrailKeyPrefix="", TrailKmsKeyArn=""),
    "same account, Slack and Teams chat channels": dict(
        BASE, AlertEmail="s@example.com", ChatSlackWorkspaceId="T0123ABCD", ChatSlackChannelId="C0123456789",
        ChatTeamsTenantId="11111111-2222-3333-4444-555555555555", ChatTeamsTeamId="66666666-7777-8888-9999-000000000000",
        ChatTeamsChannelId="19:abc@thread.tacv2"),
}


def owner_of(params: dict) -> str:
    return params.get("TrailBucketAccountId") or SECURITY


def keys_for(params: dict) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(CloudTrail log files the layout must read, other objects it must not)."""
    prefix = params.get("TrailKeyPrefix", "")
    org = params.get("TrailOrganizationId", "")
    acct = "444455556666"
    day = "2026/10/05"
    o = f"{org}/" if org else ""
    logs = [
        ("log file", f"{prefix}AWSLogs/{o}{acct}/CloudTrail/{REGION}/{day}/{acct}_CloudTrail_{REGION}_20261005T1005Z_AbCdEf0123456789.json.gz"),
        ("log file, other region", f"{prefix}AWSLogs/{o}{acct}/CloudTrail/eu-west-1/{day}/{acct}_CloudTrail_eu-west-1_20261005T1005Z_x.json.gz"),
    ]
    if not org:
        logs.append(("organisation trail log file", f"{prefix}AWSLogs/o-zzzzzzzzzz/{acct}/CloudTrail/{REGION}/{day}/{acct}_CloudTrail_{REGION}_20261005T1005Z_y.json.gz"))
    others = [
        ("Config snapshot", f"{prefix}AWSLogs/{acct}/Config/{REGION}/2026/10/5/ConfigSnapshot/{acct}_Config_{REGION}_ConfigSnapshot_20261005T100512Z_0a1b.json.gz"),
        ("Config history of a trail", f"{prefix}AWSLogs/{acct}/Config/{REGION}/2026/10/5/ConfigHistory/{acct}_Config_{REGION}_ConfigHistory_AWS::CloudTrail::Trail_20261005T100512Z_20261005T110512Z_1.json.gz"),
        ("Config under the org id", f"{prefix}AWSLogs/{o}{acct}/Config/{REGION}/2026/10/5/ConfigHistory/{acct}_Config_{REGION}_ConfigHistory_AWS::S3::Bucket_1.json.gz"),
        ("Config writability check", f"{prefix}AWSLogs/{acct}/Config/ConfigWritabilityCheckFile"),
        ("VPC flow log", f"{prefix}AWSLogs/{acct}/vpcflowlogs/{REGION}/{day}/{acct}_vpcflowlogs_{REGION}_fl-0a1b2c3d_20261005T1005Z_5f2e.log.gz"),
        ("CloudTrail digest", f"{prefix}AWSLogs/{o}{acct}/CloudTrail-Digest/{REGION}/{day}/{acct}_CloudTrail-Digest_{REGION}_org-trail_{REGION}_20261005T100512Z.json.gz"),
        ("CloudTrail Insights", f"{prefix}AWSLogs/{o}{acct}/CloudTrail-Insight/{REGION}/{day}/{acct}_CloudTrail-Insight_{REGION}_20261005T1005Z_z.json.gz"),
        ("outside AWSLogs", f"{prefix}exports/{acct}/CloudTrail/{REGION}/{acct}_CloudTrail_{REGION}_1.json.gz"),
    ]
    if prefix:
        others.append(("log file without the trail prefix", f"AWSLogs/{o}{acct}/CloudTrail/{REGION}/{day}/{acct}_CloudTrail_{REGION}_20261005T1005Z_w.json.gz"))
    if org:
        others.append(("another organisation's log file", f"{prefix}AWSLogs/o-zzzzzzzzzz/{acct}/CloudTrail/{REGION}/{day}/{acct}_CloudTrail_{REGION}_20261005T1005Z_v.json.gz"))
    return logs, others


def object_created(bucket: str, key: str, account: str, detail_type: str = "Object Created") -> dict:
    """The repository's sample EventBridge event, naming another object."""
    event = json.loads(SAMPLE_EVENT.read_text())
    event["account"] = account
    event["detail-type"] = detail_type
    event["resources"] = [f"arn:aws:s3:::{bucket}"]
    event["detail"]["bucket"]["name"] = bucket
    event["detail"]["object"]["key"] = key
    return event


# ------------------------------------------------------------------ runner


class Checks:
    def __init__(self, quiet: bool = False):
        self.passed = 0
        self.failed = 0
        self.quiet = quiet
        self.failures: list[str] = []

    def run(self, name, fn):
        try:
            problem = fn()
        except Exception as err:  # a crash in a check is a failed check, not a crash of all
            problem = f"{type(err).__name__}: {err}"
            if not self.quiet:
                traceback.print_exc(file=sys.stderr)
        if problem:
            self.failed += 1
            self.failures.append(name)
            if not self.quiet:
                print(f"FAIL {name}: {problem}")
        else:
            self.passed += 1
            if not self.quiet:
                print(f"ok   {name}")


def problems(items) -> str | None:
    items = [i for i in items if i]
    return "; ".join(items) if items else None


# ------------------------------------------------------------------ helpers on a deployed stack


def function_id(stack: Stack) -> str:
    return next(iter(stack.of_type("AWS::Serverless::Function")))


def function_props(stack: Stack) -> dict:
    return stack.resources[function_id(stack)]["Properties"]


def role_documents(stack: Stack) -> list:
    role_ref = stack.declared[function_id(stack)]["Properties"]["Role"]
    role_id = role_ref["Fn::GetAtt"][0]
    return [p["PolicyDocument"] for p in stack.resources[role_id]["Properties"].get("Policies", [])]


def role_arn(stack: Stack) -> str:
    return function_props(stack)["Role"]


def bucket_policy(stack: Stack, bucket: str):
    docs = [r["Properties"]["PolicyDocument"] for r in stack.of_type("AWS::S3::BucketPolicy").values()
            if r["Properties"]["Bucket"] == bucket]
    return docs[0] if docs else None


def topic_policy(stack: Stack, topic_arn: str):
    docs = [r["Properties"]["PolicyDocument"] for r in stack.of_type("AWS::SNS::TopicPolicy").values()
            if topic_arn in r["Properties"]["Topics"]]
    return docs[0] if docs else None


def queue_policy(stack: Stack, queue_rid: str):
    url = stack.ref(queue_rid)
    docs = [r["Properties"]["PolicyDocument"] for r in stack.of_type("AWS::SQS::QueuePolicy").values()
            if url in r["Properties"]["Queues"]]
    return docs[0] if docs else None


def the_rule(stack: Stack) -> tuple[str, dict]:
    rules = {rid: r for rid, r in stack.of_type("AWS::Events::Rule").items()
             if r["Properties"].get("EventPattern", {}).get("source") == ["aws.s3"]}
    if len(rules) != 1:
        raise AssertionError(f"expected one aws.s3 rule, found {sorted(rules)}")
    return next(iter(rules.items()))


def state_bucket(stack: Stack) -> str:
    return function_props(stack)["Environment"]["Variables"]["ROLEWATCH_STATE_BUCKET"]


def s3_object(bucket: str, key: str) -> str:
    return f"arn:aws:s3:::{bucket}/{key}"


def alarm_arn(stack: Stack, name: str) -> str:
    return f"arn:aws:cloudwatch:{REGION}:{stack.account}:alarm:{name}"


def read_trail(stack: Stack, bucket: str, key: str, bucket_account: str, extra_bucket_policy=None) -> str:
    req = Request("s3:GetObject", s3_object(bucket, key), principal_arn=role_arn(stack),
                  resource_account=bucket_account)
    return decide(req, role_documents(stack), extra_bucket_policy)


