"""Per-layout checks: each layout deployed offline, its trigger wired and
its policies evaluated against concrete requests (see check_template.py)."""

from template_world import *  # noqa: F401,F403 (the shared accounts, layouts and helpers)

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


