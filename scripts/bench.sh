#!/usr/bin/env bash
# rolewatch performance benchmark (`make bench`): builds its own workload
# into bench-work/ (gitignored), runs each comparison side by side and prints
# the figures with PASS/FAIL per target from issues 4 and 20: replay at most
# 0.30x the wall time of `gzip -dc` on the same file, peak memory under 64 MB.
#
# Ratios, not absolute times, are the targets: the machine is shared and noisy,
# so each pair runs interleaved RUNS times and the medians are compared.
#
# The Lambda section streams one >1 GiB (decompressed) object from moto_server
# through the deployed handler (lambda/examples/bench_s3_object.rs), then one
# that is 90% role assumptions (180,000 of them), and checks the process's
# peak RSS for each against the smallest Lambda memory, 128 MB.
#
# Environment: RUNS (default 5), LAMBDA_RUNS (default 3), STATE_RUNS (default 3),
# BENCH_WORK (default bench-work), QUICK=1 (only gzip -dc against replay on
# the 150k-record file: its ratio and peak memory, a few minutes).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
runs=${RUNS:-5}
lambda_runs=${LAMBDA_RUNS:-3}
state_runs=${STATE_RUNS:-3}
work=${BENCH_WORK:-bench-work}
mkdir -p "$work"
# Absolute: `cargo bench` runs the state benchmark from engine/, not from here.
work=$(cd "$work" && pwd)

# The team's generator when the shared tree is there, else the committed copy.
generator=../shared/tools/gen_cloudtrail.py
[[ -f $generator ]] || generator=scripts/gen_cloudtrail.py

if [[ ! -x /usr/bin/time ]]; then
    echo "bench: installing GNU time for peak RSS" >&2
    apt-get install -y -qq time >/dev/null || { echo "bench: need GNU time (/usr/bin/time)" >&2; exit 2; }
fi

generate() { # generate TARGET ARGS...: once; a finished target is reused
    local target=$1
    shift
    if [[ ! -e $work/$target.done ]]; then
        echo "bench: generating $target ($*)" >&2
        rm -rf "${work:?}/$target"
        python3 "$generator" "$@" "$work/$target" >&2
        touch "$work/$target.done"
    fi
}
generate big.json.gz --records 150000 --seed 7
if [[ ${QUICK:-0} == 1 ]]; then
    echo "bench: cargo build --release" >&2
    cargo build --release --quiet --bin rolewatch
    rm -f "$work"/quick_*.runs
    echo "bench: $runs interleaved runs of gzip -dc and replay" >&2
    for ((i = 1; i <= runs; i++)); do
        for name in gzip replay; do
            cmd=(gzip -dc "$work/big.json.gz")
            [[ $name == replay ]] && cmd=("$root/target/release/rolewatch" replay --format json "$work/big.json.gz")
            /usr/bin/time -f "%e %M %U %S" -o "$work/quick.last" "${cmd[@]}" >/dev/null 2>"$work/quick.stderr"
            cat "$work/quick.last" >>"$work/quick_$name.runs"
        done
    done
    exec python3 - "$work" "$runs" <<'EOF'
import os, statistics, sys
work, runs = sys.argv[1], sys.argv[2]
rows = {name: [[float(x) for x in l.split()] for l in open(f"{work}/quick_{name}.runs")] for name in ("gzip", "replay")}
wall = {name: statistics.median(r[0] for r in rs) for name, rs in rows.items()}
cpu = {name: statistics.median(r[2] + r[3] for r in rs) for name, rs in rows.items()}
rss = max(r[1] for r in rows["replay"]) / 1024
model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"machine: {os.cpu_count()} CPUs, {model}; load average now {open('/proc/loadavg').read().split()[0]}")
print(f"medians of {runs} interleaved runs: gzip -dc {wall['gzip']:.2f} s (CPU {cpu['gzip']:.2f} s),"
      f" replay {wall['replay']:.2f} s (CPU {cpu['replay']:.2f} s), replay peak RSS {rss:.1f} MB")
