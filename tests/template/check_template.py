#!/usr/bin/env python3
"""Policy checks on template.yaml that cfn-lint and `sam validate` do not make.

Least privilege (no wildcard actions, S3 scoped to the trail's AWSLogs/ prefix
and the state prefix, sns:Publish on the alert topic only, every kms:Decrypt
conditioned), the state bucket's protections, the failure path (retries, DLQ,
alarms), the SQS variant, and that the function's settings match the contract.

The template is checked twice where it matters: as written, and as the SAM
transform expands it (offline, with samtranslator), so that nothing SAM adds
(a generated role, a managed policy) slips past.

Usage: check_template.py [template.yaml]. Needs cfn-lint and samtranslator
(both in .venv, see scripts/install-tools.sh). Prints one line per check and
ends with "N passed, M failed"; exits 1 when a check failed.
"""

from __future__ import annotations

import copy
import json
import re
import sys
import traceback
from pathlib import Path

try:
    from cfnlint.decode import decode
except ImportError:  # pragma: no cover - only without the venv
    sys.exit("check_template: cfn-lint is not importable; run scripts/install-tools.sh and use .venv/bin/python")

ROOT = Path(__file__).resolve().parents[2]

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
}

POLICY_PROPERTY = {
    "AWS::S3::BucketPolicy": "PolicyDocument",
    "AWS::SQS::QueuePolicy": "PolicyDocument",
    "AWS::SNS::TopicPolicy": "PolicyDocument",
    "AWS::KMS::Key": "KeyPolicy",
}


# ------------------------------------------------------------------ helpers


def render(value) -> str:
    """An intrinsic as one comparable string: Ref X -> ${X}, GetAtt X.Y -> ${X.Y}."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        (fn, arg), = value.items()
        if fn == "Ref":
            return "${%s}" % arg
        if fn == "Fn::GetAtt":
            return "${%s}" % (".".join(arg) if isinstance(arg, list) else arg)
        if fn == "Fn::Sub":
            return arg if isinstance(arg, str) else arg[0]
        if fn == "Fn::Join":
            return render(arg[0]).join(render(v) for v in arg[1])
    return json.dumps(value, sort_keys=True)


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def statements(document, condition=None):
    """(statement, CloudFormation condition guarding it or None), Fn::If unfolded."""
    items = document.get("Statement", []) if isinstance(document, dict) and "Statement" in document else document
    for item in as_list(items):
        if isinstance(item, dict) and set(item) == {"Fn::If"}:
            name, yes, no = item["Fn::If"]
            for branch in (yes, no):
                if branch != {"Ref": "AWS::NoValue"}:
                    yield from statements(as_list(branch), name)
        elif isinstance(item, dict):
            yield item, condition


def all_policies(resources):
    """(resource id, kind, statement, condition) for every policy in the template."""
    for rid, res in resources.items():
        props = res.get("Properties", {})
        kind = res.get("Type")
        if kind == "AWS::IAM::Role":
            for policy in props.get("Policies", []):
                for st, cond in statements(policy["PolicyDocument"]):
                    yield rid, "identity", st, cond
        elif kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            for st, cond in statements(props["PolicyDocument"]):
                yield rid, "identity", st, cond
        elif kind in POLICY_PROPERTY:
            for st, cond in statements(props[POLICY_PROPERTY[kind]]):
                yield rid, "resource", st, cond


def actions(statement) -> list[str]:
    return [render(a) for a in as_list(statement.get("Action", []))]


def role_statements(resources, role_id):
    out = []
    for policy in resources[role_id]["Properties"].get("Policies", []):
        out.extend(statements(policy["PolicyDocument"]))
    return out


def grants(resources, role_id, action):
    """Rendered resources the role's Allow statements grant `action` on."""
    found = []
    for st, cond in role_statements(resources, role_id):
        if st.get("Effect") == "Allow" and action in actions(st):
            found.extend((render(r), st, cond) for r in as_list(st["Resource"]))
    return found


def of_type(resources, kind):
    return {rid: r for rid, r in resources.items() if r.get("Type") == kind}


