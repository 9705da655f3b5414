"""How AWS evaluates the two kinds of rule the templates hold, modelled for tests.

- IAM policy evaluation (identity and resource policies, KMS key policies):
  `*` and `?` wildcards in actions, resources and *Like/Arn* conditions, the
  condition operators the templates use (with AWS's rule for a key missing
  from the request: false, except for the negated operators, where it is
  true), explicit deny first, and the cross-account rule (both the identity
  and the resource policy must allow).
- EventBridge event patterns: exact values, `prefix`, `suffix`, `wildcard`,
  `anything-but`, `exists`, `equals-ignore-case`, nested objects and arrays.

Only what the templates use is modelled; anything else raises, so a template
cannot quietly grow past what its tests understand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# ------------------------------------------------------------------ IAM


def iam_wildcard(pattern: str, value: str, ignore_case: bool = False) -> bool:
    """IAM's glob: `*` any run of characters (`/` included), `?` exactly one."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.DOTALL | (re.IGNORECASE if ignore_case else 0)) is not None


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


@dataclass
class Request:
    """One API call: who, what, on which resource, with which context keys."""
    action: str
    resource: str
    principal_arn: str | None = None      # an IAM role or user (None for a service)
    service: str | None = None            # a service principal, e.g. cloudwatch.amazonaws.com
    resource_account: str | None = None   # the account that owns the resource
    context: dict = field(default_factory=dict)

    @property
    def principal_account(self) -> str | None:
        return self.principal_arn.split(":")[4] if self.principal_arn else None

    def keys(self) -> dict:
        """The request context, keys lower-cased (condition keys are case-insensitive)."""
        ctx = {"aws:securetransport": "true"}
        if self.principal_arn:
            ctx["aws:principalarn"] = self.principal_arn
            ctx["aws:principalaccount"] = self.principal_account
        if self.resource_account:
            ctx["aws:resourceaccount"] = self.resource_account
        ctx.update({k.lower(): v for k, v in self.context.items()})
        return ctx


NEGATED = {"StringNotEquals", "StringNotEqualsIgnoreCase", "StringNotLike", "ArnNotEquals", "ArnNotLike"}


def _compare(op: str, want: str, have: str) -> bool:
    if op in ("StringEquals", "StringNotEquals"):
        return want == have
    if op in ("StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase"):
        return want.lower() == have.lower()
    if op in ("StringLike", "StringNotLike", "ArnEquals", "ArnLike", "ArnNotEquals", "ArnNotLike"):
        # IAM treats ArnEquals like ArnLike: wildcards apply in both.
        return iam_wildcard(want, have)
    if op == "Bool":
        return str(want).lower() == str(have).lower()
    raise NotImplementedError(f"condition operator {op}")


def condition_holds(condition: dict, ctx: dict) -> bool:
    for op, entries in condition.items():
        for key, wanted in entries.items():
            have = ctx.get(key.lower())
            wanted = [str(w) for w in as_list(wanted)]
            if op in NEGATED:
                if have is None:
                    continue  # a missing key satisfies a negated operator
                if any(_compare(op, w, str(h)) for w in wanted for h in as_list(have)):
                    return False
            else:
                if have is None:
                    return False
                if not any(_compare(op, w, str(h)) for w in wanted for h in as_list(have)):
                    return False
    return True


def _principal_matches(principal, req: Request) -> str | None:
    """'direct', 'account' (the account root: delegates to IAM) or None."""
    if principal in ("*", {"AWS": "*"}):
        return "direct"
    if not isinstance(principal, dict):
        raise NotImplementedError(f"principal {principal!r}")
    if req.service and req.service in as_list(principal.get("Service", [])):
        return "direct"
    for arn in as_list(principal.get("AWS", [])):
        if req.principal_arn and arn == req.principal_arn:
            return "direct"
        if req.principal_arn and re.fullmatch(r"arn:[a-z-]+:iam::(\d{12}):root", arn):
            if arn.split(":")[4] == req.principal_account:
                return "account"
        if req.principal_arn and re.fullmatch(r"\d{12}", arn) and arn == req.principal_account:
            return "account"
    return None


def statement_applies(st: dict, req: Request) -> bool:
    if "NotAction" in st or "NotResource" in st or "NotPrincipal" in st:
        raise NotImplementedError("NotAction/NotResource/NotPrincipal")
    if not any(iam_wildcard(a, req.action, ignore_case=True) for a in as_list(st.get("Action", []))):
        return False
    if not any(iam_wildcard(r, req.resource) for r in as_list(st.get("Resource", []))):
        return False
    return condition_holds(st.get("Condition", {}), req.keys())


