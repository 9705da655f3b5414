#!/usr/bin/env bash
# Installs the tools the tests and the deploy need (moto_server, cargo lambda
# with zig, cfn-lint, sam) into .venv, pinned by scripts/tools-requirements.txt
# and scripts/tools-constraints.txt. Idempotent: a stamp in the venv records
# what was installed, and a second run with the same pins does nothing.
#
#   scripts/install-tools.sh                  # install or verify the venv
#   scripts/install-tools.sh --arm64-target   # also the Rust target sam build needs
#   scripts/install-tools.sh --aarch64-tests  # also the target, Debian's cross linker and
#                                             # qemu-user, to run the engine's tests on aarch64
#   scripts/install-tools.sh --relock         # re-resolve tools-constraints.txt
#
# Environment: PYTHON (default python3), ROLEWATCH_VENV (default <repo>/.venv).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${ROLEWATCH_VENV:-$root/.venv}"
python="${PYTHON:-python3}"
requirements="$root/scripts/tools-requirements.txt"
constraints="$root/scripts/tools-constraints.txt"
stamp="$venv/.rolewatch-tools-stamp"

arm64=false
aarch64_tests=false
relock=false
for arg in "$@"; do
    case "$arg" in
        --arm64-target) arm64=true ;;
        --aarch64-tests) arm64=true aarch64_tests=true ;;
        --relock) relock=true ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "install-tools: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

say() { echo "install-tools: $*" >&2; }

pip_quiet=(--disable-pip-version-check --no-input -q)

if $relock; then
    # Resolve the top-level pins afresh in a throwaway venv and record every
    # version pip chose, so later installs cannot drift.
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    "$python" -m venv "$tmp/venv"
    "$tmp/venv/bin/pip" install "${pip_quiet[@]}" -r "$requirements"
    "$tmp/venv/bin/pip" check
    {
        echo "# Every package tools-requirements.txt pulls in, as resolved for Python 3.11 on"
        echo "# Linux x86_64. Regenerate with: scripts/install-tools.sh --relock"
        "$tmp/venv/bin/pip" freeze | grep -v -E '^(pip|setuptools|wheel)=='
    } > "$constraints"
    say "wrote $constraints"
    exit 0
fi

# The stamp names the interpreter and the exact pin files: a new Python or a
# changed pin reinstalls, anything else is already done.
want="$("$python" -c 'import sys; print(sys.version.split()[0])') $(cat "$requirements" "$constraints" | sha256sum | cut -d' ' -f1)"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && "$venv/bin/python" -c '' 2>/dev/null; then
    say "tools up to date in $venv"
else
    if ! "$venv/bin/python" -c '' 2>/dev/null; then
        # Missing, or left behind by a Python that no longer exists.
        rm -rf "$venv"
        say "creating $venv"
        "$python" -m venv "$venv"
    fi
    rm -f "$stamp"
    say "installing pinned tools into $venv (about a minute)"
    "$venv/bin/pip" install "${pip_quiet[@]}" -r "$requirements" -c "$constraints"
    "$venv/bin/pip" check >&2
    # Every entry point the Makefile and the tests call must run, or fail here
    # with a clear message rather than in the middle of a test.
    "$venv/bin/moto_server" --help >/dev/null
    "$venv/bin/cfn-lint" --version >/dev/null
    SAM_CLI_TELEMETRY=0 "$venv/bin/sam" --version >/dev/null
    PATH="$venv/bin:$PATH" cargo lambda --version >/dev/null
    echo "$want" > "$stamp"
    say "installed: $(PATH="$venv/bin:$PATH" cargo lambda --version), $("$venv/bin/cfn-lint" --version), $(SAM_CLI_TELEMETRY=0 "$venv/bin/sam" --version), moto $("$venv/bin/python" -c 'import moto; print(moto.__version__)')"
fi

if $arm64; then
    # Only `cargo lambda build --arm64` (sam build) needs it; tests build for the host.
    target=aarch64-unknown-linux-gnu
    if grep -qx "$target" <<<"$(rustup target list --installed)"; then
        say "rust target $target already installed"
    else
        say "adding rust target $target"
        rustup target add "$target"
    fi
fi

if $aarch64_tests; then
    # The cross linker and the emulator from the distribution (Debian 12,
    # bookworm, as CI runs): pinned to its release, not to a point version,
    # which the mirrors drop at each security update. Installed only when
    # missing or of another release.
    declare -A release=(
        [gcc-aarch64-linux-gnu]='4:12.2.0-*'
        [libc6-dev-arm64-cross]='2.36-*'
        [qemu-user]='1:7.2+dfsg-7*'
    )
    installed() { dpkg-query -W -f='${Status} ${Version}' "$1" 2>/dev/null | sed -n 's/^install ok installed //p'; }
    missing=()
    for package in "${!release[@]}"; do
        # shellcheck disable=SC2053  # the release is a glob
        [[ "$(installed "$package")" == ${release[$package]} ]] || missing+=("$package")
    done
    if ((${#missing[@]})); then
        sudo=()
        ((EUID == 0)) || sudo=(sudo)
        say "installing ${missing[*]} (apt-get, about a minute)"
        export DEBIAN_FRONTEND=noninteractive
        "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 ||
            { "${sudo[@]}" apt-get update -q >&2 && "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; }
        for package in "${missing[@]}"; do
            # shellcheck disable=SC2053
            [[ "$(installed "$package")" == ${release[$package]} ]] ||
                { say "$package is $(installed "$package"), not of the release ${release[$package]} the tests were set up with"; exit 1; }
        done
    fi
    say "aarch64 test tools: $(for p in "${!release[@]}"; do printf '%s %s; ' "$p" "$(installed "$p")"; done)"
fi
