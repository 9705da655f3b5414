#!/usr/bin/env python3
"""Checks on template.yaml and templates/bucket-owner.yaml that cfn-lint and
`sam validate` do not make: what each deployment layout would really do.

Every layout (trail bucket in this account or in a log archive account;
EventBridge or SQS trigger; with and without the optional parameters) is
deployed offline (cfn_eval.Stack: parameters checked against their
constraints, conditions and Fn::If evaluated, names and ARNs made up the way
CloudFormation makes them), and then:

- the trigger is wired (rule, bus and bus policy, permission, queue, mapping);
- the rule's event pattern is evaluated the way EventBridge does
  (aws_semantics.eb_matches) against S3 Object Created events for a
  CloudTrail log file (matches) and for AWS Config, VPC flow log,
  CloudTrail-Digest and CloudTrail-Insight objects (do not);
- the policies are evaluated the way IAM does (aws_semantics.decide) against
  concrete requests: the function reads only CloudTrail log files, only in the
  expected account's bucket; only the function writes state; nobody deletes
  quarantined state; only the function publishes alerts and only the stack's
  alarms publish to the operations topic; only the configured endpoints
  subscribe to alerts; every bucket, queue and topic refuses plain HTTP;
- alarms go to the operations topic and do not page on one transient error;
- parameter constraints refuse what the function cannot run with.

The bucket policy the docs tell the log archive account to add
(docs/organisation-layouts.md) is evaluated too. The template is also
expanded by the SAM transform (samtranslator, offline) to check that SAM adds
no role or policy. Finally each check is shown able to fail: a set of
mutations of the template (the defects these checks exist for) must each make
its check fail.

Usage: check_template.py [template.yaml [templates/bucket-owner.yaml]].
Needs cfn-lint and samtranslator (in .venv, see scripts/install-tools.sh).
Prints one line per check and ends with "N passed, M failed"; exits 1 when a
check failed.
"""

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


# ------------------------------------------------------------------ per-layout checks


