"""How well can ``tiny``'s ViT learn a synthetic family's shapes *with labels*, per sample?

A diagnostic for docs/training.md, not a recipe: the contrastive run's zero-shot accuracy on
family B is bounded by how fast its image side learns rotated, outlined shapes on busy
backgrounds. This trains the same ViT (same start, optimiser, schedule, augmentation and bf16
autocast as ``vitrieve train``) as a plain classifier of the shape word of each single-object
image's label, for a fixed number of steps, and prints top-1 on the test split's single-object
images. If labels cannot reach the target in the samples a 5-minute run gets, no contrastive
recipe will.

    python bench/shape_probe.py --data /tmp/vitrieve-bench/synth-B-0 --steps 6000
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from encoders.model.config import load_config
from encoders.model.tokenizer import get_tokenizer
from encoders.training.data import (
    augment_batch,
    normalize_batch,
    preload_images,
    read_captioned,
)
from encoders.training.devices import autocast
from encoders.training.main import build_model
from encoders.training.optim import CosineSchedule, make_optimizer, warmup_steps
from encoders.training.steps import TrainOptions

ROOT = Path(__file__).resolve().parents[1]


def single_objects(tsv: Path, size: int) -> tuple[torch.Tensor, list[str]]:
    """Preloaded images of one object (a label of "colour shape") and their shape words."""
    items = [i for i in read_captioned(tsv, label_col="label") if i.label]
    images, kept = preload_images([i.path for i in items], size)
    return images, [items[k].label.split()[-1] for k in kept]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a `vitrieve data synth` set")
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--model", default="tiny", help="a built-in name or a config .json")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    options = TrainOptions(seed=args.seed)
    config = load_config(args.model)
    size = config.vision.image_size
    vit = build_model(config, get_tokenizer(config.text), args.seed).visual
    train_x, train_words = single_objects(args.data / "train.tsv", size)
    test_x, test_words = single_objects(args.data / "test.tsv", size)
    shapes = sorted(set(train_words))
    train_y = torch.tensor([shapes.index(w) for w in train_words])
    test_y = torch.tensor([shapes.index(w) for w in test_words])
    model = torch.nn.Sequential(vit, torch.nn.Linear(config.embed_dim, len(shapes)))
    optimizer = make_optimizer(model, options.lr, options.weight_decay)
    schedule = CosineSchedule(
        options.lr, args.steps, warmup_steps(args.steps, options.warmup_fraction)
    )
    generator = torch.Generator().manual_seed(args.seed)
    device = torch.device("cpu")
    started = time.perf_counter()
    for step in range(args.steps):
        schedule.apply(optimizer, step)
        index = torch.randint(len(train_x), (args.batch_size,), generator=generator)
        images, _ = augment_batch(
            train_x[index], [""] * len(index), options.min_scale, options.flip,
            generator=generator,
        )  # fmt: skip
        with autocast(device):
            logits = model(images)
        loss = F.cross_entropy(logits.float(), train_y[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    seconds = time.perf_counter() - started
    model.eval()
    with torch.inference_mode(), autocast(device):
        predicted = torch.cat([model(normalize_batch(test_x[i : i + 256])).argmax(1)
                               for i in range(0, len(test_x), 256)])  # fmt: skip
    print(json.dumps({"data": str(args.data), "model": args.model, "steps": args.steps,
                      "samples": args.steps * args.batch_size, "train_s": round(seconds, 1),
                      "shape_top1": round((predicted == test_y).float().mean().item(), 4),
                      "test_images": len(test_y)}))  # fmt: skip


if __name__ == "__main__":
    main()
