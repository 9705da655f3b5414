# rolewatch developer entry points. CI runs `make test` (.ci/run).
#
#   make test           tools, fmt, clippy, all tests, template checks
#   make lint-template  cfn-lint, sam validate --lint, tests/template checks
#   make sample         replay the sample CloudTrail files in events/cloudtrail
#   make bench          scripts/bench.sh
#   make build-lambda   sam build (release, arm64) into .aws-sam/
#   make tools          only install the pinned tools into .venv

# Every recipe runs in one bash with -e, so a failing command fails the target
# (and make stops), and pipefail keeps a failure inside a pipe visible.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.ONESHELL:
.DELETE_ON_ERROR:
MAKEFLAGS += --no-builtin-rules

VENV := $(CURDIR)/.venv
# The pinned tools (moto_server, cargo lambda + zig, cfn-lint, sam) come
# first on PATH for every recipe, and Rust tests find them through either
# PATH or TEST_TOOLS_BIN.
export PATH := $(VENV)/bin:$(PATH)
export TEST_TOOLS_BIN := $(VENV)/bin
# sam: no telemetry, and a region for the offline validation it does.
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1

TEMPLATE := template.yaml
# Test output is kept here so that `make test` can close with one total.
LOGS := $(CURDIR)/target/make-test

.PHONY: test tools fmt-check clippy cargo-test lint-template sample bench build-lambda

# Closes with one line for the whole run: every cargo test binary's counts
# plus the template checks (each step already failed the run on any failure).
test: tools fmt-check clippy cargo-test lint-template
	@cat $(LOGS)/cargo-test.log $(LOGS)/template.log | awk '
	  /^test result: / { for (i = 1; i <= NF; i++) { if ($$(i+1) ~ /^passed/) p += $$i; if ($$(i+1) ~ /^failed/) f += $$i } }
	  /^[0-9]+ passed, [0-9]+ failed$$/ { p += $$1; f += $$3 }
	  END { printf "total: %d passed, %d failed\n", p, f; exit (f > 0) }'

tools:
	scripts/install-tools.sh

fmt-check:
	cargo fmt --all --check

clippy:
	cargo clippy --workspace --all-targets -- -D warnings

# One dev profile for the whole test run (no --release): nothing is built twice.
# Tests that measure (the fault matrix, the load test) append their figures to
# figures.txt; cargo hides a passing test's output, so it is shown here.
cargo-test: tools
	mkdir -p $(LOGS)
	rm -f $(LOGS)/figures.txt
	cargo test --workspace 2>&1 | tee $(LOGS)/cargo-test.log
	if [[ -f $(LOGS)/figures.txt ]]; then echo "--- figures ---"; cat $(LOGS)/figures.txt; fi

lint-template: tools
	cfn-lint $(TEMPLATE) templates/bucket-owner.yaml
	sam validate --lint --template $(TEMPLATE)
	sam validate --lint --template templates/bucket-owner.yaml
	mkdir -p $(LOGS)
	python tests/template/check_template.py $(TEMPLATE) templates/bucket-owner.yaml | tee $(LOGS)/template.log

sample:
	cargo run --release --bin rolewatch -- replay events/cloudtrail

bench:
	scripts/bench.sh

build-lambda:
	scripts/install-tools.sh --arm64-target
	sam build --template $(TEMPLATE)
