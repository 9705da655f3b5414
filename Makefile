# rolewatch developer entry points. CI runs `make test` (.ci/run).
#
#   make test           tools, fmt, clippy, all tests (the engine's also on aarch64), template checks, docs checks
#   make test-aarch64   the engine's unit tests built for aarch64 and run under qemu-user
#   make lint-template  cfn-lint, sam validate --lint, tests/template checks
#   make check-docs     every command in README.md and docs/ (scripts/check-docs.py)
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

.PHONY: test tools fmt-check clippy cargo-test test-aarch64 lint-template check-docs sample bench build-lambda

# Closes with one line for the whole run: every cargo test binary's counts
# plus the template and docs checks. A failure has already stopped the run at
# its step, so "failed" is always 0 here; what can still go wrong is a log
# that holds no counts (its output format changed), which would make the
# total quietly short, so that fails the run.
test: tools fmt-check clippy cargo-test test-aarch64 lint-template check-docs
	@awk '
	  /^test result: / { for (i = 1; i <= NF; i++) { if ($$(i+1) ~ /^passed/) p += $$i; if ($$(i+1) ~ /^failed/) f += $$i }; counted[FILENAME] = 1 }
	  /^[0-9]+ passed, [0-9]+ failed$$/ { p += $$1; f += $$3; counted[FILENAME] = 1 }
	  END {
	    for (i = 1; i < ARGC; i++) if (!(ARGV[i] in counted)) { print "make test: no counts in " ARGV[i] > "/dev/stderr"; missing = 1 }
	    printf "total: %d passed, %d failed\n", p, f; exit missing }' \
	  $(LOGS)/cargo-test.log $(LOGS)/cargo-test-aarch64.log $(LOGS)/template.log $(LOGS)/docs.log

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
	cargo test --workspace --features rolewatch-lambda/e2e,rolewatch-cli/e2e 2>&1 | tee $(LOGS)/cargo-test.log
	if [[ -f $(LOGS)/figures.txt ]]; then echo "--- figures ---"; cat $(LOGS)/figures.txt; fi

# The deployed function runs on arm64, where the record scanner takes its NEON
# path: the engine's unit tests (the scanner's property tests among them) are
# cross-built for aarch64 with Debian's linker and run under qemu-user, in the
# same dev profile. Set through cargo's variables here, not a .cargo/config,
# so no other build changes. The cross linker and qemu come from
# `install-tools.sh --aarch64-tests` (apt-get; root or sudo). Emulated code is
# slow: property tests left at proptest's default run 32 cases here (they ran
# 256 natively above); those that set their own count, the scanner's among
# them, keep it. Two engine tests of pure bookkeeping (100,000 remembered
# inputs; 6 x 125 files saved and loaded every way) take over 7 minutes of
# CPU emulated and are left to the native run: nothing in them differs by
# architecture that the state and storage tests here do not cover.
AARCH64 := aarch64-unknown-linux-gnu
test-aarch64:
	scripts/install-tools.sh --aarch64-tests
	mkdir -p $(LOGS)
	CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
	CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu" \
	PROPTEST_CASES=32 \
	  cargo test -p rolewatch --target $(AARCH64) --lib -- \
	    --skip engine::tests::past_the_cap_the_oldest_inputs_are_forgotten_first \
	    --skip engine::tests::lazy_pruning_and_saving_between_inputs_change_nothing \
	  2>&1 | tee $(LOGS)/cargo-test-aarch64.log

lint-template: tools
	cfn-lint $(TEMPLATE) templates/bucket-owner.yaml
	sam validate --lint --template $(TEMPLATE)
	sam validate --lint --template templates/bucket-owner.yaml
	mkdir -p $(LOGS)
	python tests/template/check_template.py $(TEMPLATE) templates/bucket-owner.yaml | tee $(LOGS)/template.log

# The docs' rolewatch commands run with the debug binary (the same code as
# the release one, and already built for the tests); the checker needs the
# venv's botocore and sam.
check-docs: tools
	cargo build --bin rolewatch
	mkdir -p $(LOGS)
	$(VENV)/bin/python scripts/check-docs.py --binary target/debug/rolewatch | tee $(LOGS)/docs.log

sample:
	cargo run --release --bin rolewatch -- replay events/cloudtrail

bench:
	scripts/bench.sh

build-lambda:
	scripts/install-tools.sh --arm64-target
	sam build --template $(TEMPLATE)