def layout_checks(c: Checks, raw: dict, owner_raw: dict | None, label: str, params: dict):
    try:
        stack = Stack(raw, params, account=SECURITY, region=REGION)
    except (ParameterRefused, Unresolved) as err:
        c.run(f"[{label}] deploys", lambda: f"{type(err).__name__}: {err}")
        return
    owner = owner_of(params)
    other_account = owner != SECURITY
    sqs = params.get("TriggerMode") == "sqs"
    env = function_props(stack)["Environment"]["Variables"]
    rule_id, rule = the_rule(stack)
    rule_arn = stack.arn(rule_id)
    pattern = rule["Properties"]["EventPattern"]
    bucket = params["TrailBucketName"]
    logs, others = keys_for(params)

    def chat_channels():
        slack = bool(params.get("ChatSlackWorkspaceId") and params.get("ChatSlackChannelId"))
        teams = all(params.get(k) for k in ("ChatTeamsTenantId", "ChatTeamsTeamId", "ChatTeamsChannelId"))
        topics = stack.of_type("AWS::SNS::Topic")
        channels = {**stack.of_type("AWS::Chatbot::SlackChannelConfiguration"),
                    **stack.of_type("AWS::Chatbot::MicrosoftTeamsChannelConfiguration")}
        out = []
        if not (slack or teams):
            if "ChatTopic" in topics or channels or "ROLEWATCH_CHAT_TOPIC_ARN" in env:
                out.append(f"chat resources without chat parameters: {sorted(channels)}")
            return "; ".join(out) or None
        chat = stack.ref("ChatTopic") if "ChatTopic" in topics else None
        if env.get("ROLEWATCH_CHAT_TOPIC_ARN") != chat or chat is None:
            out.append(f"function publishes chat to {env.get('ROLEWATCH_CHAT_TOPIC_ARN')!r}, the chat topic is {chat!r}")
        if env.get("ROLEWATCH_ALERT_TOPIC_ARN") != stack.ref("AlertTopic"):
            out.append("the alert topic no longer carries the v1 alerts")
        want = {"AWS::Chatbot::SlackChannelConfiguration": slack, "AWS::Chatbot::MicrosoftTeamsChannelConfiguration": teams}
        for kind, wanted in want.items():
            got = stack.of_type(kind)
            if bool(got) != wanted:
                out.append(f"{kind}: {len(got)} with the parameters asking for {int(wanted)}")
            for rid, r in got.items():
                props = r["Properties"]
                if props.get("SnsTopicArns") != [chat]:
                    out.append(f"{rid} subscribes to {props.get('SnsTopicArns')}, not only the chat topic")
                if not any(str(g).endswith(":policy/AWSDenyAll") for g in props.get("GuardrailPolicies", [])):
                    out.append(f"{rid}: channel members could act through the channel role (no deny-all guardrail)")
        return "; ".join(out) or None

    c.run(f"[{label}] chat channels subscribe the chat topic only when asked, alerts stay v1", chat_channels)

    def wiring():
        out = []
        bus = rule["Properties"].get("EventBusName")
        buses = stack.of_type("AWS::Events::EventBus")
        if other_account:
            if len(buses) != 1 or bus != stack.ref(next(iter(buses))):
                out.append(f"rule is on {bus!r}, not on the stack's own bus {sorted(buses)}")
            if "TrailEventBusArn" not in stack.outputs:
                out.append("no TrailEventBusArn output for the bucket owner's forwarding rule")
        elif bus not in (None, "default") or buses:
            out.append(f"same-account layout uses bus {bus!r} / creates {sorted(buses)}: S3 events reach only the default bus")
        targets = rule["Properties"]["Targets"]
        fn_arn = stack.arn(function_id(stack))
        dlq_arn = stack.arn("DeadLetterQueue")
        want = stack.arn("TriggerQueue") if sqs else fn_arn
        if [t["Arn"] for t in targets] != [want]:
            out.append(f"rule targets {[t['Arn'] for t in targets]}, want [{want}]")
        for t in targets:
            if t.get("DeadLetterConfig", {}).get("Arn") != dlq_arn or not t.get("RetryPolicy"):
                out.append(f"target {t.get('Id')} without retry policy and the DLQ")
        if sqs:
            esm = [r["Properties"] for r in stack.of_type("AWS::Lambda::EventSourceMapping").values()]
            if not any(p["EventSourceArn"] == want and p["FunctionName"] == stack.ref(function_id(stack))
                       and "ReportBatchItemFailures" in p.get("FunctionResponseTypes", []) for p in esm):
                out.append("no event source mapping from the trigger queue with ReportBatchItemFailures")
            qp = queue_policy(stack, "TriggerQueue")
            from_rule = Request("sqs:SendMessage", want, service="events.amazonaws.com", resource_account=SECURITY,
                                context={"aws:SourceArn": rule_arn, "aws:SourceAccount": SECURITY})
            if decide(from_rule, None, qp) != "allow":
                out.append("the rule may not send to the trigger queue")
            other_rule = Request("sqs:SendMessage", want, service="events.amazonaws.com", resource_account=SECURITY,
                                 context={"aws:SourceArn": rule_arn + "-other", "aws:SourceAccount": SECURITY})
            if decide(other_rule, None, qp) == "allow":
                out.append("any rule may send to the trigger queue")
            s3n = Request("sqs:SendMessage", want, service="s3.amazonaws.com", resource_account=SECURITY,
                          context={"aws:SourceArn": f"arn:aws:s3:::{bucket}", "aws:SourceAccount": owner})
            if decide(s3n, None, qp) != "allow":
                out.append(f"S3 notifications of {bucket} in account {owner} may not reach the queue")
            squat = Request("sqs:SendMessage", want, service="s3.amazonaws.com", resource_account=SECURITY,
                            context={"aws:SourceArn": f"arn:aws:s3:::{bucket}", "aws:SourceAccount": STRANGER})
            if decide(squat, None, qp) == "allow":
                out.append("a bucket of the same name in another account may feed the queue")
        else:
            perms = [r["Properties"] for r in stack.of_type("AWS::Lambda::Permission").values()]
            if not any(p["Principal"] == "events.amazonaws.com" and p["SourceArn"] == rule_arn
                       and p["FunctionName"] == stack.ref(function_id(stack)) for p in perms):
                out.append("no lambda:InvokeFunction permission for exactly this rule")
        if env.get("ROLEWATCH_EXPECTED_BUCKET_OWNER") != owner:
            out.append(f"ROLEWATCH_EXPECTED_BUCKET_OWNER is {env.get('ROLEWATCH_EXPECTED_BUCKET_OWNER')!r}, want {owner}")
        return problems(out)

    c.run(f"[{label}] trigger wired: rule{' on the stack bus' if other_account else ' on the default bus'}"
          f" -> {'queue -> mapping' if sqs else 'function'}, DLQ, expected bucket owner {owner}", wiring)

    def event_pattern():
        out = []
        for path, m in pattern_leaves(pattern):
            if isinstance(m, dict) and "wildcard" in m and wildcard_problem(m["wildcard"]):
                out.append(wildcard_problem(m["wildcard"]))
        for what, key in logs:
            if not eb_matches(pattern, object_created(bucket, key, owner)):
                out.append(f"misses the {what} {key}")
        for what, key in others:
            if eb_matches(pattern, object_created(bucket, key, owner)):
                out.append(f"matches the {what} {key}")
        key = logs[0][1]
        if eb_matches(pattern, object_created(bucket + "-other", key, owner)):
            out.append("matches another bucket")
        if eb_matches(pattern, object_created(bucket, key, STRANGER)):
            out.append(f"matches an event from account {STRANGER} (the bucket owner is {owner})")
        if eb_matches(pattern, object_created(bucket, key, owner, "Object Deleted")):
            out.append("matches Object Deleted")
        return problems(out)

    c.run(f"[{label}] event pattern: CloudTrail log files only (not Config, VPC flow logs, digests, Insights)",
          event_pattern)

    def read_scope():
        out = []
        # The log archive account must grant the role too: use the docs' statement.
        grant = docs_bucket_policy(bucket, role_arn(stack), params) if other_account else None
        for what, key in logs:
            if read_trail(stack, bucket, key, owner, grant) != "allow":
                out.append(f"cannot read the {what}")
        for what, key in others:
            if read_trail(stack, bucket, key, owner, grant) == "allow":
                out.append(f"can read the {what} {key}")
        if read_trail(stack, bucket, logs[0][1], STRANGER, ADMIN_BUCKET_POLICY) == "allow":
            out.append(f"can read a bucket of that name owned by {STRANGER}")
        if read_trail(stack, bucket + "-other", logs[0][1], owner, grant) == "allow":
            out.append("can read another bucket")
        listing = Request("s3:ListBucket", f"arn:aws:s3:::{bucket}", principal_arn=role_arn(stack), resource_account=owner)
        if decide(listing, role_documents(stack), grant) != "allow":
            out.append("cannot list the trail bucket (a missing log file would read as 403, not 404)")
        return problems(out)

    c.run(f"[{label}] role reads CloudTrail log files only, only in account {owner}'s bucket"
          f"{' (with the docs bucket policy)' if other_account else ''}", read_scope)

    def kms():
        key = params.get("TrailKmsKeyArn")
        docs = role_documents(stack)
        via = {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}
        decrypt = [st for d in docs for st in statements_of(d) if "kms:Decrypt" in json.dumps(st.get("Action"))]
        if any(st["Effect"] == "Allow" and not st.get("Condition") for st in decrypt):
            return "a kms:Decrypt without a condition"
        if not key:
            trail = [st for st in decrypt if st.get("Resource") not in (stack.arn("AlertTopicKey"),)]
            return f"kms:Decrypt on {[st.get('Resource') for st in trail]} without TrailKmsKeyArn" if trail else None
        owner_key_policy = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": role_arn(stack)},
                                           "Action": "kms:Decrypt", "Resource": "*", "Condition": {"StringEquals": via}}]}
        req = Request("kms:Decrypt", key, principal_arn=role_arn(stack), resource_account=key.split(":")[4], context=via)
        out = []
        if decide(req, docs, owner_key_policy, kms=True) != "allow":
            out.append("cannot decrypt the trail key through S3")
        direct = Request("kms:Decrypt", key, principal_arn=role_arn(stack), resource_account=key.split(":")[4])
        if decide(direct, docs, owner_key_policy, kms=True) == "allow":
            out.append("may decrypt the trail key outside S3")
        other = Request("kms:Decrypt", key.replace("11111111-", "99999999-"), principal_arn=role_arn(stack),
                        resource_account=key.split(":")[4], context=via)
        # A key whose policy leaves it to IAM in this account: the role's IAM must not grant it.
        delegating = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{SECURITY}:root"},
                                     "Action": "kms:*", "Resource": "*"}]}
        if decide(other, docs, delegating, kms=True) == "allow":
            out.append("may decrypt another key")
        return problems(out)

    c.run(f"[{label}] kms: trail key decrypt only through S3, only when TrailKmsKeyArn is given", kms)

    def state():
        out = []
        b = state_bucket(stack)
        bp = bucket_policy(stack, b)
        if bp is None:
            return f"no bucket policy on the state bucket {b}"
        prefix = params.get("StatePrefix", "rolewatch/state/")
        fn_role, docs = role_arn(stack), role_documents(stack)
        acct = "444455556666"
        intruder = f"arn:aws:iam::{SECURITY}:role/PowerUser"

        def ask(action, key, principal=fn_role, identity=None, tls=True):
            return decide(Request(action, s3_object(b, key), principal_arn=principal, resource_account=SECURITY,
                                  context={"aws:SecureTransport": str(tls).lower()}),
                          docs if identity is None else identity, bp)

        for action, key in (("s3:GetObject", f"{prefix}{acct}.json"), ("s3:PutObject", f"{prefix}{acct}.json"),
                            ("s3:PutObject", f"{prefix}{acct}.lease"), ("s3:PutObject", f"{prefix}{acct}.base-0a1b2c"),
                            ("s3:DeleteObject", f"{prefix}{acct}.base-0a1b2c"),
                            ("s3:PutObject", f"{prefix}quarantine/{acct}-20261005T100512.000Z.json")):
            if ask(action, key) != "allow":
                out.append(f"the function may not {action} {key}")
        for action, key in (("s3:DeleteObject", f"{prefix}quarantine/{acct}-20261005T100512.000Z.json"),
                            ("s3:DeleteObject", f"{prefix}quarantine/{acct}-20261005T100512.000Z.base-0a1b2c"),
                            ("s3:DeleteObject", f"{prefix}{acct}.json"), ("s3:DeleteObject", f"{prefix}{acct}.lease"),
                            ("s3:DeleteObjectVersion", f"{prefix}{acct}.json"),
                            ("s3:PutObject", f"other/{acct}.json")):
            if ask(action, key) == "allow":
                out.append(f"the function may {action} {key}")
        for action in ("s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"):
            if ask(action, f"{prefix}{acct}.lease", principal=intruder, identity=[ADMIN]) != "deny":
                out.append(f"{intruder} (s3:* on *) is not denied {action} on a lease")
        if ask("s3:GetObject", f"{prefix}{acct}.json", tls=False) != "deny":
            out.append("plain-HTTP reads are not denied")
        # CloudFormation's own calls on a stack update or delete stay possible.
        deployer = f"arn:aws:iam::{SECURITY}:role/cfn-deployer"
        for action in ("s3:PutBucketPolicy", "s3:DeleteBucketPolicy", "s3:PutLifecycleConfiguration",
                       "s3:PutBucketVersioning", "s3:PutEncryptionConfiguration", "s3:PutBucketTagging"):
            if decide(Request(action, f"arn:aws:s3:::{b}", principal_arn=deployer, resource_account=SECURITY),
                      [ADMIN], bp) != "allow":
                out.append(f"a deployer may not {action}: the stack could not be updated or deleted")
        admin = params.get("StateAdminRoleArn")
        if admin:
            someone = admin.replace("*", "x")
            for action in ("s3:PutObject", "s3:DeleteObjectVersion"):
                if ask(action, f"{prefix}{acct}.json", principal=someone, identity=[ADMIN]) != "allow":
                    out.append(f"StateAdminRoleArn ({someone}) may not {action}")
        return problems(out)

    c.run(f"[{label}] state: only the function writes state and leases, never deletes quarantined state;"
          " TLS only; CloudFormation not locked out", state)

    def state_bucket_lifecycle():
        existing = params.get("ExistingStateBucketName")
        buckets = stack.of_type("AWS::S3::Bucket")
        if existing:
            if buckets:
                return f"creates {sorted(buckets)} although ExistingStateBucketName is given"
            if state_bucket(stack) != existing or stack.outputs.get("StateBucketName") != existing:
                return "the function or the output does not use ExistingStateBucketName"
            return None
        if "StateBucket" not in buckets:
            return "no state bucket"
        decl = stack.declared["StateBucket"]
        if decl.get("DeletionPolicy") != "Retain" or decl.get("UpdateReplacePolicy") != "Retain":
            return "the state bucket is not retained"
        if "BucketName" in decl.get("Properties", {}):
            return "a fixed BucketName: redeploying after a delete fails on the kept bucket"
        return None

    c.run(f"[{label}] state bucket: {'reused (ExistingStateBucketName)' if params.get('ExistingStateBucketName') else 'retained, no fixed name'}",
          state_bucket_lifecycle)

    def topics():
        out = []
        alert = stack.ref("AlertTopic")
        ops = stack.ref("OperationsTopic")
        ap, op = topic_policy(stack, alert), topic_policy(stack, ops)
        fn_role, docs = role_arn(stack), role_documents(stack)
        intruder = f"arn:aws:iam::{SECURITY}:role/PowerUser"
        if decide(Request("sns:Publish", alert, principal_arn=fn_role, resource_account=SECURITY), docs, ap) != "allow":
            out.append("the function may not publish alerts")
        if decide(Request("sns:Publish", alert, principal_arn=intruder, resource_account=SECURITY), [ADMIN], ap) != "deny":
            out.append("another principal with sns:* is not denied publishing alerts")
        alarm = Request("sns:Publish", alert, service="cloudwatch.amazonaws.com", resource_account=SECURITY,
                        context={"aws:SourceArn": alarm_arn(stack, f"{stack.stack_name}-function-errors"),
                                 "aws:SourceAccount": SECURITY})
        if decide(alarm, None, ap) == "allow":
            out.append("alarms may publish to the alert topic")
        alarm.resource = ops
        if decide(alarm, None, op) != "allow":
            out.append("the stack's alarms may not publish to the operations topic")
        foreign = Request("sns:Publish", ops, service="cloudwatch.amazonaws.com", resource_account=SECURITY,
                          context={"aws:SourceArn": alarm_arn(stack, "another-stack-alarm"), "aws:SourceAccount": SECURITY})
        if decide(foreign, None, op) == "allow":
            out.append("another stack's alarms may publish to the operations topic")
        if decide(Request("sns:Publish", ops, principal_arn=intruder, resource_account=SECURITY), [ADMIN], op) != "deny":
            out.append("a principal with sns:* is not denied publishing to the operations topic")
        allowed = [e for e in (params.get("AlertEmail"), params.get("AlertHttpsEndpoint")) if e]
        allowed += [e for e in params.get("AlertExtraSubscribers", "").split(",") if e]
        subs = [r["Properties"] for r in stack.of_type("AWS::SNS::Subscription").values() if r["Properties"]["TopicArn"] == alert]
        for endpoint in allowed + [s["Endpoint"] for s in subs]:
            req = Request("sns:Subscribe", alert, principal_arn=f"arn:aws:iam::{SECURITY}:role/cfn-deployer",
                          resource_account=SECURITY, context={"sns:Endpoint": endpoint, "sns:Protocol": "https"})
            if decide(req, [ADMIN], ap) != "allow":
                out.append(f"the configured endpoint {endpoint} may not subscribe")
        # (An empty endpoint stays in the list when no subscriber is configured; SNS refuses it anyway.)
        for endpoint in ("attacker@example.net", "https://collector.example.net/x",
                         f"arn:aws:sqs:{REGION}:{STRANGER}:exfiltrate"):
            req = Request("sns:Subscribe", alert, principal_arn=intruder, resource_account=SECURITY,
                          context={"sns:Endpoint": endpoint, "sns:Protocol": "email"})
            if decide(req, [ADMIN], ap) != "deny":
                out.append(f"{endpoint!r} may subscribe to the alert topic")
        for arn, doc in ((alert, ap), (ops, op)):
            req = Request("sns:Publish", arn, principal_arn=fn_role, resource_account=SECURITY,
                          context={"aws:SecureTransport": "false"})
            if decide(req, docs, doc) != "deny":
                out.append(f"plain-HTTP publish to {arn} not denied")
        return problems(out)

    c.run(f"[{label}] topics: only the function publishes alerts, only the stack's alarms publish operations,"
          " only configured endpoints subscribe to alerts", topics)

    def subscriptions():
        out = []
        subs = [r["Properties"] for r in stack.of_type("AWS::SNS::Subscription").values()]
        alert, ops = stack.ref("AlertTopic"), stack.ref("OperationsTopic")
        want = set()
        if params.get("AlertEmail"):
            want.add((alert, "email", params["AlertEmail"]))
        if params.get("AlertHttpsEndpoint"):
            want.add((alert, "https", params["AlertHttpsEndpoint"]))
        ops_mail = params.get("OperationsEmail") or params.get("AlertEmail")
        ops_https = params.get("OperationsHttpsEndpoint") or params.get("AlertHttpsEndpoint")
        if ops_mail:
            want.add((ops, "email", ops_mail))
        if ops_https:
            want.add((ops, "https", ops_https))
        have = {(s["TopicArn"], s["Protocol"], s["Endpoint"]) for s in subs}
        if have != want:
            out.append(f"subscriptions {sorted(have)}, want {sorted(want)}")
        for s in subs:
            if s["Protocol"] != "https":
                continue
            dlq = s.get("RedrivePolicy", {}).get("deadLetterTargetArn")
            if "PagerDeadLetterQueue" not in stack.resources or dlq != stack.arn("PagerDeadLetterQueue"):
                out.append(f"https subscription {s['Endpoint']} has no dead-letter queue")
            else:
                ok = Request("sqs:SendMessage", dlq, service="sns.amazonaws.com", resource_account=SECURITY,
                             context={"aws:SourceArn": s["TopicArn"]})
                if decide(ok, None, queue_policy(stack, "PagerDeadLetterQueue")) != "allow":
                    out.append(f"SNS may not park {s['TopicArn']}'s failures in the pager DLQ")
                bad = Request("sqs:SendMessage", dlq, service="sns.amazonaws.com", resource_account=SECURITY,
                              context={"aws:SourceArn": s["TopicArn"] + "-other"})
                if decide(bad, None, queue_policy(stack, "PagerDeadLetterQueue")) == "allow":
                    out.append("any topic may send to the pager DLQ")
            retry = s.get("DeliveryPolicy", {}).get("healthyRetryPolicy")
            if not retry:
                out.append(f"https subscription {s['Endpoint']} has no delivery (retry) policy")
                continue
            phases = retry["numNoDelayRetries"] + retry["numMinDelayRetries"] + retry["numMaxDelayRetries"]
            backoff = retry["numRetries"] - phases
            worst = (retry["numMinDelayRetries"] * retry["minDelayTarget"] + backoff * retry["maxDelayTarget"]
                     + retry["numMaxDelayRetries"] * retry["maxDelayTarget"])
            if not (0 < retry["numRetries"] <= 100 and backoff >= 0 and worst <= 3600
                    and retry["minDelayTarget"] <= retry["maxDelayTarget"]):
                out.append(f"delivery policy SNS refuses (retries {retry['numRetries']}, phases {phases}, worst {worst} s > 3600?)")
            if retry["numRetries"] < 10 or worst < 600:
                out.append(f"delivery policy gives up within {worst} s: a pager outage of minutes loses pages")
        return problems(out)

    c.run(f"[{label}] subscriptions: alerts and operations each to their endpoints; HTTPS retried, then a DLQ", subscriptions)

    def alarms():
        out = []
        ops, alert = stack.ref("OperationsTopic"), stack.ref("AlertTopic")
        found = {}
        for rid, r in stack.of_type("AWS::CloudWatch::Alarm").items():
            p = r["Properties"]
            found.setdefault((p["Namespace"], p["MetricName"]), []).append(p)
            if p.get("AlarmActions") != [ops] or p.get("OKActions", [ops]) != [ops]:
                out.append(f"{rid} notifies {p.get('AlarmActions')}, not only the operations topic")
            if not p["AlarmName"].startswith(f"{stack.stack_name}-"):
                out.append(f"{rid} is named {p['AlarmName']}: the topic and key policies only let <stack>-* alarms publish")
            kp = stack.resources["AlertTopicKey"]["Properties"]["KeyPolicy"]
            gen = Request("kms:GenerateDataKey", stack.arn("AlertTopicKey"), service="cloudwatch.amazonaws.com",
                          resource_account=SECURITY, context={"aws:SourceArn": alarm_arn(stack, p["AlarmName"]),
                                                              "aws:SourceAccount": SECURITY})
            if decide(gen, None, kp, kms=True) != "allow":
                out.append(f"{rid} cannot use the topic key")
            if alert in json.dumps(p):
                out.append(f"{rid} names the alert topic")
        timeout_ms = int(function_props(stack)["Timeout"]) * 1000
        want = {("AWS/Lambda", "Errors"), ("AWS/Lambda", "Throttles"), ("AWS/Lambda", "Duration"),
                ("AWS/Lambda", "AsyncEventsDropped"), ("AWS/Lambda", "AsyncEventAge"), ("AWS/Lambda", "Invocations"),
                ("AWS/SQS", "ApproximateNumberOfMessagesVisible"), ("AWS/Events", "FailedInvocations")}
        if sqs:
            want.add(("AWS/SQS", "ApproximateAgeOfOldestMessage"))
        missing = want - set(found)
        if missing:
            out.append(f"missing alarms {sorted(missing)}")
        for p in found.get(("AWS/Lambda", "Errors"), []):
            sustained = int(p.get("DatapointsToAlarm", 1)) >= 2 or int(p["Period"]) * int(p["EvaluationPeriods"]) >= 900 and float(p["Threshold"]) >= 1
            if not sustained:
                out.append("the errors alarm pages on a single transient error")
        # EventBridge measures a rule on the default bus by RuleName, one on
        # a custom bus by EventBusName and RuleName: the alarm must name
        # exactly what the rule is measured by, or it never sees a datapoint.
        rid, rule = the_rule(stack)
        bus = rule["Properties"].get("EventBusName")
        expected = {"RuleName": stack.physical_name(rid)}
        if bus not in (None, NO_VALUE, "default"):
            expected["EventBusName"] = bus
        for p in found.get(("AWS/Events", "FailedInvocations"), []):
            dims = {d["Name"]: d["Value"] for d in p["Dimensions"]}
            if dims != expected:
                out.append(f"the rule's FailedInvocations alarm watches {dims}, not {expected}")
            if int(p.get("DatapointsToAlarm", 1)) < 2 or p.get("Statistic") != "Sum":
                out.append("the rule's FailedInvocations alarm pages on a single transient failure")
        for p in found.get(("AWS/Lambda", "Duration"), []):
            if not (0.5 * timeout_ms <= float(p["Threshold"]) < timeout_ms) or p.get("Statistic") != "Maximum":
                out.append(f"duration alarm at {p['Threshold']} ms is not 'near the {timeout_ms} ms timeout'")
        dlqs = {stack.resources[q]["Properties"].get("QueueName", stack.physical_name(q))
                for q in ("DeadLetterQueue", "PagerDeadLetterQueue") if q in stack.resources}
        watched = {p["Dimensions"][0]["Value"] for p in found.get(("AWS/SQS", "ApproximateNumberOfMessagesVisible"), [])}
        if not dlqs <= watched:
            out.append(f"dead-letter queues without a depth alarm: {sorted(dlqs - watched)}")
        if sqs:
            ages = found.get(("AWS/SQS", "ApproximateAgeOfOldestMessage"), [])
            if not any(p["Dimensions"][0]["Value"] == stack.physical_name("TriggerQueue") and float(p["Threshold"]) <= 1800
                       for p in ages):
                out.append("no age-of-oldest-message alarm on the trigger queue (failed items)")
        return problems(out)

    c.run(f"[{label}] alarms: errors (sustained), throttles, duration near timeout, async dropped and age,"
          f" the rule's failed invocations (by its bus and name),"
          f" DLQ depth{', trigger queue age' if sqs else ''}; all to the operations topic", alarms)

    def logs_encrypted():
        lg_id = next(iter(stack.of_type("AWS::Logs::LogGroup")))
        lg = stack.resources[lg_id]["Properties"]
        key = stack.arn("AlertTopicKey")
        if lg.get("KmsKeyId") != key:
            return f"log group KmsKeyId is {lg.get('KmsKeyId')!r}, not the stack's key"
        if function_props(stack)["LoggingConfig"]["LogGroup"] != lg["LogGroupName"]:
            return "the function does not log into that group"
        kp = stack.resources["AlertTopicKey"]["Properties"]["KeyPolicy"]
        group_arn = f"arn:aws:logs:{REGION}:{SECURITY}:log-group:{lg['LogGroupName']}"
        for action in ("kms:Encrypt", "kms:GenerateDataKey", "kms:Decrypt"):
            req = Request(action, key, service=f"logs.{REGION}.amazonaws.com", resource_account=SECURITY,
                          context={"kms:EncryptionContext:aws:logs:arn": group_arn})
            if decide(req, None, kp, kms=True) != "allow":
                return f"CloudWatch Logs may not {action} for the log group"
        other = Request("kms:Decrypt", key, service=f"logs.{REGION}.amazonaws.com", resource_account=SECURITY,
                        context={"kms:EncryptionContext:aws:logs:arn": group_arn + "-other"})
        if decide(other, None, kp, kms=True) == "allow":
            return "CloudWatch Logs may use the key for any log group"
        return None

    c.run(f"[{label}] log group encrypted with the stack's key (key policy: logs.{REGION}, this group only)", logs_encrypted)

    def tls_everywhere():
        out = []
        for rid in stack.of_type("AWS::S3::Bucket"):
            name = stack.ref(rid)
            req = Request("s3:GetObject", s3_object(name, "x"), principal_arn=role_arn(stack), resource_account=SECURITY,
                          context={"aws:SecureTransport": "false"})
            if decide(req, [ADMIN], bucket_policy(stack, name)) != "deny":
                out.append(f"bucket {rid}")
        for rid in stack.of_type("AWS::SQS::Queue"):
            req = Request("sqs:SendMessage", stack.arn(rid), principal_arn=role_arn(stack), resource_account=SECURITY,
                          context={"aws:SecureTransport": "false"})
            if decide(req, [ADMIN], queue_policy(stack, rid)) != "deny":
                out.append(f"queue {rid}")
        for rid in stack.of_type("AWS::SNS::Topic"):
            req = Request("sns:Subscribe", stack.ref(rid), principal_arn=role_arn(stack), resource_account=SECURITY,
                          context={"aws:SecureTransport": "false", "sns:Endpoint": params.get("AlertEmail", "x")})
            if decide(req, [ADMIN], topic_policy(stack, stack.ref(rid))) != "deny":
                out.append(f"topic {rid}")
        return f"plain HTTP not denied on {out}" if out else None

    c.run(f"[{label}] every bucket, queue and topic of the stack refuses plain HTTP", tls_everywhere)

    def tracing_and_env():
        out = []
        on = params.get("EnableTracing") == "true"
        fp = function_props(stack)
        if fp.get("Tracing", "PassThrough") != ("Active" if on else "PassThrough"):
            out.append(f"Tracing is {fp.get('Tracing')!r} with EnableTracing={on}")
        xray = [st for d in role_documents(stack) for st in statements_of(d) if "xray:" in json.dumps(st.get("Action"))]
        if on and not xray:
            out.append("active tracing without xray:PutTraceSegments on the role (Lambda refuses the function)")
        if not on and xray:
            out.append("xray permissions without tracing")
        stray = set(env) - FUNCTION_VARIABLES - set(CONTRACT_SETTINGS)
        if stray:
            out.append(f"variables the function does not know: {sorted(stray)}")
        if env.get("ROLEWATCH_LEASE_WAIT_SECONDS") != params.get("LeaseWaitSeconds", "60"):
            out.append("ROLEWATCH_LEASE_WAIT_SECONDS is not LeaseWaitSeconds")
        return problems(out)

    c.run(f"[{label}] tracing {'Active with' if params.get('EnableTracing') == 'true' else 'off without'} X-Ray"
          " permissions; only known ROLEWATCH_ variables", tracing_and_env)

    if other_account:
        def bus_policy():
            out = []
            bus_id = next(iter(stack.of_type("AWS::Events::EventBus")))
            bus = stack.resources[bus_id]["Properties"]
            bus_arn = stack.arn(bus_id)
            fwd = f"arn:aws:iam::{owner}:role/rolewatch-forward-ForwardRole-XYZ"
            fwd_policy = [{"Statement": [{"Effect": "Allow", "Action": "events:PutEvents", "Resource": bus_arn}]}]
            s3_event = {"events:source": "aws.s3", "events:detail-type": "Object Created"}

            def put(principal, ctx):
                return decide(Request("events:PutEvents", bus_arn, principal_arn=principal, resource_account=SECURITY,
                                      context=ctx), fwd_policy, bus.get("Policy"))

            if put(fwd, s3_event) != "allow":
                out.append("the bucket owner's forwarding role may not put S3 events on the bus")
            if put(fwd, {"events:source": "my.app", "events:detail-type": "Object Created"}) == "allow":
                out.append("the bucket owner may put events of any source")
            if put(fwd, {"events:source": "aws.s3", "events:detail-type": "Object Deleted"}) == "allow":
                out.append("the bucket owner may put any S3 event")
            if put(f"arn:aws:iam::{STRANGER}:role/x", s3_event) == "allow":
                out.append(f"account {STRANGER} may put events on the bus")
            if owner_raw is not None:
                out.append(owner_template_agrees(owner_raw, params, pattern, bus_arn))
            return problems(out)

        c.run(f"[{label}] event bus: only account {owner}'s forwarded S3 Object Created events;"
              " templates/bucket-owner.yaml forwards exactly what the rule matches", bus_policy)


