"""Checks on the template as written, and on its SAM expansion (see
check_template.py)."""

from template_world import *  # noqa: F401,F403 (the shared accounts, layouts and helpers)

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


