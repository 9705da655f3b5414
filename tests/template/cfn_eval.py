"""A CloudFormation template as one deployment would see it, offline.

`Stack(template, parameters)` checks the parameter values against the
template's own constraints (as CloudFormation refuses a deploy), evaluates
every condition, drops the resources and outputs whose condition is false,
and resolves the intrinsics (Ref, Fn::GetAtt, Fn::Sub, Fn::If, Fn::Join,
Fn::Split, Fn::Select, AWS::NoValue) into plain values. Physical names and
ARNs are made up the way CloudFormation makes them (stack-Logical-SUFFIX), so
policies can be evaluated against concrete requests.

A Ref or GetAtt naming a resource that does not exist in that deployment
raises `Unresolved`: a template that only works in some layouts fails there.
"""

from __future__ import annotations

import json
import re
import zlib
from decimal import Decimal, InvalidOperation

NO_VALUE = object()

class Unresolved(Exception):
    """A reference the deployment cannot satisfy."""


class ParameterRefused(Exception):
    """A parameter value CloudFormation would refuse."""


def load(path: str) -> dict:
    """The template as plain dicts and lists (cfn-lint's YAML reader knows the short forms)."""
    from cfnlint.decode import decode

    raw, matches = decode(str(path))
    if matches or raw is None:
        raise ValueError(f"{path}: {matches}")
    return json.loads(json.dumps(raw))


def parameter_problem(spec: dict, value: str) -> str | None:
    """Why CloudFormation would refuse `value` for a parameter declared as `spec`, or None."""
    value = str(value)
    kind = spec.get("Type", "String")
    if kind == "Number":
        try:
            number = Decimal(value)
        except InvalidOperation:
            return f"{value!r} is not a number"
        if "MinValue" in spec and number < Decimal(str(spec["MinValue"])):
            return f"{value} < MinValue {spec['MinValue']}"
        if "MaxValue" in spec and number > Decimal(str(spec["MaxValue"])):
            return f"{value} > MaxValue {spec['MaxValue']}"
        if "AllowedValues" in spec and number not in {Decimal(str(v)) for v in spec["AllowedValues"]}:
            return f"{value} not in AllowedValues"
        return None
    if kind == "String":
        if "AllowedValues" in spec and value not in [str(v) for v in spec["AllowedValues"]]:
            return f"{value!r} not in AllowedValues {spec['AllowedValues']}"
        # CloudFormation matches AllowedPattern against the whole value.
        if "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], value):
            return f"{value!r} does not match AllowedPattern {spec['AllowedPattern']}"
        if "MinLength" in spec and len(value) < int(spec["MinLength"]):
            return f"{value!r} shorter than MinLength"
        if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
            return f"{value!r} longer than MaxLength"
        return None
    raise ValueError(f"parameter type {kind} is not modelled")