def owner_template_agrees(owner_raw: dict, params: dict, rule_pattern: dict, bus_arn: str) -> str | None:
    """The bucket owner's half, deployed with the same prefix and org id, forwards what the rule reads."""
    owner = owner_of(params)
    try:
        ostack = Stack(owner_raw, {k: params[k] for k in ("TrailBucketName", "TrailKeyPrefix", "TrailOrganizationId")
                                   if k in params} | {"RolewatchEventBusArn": bus_arn}, account=owner, region=REGION)
    except (ParameterRefused, Unresolved) as err:
        return f"bucket-owner.yaml: {type(err).__name__}: {err}"
    out = []
    rules = ostack.of_type("AWS::Events::Rule")
    if len(rules) != 1:
        return f"bucket-owner.yaml has rules {sorted(rules)}"
    rule = next(iter(rules.values()))
    p = rule["Properties"]
    if p.get("EventBusName") not in (None, "default"):
        out.append("the forwarding rule is not on the default bus (where S3 sends)")
    fwd = p["EventPattern"]
    logs, others = keys_for(params)
    bucket = params["TrailBucketName"]
    for what, key in logs + others + [("log file, other bucket", "x")]:
        b = bucket if what != "log file, other bucket" else bucket + "-x"
        k = key if what != "log file, other bucket" else logs[0][1]
        e = object_created(b, k, owner)
        if eb_matches(fwd, e) != eb_matches(rule_pattern, e):
            out.append(f"forwarding and rule disagree on the {what}")
    if eb_matches(fwd, object_created(bucket, logs[0][1], STRANGER)):
        out.append("forwards events of another account")
    targets = p["Targets"]
    if [t["Arn"] for t in targets] != [bus_arn]:
        out.append(f"forwards to {[t['Arn'] for t in targets]}, not {bus_arn}")
    roles = {ostack.arn(r): r for r in ostack.of_type("AWS::IAM::Role")}
    for t in targets:
        arn = t.get("RoleArn")
        if arn not in roles:
            out.append("the forwarding target has no role of the template")
            continue
        role = ostack.resources[roles[arn]]["Properties"]
        trust = json.dumps(role["AssumeRolePolicyDocument"])
        if "events.amazonaws.com" not in trust or "aws:SourceAccount" not in trust:
            out.append("the forwarding role is not EventBridge's, pinned to this account")
        docs = [pol["PolicyDocument"] for pol in role.get("Policies", [])]
        if decide(Request("events:PutEvents", bus_arn, principal_arn=arn, resource_account=owner), docs) != "allow":
            out.append("the forwarding role may not put on the rolewatch bus")
        for other in (bus_arn + "-other", f"arn:aws:events:{REGION}:{owner}:event-bus/default"):
            if decide(Request("events:PutEvents", other, principal_arn=arn, resource_account=owner), docs) == "allow":
                out.append(f"the forwarding role may put on {other}")
        actions = {a for d in docs for st in statements_of(d) for a in (st["Action"] if isinstance(st["Action"], list) else [st["Action"]])}
        if actions != {"events:PutEvents"}:
            out.append(f"the forwarding role may also {sorted(actions - {'events:PutEvents'})}")
        if not t.get("DeadLetterConfig") or not t.get("RetryPolicy"):
            out.append("the forwarding target has no retry policy and DLQ")
    return problems(out)


