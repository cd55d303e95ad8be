#!/usr/bin/env bash
# The GPU checks, in parts that each finish in under 8 minutes on one H200 and print their
# figures as they go (docs/gpu.md, "Checking a GPU machine"):
#
#   scripts/gpu_check.sh check      make gpu-check: install, the gpu-marked tests (all but the
#                                   trainer's), bench/gpu.py (inference and indexing figures)
#   scripts/gpu_check.sh train      make gpu-bench-train: install (+ the MiniLM text tower), the
#                                   trainer's gpu tests, bench/train.py on the GPU (ours vs
#                                   open_clip's trainer, 60 s each)
#   scripts/gpu_check.sh install [check|train]   only the install part (no GPU needed:
#                                   scripts/gpu_rehearsal.sh runs it on a CPU machine)
#
# Install: vitrieve goes on top of the torch the machine has (never replaced: torch and
# torchvision are pinned to the installed builds), editable, built with --no-build-isolation so
# no network is needed for setuptools; then each missing distribution in its own pip call, so
# one missing wheel stops nothing else and is named. Without network, wheels come from .whl/
# (and .whl-train/) at the repository root: `make gpu-wheels` makes them. Every step runs even
# when one before it failed; the failures are listed at the end (exit 1).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
mode=${1:-check}
part=${2:-$mode}
start=$SECONDS
failures=()

case "$mode" in
    check | train | install) ;;
    *) echo "usage: $0 check|train|install [check|train]" >&2; exit 2 ;;
esac
case "$part" in
    check | train) ;;
    *) echo "unknown part $part: check or train" >&2; exit 2 ;;
esac

say() { printf '\n=== %s (at %d s)\n' "$*" $((SECONDS - start)); }
fail() { failures+=("$*"); echo "FAILED: $*" >&2; }

# step NAME SECONDS COMMAND...: run it with a time limit (SIGINT first: pytest then prints
# what ran, a bench what it measured so far), record a failure, go on
step() {
    local name=$1 limit=$2 t0=$SECONDS rc
    shift 2
    say "$name (limit ${limit} s)"
    timeout -s INT -k 20 "$limit" "$@"
    rc=$?
    if [ $rc -eq 124 ] || [ $rc -eq 130 ] || [ $rc -eq 137 ]; then
        fail "$name: stopped at its ${limit}-second limit"
    elif [ $rc -ne 0 ]; then
        fail "$name: exit status $rc"
    fi
    echo "--- $name: $([ $rc -eq 0 ] && echo ok || echo FAILED) in $((SECONDS - t0)) s"
}

pip_install() { "$PY" -m pip install -q --disable-pip-version-check --no-warn-conflicts ${wheel_source[@]+"${wheel_source[@]}"} "$@"; }

