"""Training benchmark: ``vitrieve train`` vs open_clip's own trainer, same budget and data.

On the synthetic shapes (≥ 20k pairs, 64 px) both trainers get the same wall-clock budget,
the same device, the same architecture (our default config, written as an open_clip JSON
config), the same batch size and bf16; both checkpoints are then scored by the same
evaluation code (``retrieval.evaluation.evaluate``): zero-shot top-1 on seen and held-out
colour–shape
compositions and text→image R@1 / R@10. Prints samples/s of each and the ratios; never
asserts timings. Rounds alternate which trainer goes first (a machine warming up, or other
jobs coming and going, then favour neither).

open_clip's schedule is epoch-based, so a short calibration run measures its samples/s first
and its "epoch" is then the training file cycled to the number of samples that fit the
budget: its cosine ends when the budget does, as ours does with ``--minutes``.

    python bench/train.py [--minutes 5] [--rounds 1] [--seed 0] [--data DIR] [--work DIR]
    python bench/train.py --device cuda --minutes 1   # on a GPU (batch: the GPU's default)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

from encoders.data.datasets import write_synthetic
from encoders.runtime.device import resolve_device
from encoders.runtime.encoder import Encoder
from encoders.training.data import read_captioned
from encoders.training.devices import default_batch_size, device_defaults
from encoders.training.main import TrainRequest, build_config
from encoders.training.optim import warmup_steps
from encoders.training.steps import TrainOptions
from retrieval.evaluation.evaluate import evaluate_retrieval, evaluate_zeroshot

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
OPENCLIP_RUNNER = """
import sys, open_clip
open_clip.add_model_config(sys.argv[1])
from open_clip_train.main import main
main(sys.argv[2:])
"""
RECIPE = TrainOptions()  # ours trains with its defaults; open_clip gets the same batch and lr
RATE = re.compile(r"Batch \(t\): [\d.]+, ([\d.]+)/s")


def make_data(
    data: Path, train: int, test: int, size: int, style: str = "A", seed: int = 0
) -> Path:
    """The synthetic set of family ``style`` (``encoders.data.datasets.STYLES``), written once."""
    if not (data / "train.tsv").is_file():
        print(
            f"writing synthetic set {style} ({train} + {test} at {size} px, seed {seed}) to {data}"
        )
        write_synthetic(data, train, test, size_px=size, seed=seed, style=style)
    return data


def run_ours(
    data: Path, run: Path, minutes: float, batch: int, seed: int = 0, device: str = "cpu"
) -> dict:
    """``vitrieve train`` for the budget; its own samples/s and the wall time it took."""
    command = [PYTHON, "-m", "retrieval.cli", "train", "--data", str(data / "train.tsv"),
               "--minutes", str(minutes), "--batch-size", str(batch), "--out", str(run),
               "--seed", str(seed), "--device", device, "--json"]  # fmt: skip
    shutil.rmtree(run, ignore_errors=True)  # a fresh run, never an earlier one's files
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"vitrieve train failed:\n{done.stderr[-3000:]}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "wall_s": time.perf_counter() - started,
        "samples": summary["samples"],
        "samples_per_s": summary["samples_per_s"],
        "checkpoint": Path(summary["checkpoint"]),
    }


def openclip_config(data: Path, out: Path) -> Path:
    """The architecture ``vitrieve train`` builds by default, as an open_clip model config
    (same towers, same sizes); written before either trainer runs."""
    from encoders.model.hf_text import MINILM, resolve_hf_path

    config = build_config(TrainRequest(data=data / "train.tsv", out=out)).to_dict()
    model = {k: config[k] for k in ("embed_dim", "quick_gelu", "vision_cfg", "text_cfg")}
    model["init_logit_scale"] = config.get("init_logit_scale")
    text = dict(model["text_cfg"])
    if text.pop("hf_model_name", None):
        path = resolve_hf_path(MINILM)
        text.pop("lock", None)
        text = {
            "hf_model_name": path,
            "hf_tokenizer_name": path,
            "hf_pooler_type": "mean_pooler",
            "hf_proj_type": "linear",
            "context_length": text["context_length"],
        }
    model["text_cfg"] = text
    path = out / "vitrieve_bench.json"
    path.write_text(json.dumps(model, indent=2))
    return path


def cycled_tsv(data: Path, rows: int, out: Path) -> Path:
    """train.tsv with absolute paths (open_clip opens paths as given), cycled to ``rows``."""
    lines = (data / "train.tsv").read_text().splitlines()
    header, body = lines[0], lines[1:]
    body = [str(data / line.split("\t", 1)[0]) + "\t" + line.split("\t", 1)[1] for line in body]
    cycled = [body[i % len(body)] for i in range(max(rows, 1))]
    out.write_text("\n".join([header, *cycled]) + "\n")
    return out


def _log_times(log: str) -> tuple[datetime | None, list[float]]:
    """When open_clip's epoch started, and the samples/s of each logged step."""
    start = re.search(r"^(\S+) \| INFO \| Start epoch 0", log, re.M)
    when = datetime.strptime(start.group(1), "%Y-%m-%d,%H:%M:%S") if start else None
    return when, [float(r) for r in RATE.findall(log)]


