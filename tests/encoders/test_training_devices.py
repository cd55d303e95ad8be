"""Where a training process runs, decided without a GPU: the local rank's device under
torchrun, native bf16 only (no emulated bf16 on pre-Ampere GPUs), and how many streaming
loader workers a rank starts on a machine's cores and ``/dev/shm``."""

from __future__ import annotations

import pytest
import torch

from encoders.runtime.device import DeviceError
from encoders.training import devices
from encoders.training.stream import MAX_LOADER_WORKERS, PREFETCH_BATCHES, loader_workers


@pytest.fixture
def gpus(monkeypatch: pytest.MonkeyPatch):
    """Fake CUDA with a settable device count (and GPU 0 current)."""

    def fake(count: int) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)

    return fake


@pytest.mark.parametrize("spec", ["cuda", "auto", None])
def test_cuda_and_auto_mean_the_local_ranks_gpu(gpus, spec) -> None:
    """LOCAL_RANK=1 (as the CLI passes it): GPU 1 with two GPUs; with one, rank 1 has none
    of its own, and that is a one-line error, not two processes sharing GPU 0."""
    gpus(2)
    assert devices.train_device(spec, local_rank=1) == torch.device("cuda", 1)
    assert devices.train_device(spec, local_rank=0) == torch.device("cuda", 0)
    gpus(1)
    with pytest.raises(DeviceError, match="local rank 1 has no GPU of its own"):
        devices.train_device(spec, local_rank=1)
    assert devices.train_device(spec, local_rank=0) == torch.device("cuda", 0)


def test_an_explicit_gpu_is_kept_in_one_process_and_cpu_stays_cpu(gpus) -> None:
    gpus(2)
    assert devices.train_device("cuda:1") == torch.device("cuda", 1)
    assert devices.train_device("cuda:0", local_rank=1) == torch.device("cuda", 0)  # no group
    assert devices.train_device("cpu", local_rank=1) == torch.device("cpu")
    with pytest.raises(DeviceError):
        devices.train_device("cuda:2")


def _capabilities(monkeypatch: pytest.MonkeyPatch, by_index: dict[int, tuple[int, int]]) -> None:
    """Fake GPUs of the given compute capabilities; GPU 0 current. ``is_bf16_supported``
    answers as torch does by default — counting emulation, about the current device — so a
    rule that asked it would wrongly say yes."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(by_index))
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=None: by_index[i or 0])
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)


def test_pre_ampere_gpus_train_in_fp32_not_emulated_bf16(monkeypatch) -> None:
    """A T4 (7.5) beside an A100 (8.0): the T4 trains without autocast (fp32; fp16 would need
    loss scaling), the A100 in bf16 — each judged by its own capability, not the current
    device's; the CPU keeps its measured bf16."""
    _capabilities(monkeypatch, {0: (7, 5), 1: (8, 0)})
    assert devices.autocast_dtype(torch.device("cuda", 0)) is None
    assert devices.autocast_dtype(torch.device("cuda")) is None  # index-less: the current one
    assert devices.autocast_dtype(torch.device("cuda", 1)) == torch.bfloat16
    assert devices.autocast_dtype(torch.device("cpu")) == torch.bfloat16
    _capabilities(monkeypatch, {0: (8, 6), 1: (7, 0)})
    assert devices.autocast_dtype(torch.device("cuda", 0)) == torch.bfloat16
    assert devices.autocast_dtype(torch.device("cuda", 1)) is None


MB = 2**20
BATCH = 256 * 3 * 224 * 224  # one rank's uint8 batch of 224 px images: ~37 MiB


def test_loader_workers_share_the_cores_among_the_ranks() -> None:
    plenty = 10**12
    assert loader_workers(64, 1, BATCH, plenty) == MAX_LOADER_WORKERS == 16
    assert loader_workers(64, 8, BATCH, plenty) == 8  # 8 GPUs: not 8 × 16 processes
    assert loader_workers(16, 8, BATCH, plenty) == 2
    assert loader_workers(4, 8, BATCH, plenty) == 1  # at least one each
    assert loader_workers(64, 1, BATCH, None) == 16  # /dev/shm unknown: cores decide


def test_loader_workers_fit_their_prefetched_batches_in_dev_shm() -> None:
    """Each worker holds PREFETCH_BATCHES batches in /dev/shm; all ranks' workers together
    stay within half of its free space, and none is started where one would not fit."""
    per_worker = PREFETCH_BATCHES * BATCH
    free = 2 * 10 * per_worker  # half of it holds 10 workers' batches
    assert loader_workers(64, 1, BATCH, free) == 10
    assert loader_workers(64, 2, BATCH, free) == 5
    for ranks in (1, 2, 4, 8):
        workers = loader_workers(64, ranks, BATCH, free)
        assert ranks * workers * per_worker <= free / 2
    assert loader_workers(64, 1, BATCH, 64 * MB) == 0  # Docker's default 64 MB /dev/shm
