"""Run by test_training's DDP test under torchrun: a few steps, then each rank saves weights."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from encoders.model.clip import create_model
from encoders.model.config import load_config
from encoders.model.tokenizer import get_tokenizer
from encoders.training.data import read_captioned
from encoders.training.distributed import cleanup_distributed, setup_distributed
from encoders.training.loop import Trainer, TrainOptions
from encoders.training.main import prepare_data


def main(data: Path, out: Path) -> None:
    rank, _ = setup_distributed(device="cpu")  # gloo, also on a machine with GPUs
    torch.manual_seed(0)
    config = load_config("tiny").with_image_size(32)
    tokenizer = get_tokenizer(config.text)
    model = create_model(config, tokenizer)
    if rank == 0:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()},
                  str(out / "start.safetensors"))  # fmt: skip
    # two passes of 8 per step and process (whole-batch accumulation across no_sync passes)
    options = TrainOptions(batch_size=8, accum=2, lr=1e-3, seed=1, device="cpu")
    options = TrainOptions(**{**options.__dict__, "epochs": 3 * 32 / 160})  # 3 steps of 32
    data_items = read_captioned(data)[:160]
    trainer = Trainer(model, prepare_data(data_items, model, tokenizer, options), options)
    trainer.run()
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / f"rank{rank}.safetensors"))
    if rank == 0:
        losses = [r["loss"] for r in trainer.history if "final" not in r]
        (out / "losses.json").write_text(json.dumps(losses))
    cleanup_distributed()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