# ------------------------------------------------------------------ the docs' bucket policy

ADMIN_BUCKET_POLICY = {"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*"}]}


def docs_bucket_policy(bucket: str, function_role_arn: str, params: dict) -> dict:
    """The statements docs/organisation-layouts.md tells the log archive account to add,
    with its placeholders filled in for this layout."""
    text = DOC.read_text()
    m = re.search(r"<!-- bucket-policy-statements -->\s*```json\n(.*?)```", text, re.DOTALL)
    if not m:
        raise AssertionError(f"{DOC.name}: no ```json block after <!-- bucket-policy-statements -->")
    prefix = params.get("TrailKeyPrefix", "")
    org = params.get("TrailOrganizationId", "")
    logs_path = f"{prefix}AWSLogs/{org + '/' if org else ''}*/CloudTrail/*.json.gz"
    filled = (m.group(1).replace("<TRAIL_BUCKET>", bucket).replace("<FUNCTION_ROLE_ARN>", function_role_arn)
              .replace("<LOG_FILES>", logs_path))
    leftover = re.findall(r"<[A-Z_]+>", filled)
    if leftover:
        raise AssertionError(f"unfilled placeholders {leftover}")
    return {"Statement": json.loads(filled)}


# ------------------------------------------------------------------ checks on the template as written


