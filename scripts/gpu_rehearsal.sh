#!/usr/bin/env bash
# make gpu-rehearsal: `make gpu-check`'s install part rehearsed on a CPU machine made to look
# like a bare, offline GPU machine — run it before borrowing one.
#
# 1. A clean clone of this repository's HEAD (what a GPU machine gets), with .whl/ copied in
#    (made by `make gpu-wheels` first when it is missing: the only step that uses the network).
# 2. A fresh venv (in $REHEARSAL_DIR, default /tmp/vitrieve-gpu-rehearsal) whose only packages
#    are a GPU image's: torch, torchvision, numpy, Pillow, transformers, safetensors and their
#    requirements, at this project's .venv versions. They are put there from the .venv's
#    installed files (each distribution's RECORD), hard-linked — torch with its CUDA libraries
#    is ~4.6 GiB, and PyPI's CPU-only wheel is not on PyPI — or copied across file systems. pip
#    removes a file before writing one in its place, so nothing done in the rehearsal venv
#    writes through a link into .venv. setuptools is left out (torch 2.14 requires it, but
#    images with an older or conda-built torch, and Python 3.12+ venvs, have none): the
#    editable install must bring its own from .whl/.
# 3. scripts/gpu_check.sh's install part in that venv, offline (a network namespace with no
#    network where `unshare` allows it; pip's config files ignored; --no-index): it must install
#    and import everything the GPU tests and benches import, the gpu tests must collect, and
#    bench/gpu.py and bench/train.py must import.
# 4. The same with one wheel taken out of .whl/: it must fail, name that wheel, and still
#    install every other one.
# Prints what it installed, the sizes and the seconds; exit 1 if any check fails.
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
SOURCE_PY=${SOURCE_PYTHON:-$repo/.venv/bin/python}
dir=${REHEARSAL_DIR:-/tmp/vitrieve-gpu-rehearsal}
drop=${DROP_WHEEL:-threadpoolctl} # the wheel step 4 takes out
start=$SECONDS
problems=()
problem() { problems+=("$*"); echo "REHEARSAL FAILED: $*" >&2; }
say() { printf '\n### %s (at %d s)\n' "$*" $((SECONDS - start)); }

if [ ! -d "$repo/.whl" ]; then
    say "no .whl/: make gpu-wheels"
    (cd "$repo" && PYTHON="$SOURCE_PY" bash scripts/gpu_wheels.sh check) || exit 1
fi
rm -rf "$dir"
mkdir -p "$dir"
git clone -q "$repo" "$dir/clone"
cp -r "$repo/.whl" "$dir/clone/.whl"

offline=(env -u PIP_FIND_LINKS -u PIP_INDEX_URL -u PIP_EXTRA_INDEX_URL -u PIP_CONSTRAINT
    PIP_CONFIG_FILE=/dev/null PIP_NO_INDEX=1)
if unshare -n true 2>/dev/null; then
    offline=(unshare -n "${offline[@]}")
    echo "offline: a network namespace without network (unshare -n), and pip's config ignored"
else
    echo "offline: pip's config ignored and --no-index (unshare -n is not allowed here)"
fi

# bare_venv DIR: a venv with the GPU image's packages only
bare_venv() {
    local venv=$1 base
    base=$("$SOURCE_PY" -c "import sys; print(sys._base_executable)")
    "$base" -m venv "$venv"
    "${offline[@]}" "$venv/bin/python" -m pip uninstall -q -y setuptools 2>/dev/null
    "$SOURCE_PY" - "$venv" "$repo/scripts" <<'PY'
import os, shutil, sys, sysconfig
from importlib import metadata
from pathlib import Path

venv, scripts = Path(sys.argv[1]), sys.argv[2]
sys.path.insert(0, scripts)
from gpu_requirements import BASE_IMAGE, closure  # noqa: E402

version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
target = venv / "lib" / version / "site-packages"
source = Path(sysconfig.get_paths()["purelib"])
names = sorted(set(closure(BASE_IMAGE)) - {"setuptools"})
linked = copied = size = 0
for name in names:
    dist = metadata.distribution(name)
    for file in dist.files or []:
        path = Path(dist.locate_file(file)).resolve()
        try:
            relative = path.relative_to(source)
        except ValueError:
            continue  # console scripts in bin/: not needed to import
        if not path.is_file():
            continue
        dest = target / relative
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, dest)
            linked += 1
        except OSError:
            shutil.copy2(path, dest)
            copied += 1
        size += path.stat().st_size