class Stack:
    """One deployment of `template` with `parameters` (the rest take their defaults)."""

    def __init__(self, template: dict, parameters: dict | None = None, *, account: str = "222222222222",
                 region: str = "us-east-1", stack_name: str = "rolewatch", partition: str = "aws"):
        self.template = template
        self.account, self.region, self.stack_name, self.partition = account, region, stack_name, partition
        self.params: dict[str, str] = {}
        given = dict(parameters or {})
        for name, spec in template.get("Parameters", {}).items():
            if name in given:
                value = str(given.pop(name))
            elif "Default" in spec:
                value = str(spec["Default"])
            else:
                raise ParameterRefused(f"{name} has no default and was not given")
            problem = parameter_problem(spec, value)
            if problem:
                raise ParameterRefused(f"{name}: {problem}")
            self.params[name] = value
        if given:
            raise ParameterRefused(f"unknown parameters {sorted(given)}")
        self._conditions: dict[str, bool] = {}
        self.condition_values = {name: self.condition(name) for name in template.get("Conditions", {})}
        self.declared = {rid: r for rid, r in template.get("Resources", {}).items()
                         if "Condition" not in r or self.condition(r["Condition"])}
        self.resources = {rid: self._resource(rid, r) for rid, r in self.declared.items()}
        self.outputs = {oid: self.resolve(o["Value"]) for oid, o in template.get("Outputs", {}).items()
                        if "Condition" not in o or self.condition(o["Condition"])}

    # -- conditions

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            if name not in self.template.get("Conditions", {}):
                raise Unresolved(f"no condition {name}")
            self._conditions[name] = bool(self._cond(self.template["Conditions"][name]))
        return self._conditions[name]

    def _cond(self, expr):
        if isinstance(expr, dict) and len(expr) == 1:
            (fn, arg), = expr.items()
            if fn == "Fn::Equals":
                a, b = (self.resolve(v) for v in arg)
                return str(a) == str(b)
            if fn == "Fn::Not":
                return not self._cond(arg[0])
            if fn == "Fn::And":
                return all(self._cond(v) for v in arg)
            if fn == "Fn::Or":
                return any(self._cond(v) for v in arg)
            if fn == "Condition":
                return self.condition(arg)
        raise Unresolved(f"not a condition expression: {expr!r}")

    # -- names CloudFormation would give

    def physical_name(self, rid: str) -> str:
        res = self.template["Resources"][rid]
        props = res.get("Properties", {})
        kind = res["Type"]
        explicit = {"AWS::S3::Bucket": "BucketName", "AWS::IAM::Role": "RoleName", "AWS::Logs::LogGroup": "LogGroupName",
                    "AWS::Events::EventBus": "Name", "AWS::Events::Rule": "Name", "AWS::SQS::Queue": "QueueName",
                    "AWS::SNS::Topic": "TopicName", "AWS::Serverless::Function": "FunctionName",
                    "AWS::Lambda::Function": "FunctionName", "AWS::CloudWatch::Alarm": "AlarmName"}.get(kind)
        if explicit and explicit in props:
            return str(self.resolve(props[explicit]))
        name = f"{self.stack_name}-{rid}-1A2B3C4D5E6F"
        return name.lower() if kind == "AWS::S3::Bucket" else name

    def _ref_resource(self, rid: str):
        if rid not in self.template.get("Resources", {}):
            raise Unresolved(f"Ref to unknown {rid}")
        if rid not in self.declared:
            raise Unresolved(f"Ref to {rid}, which this deployment does not create")
        kind = self.declared[rid]["Type"]
        name = self.physical_name(rid)
        a, r, p = self.account, self.region, self.partition
        if kind == "AWS::SNS::Topic":
            return f"arn:{p}:sns:{r}:{a}:{name}"
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{r}.amazonaws.com/{a}/{name}"
        if kind == "AWS::KMS::Key":
            return "0a1b2c3d-0000-4000-8000-" + format(zlib.crc32(rid.encode()) % 10**12, "012d")
        return name

    def _get_att(self, rid: str, attr: str):
        if rid not in self.declared:
            raise Unresolved(f"GetAtt {rid}.{attr}: {rid} is not created in this deployment")
        kind = self.declared[rid]["Type"]
        name = self.physical_name(rid)
        a, r, p = self.account, self.region, self.partition
        table = {
            ("AWS::IAM::Role", "Arn"): f"arn:{p}:iam::{a}:role/{name}",
            ("AWS::SQS::Queue", "Arn"): f"arn:{p}:sqs:{r}:{a}:{name}",
            ("AWS::SQS::Queue", "QueueName"): name,
            ("AWS::SNS::Topic", "TopicName"): name,
            ("AWS::SNS::Topic", "TopicArn"): f"arn:{p}:sns:{r}:{a}:{name}",
            ("AWS::S3::Bucket", "Arn"): f"arn:{p}:s3:::{name}",
            ("AWS::KMS::Key", "Arn"): f"arn:{p}:kms:{r}:{a}:key/{self._ref_resource(rid)}",
            ("AWS::Serverless::Function", "Arn"): f"arn:{p}:lambda:{r}:{a}:function:{name}",
            ("AWS::Lambda::Function", "Arn"): f"arn:{p}:lambda:{r}:{a}:function:{name}",
            ("AWS::Logs::LogGroup", "Arn"): f"arn:{p}:logs:{r}:{a}:log-group:{name}:*",
            ("AWS::Events::EventBus", "Arn"): f"arn:{p}:events:{r}:{a}:event-bus/{name}",
            ("AWS::Events::EventBus", "Name"): name,
        }
        if (kind, attr) == ("AWS::Events::Rule", "Arn"):
            bus = self.declared[rid].get("Properties", {}).get("EventBusName")
            bus = self.resolve(bus) if bus is not None else NO_VALUE
            on = "" if bus in (NO_VALUE, "default") else f"{bus}/"
            return f"arn:{p}:events:{r}:{a}:rule/{on}{name}"
        if (kind, attr) not in table:
            raise Unresolved(f"GetAtt {kind}.{attr} is not modelled")
        return table[(kind, attr)]

    def _ref(self, name: str):
        pseudo = {"AWS::AccountId": self.account, "AWS::Region": self.region, "AWS::Partition": self.partition,
                  "AWS::StackName": self.stack_name, "AWS::URLSuffix": "amazonaws.com", "AWS::NoValue": NO_VALUE}
        if name in pseudo:
            return pseudo[name]
        if name in self.params:
            return self.params[name]
        return self._ref_resource(name)

    def _sub(self, text: str, variables: dict) -> str:
        def one(match):
            inner = match.group(1)
            if inner.startswith("!"):
                return "${" + inner[1:] + "}"
            if inner in variables:
                return str(variables[inner])
            if "." in inner and inner not in self.params and not inner.startswith("AWS::"):
                rid, attr = inner.split(".", 1)
                return str(self._get_att(rid, attr))
            return str(self._ref(inner))
        return re.sub(r"\$\{([^}]*)\}", one, text)

    # -- intrinsics

    def resolve(self, value):
        if isinstance(value, list):
            out = [self.resolve(v) for v in value]
            return [v for v in out if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (fn, arg), = value.items()
            if fn == "Ref":
                return self._ref(arg)
            if fn == "Fn::GetAtt":
                rid, attr = arg if isinstance(arg, list) else arg.split(".", 1)
                return self._get_att(rid, attr)
            if fn == "Fn::Sub":
                if isinstance(arg, str):
                    return self._sub(arg, {})
                text, variables = arg
                return self._sub(text, {k: self.resolve(v) for k, v in variables.items()})
            if fn == "Fn::If":
                name, yes, no = arg
                return self.resolve(yes if self.condition(name) else no)
            if fn == "Fn::Join":
                sep, items = arg
                return str(sep).join(str(v) for v in self.resolve(items))
            if fn == "Fn::Split":
                sep, text = arg
                return str(self.resolve(text)).split(sep)
            if fn == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(self.resolve(index))]
            if fn.startswith("Fn::") or fn == "Condition":
                raise Unresolved(f"{fn} is not modelled")
        out = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not NO_VALUE}

    def _resource(self, rid: str, res: dict) -> dict:
        out = {k: v for k, v in res.items() if k not in ("Properties", "Condition")}
        out["Properties"] = self.resolve(res.get("Properties", {}))
        return out

    # -- lookups for checks

    def of_type(self, kind: str) -> dict:
        return {rid: r for rid, r in self.resources.items() if r["Type"] == kind}

    def ref(self, rid: str):
        return self._ref_resource(rid)

    def arn(self, rid: str) -> str:
        return self._get_att(rid, "Arn")