def written_function(res: dict) -> tuple[str, dict]:
    """(logical id, Properties) of the template's one AWS::Serverless::Function, as written."""
    fn_id = next(rid for rid, r in res.items() if r["Type"] == "AWS::Serverless::Function")
    return fn_id, res[fn_id].get("Properties", {})


def static_checks(c: Checks, raw: dict, owner_raw: dict | None, path: Path, transform: bool = True):
    """Checks on the template as written. `transform=False` skips the (slow) SAM transform."""
    params = raw.get("Parameters", {})
    res = raw["Resources"]

    def function_shape():
        fn_id, fn = written_function(res)
        meta = res[fn_id].get("Metadata", {})
        want = {"Runtime": "provided.al2023", "Handler": "bootstrap", "Architectures": ["arm64"]}
        bad = {k: fn.get(k) for k, v in want.items() if fn.get(k) != v}
        if meta.get("BuildMethod") != "rust-cargolambda":
            bad["BuildMethod"] = meta.get("BuildMethod")
        if meta.get("BuildProperties", {}).get("Binary") != "rolewatch-lambda":
            bad["BuildProperties.Binary"] = meta.get("BuildProperties")
        return f"unexpected {bad}" if bad else None

    c.run("function: provided.al2023, arm64, bootstrap, rust-cargolambda building rolewatch-lambda", function_shape)

    def code_uri():
        _, fn = written_function(res)
        uri = fn.get("CodeUri")
        if not isinstance(uri, str) or uri.strip("./") == "":
            return f"CodeUri is {uri!r}: SAM would take (and its cache hash) the whole repository, target/ and .venv included"
        manifest = path.resolve().parent / uri / "Cargo.toml"
        if not manifest.is_file():
            return f"{manifest} does not exist: sam build runs cargo lambda there"
        cargo = tomllib.loads(manifest.read_text())
        bins = [b.get("name") for b in cargo.get("bin", [])]
        if "rolewatch-lambda" not in bins:
            return f"{manifest} declares bins {bins}, not rolewatch-lambda"
        samconfig = path.resolve().parent / "samconfig.toml"
        if samconfig.is_file():
            cfg = tomllib.loads(samconfig.read_text())
            if cfg.get("default", {}).get("build", {}).get("parameters", {}).get("cached", False):
                return "samconfig.toml turns SAM's build cache on: it hashes CodeUri's target/ and misses ../engine"
        return None

    c.run("function: CodeUri is the lambda package (Cargo.toml with bin rolewatch-lambda), SAM's cache off", code_uri)

    def transform_declared():
        return None if raw.get("Transform") == "AWS::Serverless-2016-10-31" else f"Transform is {raw.get('Transform')!r}"

    c.run("template: SAM transform declared", transform_declared)

    def contract_environment():
        _, fn = written_function(res)
        env = fn.get("Environment", {}).get("Variables", {})
        out = []
        for var, (param, default) in CONTRACT_SETTINGS.items():
            if env.get(var) != {"Ref": param}:
                out.append(f"{var} is {env.get(var)!r}, want Ref {param}")
            elif str(params.get(param, {}).get("Default")) != str(default):
                out.append(f"{param} defaults to {params.get(param, {}).get('Default')!r}, contract says {default!r}")
        return problems(out)

    c.run("function: every contract setting is a parameter with the contract default, mapped to ROLEWATCH_<SECTION>_<KEY>",
          contract_environment)

    def numeric_parameters():
        out = []
        must_refuse_zero = ["RepeatedFailuresThreshold", "RepeatedFailuresWindowSeconds", "LearningPeriodSeconds",
                            "RoamingNetworks", "NetworkMemorySeconds", "MaxDurationSeconds", "FunctionMemoryMB",
                            "TriggerQueueMaxConcurrency", "LeaseWaitSeconds", "StateNoncurrentVersionDays",
                            "ReservedConcurrency"]
        for name in must_refuse_zero:
            if name not in params:
                out.append(f"no parameter {name}")
            elif parameter_problem(params[name], "0") is None:
                out.append(f"{name} accepts 0")
        for name, spec in params.items():
            if "Default" in spec and parameter_problem(spec, str(spec["Default"])):
                out.append(f"{name}'s default is refused: {parameter_problem(spec, str(spec['Default']))}")
            if spec.get("Type") == "Number" and "AllowedValues" not in spec:
                if "MinValue" not in spec or "MaxValue" not in spec:
                    out.append(f"{name} has no MinValue/MaxValue")
                elif parameter_problem(spec, "-1") is None:
                    out.append(f"{name} accepts -1")
        spans = [v[0] for v in CONTRACT_SETTINGS.values() if v[0].endswith("Seconds")]
        for name in spans:
            if name in params and parameter_problem(params[name], str(TEN_YEARS + 1)) is None:
                out.append(f"{name} accepts more than ten years, which the function refuses")
        for name, value in (("HabitualSeconds", "0"), ("CooldownSeconds", "0"), ("ReservedConcurrency", ""),
                            ("ReservedConcurrency", "5"), ("TrailBucketAccountId", ""), ("TrailBucketAccountId", ARCHIVE),
                            ("TrailOrganizationId", ORG), ("ExistingStateBucketName", "")):
            if name in params and parameter_problem(params[name], value):
                out.append(f"{name} refuses {value!r}: {parameter_problem(params[name], value)}")
        for name, value in (("ReservedConcurrency", "-1"), ("ReservedConcurrency", "01"), ("TrailBucketAccountId", "12345"),
                            ("TrailOrganizationId", "org-1"), ("AlertHttpsEndpoint", "http://pager.example"),
                            ("AlertHttpsEndpoint", "https://a.example/x,https://b.example/y")):
            if name in params and parameter_problem(params[name], value) is None:
                out.append(f"{name} accepts {value!r}")
        return problems(out)

    c.run("parameters: 0 refused where the function cannot run with it (periods, thresholds, concurrency, lease wait);"
          " every number bounded; defaults accepted", numeric_parameters)

    def lease_wait():
        _, fn = written_function(res)
        timeout = int(fn["Timeout"])
        spec = params.get("LeaseWaitSeconds", {})
        if fn.get("Environment", {}).get("Variables", {}).get("ROLEWATCH_LEASE_WAIT_SECONDS") != {"Ref": "LeaseWaitSeconds"}:
            return "ROLEWATCH_LEASE_WAIT_SECONDS is not the LeaseWaitSeconds parameter"
        if "MaxValue" not in spec or float(spec["MaxValue"]) > timeout / 2:
            return f"LeaseWaitSeconds may reach {spec.get('MaxValue')} s of a {timeout} s timeout"
        return None

    c.run("function: lease wait is a parameter bounded to at most half the function timeout", lease_wait)

    def sqs_timing():
        _, fn = written_function(res)
        timeout = int(fn["Timeout"])
        q = res["TriggerQueue"]["Properties"]
        esm = next(r for r in res.values() if r["Type"] == "AWS::Lambda::EventSourceMapping")["Properties"]
        vis = int(q["VisibilityTimeout"])
        window = int(esm.get("MaximumBatchingWindowInSeconds", 0))
        receives = int(q["RedrivePolicy"]["maxReceiveCount"])
        if vis < timeout + window:
            return f"visibility {vis} s < timeout {timeout} s + batching window {window} s: a running batch is handed out again"
        if vis > 600:
            return f"a failed item comes back after {vis} s, not within minutes"
        if vis * receives > 3600:
            return f"a failing item reaches the DLQ after {vis * receives} s"
        if receives < 3:
            return f"maxReceiveCount {receives}: one transient failure could park a message"
        return None

    c.run("sqs: a failed item is retried within minutes and parked within an hour, never while its batch runs", sqs_timing)

    policies = list(all_policies(res))

    def no_wildcard_allow_actions():
        bad = [f"{rid}:{st.get('Sid', '?')} {a}" for rid, _, st in policies if st.get("Effect") == "Allow"
               for a in as_strings(st.get("Action", [])) if "*" in a]
        bad += [f"{rid}:{st.get('Sid', '?')} uses NotAction/NotResource" for rid, _, st in policies
                if "NotAction" in st or "NotResource" in st]
        return ", ".join(bad) or None

    c.run(f"policies: no '*' in any allowed action ({len(policies)} statements; Deny may be broad)", no_wildcard_allow_actions)

    def no_wildcard_principals():
        bad = [f"{rid}:{st.get('Sid', '?')}" for rid, kind, st in policies
               if st.get("Effect") == "Allow" and st.get("Principal") in ("*", {"AWS": "*"})]
        return ", ".join(bad) or None

    c.run("policies: no Allow to every principal", no_wildcard_principals)

    def identity_resources_named():
        xray = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
        bad = [f"{rid}:{st.get('Sid', '?')}" for rid, kind, st in policies
               if kind == "identity" and st.get("Effect") == "Allow" and "*" in as_strings(st.get("Resource"))
               and not set(as_strings(st.get("Action"))) <= xray]
        return ", ".join(bad) or None

    c.run("role: no statement on Resource '*' (X-Ray's trace writes excepted: they have no resource)", identity_resources_named)

    def role_is_explicit():
        _, fn = written_function(res)
        role_id = fn.get("Role", {}).get("Fn::GetAtt", [None])[0] if isinstance(fn.get("Role"), dict) else None
        if role_id not in res or res[role_id]["Type"] != "AWS::IAM::Role":
            return f"function Role is {fn.get('Role')!r}, not a role of this template"
        if fn.get("Policies"):
            return "function has SAM Policies besides its explicit role"
        if res[role_id]["Properties"].get("ManagedPolicyArns"):
            return "role attaches managed policies"
        return None

    c.run("role: the function's explicit role, no managed policies", role_is_explicit)

    def outputs():
        want = {"FunctionArn", "FunctionRoleArn", "AlertTopicArn", "OperationsTopicArn", "StateBucketName",
                "DeadLetterQueueUrl", "TrailEventBusArn"}
        missing = want - set(raw.get("Outputs", {}))
        return f"missing outputs {sorted(missing)}" if missing else None

    c.run("outputs: function and role ARNs, both topics, state bucket, DLQ, the bus for the bucket owner", outputs)

    if not transform:
        return
    transformed = {}

    def transforms():
        transformed.update(sam_transform(raw))
        left = sorted({r["Type"] for r in transformed["Resources"].values() if r["Type"].startswith("AWS::Serverless::")})
        return f"untransformed {left}" if left else None

    c.run("sam transform: expands offline", transforms)

    def transformed_least_privilege():
        if not transformed:
            return "no transformed template"
        tres = transformed["Resources"]
        # The template's own roles: the function's, and the chat channels'
        # (no permissions, a deny-all guardrail); SAM must add none.
        declared = {rid for rid, r in raw["Resources"].items() if r["Type"] == "AWS::IAM::Role"}
        roles = sorted(rid for rid, r in tres.items() if r["Type"] == "AWS::IAM::Role" and rid not in declared)
        extra = sorted(rid for rid, r in tres.items() if r["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"))
        if "FunctionRole" not in declared or declared - {"FunctionRole", "ChatChannelRole"} or roles or extra:
            return f"SAM added IAM: roles {roles}, policies {extra}; template roles {sorted(declared)}"
        bad = [f"{rid}:{a}" for rid, _, st in all_policies(tres) if st.get("Effect") == "Allow"
               for a in as_strings(st.get("Action", [])) if "*" in a]
        return f"wildcard actions after transform: {bad}" if bad else None

    c.run("sam transform: adds no role, policy or wildcard action", transformed_least_privilege)


