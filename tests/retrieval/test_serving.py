"""The serving configuration: what the CLI, the UI and bench/search.py's default line apply."""

from __future__ import annotations

import os

import faiss
import torch
from threadpoolctl import threadpool_info, threadpool_limits

from indexer.vectors.exact import scan_threads
from retrieval.service.serving import DEFAULT_SERVING, ServingConfig, configure_serving


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
    assert "torch 1, exact scan 1" in config.describe() and "eager" in config.describe()
    assert DEFAULT_SERVING.threads == 1 and not DEFAULT_SERVING.compile


def test_the_default_scans_in_two_parts_with_one_openmp_thread_each():
    """The default: every OpenMP/BLAS pool at 1 thread, the exact scan in 2 parts on plain
    threads where there are 2 cores (they wait on futures, they never spin)."""
    torch_before = torch.get_num_threads()
    try:
        with threadpool_limits(user_api="blas"):
            configure_serving(DEFAULT_SERVING)
            assert torch.get_num_threads() == 1
            assert scan_threads() == min(2, os.cpu_count() or 1) == DEFAULT_SERVING.scan_parts
    finally:
        configure_serving(ServingConfig(threads=1))
        torch.set_num_threads(torch_before)
        faiss.omp_set_num_threads(torch_before)
    assert scan_threads() == 1


def test_two_thread_serving_keeps_one_openmp_pool_multi_threaded():
    torch_before = torch.get_num_threads()
    try:
        with threadpool_limits(user_api="blas"):
            config = configure_serving(ServingConfig(encode_threads=2, scan_threads=2))
            # (FAISS's OpenMP count is not asserted: FAISS and torch may share one libgomp)
            assert torch.get_num_threads() == 2
            assert scan_threads() == 2
            blas = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
            assert blas and all(n == 1 for n in blas)
    finally:
        configure_serving(ServingConfig(threads=1))
        torch.set_num_threads(torch_before)
        faiss.omp_set_num_threads(torch_before)
    assert scan_threads() == 1
    assert "torch 2, exact scan 2, FAISS OpenMP and BLAS 1" in config.describe()


def test_a_serving_process_compiles_the_library_model_only_when_asked(synth_library):
    """ServingConfig.compile reaches the Encoder through the handles the API and the UI hold
    (it was read only by describe()); the one-shot CLI path stays eager."""
    from retrieval.api.libraries import Libraries
    from retrieval.library.handle import Library

    served = Libraries.open([("lib", synth_library.path)], "cpu", compile=True)
    try:
        assert served.default.current().encoder._compiled is not None
    finally:
        served.default.close()
    plain = Library.open(synth_library.path, device="cpu")
    try:
        assert plain.encoder._compiled is None
    finally:
        plain.close()