install() {
    say "install for the gpu $part part ($PY)"
    if ! "$PY" -c "import torch" 2>/dev/null; then
        fail "install: $PY has no torch; install the machine's CUDA build of torch first"
        return 1
    fi
    local torch_before requires ignore=() constraints
    torch_before=$("$PY" -c "import torch; print(torch.__version__, torch.__file__)")
    wheel_source=()
    for folder in .whl .whl-train; do
        if [ -d "$folder" ]; then wheel_source+=(--find-links "$folder"); fi
    done
    if [ ${#wheel_source[@]} -gt 0 ]; then
        wheel_source=(--no-index ${wheel_source[@]+"${wheel_source[@]}"})
        echo "offline: wheels only from $(printf '%s ' "${wheel_source[@]:1}" | sed 's/--find-links //g')"
    fi

    # (d) the interpreter against requires-python, read without tomllib on Python < 3.11
    requires=$("$PY" scripts/gpu_requirements.py requires-python)
    if ! "$PY" - "$requires" <<'PY'; then
import re, sys
found = re.match(r"\s*>=\s*(\d+)\.(\d+)", sys.argv[1])
sys.exit(0 if not found or sys.version_info[:2] >= (int(found[1]), int(found[2])) else 1)
PY
        echo "WARNING: vitrieve asks for Python $requires and this is $("$PY" -V):" \
            "installed anyway (--ignore-requires-python), untested there" >&2
        ignore=(--ignore-requires-python)
    fi

    # (c) the editable install builds with the setuptools here: no build isolation, no network
    if ! "$PY" -c "import setuptools, sys; sys.exit(tuple(int(p) for p in setuptools.__version__.split('.')[:2]) < (70, 1))" 2>/dev/null; then
        pip_install "setuptools>=70.1" || fail "install: MISSING WHEEL setuptools (for the editable build)"
    fi
    pip_install --no-deps --no-build-isolation ${ignore[@]+"${ignore[@]}"} -e . ||
        fail "install: pip install --no-deps --no-build-isolation -e . failed"

    # (e) torch and torchvision stay the machine's builds
    constraints=$(mktemp)
    # the installed distributions' versions (PyPI's torch says 2.14.1 where torch.__version__
    # says 2.14.1+cu130: pinning the latter asks for a wheel that is not there)
    local pin="import importlib.metadata as m, sys; print(f'{sys.argv[1]}=={m.version(sys.argv[1])}')"
    "$PY" -c "$pin" torch >"$constraints"
    if "$PY" -c "import torchvision" 2>/dev/null; then
        "$PY" -c "$pin" torchvision >>"$constraints"
    else
        local vision
        vision=$("$PY" -c "import torch; v = torch.__version__.split('+')[0].split('.'); print(f'0.{int(v[1]) + 15}.{v[2]}')")
        echo "WARNING: torchvision is missing: installing torchvision==$vision, the release made" \
            "with torch $("$PY" -c 'import torch; print(torch.__version__)'), without its" \
            "requirements (torch stays); it must be built for the same CUDA" >&2
        pip_install --no-deps "torchvision==$vision" || fail "install: MISSING WHEEL torchvision==$vision"
    fi

    # (b) one pip call per missing distribution: one missing wheel installs all the others
    local name spec how skipped=()
    while IFS=$'\t' read -r name spec how; do
        [ -n "$name" ] || continue
        if [ "$how" = optional ]; then
            if [ ${#wheel_source[@]} -gt 0 ]; then
                skipped+=("$name")
                continue
            fi
            pip_install -c "$constraints" "$spec" || skipped+=("$name")
            continue
        fi
        local flags=(-c "$constraints")
        if [ "$how" = nodeps ]; then flags+=(--no-deps); fi
        if pip_install "${flags[@]}" "$spec"; then
            echo "installed $spec"
        else
            fail "install: MISSING WHEEL $name ($spec), or one it requires (pip's message above); offline, put it in .whl/ (make gpu-wheels)"
        fi
    done < <("$PY" scripts/gpu_requirements.py missing "$part")
    rm -f "$constraints"
    if [ ${#skipped[@]} -gt 0 ]; then
        echo "not installed (vitrieve's UI and server; the GPU checks do not import them): ${skipped[*]}"
    fi

    if [ "$("$PY" -c "import torch; print(torch.__version__, torch.__file__)")" != "$torch_before" ]; then
        fail "install: torch changed ($torch_before): the machine's build was replaced"
    fi
    # everything the part's tests and benches import is there, and imports
    "$PY" scripts/gpu_requirements.py verify "$part" || fail "install: something is missing (above)"
    echo "install done in $((SECONDS - start)) s: torch $("$PY" -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda)' 2>/dev/null)"
}

install
if [ "$mode" = install ]; then
    [ ${#failures[@]} -eq 0 ] && exit 0
    printf '\nmake gpu-check install FAILED:\n' >&2
    printf '  %s\n' "${failures[@]}" >&2
    exit 1
fi

if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "$PY has no torch that sees a CUDA device: the GPU checks need one" >&2
    exit 2
fi
"$PY" bench/gpu.py --toolchain # (f) one line: are the compiled variants run, or why not

# every test file with gpu-marked tests; the trainer's go with the training part
mapfile -t gpu_tests < <(grep -rlE "mark\.gpu|pytestmark = pytest\.mark\.gpu" tests --include='test_*.py' | sort)
check_tests=() train_tests=()
for file in "${gpu_tests[@]}"; do
    case "$file" in
        tests/encoders/test_training*) train_tests+=("$file") ;;
        *) check_tests+=("$file") ;;
    esac
done
pytest_args=(-q -m gpu -p no:cacheprovider -rfEs --durations=8 --timeout=150)

if [ "$mode" = check ]; then
    step "gpu tests (${#check_tests[@]} files)" 270 "$PY" -m pytest "${pytest_args[@]}" "${check_tests[@]}"
    step "bench/gpu.py: encoding, text queries, indexing, search" 210 \
        "$PY" bench/gpu.py --json docs/gpu-figures.json
else
    step "trainer gpu tests (${#train_tests[@]} files)" 150 "$PY" -m pytest "${pytest_args[@]}" "${train_tests[@]}"
    # ours vs open_clip's trainer on this GPU, one 60-second budget each
    step "bench/train.py: ours vs open_clip_train" 300 "$PY" bench/train.py --device cuda --minutes 1 --rounds 1
fi

say "gpu $mode part finished in $((SECONDS - start)) s"
if [ ${#failures[@]} -gt 0 ]; then
    printf 'FAILED (%d):\n' ${#failures[@]} >&2
    printf '  %s\n' "${failures[@]}" >&2
    exit 1
fi
echo "all steps passed"