def sam_transform(template: dict) -> dict:
    """The CloudFormation that SAM makes of the template, computed offline."""
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    template = copy.deepcopy(template)
    for res in template["Resources"].values():
        if res.get("Type") == "AWS::Serverless::Function":
            # `sam package` would put the built code in S3; the translator insists on that form.
            res["Properties"]["CodeUri"] = "s3://placeholder/rolewatch-lambda.zip"
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name="us-east-1"))
    return translator.translate(template, {}, get_managed_policy_map=lambda: {})


# ------------------------------------------------------------------ runner


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def run(self, name, fn):
        try:
            problem = fn()
        except Exception as err:  # a crash in a check is a failed check, not a crash of all
            problem = f"{type(err).__name__}: {err}"
            traceback.print_exc(file=sys.stderr)
        if problem:
            self.failed += 1
            print(f"FAIL {name}: {problem}")
        else:
            self.passed += 1
            print(f"ok   {name}")


def main(argv: list[str]) -> int:
    path = Path(argv[1]) if len(argv) > 1 else ROOT / "template.yaml"
    raw, matches = decode(str(path))
    if matches or raw is None:
        print(f"FAIL load {path}: {matches}")
        print("0 passed, 1 failed")
        return 1
    raw = json.loads(json.dumps(raw))  # plain dicts (cfn-lint's nodes carry line marks)
    res = raw["Resources"]
    params = raw.get("Parameters", {})
    conds = raw.get("Conditions", {})
    c = Checks()

    fn_id = next(iter(of_type(res, "AWS::Serverless::Function")), None)
    fn = res.get(fn_id, {}).get("Properties", {})
    role_ref = fn.get("Role", {})
    role_id = role_ref.get("Fn::GetAtt", [None])[0] if isinstance(role_ref, dict) else None
    env = fn.get("Environment", {}).get("Variables", {})

    # -- the function
    def function_shape():
        if not fn_id:
            return "no AWS::Serverless::Function"
        want = {"Runtime": "provided.al2023", "Handler": "bootstrap", "Architectures": ["arm64"], "CodeUri": "lambda/"}
        bad = {k: fn.get(k) for k, v in want.items() if fn.get(k) != v}
        meta = res[fn_id].get("Metadata", {})
        if meta.get("BuildMethod") != "rust-cargolambda":
            bad["BuildMethod"] = meta.get("BuildMethod")
        if meta.get("BuildProperties", {}).get("Binary") != "rolewatch-lambda":
            bad["BuildProperties.Binary"] = meta.get("BuildProperties")
        return f"unexpected {bad}" if bad else None

    c.run("function: provided.al2023, arm64, bootstrap, rust-cargolambda building rolewatch-lambda", function_shape)

    def transform_declared():
        return None if raw.get("Transform") == "AWS::Serverless-2016-10-31" else f"Transform is {raw.get('Transform')!r}"

    c.run("template: SAM transform declared", transform_declared)

    def contract_environment():
        problems = []
        for var, (param, default) in CONTRACT_SETTINGS.items():
            if env.get(var) != {"Ref": param}:
                problems.append(f"{var} is {env.get(var)!r}, want Ref {param}")
            elif str(params.get(param, {}).get("Default")) != str(default):
                problems.append(f"{param} defaults to {params.get(param, {}).get('Default')!r}, contract says {default!r}")
        for var, target in (("ROLEWATCH_ALERT_TOPIC_ARN", "AlertTopic"), ("ROLEWATCH_STATE_BUCKET", "StateBucket"),
                            ("ROLEWATCH_STATE_PREFIX", "StatePrefix")):
            if env.get(var) != {"Ref": target}:
                problems.append(f"{var} is {env.get(var)!r}, want Ref {target}")
        stray = [v for v in env if not v.startswith("ROLEWATCH_")]
        if stray:
            problems.append(f"unexpected variables {stray}")
        return "; ".join(problems) or None

    c.run("function: every contract setting is a parameter with the contract default, mapped to ROLEWATCH_<SECTION>_<KEY>",
          contract_environment)

    def logging():
        lc = fn.get("LoggingConfig", {})
        if lc.get("LogFormat") != "JSON":
            return f"LogFormat is {lc.get('LogFormat')!r}"
        group = lc.get("LogGroup", {}).get("Ref")
        if res.get(group, {}).get("Type") != "AWS::Logs::LogGroup":
            return "LoggingConfig.LogGroup is not a log group of this template"
        if not res[group]["Properties"].get("RetentionInDays"):
            return "log group has no retention"
        return None

    c.run("function: JSON logs into its own log group with retention", logging)

    # -- least privilege, everywhere
    policies = list(all_policies(res))

    def no_wildcard_allow_actions():
        bad = [f"{rid}:{st.get('Sid', '?')} {a}" for rid, _, st, _ in policies if st.get("Effect") == "Allow"
               for a in actions(st) if "*" in a]
        bad += [f"{rid}:{st.get('Sid', '?')} uses NotAction/NotResource" for rid, _, st, _ in policies
                if "NotAction" in st or ("NotResource" in st and st.get("Effect") == "Allow")]
        return ", ".join(bad) or None

    c.run(f"policies: no '*' in any allowed action ({len(policies)} statements; Deny may be broad)",
          no_wildcard_allow_actions)

    def no_wildcard_principals():
        bad = []
        for rid, kind, st, _ in policies:
            principal = st.get("Principal")
            if st.get("Effect") == "Allow" and principal in ("*", {"AWS": "*"}):
                bad.append(f"{rid}:{st.get('Sid', '?')}")
        return ", ".join(bad) or None

    c.run("policies: no Allow to every principal", no_wildcard_principals)

    def identity_resources_named():
        bad = [f"{rid}:{st.get('Sid', '?')}" for rid, kind, st, _ in policies
               if kind == "identity" and st.get("Effect") == "Allow" and "*" in [render(r) for r in as_list(st.get("Resource"))]]
        return ", ".join(bad) or None

    c.run("role: no statement on Resource '*'", identity_resources_named)

    def role_is_explicit():
        if role_id not in res or res[role_id]["Type"] != "AWS::IAM::Role":
            return f"function Role is {role_ref!r}, not a role of this template"
        if fn.get("Policies"):
            return "function has SAM Policies besides its explicit role"
        if res[role_id]["Properties"].get("ManagedPolicyArns"):
            return f"role attaches managed policies {res[role_id]['Properties']['ManagedPolicyArns']}"
        return None

    c.run("role: the function's explicit role, no managed policies", role_is_explicit)

    def trail_read_scope():
        found = grants(res, role_id, "s3:GetObject")
        trail = [r for r, _, _ in found if "${TrailBucketName}" in r]
        if not trail:
            return "no s3:GetObject on the trail bucket"
        bad = [r for r in trail if not re.fullmatch(r"arn:\$\{AWS::Partition\}:s3:::\$\{TrailBucketName\}/(\$\{TrailKeyPrefix\})?AWSLogs/\*", r)]
        return f"trail reads not limited to AWSLogs/: {bad}" if bad else None

    c.run("role: s3:GetObject on the trail bucket only under <prefix>AWSLogs/", trail_read_scope)

    def s3_object_scope():
        prefix_ok = (r"arn:\$\{AWS::Partition\}:s3:::\$\{TrailBucketName\}/(\$\{TrailKeyPrefix\})?AWSLogs/\*",
                     r"\$\{StateBucket\.Arn\}/\$\{StatePrefix\}\*")
        bases_only = r"\$\{StateBucket\.Arn\}/\$\{StatePrefix\}\*\.base-\*"
        problems = []
        for st, _ in role_statements(res, role_id):
            for a in actions(st):
                if not a.startswith("s3:") or a == "s3:ListBucket":
                    continue
                for r in map(render, as_list(st["Resource"])):
                    if a == "s3:DeleteObject" and not re.fullmatch(bases_only, r):
                        problems.append(f"{a} on {r} (only replaced state bases may be deleted)")
                    elif a == "s3:DeleteObject":
                        continue
                    elif a == "s3:PutObject" and not re.fullmatch(prefix_ok[1], r):
                        problems.append(f"{a} on {r}")
                    elif not any(re.fullmatch(p, r) for p in prefix_ok):
                        problems.append(f"{a} on {r}")
        return ", ".join(problems) or None

    c.run("role: S3 object access only on the trail's AWSLogs/ and the state prefix; writes only to state;"
          " deletes only of state bases", s3_object_scope)

    def list_scope():
        found = grants(res, role_id, "s3:ListBucket")
        bad = [r for r, _, _ in found if r != "${StateBucket.Arn}"]
        if not found:
            return "no s3:ListBucket on the state bucket (a missing state object would read as 403)"
        return f"s3:ListBucket on {bad}" if bad else None

    c.run("role: s3:ListBucket only on the state bucket", list_scope)

    def publish_scope():
        found = grants(res, role_id, "sns:Publish")
        bad = [r for r, _, _ in found if r != "${AlertTopic}"]
        if not found:
            return "no sns:Publish"
        others = [f"{rid}:{st.get('Sid')}" for rid, kind, st, _ in policies
                  if kind == "identity" and rid != role_id and "sns:Publish" in actions(st)]
        return f"sns:Publish on {bad + others}" if bad or others else None

    c.run("role: sns:Publish only on the alert topic", publish_scope)

    def decrypt_conditioned():
        problems = []
        saw_trail = False
        for rid, kind, st, cond in policies:
            if st.get("Effect") != "Allow" or "kms:Decrypt" not in actions(st):
                continue
            resources = [render(r) for r in as_list(st.get("Resource"))]
            if "${TrailKmsKeyArn}" in resources:
                saw_trail = True
                guard = conds.get(cond or "", None)
                if guard != {"Fn::Not": [{"Fn::Equals": [{"Ref": "TrailKmsKeyArn"}, ""]}]}:
                    problems.append(f"{rid}:{st.get('Sid')} on the trail key is not guarded by TrailKmsKeyArn != ''")
            if not st.get("Condition"):
                problems.append(f"{rid}:{st.get('Sid')} allows kms:Decrypt without a Condition")
        if not saw_trail:
            problems.append("no kms:Decrypt for TrailKmsKeyArn")
        return "; ".join(problems) or None

    c.run("kms: Decrypt on the trail key only when TrailKmsKeyArn is given; every Decrypt conditioned", decrypt_conditioned)

    def dlq_send_scope():
        found = grants(res, role_id, "sqs:SendMessage")
        bad = [r for r, _, _ in found if r != "${DeadLetterQueue.Arn}"]
        return f"sqs:SendMessage on {bad}" if bad or not found else None

    c.run("role: sqs:SendMessage only to the DLQ", dlq_send_scope)

    # -- the state bucket
    bucket = res.get("StateBucket", {}).get("Properties", {})

    def bucket_encryption():
        rules = bucket.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [])
        algos = [r.get("ServerSideEncryptionByDefault", {}).get("SSEAlgorithm") for r in rules]
        return None if any(a in ("AES256", "aws:kms", "aws:kms:dsse") for a in algos) else f"SSE is {algos}"

    c.run("state bucket: default encryption", bucket_encryption)

    def bucket_versioning():
        status = bucket.get("VersioningConfiguration", {}).get("Status")
        if status != "Enabled":
            return f"versioning is {status!r}"
        rules = bucket.get("LifecycleConfiguration", {}).get("Rules", [])
        if not any(r.get("Status") == "Enabled" and "NoncurrentVersionExpiration" in r for r in rules):
            return "no lifecycle rule expiring noncurrent versions"
        return None

    c.run("state bucket: versioning, noncurrent versions expire", bucket_versioning)

    def bucket_public_access():
        pab = bucket.get("PublicAccessBlockConfiguration", {})
        keys = ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")
        off = [k for k in keys if pab.get(k) is not True]
        return f"not blocked: {off}" if off else None

    c.run("state bucket: public access block, all four", bucket_public_access)

    def bucket_tls_only():
        for bp in of_type(res, "AWS::S3::BucketPolicy").values():
            if bp["Properties"].get("Bucket") != {"Ref": "StateBucket"}:
                continue
            for st, _ in statements(bp["Properties"]["PolicyDocument"]):
                targets = {render(r) for r in as_list(st.get("Resource"))}
                if (st.get("Effect") == "Deny" and st.get("Principal") in ("*", {"AWS": "*"})
                        and st.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") in ("false", False)
                        and {"${StateBucket.Arn}", "${StateBucket.Arn}/*"} <= targets
                        and any(a in ("s3:*", "*") for a in actions(st))):
                    return None
        return "no Deny of every s3 action on the bucket and its objects when aws:SecureTransport is false"

    c.run("state bucket: policy denies requests without TLS", bucket_tls_only)

    # -- alerts, failures, alarms
    def topic_encrypted():
        topics = of_type(res, "AWS::SNS::Topic")
        bad = [t for t, r in topics.items() if not r["Properties"].get("KmsMasterKeyId")]
        return f"unencrypted topics {bad}" if bad or not topics else None

    c.run("alert topic: KMS-encrypted", topic_encrypted)

    def subscriptions_optional():
        subs = of_type(res, "AWS::SNS::Subscription")
        protocols = {r["Properties"]["Protocol"]: r.get("Condition") for r in subs.values()}
        if set(protocols) != {"email", "https"}:
            return f"subscriptions are {protocols}"
        return None if all(protocols.values()) else f"unconditional subscriptions {protocols}"

    c.run("alert topic: e-mail and HTTPS subscriptions, each only when its parameter is set", subscriptions_optional)

    def queues_encrypted():
        queues = of_type(res, "AWS::SQS::Queue")
        bad = [q for q, r in queues.items()
               if not (r["Properties"].get("SqsManagedSseEnabled") or r["Properties"].get("KmsMasterKeyId"))]
        return f"unencrypted queues {bad}" if bad else None

    c.run("queues: server-side encryption", queues_encrypted)

    def async_failures_to_dlq():
        configs = of_type(res, "AWS::Lambda::EventInvokeConfig")
        for r in configs.values():
            p = r["Properties"]
            dest = p.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
            if (p.get("FunctionName") == {"Ref": fn_id} and render(dest) == "${DeadLetterQueue.Arn}"
                    and isinstance(p.get("MaximumRetryAttempts"), int)):
                return None
        return "no EventInvokeConfig sending failures to the DLQ with MaximumRetryAttempts"

    c.run("function: async failures retried, then sent to the DLQ", async_failures_to_dlq)

    def rule_pattern():
        rules = of_type(res, "AWS::Events::Rule")
        for r in rules.values():
            pat = r["Properties"].get("EventPattern", {})
            detail = pat.get("detail", {})
            keys = detail.get("object", {}).get("key", [])
            if (pat.get("source") == ["aws.s3"] and pat.get("detail-type") == ["Object Created"]
                    and detail.get("bucket", {}).get("name") == [{"Ref": "TrailBucketName"}]
                    and keys and all(render(k.get("prefix")).endswith("AWSLogs/") for k in keys)):
                targets = r["Properties"]["Targets"]
                flat = [t for branch in (targets["Fn::If"][1:] if isinstance(targets, dict) else [targets]) for t in branch]
                bad = [t.get("Id") for t in flat if not (t.get("DeadLetterConfig") and t.get("RetryPolicy"))]
                return f"targets without DLQ/retry policy: {bad}" if bad else None
        return "no rule for Object Created in TrailBucketName under AWSLogs/"

    c.run("trigger: EventBridge Object Created rule on the trail bucket, AWSLogs/ prefix, DLQ + retries", rule_pattern)

    def sqs_variant():
        if set(params.get("TriggerMode", {}).get("AllowedValues", [])) != {"eventbridge", "sqs"}:
            return "TriggerMode parameter must allow eventbridge and sqs"
        esms = [r for r in of_type(res, "AWS::Lambda::EventSourceMapping").values() if r.get("Condition") == "UseSqs"]
        if not esms or "ReportBatchItemFailures" not in esms[0]["Properties"].get("FunctionResponseTypes", []):
            return "no SQS event source mapping with ReportBatchItemFailures under UseSqs"
        queue = res.get("TriggerQueue", {})
        if queue.get("Condition") != "UseSqs":
            return "TriggerQueue missing or not conditional"
        if queue["Properties"].get("VisibilityTimeout", 0) < fn.get("Timeout", 0):
            return "trigger queue visibility timeout shorter than the function timeout"
        if "deadLetterTargetArn" not in queue["Properties"].get("RedrivePolicy", {}):
            return "trigger queue has no redrive policy"
        senders = {json.dumps(st.get("Principal"), sort_keys=True): st
                   for qp in of_type(res, "AWS::SQS::QueuePolicy").values()
                   if qp["Properties"]["Queues"] == [{"Ref": "TriggerQueue"}]
                   for st, _ in statements(qp["Properties"]["PolicyDocument"]) if st.get("Effect") == "Allow"}
        for svc in ("s3.amazonaws.com", "events.amazonaws.com"):
            st = senders.get(json.dumps({"Service": svc}))
            if not st or "aws:SourceArn" not in json.dumps(st.get("Condition", {})):
                return f"queue policy does not let {svc} send, scoped by aws:SourceArn"
        return None

    c.run("trigger: SQS variant (queue, redrive, S3/EventBridge senders scoped, partial batch failures)", sqs_variant)

    def alarms():
        wanted = {("AWS/Lambda", "Errors"), ("AWS/Lambda", "Throttles"),
                  ("AWS/SQS", "ApproximateNumberOfMessagesVisible")}
        have = {}
        for r in of_type(res, "AWS::CloudWatch::Alarm").values():
            p = r["Properties"]
            have[(p.get("Namespace"), p.get("MetricName"))] = p
        missing = wanted - set(have)
        if missing:
            return f"missing alarms {sorted(missing)}"
        dlq = have[("AWS/SQS", "ApproximateNumberOfMessagesVisible")]
        if dlq["Dimensions"][0]["Value"] != {"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]}:
            return "the queue-depth alarm does not watch the DLQ"
        silent = [m for m, p in have.items() if {"Ref": "AlertTopic"} not in p.get("AlarmActions", [])]
        return f"alarms that page nobody: {silent}" if silent else None

    c.run("alarms: function errors, throttles, DLQ depth, all to the alert topic", alarms)

    def outputs():
        want = {"FunctionArn", "AlertTopicArn", "StateBucketName", "DeadLetterQueueUrl"}
        missing = want - set(raw.get("Outputs", {}))
        return f"missing outputs {sorted(missing)}" if missing else None

    c.run("outputs: function ARN, topic ARN, state bucket, DLQ URL", outputs)

    # -- what SAM makes of it
    transformed = {}

    def transforms():
        transformed.update(sam_transform(raw))
        types = {r["Type"] for r in transformed["Resources"].values()}
        left = sorted(t for t in types if t.startswith("AWS::Serverless::"))
        return f"untransformed {left}" if left else None

    c.run("sam transform: expands offline", transforms)

    def transformed_least_privilege():
        if not transformed:
            return "no transformed template"
        tres = transformed["Resources"]
        roles = sorted(of_type(tres, "AWS::IAM::Role"))
        extra = sorted(set(of_type(tres, "AWS::IAM::Policy")) | set(of_type(tres, "AWS::IAM::ManagedPolicy")))
        if roles != [role_id] or extra:
            return f"SAM added IAM: roles {roles}, policies {extra}"
        if tres[fn_id]["Properties"].get("Role") != {"Fn::GetAtt": [role_id, "Arn"]}:
            return "transformed function does not use the explicit role"
        bad = [f"{rid}:{a}" for rid, _, st, _ in all_policies(tres) if st.get("Effect") == "Allow"
               for a in actions(st) if "*" in a]
        return f"wildcard actions after transform: {bad}" if bad else None

    c.run("sam transform: adds no role, policy or wildcard action", transformed_least_privilege)

    print(f"{c.passed} passed, {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