def run_openclip(
    config: Path,
    tsv: Path,
    logs: Path,
    batch: int,
    timeout: float,
    seed: int = 0,
    device: str = "cpu",
) -> dict:
    """open_clip_train.main for one epoch over ``tsv``; killed at ``timeout`` seconds.

    Its warm-up is ours: the same fraction of its steps (``TrainOptions.warmup_fraction``);
    its loader gets as many decoding workers as ours uses threads to preload on the device.
    """
    workers = device_defaults(resolve_device(device)).decode_workers
    rows = len(tsv.read_text().splitlines()) - 1
    warmup = warmup_steps(rows // batch, RECIPE.warmup_fraction)
    lock = ["--lock-text"] if "hf_model_name" in config.read_text() else []
    args = ["--train-data", str(tsv), "--dataset-type", "csv", "--csv-separator", "\t",
            "--csv-img-key", "filepath", "--csv-caption-key", "title", "--model", config.stem,
            "--batch-size", str(batch), "--epochs", "1", "--lr", str(RECIPE.lr),
            "--wd", str(RECIPE.weight_decay),
            "--warmup", str(warmup), "--precision", "amp_bf16", "--workers", str(workers),
            "--device", device,
            "--logs", str(logs), "--name", "run", "--save-frequency", "1", "--seed", str(seed),
            "--log-every-n-steps", "1", "--zeroshot-frequency", "0", *lock]  # fmt: skip
    shutil.rmtree(logs, ignore_errors=True)  # open_clip refuses to reuse an experiment name:
    # a stale log and checkpoint would otherwise be read as this run's
    launched = datetime.now().replace(microsecond=0)
    started = time.perf_counter()
    with contextlib.suppress(subprocess.TimeoutExpired):
        done = subprocess.run([PYTHON, "-c", OPENCLIP_RUNNER, str(config), *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=timeout)  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"open_clip_train failed:\n{done.stderr[-2000:]}")
    path = logs / "run" / "out.log"
    epoch_start, rates = _log_times(path.read_text() if path.is_file() else "")
    steady = rates[len(rates) // 4 :] or rates
    return {
        "wall_s": time.perf_counter() - started,
        "startup_s": (epoch_start - launched).total_seconds() if epoch_start else 0.0,
        "samples_per_s": float(np.median(steady)) if steady else 0.0,
        "checkpoint": logs / "run" / "checkpoints" / "epoch_1.pt",
    }


class OpenClipEncoder:
    """The slice of ``Encoder`` that ``retrieval.evaluation.evaluate`` uses, over an open_clip
    model."""

    def __init__(self, config: Path, weights: Path, device: str = "cpu") -> None:
        import open_clip

        open_clip.add_model_config(str(config))
        model, _, preprocess = open_clip.create_model_and_transforms(config.stem)
        state = torch.load(weights, map_location="cpu", weights_only=True)["state_dict"]
        model.load_state_dict({k.removeprefix("module."): v for k, v in state.items()})
        self.device = resolve_device(device)
        self.model, self.preprocess = model.eval().to(self.device), preprocess
        self.tokenizer = open_clip.get_tokenizer(config.stem)
        self.embed_dim = int(json.loads(config.read_text())["embed_dim"])

    @torch.inference_mode()
    def encode_image_tensors(self, batch: torch.Tensor) -> np.ndarray:
        out = self.model.encode_image(batch.to(self.device), normalize=True)
        return out.float().cpu().numpy()

    @torch.inference_mode()
    def encode_texts(self, texts: list[str]) -> np.ndarray:
        rows = [self.model.encode_text(self.tokenizer(texts[i : i + 256]).to(self.device),
                                       normalize=True)
                for i in range(0, len(texts), 256)]  # fmt: skip
        return torch.cat(rows).float().cpu().numpy()


def score(encoder, data: Path) -> dict:
    """Seen / held-out zero-shot top-1 and text→image R@1 and R@10 on the test split (held-out
    None, and seen over every class, when the data holds no classes out)."""
    items = read_captioned(data / "test.tsv", label_col="label")
    classes = (data / "classes.txt").read_text().split("\n")
    zeroshot = evaluate_zeroshot(encoder, items, [c for c in classes if c])
    retrieval = evaluate_retrieval(encoder, items, ks=(1, 10))
    words = (zeroshot.get("attributes") or {}).get("held_out", {}).get("right")
    split = "held_out" in zeroshot  # data without held-out classes (digits): all are "seen"
    return {"seen": zeroshot["seen"]["top1"] if split else zeroshot["top1"],
            "held_out": zeroshot["held_out"]["top1"] if split else None,
            "held_out_words": words,  # per word of the class name: colour, shape right
            "t2i_r1": retrieval["text_to_image_R@1"],
            "t2i_r10": retrieval["text_to_image_R@10"]}  # fmt: skip


def round_ours(args, data: Path, work: Path, index: int) -> dict:
    ours = run_ours(data, work / f"ours{index}", args.minutes, args.batch_size, index, args.device)
    ours.update(score(Encoder.load(ours["checkpoint"], device=args.device), data))
    print(f"  ours: {ours['samples_per_s']:.0f} samples/s, {ours}")
    return ours


def round_openclip(args, data: Path, work: Path, index: int) -> dict:
    config = openclip_config(data, work)
    calibration = cycled_tsv(data, args.batch_size * 50, work / "calibrate.tsv")
    probe = run_openclip(config, calibration, work / f"calib{index}", args.batch_size, 120,
                         device=args.device)  # fmt: skip
    budget = args.minutes * 60 - probe["startup_s"]
    rows = max(int(probe["samples_per_s"] * budget * 0.95), args.batch_size * 2)
    print(f"  open_clip calibration: {probe['samples_per_s']:.1f} samples/s, start-up "
          f"{probe['startup_s']:.0f} s -> one epoch of {rows} samples")  # fmt: skip
    tsv = cycled_tsv(data, rows, work / "openclip_train.tsv")
    theirs = run_openclip(config, tsv, work / f"openclip{index}", args.batch_size,
                          args.minutes * 60 * 1.3, seed=index, device=args.device)  # fmt: skip
    if theirs["checkpoint"].is_file():
        encoder = OpenClipEncoder(config, theirs["checkpoint"], args.device)
        theirs.update(score(encoder, data))
    print(f"  open_clip: {theirs}")
    return theirs


def one_round(args, data: Path, work: Path, index: int) -> dict:
    """Both trainers once; odd rounds start with open_clip's."""
    order = [("ours", round_ours), ("open_clip", round_openclip)]
    if index % 2:
        order.reverse()
    return {who: run(args, data, work, index) for who, run in order}


def report(rounds: list[dict]) -> None:
    def mean(who: str, key: str) -> float:
        values = [r[who][key] for r in rounds if key in r[who]]
        return float(np.mean(values)) if values else float("nan")

    print(f"\n{'':12}{'samples/s':>10}{'seen top-1':>12}{'held-out':>10}{'t→i R@1':>9}"
          f"{'t→i R@10':>10}")  # fmt: skip
    for who in ("ours", "open_clip"):
        print(f"{who:12}{mean(who, 'samples_per_s'):>10.0f}{mean(who, 'seen'):>12.3f}"
              f"{mean(who, 'held_out'):>10.3f}{mean(who, 't2i_r1'):>9.3f}"
              f"{mean(who, 't2i_r10'):>10.3f}")  # fmt: skip
    ratio = mean("ours", "samples_per_s") / max(mean("open_clip", "samples_per_s"), 1e-9)
    print(f"throughput ratio ours/open_clip: {ratio:.2f}×")
    for key in ("seen", "held_out", "t2i_r1", "t2i_r10"):
        gap = 100 * (mean("ours", key) - mean("open_clip", key))
        print(f"{key}: ours − open_clip = {gap:+.1f} points")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0, help="Round i trains with seed SEED + i.")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (both trainers)")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="Per step, both trainers (default: the device's, encoders/training/devices.py)",
    )
    parser.add_argument("--train", type=int, default=20000)
    parser.add_argument("--test", type=int, default=3000)
    parser.add_argument("--style", default="A", help="synthetic family: A or B")
    parser.add_argument("--data", type=Path, help="default /tmp/vitrieve-bench/synth[-B]")
    parser.add_argument("--work", type=Path, default=Path("/tmp/vitrieve-bench/train"))
    args = parser.parse_args()
    args.batch_size = args.batch_size or default_batch_size(resolve_device(args.device))
    suffix = "" if args.style == "A" else f"-{args.style}"
    data = args.data or Path(f"/tmp/vitrieve-bench/synth{suffix}")
    data = make_data(data, args.train, args.test, 64, args.style)
    args.work.mkdir(parents=True, exist_ok=True)
    rounds = []
    for index in range(args.rounds):
        print(f"round {index + 1}/{args.rounds} ({args.minutes} min each, {args.device}, "
              f"batch {args.batch_size})")  # fmt: skip
        seed = args.seed + index
        rounds.append(one_round(args, data, args.work / f"round{seed}", seed))
    report(rounds)


if __name__ == "__main__":
    main()
