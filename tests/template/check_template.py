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


import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from template_world import *  # noqa: E402,F401,F403 (the shared accounts, layouts and helpers)
from layout_checks import *  # noqa: E402,F401,F403
from static_checks import *  # noqa: E402,F401,F403
from mutations import *  # noqa: E402,F401,F403

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