def as_strings(value) -> list[str]:
    return [v if isinstance(v, str) else json.dumps(v, sort_keys=True) for v in (value if isinstance(value, list) else [value])]


POLICY_PROPERTY = {"AWS::S3::BucketPolicy": "PolicyDocument", "AWS::SQS::QueuePolicy": "PolicyDocument",
                   "AWS::SNS::TopicPolicy": "PolicyDocument", "AWS::KMS::Key": "KeyPolicy", "AWS::Events::EventBus": "Policy"}


def unfold(items):
    """Statements with Fn::If unfolded into both branches."""
    for item in items if isinstance(items, list) else [items]:
        if isinstance(item, dict) and set(item) == {"Fn::If"}:
            for branch in item["Fn::If"][1:]:
                if branch != {"Ref": "AWS::NoValue"}:
                    yield from unfold(branch)
        elif isinstance(item, dict):
            yield item


def all_policies(resources):
    """(resource id, 'identity'|'resource', statement) for every policy, both branches of each Fn::If."""
    for rid, r in resources.items():
        props = r.get("Properties", {})
        if r["Type"] == "AWS::IAM::Role":
            for pol in props.get("Policies", []):
                for st in unfold(pol["PolicyDocument"]["Statement"]):
                    yield rid, "identity", st
        elif r["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            for st in unfold(props["PolicyDocument"]["Statement"]):
                yield rid, "identity", st
        elif r["Type"] in POLICY_PROPERTY and POLICY_PROPERTY[r["Type"]] in props:
            for st in unfold(props[POLICY_PROPERTY[r["Type"]]]["Statement"]):
                yield rid, "resource", st


def sam_transform(template: dict) -> dict:
    """The CloudFormation that SAM makes of the template, computed offline."""
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    template = copy.deepcopy(template)
    for r in template["Resources"].values():
        if r.get("Type") == "AWS::Serverless::Function":
            # `sam package` would put the built code in S3; the translator insists on that form.
            r["Properties"]["CodeUri"] = "s3://placeholder/rolewatch-lambda.zip"
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=REGION))
    return translator.translate(template, {}, get_managed_policy_map=lambda: {})