def statements_of(document) -> list[dict]:
    if document is None:
        return []
    if isinstance(document, dict) and "Statement" in document:
        return as_list(document["Statement"])
    return as_list(document)


def decide(req: Request, identity=None, resource=None, *, kms: bool = False) -> str:
    """'allow', 'deny' (explicit) or 'implicit' (nothing allows).

    `identity`: the principal's IAM policy documents (None for a service
    principal, or when the caller has none). `resource`: the resource's
    policy document. `kms=True`: a key policy, which must allow the principal
    itself or delegate to its account (the root), in which case IAM must also allow.
    """
    id_sts = [st for doc in (identity or []) for st in statements_of(doc)]
    res_sts = statements_of(resource)
    id_allow = False
    res_allow = {"direct": False, "account": False}
    for st in id_sts:
        if statement_applies(st, req):
            if st["Effect"] == "Deny":
                return "deny"
            id_allow = True
    for st in res_sts:
        how = _principal_matches(st.get("Principal"), req)
        if how and statement_applies(st, req):
            if st["Effect"] == "Deny":
                return "deny"
            res_allow[how] = True
    if req.service:
        return "allow" if res_allow["direct"] else "implicit"
    same_account = req.principal_account == req.resource_account
    if kms:
        return "allow" if res_allow["direct"] or (res_allow["account"] and id_allow) else "implicit"
    if same_account:
        return "allow" if id_allow or res_allow["direct"] else "implicit"
    return "allow" if id_allow and (res_allow["direct"] or res_allow["account"]) else "implicit"


# ------------------------------------------------------------------ EventBridge


def eb_wildcard(pattern: str, value: str) -> bool:
    """EventBridge's `wildcard`: `*` matches any run of characters, `/` included; `\\*` is a star."""
    regex, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            regex += re.escape(pattern[i + 1])
            i += 2
            continue
        regex += ".*" if c == "*" else re.escape(c)
        i += 1
    return re.fullmatch(regex, value, re.DOTALL) is not None


def wildcard_problem(pattern: str) -> str | None:
    """What EventBridge refuses in a wildcard pattern (consecutive stars)."""
    if "**" in pattern:
        return f"{pattern!r}: consecutive wildcard characters"
    return None


def _leaf_matches(matcher, value) -> bool:
    if isinstance(matcher, dict):
        if len(matcher) != 1:
            raise NotImplementedError(f"matcher {matcher!r}")
        (kind, arg), = matcher.items()
        if kind == "exists":
            raise AssertionError("exists is handled by the caller")
        if value is None:
            return False
        if kind == "prefix":
            if isinstance(arg, dict):
                return str(value).lower().startswith(str(arg["equals-ignore-case"]).lower())
            return isinstance(value, str) and value.startswith(arg)
        if kind == "suffix":
            return isinstance(value, str) and value.endswith(arg)
        if kind == "wildcard":
            return isinstance(value, str) and eb_wildcard(arg, value)
        if kind == "equals-ignore-case":
            return isinstance(value, str) and value.lower() == str(arg).lower()
        if kind == "anything-but":
            return not any(_leaf_matches(a, value) for a in as_list(arg))
        raise NotImplementedError(f"matcher {kind}")
    return value == matcher


def _field_matches(matchers: list, value) -> bool:
    """A list of matchers is an OR; an array value matches when any element does."""
    for m in matchers:
        if isinstance(m, dict) and "exists" in m:
            if (value is not None) == bool(m["exists"]):
                return True
            continue
        for v in (value if isinstance(value, list) else [value]):
            if _leaf_matches(m, v):
                return True
    return False


def eb_matches(pattern: dict, event: dict) -> bool:
    """Does `event` match the EventBridge `pattern`? Every field named must match (AND)."""
    for key, want in pattern.items():
        have = event.get(key) if isinstance(event, dict) else None
        if isinstance(want, dict):
            if not eb_matches(want, have if isinstance(have, dict) else {}):
                return False
        elif isinstance(want, list):
            if not _field_matches(want, have):
                return False
        else:
            raise ValueError(f"pattern field {key}: {want!r} is neither an object nor an array")
    return True


def pattern_leaves(pattern: dict):
    """Every (path, matcher) in a pattern, to look for malformed matchers."""
    for key, want in pattern.items():
        if isinstance(want, dict):
            for path, m in pattern_leaves(want):
                yield (key,) + path, m
        else:
            for m in as_list(want):
                yield (key,), m