ratio = wall["replay"] / max(wall["gzip"], 0.01)
checks = [("replay / gzip -dc wall time", f"{ratio:.2f}", "<= 0.30", ratio <= 0.30),
          ("  the same in CPU time", f"{cpu['replay'] / max(cpu['gzip'], 0.01):.2f}", "", None),
          ("peak RSS, 150k records", f"{rss:.1f} MB", "< 64 MB", rss < 64)]
for name, got, want, ok in checks:
    print(f"{name:<44} {got:>10} {want:>16}  {'INFO' if ok is None else 'PASS' if ok else 'FAIL'}")
sys.exit(1 if any(c[3] is False for c in checks) else 0)
EOF
fi
generate huge.json.gz --records 750000 --seed 7
generate many --files 500 --records 2000 --seed 7
generate lambda.json.gz --records 880000 --seed 7  # 1,087 MB of JSON (> 1 GiB)
generate lambda-sts.json.gz --records 200000 --sts-share 0.9 --seed 7  # 180,000 role assumptions, 318 MB of JSON

# big.json.gz five times over, each copy with its own event ids: five times
# the bytes and records, the same principals. The generator's own larger
# files bring proportionally more principals, and detector state grows with
# principals; this file shows what grows with size alone.
if [[ ! -e $work/big5.json.gz.done ]]; then
    echo "bench: writing big5.json.gz (big.json.gz five times over)" >&2
    python3 - "$work/big.json.gz" "$work/big5.json.gz" <<'EOF'
import gzip, re, sys
source, target = sys.argv[1:]
text = gzip.open(source, "rb").read()
head, tail = b'{"Records":[', b"]}"
assert text.startswith(head) and text.endswith(tail), "a minified CloudTrail file"
body = text[len(head):-len(tail)]
with gzip.open(target, "wb", compresslevel=6) as out:
    out.write(head)
    for copy in range(5):
        if copy:
            out.write(b",")
        out.write(re.sub(rb'"eventID":"([^"]*)"', lambda m: b'"eventID":"%s-%d"' % (m.group(1), copy), body))
    out.write(tail)
EOF
    touch "$work/big5.json.gz.done"
fi

echo "bench: cargo build --release" >&2
cargo build --release --quiet
rolewatch=$root/target/release/rolewatch
echo "bench: cargo build --release -p rolewatch-lambda --example bench_s3_object" >&2
cargo build --release --quiet -p rolewatch-lambda --example bench_s3_object
bench_s3_object=$root/target/release/examples/bench_s3_object
[[ -x .venv/bin/moto_server ]] || scripts/install-tools.sh  # moto_server for the Lambda section

# Decompressed bytes of gzip files: ISIZE from each file's last member (the
# generator writes one member per file, each far below 4 GiB).
json_bytes() {
    python3 - "$@" <<'EOF'
import os, struct, sys
total = 0
for arg in sys.argv[1:]:
    paths = [os.path.join(d, f) for d, _, fs in os.walk(arg) for f in fs] if os.path.isdir(arg) else [arg]
    for p in paths:
        if p.endswith(".json.gz"):
            with open(p, "rb") as f:
                f.seek(-4, 2)
                total += struct.unpack("<I", f.read(4))[0]
print(total)
EOF
}

# timed NAME CMD...: one run under GNU time; appends "wall_s peak_kb user_s sys_s" to $work/NAME.runs.
timed() {
    local name=$1
    shift
    /usr/bin/time -f "%e %M %U %S" -o "$work/$name.last" "$@" >/dev/null 2>"$work/$name.stderr"
    cat "$work/$name.last" >>"$work/$name.runs"
}
median_col() { # median_col NAME COLUMN (column 0: CPU seconds, user + sys)
    awk -v c="$2" '{print (c == 0 ? $3 + $4 : $c)}' "$work/$1.runs" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'
}

