"""The one device choice: specs, refusals without CUDA, out-of-memory recognition."""

import pytest
import torch

from encoders.runtime.device import DeviceError, describe, is_out_of_memory, resolve_device


def test_cpu_and_auto_resolve_on_any_machine():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    expected = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    assert resolve_device("auto") == expected
    assert resolve_device(None) == expected
    assert describe(torch.device("cpu")) == "cpu"


@pytest.mark.parametrize("spec", ["gpu", "cpu:0", "cuda:x", "auto:1", "", "tpu"])
def test_unknown_specs_are_user_errors(spec):
    if spec == "":  # empty means the default, like None
        resolve_device(spec)
        return
    with pytest.raises(DeviceError, match="unknown device"):
        resolve_device(spec)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a CPU-only machine")
@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_refused_cleanly_without_a_gpu(spec):
    with pytest.raises(DeviceError, match="no CUDA device"):
        resolve_device(spec)


def test_out_of_memory_recognised_by_type_and_message():
    assert is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    assert is_out_of_memory(oom("boom"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(ValueError("out of memory"))