# ------------------------------------------------------------------ the models themselves


def model_checks(c: Checks):
    def eventbridge_model():
        cases = [
            ("AWSLogs/*/CloudTrail/*", "AWSLogs/1/CloudTrail/x", True),
            ("AWSLogs/*/CloudTrail/*", "AWSLogs/o-1/2/CloudTrail/us-east-1/f.json.gz", True),
            ("AWSLogs/*/CloudTrail/*", "AWSLogs/1/CloudTrail-Digest/x", False),
            ("AWSLogs/*/CloudTrail/*", "p/AWSLogs/1/CloudTrail/x", False),
            ("a\\*b", "a*b", True), ("a\\*b", "axb", False), ("*.json.gz", ".json.gz", True),
        ]
        bad = [f"wildcard {p!r} on {v!r} gave {not want}" for p, v, want in cases if eb_wildcard(p, v) != want]
        if not eb_matches({"detail": {"key": [{"prefix": "a/"}]}}, {"detail": {"key": "a/b"}}):
            bad.append("prefix")
        if eb_matches({"detail": {"key": [{"prefix": "a/"}]}}, {"detail": {"key": "b/a/"}}):
            bad.append("prefix matched inside")
        if not eb_matches({"source": ["aws.s3", "x"]}, {"source": "x"}):
            bad.append("a list of values is an OR")
        if eb_matches({"source": ["aws.s3"], "account": ["1"]}, {"source": "aws.s3", "account": "2"}):
            bad.append("fields are an AND")
        if eb_matches({"detail": {"bucket": {"name": ["b"]}}}, {"detail": {}}):
            bad.append("a missing field matched")
        return problems(bad)

    c.run("model: EventBridge wildcard, prefix, OR within a field, AND across fields", eventbridge_model)

    def iam_model():
        bad = []
        if not iam_wildcard("arn:aws:s3:::b/AWSLogs/*/CloudTrail/*", "arn:aws:s3:::b/AWSLogs/o-1/2/CloudTrail/x"):
            bad.append("* spans /")
        if iam_wildcard("p/????????????.base-*", "p/quarantine/1-2.base-3"):
            bad.append("? is one character")
        allow = {"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}
        deny_other = {"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "*",
                                     "Condition": {"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::1:role/a"}}}]}
        r = Request("s3:GetObject", "arn:aws:s3:::b/k", principal_arn="arn:aws:iam::111111111111:role/b",
                    resource_account="111111111111")
        if decide(r, [allow], deny_other) != "deny":
            bad.append("ArnNotLike deny")
        if decide(r, [allow], None) != "allow":
            bad.append("same-account identity allow")
        r.resource_account = "222222222222"
        if decide(r, [allow], None) != "implicit":
            bad.append("cross-account needs the resource policy")
        svc = Request("sns:Publish", "t", service="cloudwatch.amazonaws.com", resource_account="1")
        neg = {"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "sns:Publish", "Resource": "*",
                              "Condition": {"ArnNotEquals": {"aws:PrincipalArn": "arn:aws:iam::1:role/f"}}}]}
        if decide(svc, None, neg) != "deny":
            bad.append("a negated operator on a missing key holds")
        return problems(bad)

    c.run("model: IAM wildcards, explicit deny, missing keys in negated conditions, cross-account", iam_model)


