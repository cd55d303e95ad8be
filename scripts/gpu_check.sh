#!/usr/bin/env bash
# make gpu-check: on a CUDA machine, install vitrieve on top of the torch already there, run the
# gpu-marked tests, then bench/gpu.py (its figures go to docs/gpu-figures.json; docs/gpu.md quotes them)
# and bench/train.py on the GPU (ours vs open_clip's trainer, 60 s each).
#
# GPU machines often come with their own CUDA build of torch: the project is installed with
# --no-deps, then only the requirements that are missing, with torch and torchvision pinned to
# the installed versions so pip never replaces them. Without network access, wheels are taken
# from a .whl/ folder at the repository root (pip download them there beforehand).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
start=$SECONDS

if ! $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "make gpu-check: $PY has no torch that sees a CUDA device; install a CUDA build of torch first" >&2
    exit 2
fi

missing=$($PY - <<'PY'
import importlib.metadata as metadata
import re
import tomllib

project = tomllib.load(open("pyproject.toml", "rb"))["project"]
# pytest for the gpu tests; braceexpand and webdataset for open_clip_train (bench/train.py)
wanted = [*project["dependencies"], "pytest>=8", "pytest-timeout", "braceexpand", "webdataset"]
for requirement in wanted:
    name = re.split(r"[<>=!~\[;\s]", requirement, maxsplit=1)[0]
    if name in ("torch", "torchvision"):
        continue  # the machine's own builds (a missing torchvision is installed below, pinned)
    try:
        metadata.version(name)
    except metadata.PackageNotFoundError:
        print(requirement)
PY
)
if ! $PY -c "import torchvision" 2>/dev/null; then
    missing="$missing torchvision"
fi
constraints=$(mktemp)
$PY -c "import torch; print(f'torch=={torch.__version__}')" > "$constraints"
$PY -c "import torchvision; print(f'torchvision=={torchvision.__version__}')" >> "$constraints" 2>/dev/null || true
source=()
if [ -d .whl ]; then
    source=(--no-index --find-links .whl)
fi
$PY -m pip install -q --no-deps --no-build-isolation -e . 2>/dev/null ||
    $PY -m pip install -q --no-deps -e . ${source[@]+"${source[@]}"}
if [ -n "${missing// /}" ]; then
    echo "installing what is missing: $missing"
    # shellcheck disable=SC2086
    # a bare, offline machine may lack a wheel for some of them (streamlit's tree, say): the
    # gpu tests and benchmarks need only the core ones, so a failed install warns and goes on
    $PY -m pip install -q -c "$constraints" ${source[@]+"${source[@]}"} $missing ||
        echo "warning: could not install all of: $missing (offline? put their wheels in .whl/)" >&2
fi
rm -f "$constraints"
echo "installed in $((SECONDS - start)) s; torch $($PY -c 'import torch; print(torch.__version__)')"

# every test file with gpu-marked tests (they import only the runtime requirements)
mapfile -t files < <(grep -rl "mark.gpu" tests --include='test_*.py' | sort)
$PY -m pytest -q -m gpu -p no:cacheprovider "${files[@]}"
echo "gpu tests done at $((SECONDS - start)) s"

$PY bench/gpu.py --json docs/gpu-figures.json
echo "inference benchmark done at $((SECONDS - start)) s"

# training: ours vs open_clip's trainer on this GPU, one 60-second budget each (issue targets)
$PY bench/train.py --device cuda --minutes 1 --rounds 1
echo "make gpu-check finished in $((SECONDS - start)) s"
