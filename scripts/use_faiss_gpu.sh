#!/usr/bin/env bash
# Replace faiss-cpu by faiss-gpu (FAISS's k-means and flat search on the GPU; docs/gpu.md).
#
# Both distributions install the same package, `faiss`: installed side by side, whichever pip
# wrote last wins file by file, and uninstalling one deletes the other's files. A pip extra can
# only add a requirement, never remove faiss-cpu, so the swap is this separate step: faiss-cpu
# out, then faiss-gpu (at faiss-cpu's version when one exists) in. Anything that installs
# vitrieve's requirements again (`pip install -e .` without --no-deps) brings faiss-cpu back:
# run this again afterwards.
set -euo pipefail
PY=${PYTHON:-python3}
version=$("$PY" -c "import importlib.metadata as m; print(m.version('faiss-cpu'))" 2>/dev/null || true)
"$PY" -m pip uninstall -y faiss-cpu faiss-gpu
"$PY" -m pip install "faiss-gpu${version:+==$version}"
"$PY" -c "import faiss; print('faiss', faiss.__version__, 'sees', faiss.get_num_gpus(), 'GPU(s)')"