# ------------------------------------------------------------------ mutations: the checks can fail


def _set(path, value):
    def mutate(t):
        node = t
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = value
    return mutate


def _drop_statement(rid, sid, policy_path=("Properties", "PolicyDocument", "Statement")):
    def mutate(t):
        node = t["Resources"][rid]
        for step in policy_path[:-1]:
            node = node[step]
        node[policy_path[-1]] = [s for s in node[policy_path[-1]] if not (isinstance(s, dict) and s.get("Sid") == sid)]
    return mutate


def _role_statement(sid, key, value):
    def mutate(t):
        for st in t["Resources"]["FunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]:
            if isinstance(st, dict) and st.get("Sid") == sid:
                st[key] = value
    return mutate


def _all_alarms(key, value):
    def mutate(t):
        for r in t["Resources"].values():
            if r["Type"] == "AWS::CloudWatch::Alarm":
                r["Properties"][key] = value
    return mutate


def _then(*mutations):
    def mutate(t):
        for m in mutations:
            m(t)
    return mutate


MUTATIONS = [
    ("the old key filter: any object under AWSLogs/",
     _set(("Resources", "TrailObjectCreatedRule", "Properties", "EventPattern", "detail", "object", "key"),
          [{"prefix": {"Fn::Sub": "${TrailKeyPrefix}AWSLogs/"}}]), "event pattern"),
    ("no account in the pattern",
     lambda t: t["Resources"]["TrailObjectCreatedRule"]["Properties"]["EventPattern"].pop("account"), "event pattern"),
    ("the old read scope: AWSLogs/*",
     _role_statement("ReadTrailLogFiles", "Resource", {"Fn::Sub": "arn:${AWS::Partition}:s3:::${TrailBucketName}/${TrailKeyPrefix}AWSLogs/*"}),
     "role reads CloudTrail"),
    ("reads without the bucket owner pinned",
     lambda t: next(st for st in t["Resources"]["FunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
                    if st.get("Sid") == "ReadTrailLogFiles").pop("Condition"), "role reads CloudTrail"),
    ("anyone in the account writes state", _drop_statement("StateBucketPolicy", "OnlyTheFunctionWritesState"), "state:"),
    ("quarantine deletable",
     _drop_statement("FunctionRole", "NeverDeleteQuarantinedState",
                     ("Properties", "Policies", 0, "PolicyDocument", "Statement")), "state:"),
    ("no TLS-only policy on the state bucket", _drop_statement("StateBucketPolicy", "DenyInsecureTransport"), "plain HTTP"),
    ("alarms to the alert topic", _all_alarms("AlarmActions", [{"Ref": "AlertTopic"}]), "alarms:"),
    ("errors alarm on one datapoint",
     _then(_set(("Resources", "FunctionErrorsAlarm", "Properties", "EvaluationPeriods"), 1),
           lambda t: t["Resources"]["FunctionErrorsAlarm"]["Properties"].pop("DatapointsToAlarm")), "alarms:"),
    ("no AsyncEventsDropped alarm", lambda t: t["Resources"].pop("AsyncEventsDroppedAlarm"), "alarms:"),
    ("no alarm on the rule's FailedInvocations", lambda t: t["Resources"].pop("TrailRuleFailedInvocationsAlarm"), "alarms:"),
    ("the rule's alarm by RuleName alone, also on the trail bus",
     _set(("Resources", "TrailRuleFailedInvocationsAlarm", "Properties", "Dimensions"),
          [{"Name": "RuleName", "Value": {"Fn::Select": [1, {"Fn::Split": ["/", {"Fn::GetAtt": ["TrailObjectCreatedRule", "Arn"]}]}]}}]),
     "alarms:"),
    ("anyone publishes alerts", _drop_statement("AlertTopicPolicy", "OnlyTheFunctionPublishes"), "topics:"),
    ("anyone subscribes to alerts", _drop_statement("AlertTopicPolicy", "OnlyKnownSubscribers"), "topics:"),
    ("bus policy without the source condition",
     lambda t: t["Resources"]["TrailEventBus"]["Properties"]["Policy"]["Statement"][0].pop("Condition"), "event bus:"),
    ("learning period may be 0", _set(("Parameters", "LearningPeriodSeconds", "MinValue"), 0), "parameters:"),
    ("reserved concurrency may be 0", _set(("Parameters", "ReservedConcurrency", "AllowedPattern"), "^$|^[0-9]+$"), "parameters:"),
    ("the old 30-minute visibility timeout", _set(("Resources", "TriggerQueue", "Properties", "VisibilityTimeout"), 1800), "sqs:"),
    ("lease wait up to 240 s", _set(("Parameters", "LeaseWaitSeconds", "MaxValue"), 240), "lease wait"),
    ("log group unencrypted", lambda t: t["Resources"]["FunctionLogGroup"]["Properties"].pop("KmsKeyId"), "log group"),
    ("pager without retries",
     lambda t: t["Resources"]["AlertHttpsSubscription"]["Properties"].pop("DeliveryPolicy"), "subscriptions:"),
    ("a fixed state bucket name",
     _set(("Resources", "StateBucket", "Properties", "BucketName"), {"Fn::Sub": "rolewatch-state-${AWS::AccountId}"}),
     "state bucket:"),
    ("the queue accepts notifications of this account only",
     lambda t: next(st for st in t["Resources"]["TriggerQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
                    if st.get("Sid") == "FromTrailBucketNotifications")["Condition"].update(
         {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}), "trigger wired"),
    ("the whole repository as CodeUri", _set(("Resources", "RolewatchFunction", "Properties", "CodeUri"), "."), "CodeUri"),
    ("tracing always on", _set(("Resources", "RolewatchFunction", "Properties", "Tracing"), "Active"), "tracing"),
]


def mutation_checks(c: Checks, raw: dict, owner_raw: dict | None, path: Path):
    for what, mutate, tag in MUTATIONS:
        def caught(what=what, mutate=mutate, tag=tag):
            mutant = copy.deepcopy(raw)
            mutate(mutant)
            inner = Checks(quiet=True)
            for label, params in LAYOUTS.items():
                layout_checks(inner, mutant, owner_raw, label, params)
            static_checks(inner, mutant, owner_raw, path, transform=False)
            hit = [n for n in inner.failures if tag in n]
            return None if hit else f"no check tagged {tag!r} failed (failed: {inner.failures})"
        c.run(f"mutation caught: {what}", caught)

    def owner_mutation():
        if owner_raw is None:
            return "no bucket-owner template"
        mutant = copy.deepcopy(owner_raw)
        mutant["Resources"]["ForwardRule"]["Properties"]["EventPattern"]["detail"]["object"]["key"] = [{"prefix": "AWSLogs/"}]
        inner = Checks(quiet=True)
        for label, params in LAYOUTS.items():
            layout_checks(inner, raw, mutant, label, params)
        return None if any("event bus:" in n for n in inner.failures) else "a forwarding rule wider than the rule passed"

    c.run("mutation caught: bucket-owner.yaml forwards every AWSLogs/ object", owner_mutation)


# ------------------------------------------------------------------ main


def main(argv: list[str]) -> int:
    path = Path(argv[1]) if len(argv) > 1 else ROOT / "template.yaml"
    owner_path = Path(argv[2]) if len(argv) > 2 else ROOT / "templates" / "bucket-owner.yaml"
    c = Checks()
    try:
        raw = load(str(path))
        owner_raw = load(str(owner_path))
    except Exception as err:
        print(f"FAIL load: {err}")
        print("0 passed, 1 failed")
        return 1
    model_checks(c)
    static_checks(c, raw, owner_raw, path)
    for label, params in LAYOUTS.items():
        layout_checks(c, raw, owner_raw, label, params)
    mutation_checks(c, raw, owner_raw, path)
    print(f"{c.passed} passed, {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
