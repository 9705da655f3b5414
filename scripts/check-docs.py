#!/usr/bin/env python3
"""Checks every fenced code block of README.md and docs/*.md, so that no
documented command can rot unnoticed.

Usage: check-docs.py [--binary PATH] [FILE.md ...]

Per block, by its language:

- sh: each simple command (pipes, &&, $(...) and heredocs taken apart) is
  checked by what it is. `rolewatch ...`, `target/*/rolewatch ...` and
  `cargo run [--release] -- ...` are run with the built binary (--binary, else
  $ROLEWATCH_BIN, else target/debug/rolewatch) from the repository root and
  must exit 0, or N when the command's comment says "exit status N" (state
  files and /tmp paths are moved to a scratch folder). Other
  cargo commands: packages and targets exist (cargo metadata), flags exist
  (`cargo <cmd> --help`); `cargo lambda <cmd>`: flags in its --help, binaries
  in the workspace, data files are JSON. `make X`: `make -n X` succeeds.
  `aws <service> <operation> --param ...`: the operation and every parameter
  exist in botocore's service model (with the AWS CLI's own renames),
  required parameters are given, JSON values parse, --query compiles and the
  stack outputs it names are in template.yaml. `sam ...`: the subcommand and
  its flags exist (`--help`, offline); logical ids and parameter overrides
  are in template.yaml. `moto_server`, `python SCRIPT`, `scripts/*.sh`: flags
  exist. `jq FILTER`: the filter compiles (a note instead where jq is not
  installed, as it need not be in CI). A few plain shell utilities
  (cat, echo, diff, ...) are accepted as they are; anything else fails.
- toml: `rolewatch check-config --config <the block>` exits 0.
- json: parses.
- logs-insights: every log message and field the query names is in the
  Lambda's source (lambda/src), or is one Lambda and the logger add.
- text: output or a format, not a command; not checked unless a directive
  says how.

Directives, in an HTML comment on the lines just above a block:

- `<!-- not-checked: REASON -->`: the block cannot be checked offline.
- `<!-- check-docs: replace OLD with NEW -->`: check the block with OLD
  (a placeholder such as path/to/AWSLogs) replaced by NEW.
- `<!-- check-docs: synopsis -->` (text block): each `rolewatch SUB ...`
  line names exactly the options `rolewatch SUB --help` has.
- `<!-- check-docs: exit N -->` (toml block): check-config exits N.
- `<!-- check-docs: summary -->` (text block): the run summary line is what
  `rolewatch replay events/cloudtrail` prints on stderr, up to the throughput.
- `<!-- check-docs: alert -->` (json block): the example alert has the same
  fields as the alerts `rolewatch replay --format json events/cloudtrail`
  prints.

Relative links must point at files that exist and at headings that exist. A
document still being written elsewhere can be declared with
`<!-- pending-doc: NAME.md -->` in the file that links to it: a link to it
is a note while it is missing, and checked like any other once it exists
(then a note says the declaration can go).

Needs Python 3.11; the aws and sam checks need the tools venv (botocore,
jmespath, sam: scripts/install-tools.sh), so run it with .venv/bin/python.
Prints one line per check and ends with "N passed, M failed"; exits 1 when a
check failed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 300

# Accepted as they are: they take no rolewatch-specific arguments.
PLAIN_COMMANDS = {
    "cat", "echo", "diff", "export", "[", "test", "true", "false", ".", "source",
    "mkdir", "cd", "ls", "head", "tail", "sort", "printf", "rm", "cp", "mv", "gzip", "zcat", "find",
}
SHELL_KEYWORDS = {"while", "until", "do", "done", "if", "then", "else", "elif", "fi", "!", "{", "}"}
CONTROL = {"&&", "||", "|", ";", "&", ";;", "(", ")", "|&"}
REDIRECTS = {">", ">>", "<", "<<", "<<<", ">&", "<&", "&>", "&>>", ">|", "<<-"}

# AWS CLI options that every operation takes, and whether they take a value.
AWS_GLOBAL_OPTIONS = {
    "--output": True, "--query": True, "--region": True, "--profile": True, "--endpoint-url": True,
    "--cli-binary-format": True, "--color": True, "--cli-input-json": True, "--cli-read-timeout": True,
    "--cli-connect-timeout": True, "--ca-bundle": True, "--page-size": True, "--max-items": True,
    "--starting-token": True, "--no-cli-pager": False, "--debug": False, "--no-paginate": False,
    "--no-verify-ssl": False, "--no-sign-request": False,
}
AWS_OUTPUT_FORMATS = {"json", "text", "table", "yaml", "yaml-stream"}
# The CLI's names for services whose botocore name differs.
AWS_SERVICE_NAMES = {"s3api": "s3", "configservice": "config"}
# Parameters the AWS CLI renames (awscli/customizations/argrename.py), for
# the operations these docs use.
AWS_ARG_RENAMES = {("sns", "subscribe", "endpoint"): "notification-endpoint"}
# Operations whose CLI form takes positional arguments (an output file).
AWS_POSITIONALS = {("lambda", "invoke"): 1, ("s3", "get-object"): 1}

EXIT_COMMENT = re.compile(r"\bexit status (\d+)\b")
DIRECTIVE = re.compile(r"^\s*<!--\s*(not-checked|check-docs|pending-doc):\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([^`\s]*)")
LINK = re.compile(r"(?<!\!)\[([^\]]*)\]\(([^)\s]+)\)")


def rel(path: Path) -> str:
    return os.path.relpath(path, ROOT)


@dataclass
class Block:
    path: Path
    line: int
    lang: str
    text: str
    directives: list[tuple[str, str]] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{rel(self.path)}:{self.line}"


class Report:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def ok(self, where: str, what: str) -> None:
        self.passed += 1
        print(f"ok    {where}  {what}")

    def fail(self, where: str, what: str, why: str) -> None:
        self.failed += 1
        print(f"FAIL  {where}  {what}")
        for line in why.rstrip().splitlines()[-15:]:
            print(f"        {line}")

    def check(self, where: str, what: str, problems: list[str]) -> None:
        if problems:
            self.fail(where, what, "\n".join(problems))
        else:
            self.ok(where, what)

    def note(self, where: str, what: str) -> None:
        print(f"note  {where}  {what}")


# --- Markdown ---------------------------------------------------------------


def parse_markdown(path: Path) -> tuple[list[Block], list[tuple[int, str]], list[str], list[str]]:
    """Fenced blocks, links outside code (line, target), pending docs and headings' anchors."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    links: list[tuple[int, str]] = []
    pending: list[str] = []
    anchors: list[str] = []
    seen_slugs: dict[str, int] = {}
    i = 0
    while i < len(lines):
        line = lines[i]
        m = FENCE.match(line)
        if m:
            indent, fence, lang = len(m.group(1)), m.group(2), m.group(3)
            body = []
            j = i + 1
            while j < len(lines) and not re.match(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$", lines[j]):
                body.append(lines[j][indent:] if lines[j][:indent].strip() == "" else lines[j].lstrip())
                j += 1
            directives = []
            k = i - 1
            while k >= 0 and (DIRECTIVE.match(lines[k]) or not lines[k].strip()):
                d = DIRECTIVE.match(lines[k])
                if d and d.group(1) != "pending-doc":
                    directives.append((d.group(1), d.group(2)))
                k -= 1
            blocks.append(Block(path, i + 1, lang, "\n".join(body) + "\n", directives[::-1]))
            i = j + 1
            continue
        d = DIRECTIVE.match(line)
        if d and d.group(1) == "pending-doc":
            pending.append(d.group(2))
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            slug = github_slug(heading.group(1))
            n = seen_slugs.get(slug, 0)
            seen_slugs[slug] = n + 1
            anchors.append(slug if n == 0 else f"{slug}-{n}")
        prose = re.sub(r"`[^`]*`", "", line)
        links.extend((i + 1, target) for _, target in LINK.findall(prose))
        i += 1
    return blocks, links, pending, anchors


def github_slug(heading: str) -> str:
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


# --- Shell ------------------------------------------------------------------


@dataclass
class Command:
    argv: list[str]
    env: dict[str, str]
    comment: str
    heredoc: tuple[str, str] | None  # (target file, body)
    line: int


def split_shell(text: str, first_line: int) -> tuple[list[Command], list[str]]:
    """Simple commands of a shell snippet, command substitutions included."""
    raw = text.splitlines()
    logical: list[tuple[int, str, tuple[str, str] | None]] = []
    i = 0
    pending = ""
    start = 0
    while i < len(raw):
        line = raw[i]
        if not pending:
            start = i
        heredoc = None
        m = re.search(r"<<-?\s*(['\"]?)(\w+)\1", line)
        if m:
            delimiter = m.group(2)
            body = []
            i += 1
            while i < len(raw) and raw[i].strip() != delimiter:
                body.append(raw[i])
                i += 1
            target = re.search(r">\s*(\S+)", line)
            heredoc = (target.group(1) if target else "", "\n".join(body) + "\n")
        if line.rstrip().endswith("\\") and not m:
            pending += line.rstrip()[:-1] + " "
            i += 1
            continue
        if open_quote(pending + line):
            # A quoted argument (a jq program, say) goes on over lines.
            pending += line + "\n"
            i += 1
            continue
        logical.append((first_line + start, pending + line, heredoc))
        pending = ""
        i += 1
    commands: list[Command] = []
    errors: list[str] = []
    for lineno, line, heredoc in logical:
        code, comment = split_comment(line)
        try:
            for cmd_text in expand_substitutions(code):
                commands.extend(simple_commands(cmd_text, comment, heredoc, lineno))
        except ValueError as e:
            errors.append(f"line {lineno}: cannot parse {line.strip()!r}: {e}")
    return commands, errors


def scan(text: str) -> tuple[str, str, bool]:
    """The code without its comments, the comments' text, and whether the
    text ends inside a quoted string."""
    code, comments = [], []
    quote = None
    escaped = False
    i = 0
    while i < len(text):
        c = text[i]
        if escaped:
            escaped = False
        elif quote:
            if c == quote:
                quote = None
            elif c == "\\" and quote == '"':
                escaped = True
        elif c == "\\":
            escaped = True
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or text[i - 1] in " \t\n"):
            end = text.find("\n", i)
            end = len(text) if end < 0 else end
            comments.append(text[i + 1 : end].strip())
            i = end
            continue
        code.append(c)
        i += 1
    return "".join(code), " ".join(comments), quote is not None


