"""Recipe comparison at a fixed number of samples (not part of ``make bench``: ~10 min a seed).

A wall-clock budget mixes the recipe with the machine's load; this trains ``tiny`` for a fixed
number of steps with chosen ``TrainOptions`` and scores each seed the way ``bench/train.py``
does (zero-shot top-1 on seen / held-out compositions, text→image R@1). docs/training.md's
fixed-sample tables ("Warm-up") come from runs like these, e.g.:

    python bench/recipe.py --seeds 0 1 2 --set warmup_fraction=0.05 grey_fraction=0
    python bench/recipe.py --seeds 0 1 2            # the defaults
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import fields, replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from train import make_data, score  # noqa: E402

from encoders.encoder import Encoder  # noqa: E402
from encoders.tokenizer import get_tokenizer  # noqa: E402
from encoders.training.data import read_captioned  # noqa: E402
from encoders.training.devices import train_device, with_device_defaults  # noqa: E402
from encoders.training.loop import Trainer  # noqa: E402
from encoders.training.main import TrainRequest, build_config, build_model, prepare_data  # noqa: E402
from encoders.training.steps import TrainOptions  # noqa: E402

NAMES = [f.name for f in fields(TrainOptions)]


def parse_setting(text: str) -> tuple[str, object]:
    """``name=value`` for a ``TrainOptions`` field, converted to the field's type."""
    name, _, value = text.partition("=")
    if name not in NAMES:
        raise SystemExit(f"unknown option {name!r}: one of {', '.join(NAMES)}")
    default = getattr(TrainOptions(), name)
    if isinstance(default, bool):
        return name, value.lower() in ("1", "true", "yes")
    if default is None:  # epochs, minutes (floats) and batch_size (an int) default to None
        return name, int(value) if name == "batch_size" else float(value)
    return name, type(default)(value)


def run(data: Path, seed: int, steps: int, threads: int, settings: dict) -> dict:
    torch.set_num_threads(threads)
    started = time.perf_counter()
    request = TrainRequest(data=data / "train.tsv", out=Path("unused"), model="tiny")
    config = build_config(request)
    tokenizer = get_tokenizer(config.text)
    model = build_model(config, tokenizer, seed)
    items = read_captioned(data / "train.tsv")
    options = replace(TrainOptions(), seed=seed, threads=threads, **settings)
    options = with_device_defaults(options, train_device(options.device))
    options = replace(options, epochs=steps / (len(items) // options.batch_size))
    prepared = prepare_data(items, model, tokenizer, options)
    setup = time.perf_counter() - started
    trainer = Trainer(model, prepared, options)
    state = trainer.run()
    train_s = time.perf_counter() - started - setup
    result = score(Encoder(model, tokenizer), data)
    return {"seed": seed, "steps": state.step, "warmup": state.warmup, "samples": state.samples,
            "setup_s": round(setup, 1), "samples_per_s": round(state.samples / train_s, 1),
            **{k: round(v, 4) for k, v in result.items()}}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=3200, help="3,200 × 64 ≈ a 5-minute run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", nargs="*", default=[], help="TrainOptions overrides: name=value")
    parser.add_argument("--data", type=Path, default=Path("/tmp/vitrieve-bench/synth"))
    args = parser.parse_args()
    settings = dict(parse_setting(text) for text in args.set)
    data = make_data(args.data, 20000, 3000, 64)
    rows = []
    for seed in args.seeds:
        rows.append(run(data, seed, args.steps, args.threads, settings))
        print(json.dumps({"settings": settings, **rows[-1]}), flush=True)
    means = {
        k: round(sum(r[k] for r in rows) / len(rows), 4) for k in ("seen", "held_out", "t2i_r1")
    }
    print(json.dumps({"settings": settings, "seeds": args.seeds, "mean": means}))


if __name__ == "__main__":
    main()
