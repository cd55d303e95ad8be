"""Recipe comparison over data families × seeds at a fixed number of samples (~8 min a run).

A wall-clock budget mixes the recipe with the machine's load; this trains ``tiny`` for a fixed
number of steps with chosen ``TrainOptions`` and scores each run the way ``bench/train.py``
does (zero-shot top-1 on seen / held-out compositions, text→image R@1). Each (family, seed)
trains and tests on its own data: family A or B (``encoders.data.datasets.STYLES``) rendered with
that seed, so the held-out compositions differ between seeds as well as the model's start.
A third family, ``digits``, is real: scikit-learn's 1,797 handwritten 8×8 scans (upscaled,
split by the seed, ten classes and none held out, so its figure is top-1 over all of them).

Recipes are chosen on one family and confirmed on the other; the summary reports each
family's mean and the **worst** family's, never the best. docs/training.md's tables come from
runs like these (``--jobs 2`` runs two at a time, one thread each, on a 2-core machine):

    python bench/recipe.py --families A B --seeds 0 1 2 --jobs 2         # the defaults
    python bench/recipe.py --families A B --seeds 0 1 2 --jobs 2 --set warmup_fraction=0.05
    python bench/recipe.py --families A B --seeds 0 1 2 --minutes 5   # as a user trains
    python bench/recipe.py --families digits --seeds 0 1 2 --steps 400  # ~40 epochs of scans
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import fields, replace
from pathlib import Path

import torch
from train import make_data, run_ours, score

from encoders.data.digits import write_digits
from encoders.model.tokenizer import get_tokenizer
from encoders.runtime.encoder import Encoder
from encoders.training.data import read_captioned
from encoders.training.devices import default_batch_size, train_device
from encoders.training.loop import Trainer
from encoders.training.main import TrainRequest, build_config, build_model, prepare_data
from encoders.training.steps import TrainOptions, with_device_defaults

ROOT = Path(__file__).resolve().parents[1]

NAMES = [f.name for f in fields(TrainOptions)]
DIGITS = "digits"  # a third family: sklearn's real 8×8 digit scans (encoders/data/digits.py)


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


def rounded(result: dict) -> dict:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}


def run(data: Path, seed: int, steps: int, threads: int, settings: dict, model_name: str) -> dict:
    torch.set_num_threads(threads)
    started = time.perf_counter()
    options = replace(TrainOptions(), seed=seed, threads=threads, **settings)
    request = TrainRequest(
        data=data / "train.tsv", out=Path("unused"), model=model_name, options=options
    )
    config = build_config(request)  # the loss decides the logit bias
    tokenizer = get_tokenizer(config.text)
    model = build_model(config, tokenizer, seed)
    items = read_captioned(data / "train.tsv")
    options = with_device_defaults(options, train_device(options.device))
    options = replace(options, epochs=steps / (len(items) // options.batch_size))
    prepared = prepare_data(items, model, tokenizer, options)
    setup = time.perf_counter() - started
    trainer = Trainer(model, prepared, options)
    state = trainer.run()
    train_s = time.perf_counter() - started - setup
    result = rounded(score(Encoder(model, tokenizer), data))
    return {"seed": seed, "steps": state.step, "warmup": state.warmup, "samples": state.samples,
            "setup_s": round(setup, 1), "samples_per_s": round(state.samples / train_s, 1),
            **result}  # fmt: skip


def run_budget(data: Path, seed: int, minutes: float, work: Path) -> dict:
    """``vitrieve train --minutes`` as a user runs it (its defaults), then the same scoring."""
    batch = default_batch_size(torch.device("cpu"))
    ours = run_ours(data, work / f"{data.name}-run", minutes, batch, seed)
    result = rounded(score(Encoder.load(ours["checkpoint"]), data))
    return {"seed": seed, "samples": ours["samples"], "samples_per_s": ours["samples_per_s"],
            **result}  # fmt: skip


def family_data(root: Path, family: str, seed: int) -> Path:
    """Synthetic family A or B rendered with ``seed``, or the real digit scans split by it."""
    if family == DIGITS:
        out = root / f"digits-{seed}"
        if not (out / "train.tsv").is_file():
            write_digits(out, size_px=64, seed=seed)
        return out
    return make_data(root / f"synth-{family}-{seed}", 20000, 3000, 64, family, seed)


def job(args: tuple) -> dict:
    root, family, seed, steps, threads, settings, minutes, model = args
    data = family_data(root, family, seed)
    if minutes:
        return {"family": family, **run_budget(data, seed, minutes, root / "runs")}
    return {"family": family, **run(data, seed, steps, threads, settings, model)}


def _mean(values: list) -> float | None:
    return None if None in values else round(sum(values) / len(values), 4)


def summarise(rows: list[dict], settings: dict) -> dict:
    """Per-family means and the worst family's (by held-out, then seen)."""
    keys = ("seen", "held_out", "t2i_r1", "samples_per_s")
    families = {}
    for family in dict.fromkeys(r["family"] for r in rows):
        mine = [r for r in rows if r["family"] == family]
        families[family] = {k: _mean([r[k] for r in mine]) for k in keys}
        families[family]["seeds"] = [r["seed"] for r in mine]

    def hardest(family: str) -> tuple[float, float]:  # digits hold nothing out: their top-1
        means = families[family]
        return (means["seen"] if means["held_out"] is None else means["held_out"], means["seen"])

    worst = min(families, key=hardest)
    return {"settings": settings, "families": families, "worst": {"family": worst,
            **families[worst]}}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--steps",
        type=int,
        default=3200,
        help="optimiser steps of the device's default batch unless --set batch_size=N (the "
        "fixed-sample tables of docs/training.md say which batch each used)",
    )
    parser.add_argument("--families", nargs="+", default=["A", "B"], help=f"A, B and/or {DIGITS}")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time")
    parser.add_argument("--set", nargs="*", default=[], help="TrainOptions overrides: name=value")
    parser.add_argument(
        "--minutes",
        type=float,
        help="instead: `vitrieve train --minutes M` with its defaults, one run at a time "
        "(a wall-clock budget: use a quiet machine)",
    )
    parser.add_argument("--data", type=Path, default=Path("/tmp/vitrieve-bench"))
    parser.add_argument("--model", default="tiny", help="a built-in name or a config .json")
    args = parser.parse_args()
    settings = dict(parse_setting(text) for text in args.set)
    if args.minutes and (settings or args.jobs > 1 or args.model != "tiny"):
        raise SystemExit(
            "--minutes runs the CLI's defaults one at a time: no --set or --model, --jobs 1"
        )
    tasks = [(args.data, f, seed, args.steps, args.threads, settings, args.minutes, args.model)
             for seed in args.seeds for f in args.families]  # fmt: skip
    for task in tasks:  # written once, before any timing starts
        family_data(args.data, task[1], task[2])
    rows = []
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for row in pool.map(job, tasks):
            rows.append(row)
            print(json.dumps({"settings": settings, **row}), flush=True)
    print(json.dumps(summarise(rows, {**settings, "model": args.model})))


if __name__ == "__main__":
    main()
