"""The serving configuration: what the CLI, the UI and bench/search.py's default line apply."""

from __future__ import annotations

import faiss
import torch
from threadpoolctl import threadpool_info, threadpool_limits

from retrieval.serving import DEFAULT_SERVING, ServingConfig, configure_serving


def test_configure_serving_pins_torch_faiss_and_blas_threads():
    torch_before = torch.get_num_threads()
    try:
        with threadpool_limits(user_api="blas"):  # restores the BLAS pools afterwards
            config = configure_serving(ServingConfig(threads=1))
            assert torch.get_num_threads() == 1 and faiss.omp_get_max_threads() == 1
            blas = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
            assert blas and all(n == 1 for n in blas)
    finally:
        torch.set_num_threads(torch_before)
        faiss.omp_set_num_threads(torch_before)
    assert "threads 1" in config.describe() and "eager" in config.describe()
    assert DEFAULT_SERVING.threads == 1 and not DEFAULT_SERVING.compile