def open_quote(text: str) -> bool:
    return scan(text)[2]


def split_comment(text: str) -> tuple[str, str]:
    code, comments, _ = scan(text)
    return code, comments


def expand_substitutions(code: str) -> list[str]:
    """The command with each $(...) replaced by a placeholder, then the
    commands inside the substitutions (nested ones too)."""
    out = []
    rest = []
    i = 0
    in_single = False
    while i < len(code):
        c = code[i]
        if in_single:
            in_single = c != "'"
        elif c == "'":
            in_single = True
        elif code.startswith("$(", i):
            depth, j, quote = 1, i + 2, None
            while j < len(code) and depth:
                if quote:
                    if code[j] == quote:
                        quote = None
                elif code[j] in "'\"":
                    quote = code[j]
                elif code[j] == "(":
                    depth += 1
                elif code[j] == ")":
                    depth -= 1
                j += 1
            if depth:
                raise ValueError("unbalanced $(")
            out.extend(expand_substitutions(code[i + 2 : j - 1]))
            rest.append("__SUBSTITUTION__")
            i = j
            continue
        rest.append(c)
        i += 1
    return ["".join(rest)] + out


def simple_commands(code: str, comment: str, heredoc, lineno: int) -> list[Command]:
    lexer = shlex.shlex(code, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    tokens = list(lexer)
    commands = []
    current: list[str] = []
    for token in tokens + [";"]:
        if token in CONTROL:
            if current:
                commands.append(current)
            current = []
        else:
            current.append(token)
    result = []
    for words in commands:
        argv: list[str] = []
        env: dict[str, str] = {}
        skip = False
        for k, word in enumerate(words):
            if skip:
                skip = False
                continue
            if word in REDIRECTS:
                skip = True
                continue
            if word.isdigit() and k + 1 < len(words) and words[k + 1] in REDIRECTS:
                continue
            if not argv and word in SHELL_KEYWORDS:
                continue
            if not argv and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", word):
                name, value = word.split("=", 1)
                env[name] = value
                continue
            argv.append(word)
        if argv:
            result.append(Command(argv, env, comment, heredoc, lineno))
    return result


# --- Checks -----------------------------------------------------------------


class Checker:
    def __init__(self, binary: Path, report: Report) -> None:
        self.binary = binary
        self.report = report
        self._metadata = None
        self._help: dict[tuple[str, ...], tuple[int, str]] = {}
        self._template = None
        self._lambda_source = None
        self._botocore = None
        self.tmp = Path(tempfile.mkdtemp(prefix="check-docs."))
        venv_bin = Path(sys.executable).parent
        self.env = dict(os.environ)
        for name in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"):
            self.env.pop(name, None)
        self.env["SAM_CLI_TELEMETRY"] = "0"
        self.env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        # The venv's tools (sam, cargo-lambda, moto_server) first, as in the Makefile.
        self.env["PATH"] = f"{venv_bin}{os.pathsep}{self.env.get('PATH', '')}"

    # helpers

    def run(self, argv: list[str], cwd: Path = ROOT, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        try:
            p = subprocess.run(
                argv, cwd=cwd, env={**self.env, **(env or {})}, stdin=subprocess.DEVNULL,
                capture_output=True, text=True, timeout=TIMEOUT,
            )
        except FileNotFoundError as e:
            return 127, "", str(e)
        except subprocess.TimeoutExpired:
            return 124, "", f"timed out after {TIMEOUT} s"
        return p.returncode, p.stdout, p.stderr

    def help_text(self, argv: tuple[str, ...]) -> tuple[int, str]:
        if argv not in self._help:
            code, out, err = self.run(list(argv) + ["--help"])
            self._help[argv] = (code, out + err)
        return self._help[argv]

    def metadata(self) -> dict:
        if self._metadata is None:
            code, out, err = self.run(["cargo", "metadata", "--no-deps", "--format-version", "1", "--offline"])
            if code != 0:
                raise RuntimeError(f"cargo metadata failed: {err.strip()}")
            self._metadata = json.loads(out)
        return self._metadata

    def targets(self, kind: str) -> dict[str, str]:
        """Target name -> package name, for one kind of target (bin, example, bench, test)."""
        found = {}
        for package in self.metadata()["packages"]:
            for target in package["targets"]:
                if kind in target["kind"]:
                    found[target["name"]] = package["name"]
        return found

    def template(self) -> dict[str, set[str]]:
        """Top-level keys of each section of template.yaml (Parameters, Resources, Outputs)."""
        if self._template is None:
            sections: dict[str, set[str]] = {}
            section = None
            for line in (ROOT / "template.yaml").read_text(encoding="utf-8").splitlines():
                top = re.match(r"^([A-Za-z]+):", line)
                if top:
                    section = top.group(1)
                    sections.setdefault(section, set())
                    continue
                key = re.match(r"^  ([A-Za-z0-9]+):", line)
                if key and section:
                    sections[section].add(key.group(1))
            self._template = sections
        return self._template

    def lambda_source(self) -> str:
        if self._lambda_source is None:
            self._lambda_source = "\n".join(
                p.read_text(encoding="utf-8") for p in sorted((ROOT / "lambda" / "src").rglob("*.rs"))
            )
        return self._lambda_source

    def botocore(self):
        if self._botocore is None:
            try:
                import botocore.session
                from botocore import xform_name
                import jmespath
            except ImportError:
                raise RuntimeError("botocore and jmespath are not importable: run with .venv/bin/python "
                                   "(scripts/install-tools.sh)")
            self._botocore = (botocore.session.get_session(), xform_name, jmespath)
        return self._botocore

    # blocks

    def block(self, block: Block) -> None:
        kinds = [d[0] for d in block.directives]
        if "not-checked" in kinds:
            reason = dict(block.directives)["not-checked"]
            if not reason:
                self.report.fail(block.where, "not-checked block", "give the reason: <!-- not-checked: why -->")
            else:
                self.report.note(block.where, f"{block.lang or 'block'} not checked: {reason}")
            return
        text = block.text
        options = []
        expected_exit = 0
        for kind, value in block.directives:
            if kind != "check-docs":
                continue
            for directive in filter(None, (d.strip() for d in value.split(";"))):
                m = re.match(r"^replace (\S+) with (\S+)$", directive)
                if m:
                    text = text.replace(m.group(1), m.group(2))
                elif directive in ("synopsis", "alert", "summary"):
                    options.append(directive)
                elif re.match(r"^exit \d+$", directive):
                    expected_exit = int(directive.split()[1])
                else:
                    self.report.fail(block.where, "directive", f"unknown check-docs directive: {directive!r}")
                    return
        try:
            if block.lang in ("sh", "bash", "shell"):
                self.shell_block(block, text)
            elif block.lang == "toml":
                self.toml_block(block, text, expected_exit)
            elif block.lang == "json":
                self.json_block(block, text, "alert" in options)
            elif block.lang == "logs-insights":
                self.insights_block(block, text)
            elif block.lang == "text":
                if "synopsis" in options:
                    self.synopsis_block(block, text)
                if "summary" in options:
                    self.summary_block(block, text)
            elif not block.lang:
                self.report.fail(block.where, "fenced block", "give the block a language: sh, toml, json, "
                                 "logs-insights, or text for output and formats")
            else:
                self.report.fail(block.where, f"{block.lang} block", f"unknown language {block.lang!r}: the "
                                 "checker knows sh, toml, json, logs-insights and text")
        except RuntimeError as e:
            self.report.fail(block.where, f"{block.lang} block", str(e))

    def toml_block(self, block: Block, text: str, expected: int) -> None:
        path = self.tmp / f"block-{block.line}.toml"
        path.write_text(text, encoding="utf-8")
        code, out, err = self.run([str(self.binary), "check-config", "--config", str(path)])
        problems = [] if code == expected else [f"rolewatch check-config exited {code}, the doc says {expected}:", err]
        self.report.check(block.where, f"toml: rolewatch check-config (exit {expected})", problems)

    def summary_block(self, block: Block, text: str) -> None:
        # The figures before the throughput, which varies, must be what a
        # replay of the samples prints.
        code, out, err = self.run([str(self.binary), "replay", "events/cloudtrail"])
        real = err.strip().splitlines()[-1].split("throughput:")[0] if err.strip() else ""
        documented = text.strip().split("throughput:")[0]
        problems = [] if documented == real else [f"a replay of events/cloudtrail prints:", real]
        self.report.check(block.where, "summary line of rolewatch replay events/cloudtrail", problems)

    def json_block(self, block: Block, text: str, alert: bool) -> None:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            self.report.fail(block.where, "json", f"does not parse: {e}")
            return
        if not alert:
            self.report.ok(block.where, "json parses")
            return
        code, out, err = self.run([str(self.binary), "replay", "--format", "json", "events/cloudtrail"])
        problems = []
        if code != 0 or not out.strip():
            problems.append(f"rolewatch replay --format json events/cloudtrail exited {code}: {err}")
        else:
            real = json.loads(out.splitlines()[0])
            if set(real) != set(value):
                problems.append(f"fields differ from a real alert: documented only {sorted(set(value) - set(real))}, "
                                f"real only {sorted(set(real) - set(value))}")
            if value.get("schema") != real.get("schema"):
                problems.append(f"schema {value.get('schema')!r}, real alerts say {real.get('schema')!r}")
        self.report.check(block.where, "json: an alert with the fields real alerts have", problems)

    def synopsis_block(self, block: Block, text: str) -> None:
        for line in text.splitlines():
            words = line.split()
            if len(words) < 2 or words[0] != "rolewatch":
                continue
            code, help_out = self.help_text((str(self.binary), words[1]))
            problems = []
            if code != 0:
                problems.append(f"rolewatch {words[1]} --help exited {code}")
            documented = set(re.findall(r"--[a-z][a-z-]*", line))
            real = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", help_out)) - {"--help"}
            if documented - real:
                problems.append(f"not options of rolewatch {words[1]}: {sorted(documented - real)}")
            if real - documented:
                problems.append(f"options missing from the synopsis: {sorted(real - documented)}")
            self.report.check(block.where, f"synopsis: rolewatch {words[1]}", problems)

    def insights_block(self, block: Block, text: str) -> None:
        source = self.lambda_source()
        problems = []
        for message in re.findall(r'message\s*=\s*"([^"]+)"', text):
            if f'"{message}"' not in source:
                problems.append(f"no log line \"{message}\" in lambda/src")
        for pattern in re.findall(r"message\s+like\s+/\^?([^/]+)/", text):
            if f'"{pattern}' not in source:
                problems.append(f"no log line starting \"{pattern}\" in lambda/src")
        bare = re.sub(r'"[^"]*"|/[^/]*/|@\w+|\b\w+(\.\w+)+', " ", text)
        bare = re.sub(r"\bas\s+\w+", " ", bare)
        keywords = {"fields", "filter", "sort", "stats", "by", "as", "desc", "asc", "and", "or", "in", "like",
                    "not", "count", "sum", "avg", "max", "min", "pct", "bin", "limit", "display", "parse"}
        # Written by the logger (level, message) or by Lambda (type, record.*).
        given = {"level", "message", "type"}
        for name in sorted(set(re.findall(r"\b[a-z_][a-z0-9_]*\b", bare)) - keywords - given):
            if not re.search(rf"\b{name}\b", source):
                problems.append(f"no log field {name} in lambda/src")
        self.report.check(block.where, "logs-insights: messages and fields exist", problems)

    def shell_block(self, block: Block, text: str) -> None:
        commands, errors = split_shell(text, block.line + 1)
        for error in errors:
            self.report.fail(block.where, "sh", error)
        workdir = Path(tempfile.mkdtemp(dir=self.tmp, prefix=f"block-{block.line}."))
        for command in commands:
            where = f"{rel(block.path)}:{command.line}"
            shown = re.sub(r"\s+", " ", " ".join(command.argv))
            shown = shown if len(shown) <= 90 else shown[:87] + "..."
            try:
                self.command(command, where, shown, workdir)
            except RuntimeError as e:
                self.report.fail(where, shown, str(e))

    # commands

    def command(self, c: Command, where: str, shown: str, workdir: Path) -> None:
        name = c.argv[0]
        base = name.rsplit("/", 1)[-1]
        if c.heredoc and c.heredoc[0].endswith(".json"):
            try:
                json.loads(c.heredoc[1])
                self.report.ok(where, f"heredoc {c.heredoc[0]} parses as JSON")
            except json.JSONDecodeError as e:
                self.report.fail(where, f"heredoc {c.heredoc[0]}", f"does not parse as JSON: {e}")
        if base == "rolewatch":
            self.rolewatch(c.argv[1:], c, where, shown, workdir)
        elif name == "cargo":
            self.cargo(c, where, shown, workdir)
        elif name == "make":
            self.make(c, where, shown)
        elif name == "aws":
            self.report.check(where, shown, self.aws(c.argv))
        elif base == "sam":
            self.report.check(where, shown, self.sam(c.argv))
        elif base == "moto_server":
            self.report.check(where, shown, self.flags_in_help(("moto_server",), c.argv[1:]))
        elif base in ("python", "python3"):
            self.report.check(where, shown, self.python(c.argv))
        elif name.startswith("scripts/") and name.endswith(".sh"):
            self.report.check(where, shown, self.script(c.argv))
        elif re.match(r"^target/[^/]+/examples/[^/]+$", name):
            example = name.rsplit("/", 1)[-1]
            problems = [] if example in self.targets("example") else [f"no example target {example!r}"]
            self.report.check(where, shown, problems)
        elif name == "jq":
            self.jq(c.argv, where, shown)
        elif name in PLAIN_COMMANDS:
            pass
        else:
            self.report.fail(where, shown, f"unknown command {name!r}: teach scripts/check-docs.py to check it, "
                             "or mark the block <!-- not-checked: reason -->")

    def rolewatch(self, args: list[str], c: Command, where: str, shown: str, workdir: Path) -> None:
        expected = int(m.group(1)) if (m := EXIT_COMMENT.search(c.comment)) else 0
        args = list(args)
        for i, arg in enumerate(args):
            # State files go to a scratch folder (one per block, so runs in a
            # block continue each other), never into the repository.
            if i > 0 and args[i - 1] == "--state":
                source = ROOT / arg
                target = workdir / Path(arg).name
                if source.is_file() and not target.exists():
                    shutil.copyfile(source, target)
                args[i] = str(target)
            elif arg.startswith("/tmp/"):
                args[i] = str(workdir / arg[len("/tmp/") :])
        code, out, err = self.run([str(self.binary)] + args)
        problems = []
        if code != expected:
            problems = [f"exited {code}, the doc says {expected}", err]
        self.report.check(where, f"{shown} (exit {expected})", problems)

    def cargo(self, c: Command, where: str, shown: str, workdir: Path) -> None:
        argv = c.argv
        if len(argv) < 2:
            self.report.fail(where, shown, "cargo without a command")
            return
        sub = argv[1]
        if sub == "lambda":
            self.report.check(where, shown, self.cargo_lambda(argv))
            return
        before, after = (argv[2 : argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv[2:], [])
        problems = self.flags_in_help(("cargo", sub), before)
        problems += self.cargo_targets(before)
        if sub == "run":
            bins = [before[i + 1] for i, a in enumerate(before[:-1]) if a == "--bin"]
            packages = [before[i + 1] for i, a in enumerate(before[:-1]) if a in ("-p", "--package")]
            runs_cli = all(b == "rolewatch" for b in bins) and all(
                self.targets("bin").get("rolewatch") == p for p in packages
            )
            if problems or not runs_cli:
                self.report.check(where, shown, problems or ["cargo run of something other than rolewatch"])
                return
            # The debug binary stands in for the release one: the same code.
            self.rolewatch(after, c, where, shown, workdir)
            return
        self.report.check(where, shown, problems)

    def cargo_targets(self, args: list[str]) -> list[str]:
        problems = []
        kinds = {"--bin": "bin", "--example": "example", "--bench": "bench", "--test": "test"}
        packages = {p["name"] for p in self.metadata()["packages"]}
        for i, arg in enumerate(args[:-1]):
            value = args[i + 1]
            if arg in ("-p", "--package") and value not in packages:
                problems.append(f"no package {value!r} in the workspace ({', '.join(sorted(packages))})")
            if arg in kinds and value not in self.targets(kinds[arg]):
                problems.append(f"no {kinds[arg]} target {value!r} in the workspace")
        return problems

    def cargo_lambda(self, argv: list[str]) -> list[str]:
        if len(argv) < 3:
            return ["cargo lambda without a command"]
        sub = argv[2]
        args = argv[3:]
        code, _ = self.help_text(("cargo", "lambda", sub))
        if code != 0:
            return [f"cargo lambda {sub} --help exited {code} (is cargo-lambda installed? scripts/install-tools.sh)"]
        problems = self.flags_in_help(("cargo", "lambda", sub), args)
        problems += self.cargo_targets(args)
        for i, arg in enumerate(args[:-1]):
            if arg == "--data-file":
                path = ROOT / args[i + 1]
                if not path.is_file():
                    problems.append(f"no data file {args[i + 1]}")
                else:
                    try:
                        json.loads(path.read_text(encoding="utf-8"))
                    except json.JSONDecodeError as e:
                        problems.append(f"{args[i + 1]} is not JSON: {e}")
        if sub == "invoke":
            positional = [a for i, a in enumerate(args) if not a.startswith("-") and (i == 0 or not args[i - 1].startswith("-"))]
            for function in positional:
                if function not in self.targets("bin"):
                    problems.append(f"no binary {function!r} in the workspace to invoke")
        return problems

    def make(self, c: Command, where: str, shown: str) -> None:
        targets = [a for a in c.argv[1:] if not a.startswith("-") and "=" not in a]
        problems = []
        for target in targets or [""]:
            code, out, err = self.run(["make", "-n"] + ([target] if target else []), env=c.env)
            if code != 0:
                problems.append(f"make -n {target} exited {code}: {err.strip()}")
        self.report.check(where, shown, problems)

    def flags_in_help(self, command: tuple[str, ...], args: list[str]) -> list[str]:
        code, text = self.help_text(command)
        if code != 0:
            return [f"{' '.join(command)} --help exited {code}: {text.strip()[-300:]}"]
        problems = []
        for arg in args:
            if arg == "--" or not arg.startswith("-") or arg == "-":
                continue
            flag = arg.split("=", 1)[0]
            if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text):
                problems.append(f"{' '.join(command)} has no option {flag}")
        return problems

    def python(self, argv: list[str]) -> list[str]:
        if len(argv) < 2 or argv[1].startswith("-"):
            return ["python without a script"]
        script = (ROOT / argv[1]).resolve()
        if not script.is_file() or not script.is_relative_to(ROOT):
            return [f"no script {argv[1]} in the repository"]
        problems = self.flags_in_help((sys.executable, argv[1]), argv[2:])
        code, text = self.help_text((sys.executable, argv[1]))
        choices = re.search(r"\{([\w,-]+)\}", text)
        positional = [a for a in argv[2:] if not a.startswith("-")]
        if choices and positional and positional[0] not in choices.group(1).split(","):
            problems.append(f"{argv[1]} has no command {positional[0]!r} ({choices.group(1)})")
        return problems

    def script(self, argv: list[str]) -> list[str]:
        script = ROOT / argv[0]
        if not script.is_file() or not os.access(script, os.X_OK):
            return [f"{argv[0]} is not an executable script in the repository"]
        source = script.read_text(encoding="utf-8")
        return [f"{argv[0]} does not know {a}" for a in argv[1:] if a.startswith("-") and a not in source]

    def jq(self, argv: list[str], where: str, shown: str) -> None:
        if not shutil.which("jq", path=self.env["PATH"]):
            self.report.note(where, f"{shown}: jq is not installed here, filter not compiled")
            return
        args, i, filt = [], 1, None
        while i < len(argv):
            a = argv[i]
            if a in ("--arg", "--argjson"):
                args += [a, argv[i + 1], "null" if a == "--argjson" else "x"]
                i += 3
                continue
            if a.startswith("-"):
                i += 1
                continue
            filt = a
            break
        if filt is None:
            self.report.fail(where, shown, "jq without a filter")
            return
        code, out, err = self.run(["jq", "-n"] + args + [filt])
        # Exit 3 is a compile error; a filter run on null input may fail otherwise (5).
        problems = [f"the filter does not compile: {err.strip()}"] if code == 3 else []
        self.report.check(where, f"{shown} (filter compiles)", problems)

    def sam(self, argv: list[str]) -> list[str]:
        words = []
        for a in argv[1:3]:
            if a.startswith("-"):
                break
            words.append(a)
        if not words:
            return ["sam without a command"]
        command = ("sam", *words)
        code, text = self.help_text(command)
        if len(words) == 2 and (code != 0 or f"sam {words[0]} {words[1]}" not in text):
            command = ("sam", words[0])
            code, text = self.help_text(command)
        args = argv[len(command) :]
        problems = self.flags_in_help(command, args)
        template = self.template()
        option = None  # the option the words that follow belong to
        for arg in args:
            if arg.startswith("-"):
                option = arg
            elif option == "--parameter-overrides":
                # Key=Value, or ParameterKey=Key,ParameterValue=Value; one or more.
                for pair in arg.split():
                    key = re.sub(r"^ParameterKey=", "", pair).split("=", 1)[0].split(",", 1)[0]
                    if key not in template.get("Parameters", set()):
                        problems.append(f"template.yaml has no parameter {key}")
            elif option is None and command[1:] == ("local", "invoke"):
                # The function's logical id comes before any option.
                if arg not in template.get("Resources", set()):
                    problems.append(f"template.yaml has no resource {arg}")
        return problems

    def aws(self, argv: list[str]) -> list[str]:
        session, xform_name, jmespath = self.botocore()
        if len(argv) < 3:
            return ["aws needs a service and an operation"]
        cli_service, cli_operation = argv[1], argv[2]
        service = AWS_SERVICE_NAMES.get(cli_service, cli_service)
        if service not in session.get_available_services():
            return [f"no AWS service {cli_service!r} in botocore (a CLI customization such as `aws s3 sync`? "
                    "mark the block not-checked)"]
        model = session.get_service_model(service)
        operations = {xform_name(op, "-"): op for op in model.operation_names}
        if cli_operation not in operations:
            return [f"aws {cli_service} has no operation {cli_operation!r}"]
        operation = model.operation_model(operations[cli_operation])
        shape = operation.input_shape
        members = {}
        if shape is not None:
            for member, member_shape in shape.members.items():
                cli_name = xform_name(member, "-")
                cli_name = AWS_ARG_RENAMES.get((service, cli_operation, cli_name), cli_name)
                members[f"--{cli_name}"] = (member, member_shape)
        problems = []
        given = set()
        positional = 0
        args = argv[3:]
        i = 0
        while i < len(args):
            arg = args[i]
            if arg in AWS_GLOBAL_OPTIONS:
                value = args[i + 1] if AWS_GLOBAL_OPTIONS[arg] and i + 1 < len(args) else None
                if AWS_GLOBAL_OPTIONS[arg] and value is None:
                    problems.append(f"{arg} needs a value")
                if arg == "--output" and value not in AWS_OUTPUT_FORMATS:
                    problems.append(f"--output {value!r} is not one of {sorted(AWS_OUTPUT_FORMATS)}")
                if arg == "--cli-binary-format" and value not in ("base64", "raw-in-base64-out"):
                    problems.append(f"--cli-binary-format {value!r} is not base64 or raw-in-base64-out")
                if arg == "--query" and value is not None:
                    problems += self.query(value, jmespath)
                i += 2 if AWS_GLOBAL_OPTIONS[arg] else 1
                continue
            if arg.startswith("--"):
                bare = "--" + arg[len("--no-") :] if arg.startswith("--no-") else arg
                if arg not in members and bare in members and members[bare][1].type_name == "boolean":
                    given.add(members[bare][0])
                    i += 1
                    continue
                if arg not in members:
                    problems.append(f"aws {cli_service} {cli_operation} has no parameter {arg}")
                    i += 1
                    continue
                member, member_shape = members[arg]
                given.add(member)
                if member_shape.type_name == "boolean":
                    i += 1
                    continue
                values = []
                i += 1
                while i < len(args) and not args[i].startswith("--"):
                    values.append(args[i])
                    i += 1
                    if member_shape.type_name != "list":
                        break
                if not values:
                    problems.append(f"{arg} needs a value")
                for value in values:
                    problems += self.aws_value(arg, value, member_shape)
                continue
            positional += 1
            i += 1
        allowed = AWS_POSITIONALS.get((service, cli_operation), 0)
        if positional > allowed:
            problems.append(f"aws {cli_service} {cli_operation} takes {allowed} positional argument(s), got {positional}")
        if shape is not None:
            for member in shape.required_members:
                if member not in given:
                    problems.append(f"aws {cli_service} {cli_operation} needs --{xform_name(member, '-')}")
        return problems

    def aws_value(self, arg: str, value: str, shape) -> list[str]:
        if shape.type_name == "list":
            shape = shape.member
        # A JSON document, whatever the shape: a string parameter can hold one
        # too (an SNS FilterPolicy as --attribute-value).
        if value.startswith(('{"', '["', "[{")) or (
            value.startswith(("{", "[")) and shape.type_name in ("structure", "map", "list")
        ):
            try:
                parsed = json.loads(value)
            except json.JSONDecodeError as e:
                return [f"{arg}: the JSON value does not parse: {e}"]
            # Map values that are JSON documents themselves (an SNS FilterPolicy).
            if isinstance(parsed, dict):
                for key, inner in parsed.items():
                    if isinstance(inner, str) and inner.lstrip().startswith(("{", "[")):
                        try:
                            json.loads(inner)
                        except json.JSONDecodeError as e:
                            return [f"{arg}: {key} is not valid JSON: {e}"]
            return []
        if shape.type_name == "structure" and "=" in value and not value.startswith("file://"):
            keys = [part.split("=", 1)[0] for part in value.split(",") if "=" in part]
            unknown = [k for k in keys if k not in shape.members]
            if unknown:
                return [f"{arg}: {unknown} not among {sorted(shape.members)}"]
        return []

    def query(self, query: str, jmespath) -> list[str]:
        try:
            jmespath.compile(query)
        except Exception as e:  # jmespath raises its own ParseError family
            return [f"--query {query!r} does not compile: {e}"]
        outputs = self.template().get("Outputs", set())
        return [f"template.yaml has no output {key}" for key in re.findall(r"OutputKey=='(\w+)'", query)
                if key not in outputs]

    # links

    def links(self, path: Path, links: list[tuple[int, str]], pending: list[str], anchors_of) -> None:
        for lineno, target in links:
            if re.match(r"^[a-z]+:", target):
                continue
            where = f"{rel(path)}:{lineno}"
            file_part, _, anchor = target.partition("#")
            resolved = (path.parent / file_part).resolve() if file_part else path
            problems = []
            if file_part and not resolved.exists():
                if Path(file_part).name in pending:
                    self.report.note(where, f"link to {file_part}: pending, being written elsewhere")
                    continue
                problems.append(f"{file_part} does not exist")
            elif anchor:
                if resolved.suffix != ".md":
                    problems.append(f"an anchor into {file_part}, which is not markdown")
                elif anchor not in anchors_of(resolved):
                    problems.append(f"no heading #{anchor} in {rel(resolved)}")
            self.report.check(where, f"link {target}", problems)
        for name in pending:
            if (path.parent / name).exists():
                self.report.note(rel(path), f"{name} exists now: its pending-doc comment can go")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path, help="markdown files (default README.md docs/*.md)")
    parser.add_argument("--binary", type=Path,
                        default=Path(os.environ.get("ROLEWATCH_BIN", ROOT / "target" / "debug" / "rolewatch")))
    options = parser.parse_args()
    files = [f.resolve() for f in options.files] or [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
    binary = options.binary.resolve()
    report = Report()
    if not os.access(binary, os.X_OK):
        report.fail(str(binary), "rolewatch binary", "not built: cargo build --bin rolewatch (or pass --binary)")
        print(f"{report.passed} passed, {report.failed} failed")
        return 1
    checker = Checker(binary, report)
    parsed: dict[Path, tuple] = {}

    def parse(path: Path):
        if path not in parsed:
            parsed[path] = parse_markdown(path)
        return parsed[path]

    try:
        for path in files:
            blocks, links, pending, _ = parse(path)
            for block in blocks:
                checker.block(block)
            checker.links(path, links, pending, lambda p: parse(p)[3] if p.is_file() else [])
    finally:
        shutil.rmtree(checker.tmp, ignore_errors=True)
    print(f"{report.passed} passed, {report.failed} failed")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