print(f"GPU image: {len(names)} distributions, {size / 2**30:.2f} GiB "
      f"({linked} files hard-linked, {copied} copied): {', '.join(names)}")
PY
}

# install_part VENV LOG: gpu_check.sh's install part, offline; its output to LOG and here
install_part() {
    local venv=$1 log=$2
    "${offline[@]}" PYTHON="$venv/bin/python" bash "$dir/clone/scripts/gpu_check.sh" install check \
        2>&1 | tee "$log"
    return "${PIPESTATUS[0]}"
}

say "1. the bare machine"
bare_venv "$dir/venv"
"$dir/venv/bin/python" -m pip list --format=freeze 2>/dev/null | sort >"$dir/before.txt"

say "2. make gpu-check's install part, offline, from .whl/ ($(du -sh "$dir/clone/.whl" | cut -f1))"
t0=$SECONDS
if install_part "$dir/venv" "$dir/install.log"; then
    echo "install part passed in $((SECONDS - t0)) s"
else
    problem "the install part failed (log: $dir/install.log)"
fi
"$dir/venv/bin/python" -m pip list --format=freeze 2>/dev/null | sort >"$dir/after.txt"
echo "installed by it:"
comm -13 "$dir/before.txt" "$dir/after.txt" | sed 's/^/  /'
site=$("$dir/venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
echo "site-packages now $(du -sh --apparent-size "$site" | cut -f1)"

say "3. what the GPU tests and benches import"
cd "$dir/clone" || exit 1
mapfile -t gpu_tests < <(grep -rlE "mark\.gpu" tests --include='test_*.py' | sort)
if "${offline[@]}" "$dir/venv/bin/python" -m pytest --collect-only -q -m gpu -p no:cacheprovider \
    "${gpu_tests[@]}" >"$dir/collect.log" 2>&1; then
    tail -1 "$dir/collect.log"
else
    tail -20 "$dir/collect.log"
    problem "the gpu tests do not collect (log: $dir/collect.log)"
fi
"${offline[@]}" "$dir/venv/bin/python" -c "import sys; sys.path[:0] = ['bench']; import gpu, train" ||
    problem "bench/gpu.py or bench/train.py does not import"
"${offline[@]}" "$dir/venv/bin/python" bench/gpu.py --toolchain || problem "bench/gpu.py --toolchain"
"${offline[@]}" "$dir/venv/bin/vitrieve" --help >/dev/null || problem "the vitrieve command"
cd "$repo" || exit 1

say "4. one wheel missing ($drop): it must be named, the others installed"
rm -rf "$dir/clone/.whl"
mkdir "$dir/clone/.whl"
find "$repo/.whl" -type f -name '*.whl' ! -iname "${drop}-*" -exec cp {} "$dir/clone/.whl/" \;
bare_venv "$dir/venv-missing" >/dev/null
if install_part "$dir/venv-missing" "$dir/install-missing.log" >/dev/null 2>&1; then
    problem "the install part passed without the $drop wheel"
fi
grep -E "MISSING WHEEL $drop|not installed: $drop" "$dir/install-missing.log" | sed 's/^/  /'
grep -q "MISSING WHEEL $drop" "$dir/install-missing.log" ||
    problem "the install part did not name the missing $drop wheel"
others=$("$dir/venv-missing/bin/python" -c "import faiss, open_clip, sqlalchemy, pytest; print('ok')" 2>&1)
[ "$others" = ok ] || problem "without $drop the other wheels were not installed: $others"
echo "the others installed without it: $others"
rm -rf "$dir/venv-missing"

say "rehearsal done in $((SECONDS - start)) s"
if [ ${#problems[@]} -gt 0 ]; then
    printf '  %s\n' "${problems[@]}" >&2
    exit 1
fi
echo "make gpu-check's install part passed on a bare, offline machine"