rm -f "$work"/*.runs
echo "bench: $runs interleaved runs of each pair" >&2
for ((i = 1; i <= runs; i++)); do
    timed gzip_big gzip -dc "$work/big.json.gz"
    timed replay_big "$rolewatch" replay --format json "$work/big.json.gz"
    timed replay_huge "$rolewatch" replay --format json "$work/huge.json.gz"
    timed replay_big5 "$rolewatch" replay --format json "$work/big5.json.gz"
    timed replay_many "$rolewatch" replay --format json "$work/many"
done

echo "bench: state load/save with 100000 principals, $state_runs runs" >&2
typical_file=$(find "$work/many" -name '*.json.gz' | sort | awk 'NR == 1')  # awk reads all: no SIGPIPE under pipefail
rm -f "$work"/state.out.*
for ((i = 1; i <= state_runs; i++)); do
    # A process each: every run starts cold, its first new base on fresh memory.
    cargo bench --quiet -p rolewatch --bench state -- 100000 "$typical_file" "$work/many" >"$work/state.out.$i"
done
state() { # state NAME: the median over the runs
    sed -n "s/^$1=//p" "$work"/state.out.* | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'
}

# The Lambda path: each run starts its own moto_server, uploads the object
# from a child process and invokes the handler once; prints name=value lines.
echo "bench: Lambda handler, lambda.json.gz and lambda-sts.json.gz from moto_server, $lambda_runs runs each" >&2
rm -f "$work"/lambda.run.* "$work"/lambda-sts.run.*
for ((i = 1; i <= lambda_runs; i++)); do
    for object in lambda lambda-sts; do
        "$bench_s3_object" "$work/$object.json.gz" >"$work/$object.run.$i" 2>"$work/$object.stderr" ||
            { tail -20 "$work/$object.stderr" >&2; echo "bench: bench_s3_object $object.json.gz failed" >&2; exit 1; }
    done
done
lambda_of() { # lambda_of OBJECT NAME median|max: over the runs
    sed -n "s/^$2=//p" "$work/$1".run.* | sort -g |
        awk -v how="$3" '{v[NR]=$1} END {print (how == "max" ? v[NR] : v[int((NR+1)/2)])}'
}
lambda() { lambda_of lambda "$@"; }
sts() { lambda_of lambda-sts "$@"; }

big_bytes=$(json_bytes "$work/big.json.gz")
huge_bytes=$(json_bytes "$work/huge.json.gz")
big5_bytes=$(json_bytes "$work/big5.json.gz")
many_bytes=$(json_bytes "$work/many")

STATE_RUNS_DONE=$state_runs python3 - "$big_bytes" "$huge_bytes" "$many_bytes" "$big5_bytes" "$(median_col replay_big5 1)" \
    "$(median_col replay_big5 2)" "$(median_col replay_big5 0)" \
    "$(median_col gzip_big 1)" "$(median_col replay_big 1)" "$(median_col replay_huge 1)" "$(median_col replay_many 1)" \
    "$(median_col replay_big 2)" "$(median_col replay_huge 2)" "$(median_col replay_many 2)" \
    "$(median_col gzip_big 0)" "$(median_col replay_big 0)" "$(median_col replay_huge 0)" "$(median_col replay_many 0)" \
    "$(state principals)" "$(state whole_bytes)" "$(state whole_save_ms)" "$(state whole_load_ms)" \
    "$(state base_bytes)" "$(state part_bytes)" "$(state load_ms)" "$(state save_ms)" "$(state file_process_ms)" \
    "$(state base_read_ms)" "$(state sweep_ms)" "$(state sequence_files)" "$(state sequence_new_bases)" \
    "$(state sequence_sweeps)" "$(state sequence_largest_part_bytes)" "$(state sequence_state_ms)" \
    "$(state sequence_process_ms)" \
    "$runs" \
    "$(lambda json_bytes max)" "$(lambda records max)" "$(lambda role_assumptions max)" "$(lambda wall_s median)" \
    "$(lambda cpu_s median)" "$(lambda rss_before_kib max)" "$(lambda peak_rss_kib max)" "$lambda_runs" \
    "$(sts json_bytes max)" "$(sts records max)" "$(sts role_assumptions max)" "$(sts wall_s median)" \
    "$(sts cpu_s median)" "$(sts rss_before_kib max)" "$(sts peak_rss_kib max)" <<'EOF'
import sys
(big_b, huge_b, many_b, big5_b, big5_s, big5_kb, big5_cpu, gz_s, big_s, huge_s, many_s, big_kb, huge_kb, many_kb,
 gz_cpu, big_cpu, huge_cpu, many_cpu, principals, whole_b, whole_save_ms, whole_load_ms,
 base_b, part_b, load_ms, save_ms, file_ms, base_read_ms, sweep_ms, seq_files, seq_bases, seq_sweeps, seq_part_b,
 seq_state_ms, seq_process_ms, runs,
 lam_b, lam_records, lam_events, lam_s, lam_cpu, lam_before_kb, lam_peak_kb, lam_runs,
 sts_b, sts_records, sts_events, sts_s, sts_cpu, sts_before_kb, sts_peak_kb) = sys.argv[1:]
big_b, huge_b, many_b, big5_b = int(big_b), int(huge_b), int(many_b), int(big5_b)
big5_s, big5_cpu, big5_mb = max(float(big5_s), 0.01), float(big5_cpu), int(big5_kb) / 1024
gz_s, big_s, huge_s, many_s, gz_cpu, big_cpu, huge_cpu, many_cpu = (
    max(float(x), 0.01) for x in (gz_s, big_s, huge_s, many_s, gz_cpu, big_cpu, huge_cpu, many_cpu))
big_mb, huge_mb, many_mb = (int(x) / 1024 for x in (big_kb, huge_kb, many_kb))
(whole_save_ms, whole_load_ms, load_ms, save_ms, file_ms, base_read_ms, sweep_ms, seq_state_ms, seq_process_ms) = (
    float(x) for x in (whole_save_ms, whole_load_ms, load_ms, save_ms, file_ms, base_read_ms, sweep_ms, seq_state_ms,
                       seq_process_ms))
mbps = lambda b, s: b / 1e6 / s

import os
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown CPU")
mem_gb = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")) / 2**20
print(f"\nrolewatch benchmark: medians of {runs} interleaved runs (MB/s of decompressed JSON)")
print(f"machine: {os.cpu_count()} CPUs, {cpu}, {mem_gb:.0f} GiB; load average now {open('/proc/loadavg').read().split()[0]}\n")
print(f"{'run':<52} {'JSON MB':>8} {'wall s':>7} {'MB/s':>7} {'CPU s':>7} {'peak RSS':>9}")
rows = [
    ("gzip -dc big.json.gz (150k records)", big_b, gz_s, gz_cpu, None),
    ("rolewatch replay big.json.gz (150k records)", big_b, big_s, big_cpu, big_mb),
    ("rolewatch replay huge.json.gz (750k records)", huge_b, huge_s, huge_cpu, huge_mb),
    ("rolewatch replay big5.json.gz (big x5, same principals)", big5_b, big5_s, big5_cpu, big5_mb),
    ("rolewatch replay many/ (500 files x 2000 records)", many_b, many_s, many_cpu, many_mb),
]
for name, b, s, cpu, rss in rows:
    rss_text = f"{rss:.1f} MB" if rss is not None else "-"
    print(f"{name:<52} {b / 1e6:>8.1f} {s:>7.2f} {mbps(b, s):>7.0f} {cpu:>7.2f} {rss_text:>9}")


def lambda_run(title, name, before_label, b, s, cpu, before_kb, peak_kb):
    """Prints one Lambda handler run; returns its JSON bytes and peak RSS in MB."""
    b, s, cpu = int(b), max(float(s), 0.01), float(cpu)
    before_mb, peak_mb = int(before_kb) / 1024, int(peak_kb) / 1024
    print(title)
    print(f"{name:<52} {b / 1e6:>8.1f} {s:>7.2f} {mbps(b, s):>7.0f} {cpu:>7.2f} {peak_mb:>6.1f} MB")
    print(f"  process RSS before the invocation{before_label}: {before_mb:.1f} MB; the invocation added"
          f" {peak_mb - before_mb:.1f} MB")
    return b, peak_mb


lam_b, lam_peak_mb = lambda_run(
    f"\nLambda handler, one object from moto_server ({int(lam_records):,} records, {int(lam_events):,} role"
    f" assumptions), median wall / max RSS of {lam_runs} runs:",
    "lambda.json.gz via S3 GetObject -> SNS -> S3 state", " (runtime + SDK clients)",
    lam_b, lam_s, lam_cpu, lam_before_kb, lam_peak_kb)
_, sts_peak_mb = lambda_run(
    f"Lambda handler, an object of role assumptions ({int(sts_records):,} records, {int(sts_events):,} role"
    f" assumptions):",
    "lambda-sts.json.gz, the same path", "",
    sts_b, sts_s, sts_cpu, sts_before_kb, sts_peak_kb)
print(f"\nstate with {principals} known principals (cargo bench -p rolewatch --bench state; each figure the median of"
      f" {os.environ['STATE_RUNS_DONE']} runs):")
print(f"  one piece (the CLI's --state file): {int(whole_b) / 1e6:.1f} MB, load {whole_load_ms:.1f} ms,"
      f" save {whole_save_ms:.1f} ms")
print(f"  two parts (the Lambda): base {int(base_b) / 1e6:.1f} MB, first read of a base {base_read_ms:.1f} ms,"
      f" daily sweep {sweep_ms:.0f} ms")
print(f"  a warm invocation with a typical file (2000 records): state part {int(part_b) / 1e3:.1f} kB,"
      f" load {load_ms:.3f} ms, process {file_ms:.2f} ms, save {save_ms:.3f} ms")
print(f"  {seq_files} files of many/ as consecutive invocations of one account: state {seq_state_ms:.0f} ms"
      f" (load, save, {seq_bases} new bases, {seq_sweeps} sweeps; largest state part"
      f" {int(seq_part_b) / 1e6:.2f} MB), processing {seq_process_ms:.0f} ms")

checks = []
ratio = big_s / gz_s
checks.append(("replay / gzip -dc wall time", f"{ratio:.2f}", "<= 0.30", ratio <= 0.30))
checks.append(("peak RSS, 150k records", f"{big_mb:.1f} MB", "< 64 MB", big_mb < 64))
checks.append(("peak RSS, 750k records (5x the principals)", f"{huge_mb:.1f} MB", "<= 64 MB", huge_mb <= 64))
checks.append(("peak RSS, big x5 (same principals)", f"{big5_mb:.1f} MB", "<= 64 MB", big5_mb <= 64))
growth = big5_mb / big_mb
checks.append(("RSS growth, 5x the file, same principals", f"{growth:.2f}x", "<= 1.25x (flat)", growth <= 1.25))
checks.append(("  RSS growth, 5x the file and the principals", f"{huge_mb / big_mb:.2f}x", "", None))
checks.append((f"Lambda peak RSS, {lam_b / 1e6:,.0f} MB object", f"{lam_peak_mb:.1f} MB", "< 128 MB",
               lam_b >= 2**30 and lam_peak_mb < 128))
checks.append((f"Lambda peak RSS, {int(sts_events):,} role assumptions", f"{sts_peak_mb:.1f} MB", "< 128 MB",
               int(sts_events) >= 150_000 and sts_peak_mb < 128))
many_ratio = mbps(many_b, many_s) / mbps(big_b, big_s)
checks.append(("many small files / big file throughput", f"{many_ratio:.2f}", ">= 0.80", many_ratio >= 0.8))
# CPU time is what the machine's other load disturbs least; shown to read the wall ratios by.
checks.append(("  same ratios in CPU time: replay / gzip", f"{big_cpu / gz_cpu:.2f}", "", None))
checks.append(("  many / big throughput", f"{(many_b / many_cpu) / (big_b / big_cpu):.2f}", "", None))
share = (save_ms + load_ms) / (save_ms + load_ms + file_ms)
checks.append(("state share, one warm invocation (100k principals)", f"{share:.1%}", "<= 10%", share <= 0.10))
seq_share = seq_state_ms / (seq_state_ms + seq_process_ms)
checks.append((f"state share over {seq_files} invocations, upkeep included", f"{seq_share:.1%}", "<= 10%",
               seq_share <= 0.10))

print(f"\n{'target':<44} {'measured':>10} {'target':>16}  result")
for name, got, want, ok in checks:
    result = "PASS" if ok else ("FAIL" if ok is not None else "INFO")
    print(f"{name:<44} {got:>10} {want:>16}  {result}")
failed = [c for c in checks if c[3] is False]
sys.exit(1 if failed else 0)
EOF
