"""Mutations of the template: the defects the checks exist for, each of
which must make its check fail (see check_template.py)."""

from template_world import *  # noqa: F401,F403 (the shared accounts, layouts and helpers)
from layout_checks import *  # noqa: F401,F403
from static_checks import *  # noqa: F401,F403

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


