"""Training commands: ``vitrieve train`` (contrastive, from scratch) and ``vitrieve finetune``.

The loop reports through a callback; the progress bar (loss, lr, samples/s, ETA) lives here.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from encoders.errors import VitrieveError
from encoders.training.steps import TrainOptions
from retrieval.commands.common import DEVICE_OPTION, device_name

DEFAULTS = TrainOptions()  # the measured recipe (docs/training.md) is the one place for defaults
DATA_HELP = "Training pairs: TSV/CSV in open_clip's format, or a folder of images + .txt."


def _fraction(name: str, help: str):
    """A ``--name`` option in [0, 1] whose default is the recipe's ``TrainOptions.name``."""
    default = getattr(DEFAULTS, name)
    return typer.Option(default, "--" + name.replace("_", "-"), min=0.0, max=1.0, help=help)


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("finetune")(finetune)


def _bar(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps"),
        TextColumn("loss {task.fields[loss]}  lr {task.fields[lr]}  {task.fields[rate]} samples/s"),
        TextColumn("ETA {task.fields[eta]}  {task.fields[val]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def _progress_callback(progress: Progress, task: int):
    last_val: list[str] = [""]

    def report(event) -> None:
        if event.val:
            parts = [f"{k} {v:.3f}" for k, v in event.val.items()]
            last_val[0] = "val " + " ".join(parts)
        minutes, seconds = divmod(int(event.eta_s), 60)
        progress.update(
            task,
            completed=event.step,
            total=event.total_steps or None,
            loss=f"{event.loss:.4f}",
            lr=f"{event.lr:.2e}",
            rate=f"{event.samples_per_s:.0f}",
            eta=f"{minutes}:{seconds:02d}",
            val=last_val[0],
        )

    return report


def _join_torchrun(world_size: int) -> int:
    """Under torchrun (WORLD_SIZE > 1) join the process group; returns the rank, or -1."""
    if world_size <= 1:
        return -1
    from encoders.training.distributed import setup_distributed

    return setup_distributed()[0]


def _check_budget(epochs: float | None, minutes: float | None) -> None:
    if (epochs is None) == (minutes is None):
        raise typer.BadParameter("give exactly one of --epochs N or --minutes M")
    if (epochs is not None and epochs <= 0) or (minutes is not None and minutes <= 0):
        raise typer.BadParameter("--epochs / --minutes must be positive")


def train(
    data: Path = typer.Option(..., "--data", help=DATA_HELP),
    out: Path = typer.Option(..., "--out", help="Run directory: checkpoint/, metrics, curves."),
    val: Path | None = typer.Option(
        None, "--val", help="Labelled validation pairs (label column) for zero-shot curves."
    ),
    model: str = typer.Option("tiny", "--model", help="tiny | small | open_clip name | .json"),
    image_size: int | None = typer.Option(None, "--image-size", min=16, max=4096),
    epochs: float | None = typer.Option(None, "--epochs", help="Passes over the data."),
    minutes: float | None = typer.Option(None, "--minutes", help="Wall-clock budget."),
    batch_size: int = typer.Option(
        DEFAULTS.batch_size, "--batch-size", min=2, help="Pairs per process."
    ),
    lr: float = typer.Option(DEFAULTS.lr, "--lr", help="Peak learning rate (after warm-up)."),
    weight_decay: float = typer.Option(0.1, "--weight-decay"),
    loss: str = typer.Option("clip", "--loss", help="clip (InfoNCE) | siglip (sigmoid)."),
    text_tower: str = typer.Option(
        "minilm", "--text-tower", help="minilm (pretrained) | own (trained from scratch)."
    ),
    lock_text: bool = typer.Option(
        True, "--lock-text/--train-text", help="Freeze the pretrained text tower."
    ),
    hard_negatives: bool = typer.Option(
        True, "--hard-negatives/--no-hard-negatives", help="Attribute-swapped negatives."
    ),
    grey_fraction: float = _fraction(
        "grey_fraction",
        "Share of colour-captioned pairs shown greyscale with the colour words removed.",
    ),
    warmup_fraction: float = _fraction(
        "warmup_fraction",
        "Share of the steps spent warming the learning rate up (then cosine decay).",
    ),
    accum: int = typer.Option(1, "--accum", min=1, help="Micro-batches per optimiser step."),
    checkpoint_every: int = typer.Option(0, "--checkpoint-every", min=0, help="Steps; 0: end."),
    seed: int = typer.Option(0, "--seed"),
    threads: int = typer.Option(
        0, "--threads", min=0, help="Intra-op threads; 0: measured for --minutes runs."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue RUN_DIR/checkpoint."),
    device: str = DEVICE_OPTION,
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    world_size: int = typer.Option(1, envvar="WORLD_SIZE", hidden=True),  # set by torchrun
) -> None:
    """Train a CLIP-style model on captioned images (contrastive, from scratch)."""
    from encoders.training.main import TrainRequest, train_from_files

    _check_budget(epochs, minutes)
    if loss not in ("clip", "siglip"):
        raise typer.BadParameter("--loss must be clip or siglip")
    if text_tower not in ("own", "minilm"):
        raise typer.BadParameter("--text-tower must be own or minilm")
    if batch_size % accum:
        raise typer.BadParameter("--batch-size must be a multiple of --accum")
    options = TrainOptions(
        loss=loss, batch_size=batch_size, lr=lr, weight_decay=weight_decay, epochs=epochs,
        minutes=minutes, accum=accum, hard_negatives=hard_negatives, grey_fraction=grey_fraction,
        warmup_fraction=warmup_fraction, checkpoint_every=checkpoint_every, seed=seed,
        threads=threads, device=device,
    )  # fmt: skip
    request = TrainRequest(
        data=data, out=out, model=model, val=val, image_size=image_size,
        text_tower=text_tower, lock_text=lock_text, resume=resume, options=options,
    )  # fmt: skip
    rank = _join_torchrun(world_size)
    console = Console(stderr=True, quiet=rank != 0)
    try:
        with _bar(console) as progress:
            task = progress.add_task(
                "training", total=None, loss="-", lr="-", rate="-", eta="-", val=""
            )
            result = train_from_files(request, _progress_callback(progress, task))
    finally:
        if rank >= 0:
            from encoders.training.distributed import cleanup_distributed

            cleanup_distributed()
    if rank > 0:
        return
    summary = {
        "checkpoint": str(result.checkpoint),
        "steps": result.state.step,
        "samples": result.state.samples,
        "samples_per_s": round(result.samples_per_s, 1),
        "validation": result.final,
        "device": device_name(device),
    }
    if json_out:
        typer.echo(json.dumps(summary))
        return
    typer.echo(f"wrote {result.checkpoint} after {result.state.step} steps "
               f"({result.samples_per_s:.0f} samples/s on {summary['device']})")  # fmt: skip
    if result.final:
        typer.echo(
            "validation zero-shot " + "  ".join(f"{k} {v:.3f}" for k, v in result.final.items())
        )
    typer.echo(f"curves: {out / 'curves.png'}  metrics: {out / 'metrics.jsonl'}")


def finetune(
    data: Path = typer.Option(..., "--data", help="Folder with one subfolder per class."),
    source: Path = typer.Option(..., "--from", help="Checkpoint whose ViT to start from."),
    out: Path = typer.Option(..., "--out", help="Run directory for the classifier."),
    linear_probe: bool = typer.Option(False, "--linear-probe", help="Freeze the ViT."),
    epochs: float = typer.Option(10, "--epochs", min=0.01),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
    lr: float | None = typer.Option(None, "--lr", help="Default: 1e-3 probe, 1e-4 full."),
    holdout: float = typer.Option(0.2, "--holdout", min=0.01, max=0.9),
    seed: int = typer.Option(0, "--seed"),
    device: str = DEVICE_OPTION,
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Train a classification head on the ViT (and the ViT, unless --linear-probe)."""
    from encoders.training.finetune import FinetuneOptions, finetune_folder

    if not data.is_dir():
        raise VitrieveError(f"{data} is not a folder of class subfolders")
    options = FinetuneOptions(
        epochs=epochs, batch_size=batch_size, lr=lr, linear_probe=linear_probe,
        holdout=holdout, seed=seed,
    )  # fmt: skip
    if "device" in {f.name for f in dataclasses.fields(FinetuneOptions)}:  # see coord request
        options = dataclasses.replace(options, device=device)
    result = finetune_folder(data, source, out, options)
    if json_out:
        typer.echo(json.dumps({**result, "device": device_name(device)}))
        return
    typer.echo(
        f"{result['mode']}: held-out accuracy {result['accuracy']:.3f} on {result['test']} images "
        f"({result['classes']} classes, {result['train']} training images); wrote {out}"
    )
