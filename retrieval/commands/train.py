"""Training commands: ``vitrieve train`` (contrastive, from scratch) and ``vitrieve finetune``.

Every default is the recipe's own (``TrainOptions``, ``TrainRequest``, ``FinetuneOptions``:
docs/training.md measured them), read here rather than repeated. The loop reports through a
callback; the progress bar (loss, lr, samples/s, ETA) lives here.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from encoders.errors import VitrieveError
from encoders.training.devices import DEVICE_DEFAULTS, train_device
from encoders.training.finetune import FinetuneOptions
from encoders.training.layout import RunLayout
from encoders.training.loss import LOSSES
from encoders.training.main import TEXT_TOWERS, TrainRequest
from encoders.training.steps import TrainOptions
from retrieval.commands.common import DEVICE_OPTION, JSON_OPTION, device_name, takes
from retrieval.commands.evaluate import Columns, columns

DEFAULTS = TrainOptions()  # the measured recipe (docs/training.md) is the one place for defaults
REQUEST = {f.name: f.default for f in dataclasses.fields(TrainRequest)}
FINETUNE = FinetuneOptions()
DATA_HELP = "Training pairs: TSV/CSV in open_clip's format, or a folder of images + .txt."
DATA_WAIT_SHOWN = 0.05  # the bar says how long steps wait for data from this share on


def _default(name: str, help: str, *names: str, **kw):
    """An option whose default is the recipe's ``TrainOptions.<name>``."""
    flag = names or ("--" + name.replace("_", "-"),)
    return typer.Option(getattr(DEFAULTS, name), *flag, help=help, **kw)


def _fraction(name: str, help: str):
    """A ``--name`` option in [0, 1] whose default is the recipe's ``TrainOptions.name``."""
    return _default(name, help, min=0.0, max=1.0)


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("finetune")(finetune)


def _bar(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps"),
        TextColumn("loss {task.fields[loss]}  lr {task.fields[lr]}  {task.fields[rate]} samples/s"),
        TextColumn("{task.fields[health]}"),
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
            health=_health(event),
        )

    return report


def _health(event) -> str:
    """Waiting for data and skipped (non-finite) steps, when there are any to tell."""
    parts = []
    wait = event.data_wait
    if wait >= DATA_WAIT_SHOWN:
        parts.append(f"data wait {wait:.0%}")
    skipped = event.skipped_steps
    if skipped:
        parts.append(f"{skipped} skipped")
    return "  ".join(parts)


def _join_torchrun(world_size: int, local_rank: int, device: str) -> int:
    """Under torchrun (WORLD_SIZE > 1) join the process group on ``device`` (NCCL with one
    GPU per rank, torchrun's LOCAL_RANK; gloo on the CPU); returns the rank, or -1."""
    if world_size <= 1:
        return -1
    from encoders.training.distributed import setup_distributed

    return setup_distributed(device=device, local_rank=local_rank)[0]


def _check(epochs: float | None, minutes: float | None, options: TrainOptions) -> None:
    if (epochs is None) == (minutes is None):
        raise typer.BadParameter("give exactly one of --epochs N or --minutes M")
    if (epochs is not None and epochs <= 0) or (minutes is not None and minutes <= 0):
        raise typer.BadParameter("--epochs / --minutes must be positive")
    if options.loss not in LOSSES:
        raise typer.BadParameter(f"--loss must be one of {', '.join(LOSSES)}")


def train_options(
    epochs: float | None = typer.Option(None, "--epochs", help="Passes over the data."),
    minutes: float | None = typer.Option(None, "--minutes", help="Wall-clock budget."),
    batch_size: int | None = _default(
        "batch_size",
        "Pairs per process per micro-batch (default: the device's: "
        f"{DEVICE_DEFAULTS['cpu'].batch_size} on the CPU, "
        f"{DEVICE_DEFAULTS['cuda'].batch_size} on a GPU).",
        min=2,
    ),
    lr: float = _default("lr", "Peak learning rate (after warm-up)."),
    weight_decay: float = _default("weight_decay", "AdamW weight decay."),
    loss: str = _default("loss", "clip (InfoNCE) | siglip (sigmoid)."),
    hard_negatives: bool = _default(
        "hard_negatives", "Attribute-swapped negatives.", "--hard-negatives/--no-hard-negatives"
    ),
    grey_fraction: float = _fraction(
        "grey_fraction",
        "Share of colour-captioned pairs shown greyscale with the colour words removed.",
    ),
    warmup_fraction: float = _fraction(
        "warmup_fraction",
        "Share of the steps spent warming the learning rate up (then cosine decay).",
    ),
    accum: int = _default(
        "accum", "Micro-batches per optimiser step (batch × accum × processes per step).", min=1
    ),
    checkpoint_every: int = _default("checkpoint_every", "Steps; 0: at the end.", min=0),
    seed: int = _default("seed", "Seed of the initialisation, data order and augmentation."),
    threads: int = _default("threads", "Intra-op threads; 0: measured for --minutes runs.", min=0),
    stream: bool | None = _default(
        "stream",
        "Decode images in loader workers as training goes, or preload them all "
        "(default: stream only what is too big to preload).",
        "--stream/--preload",
    ),  # fmt: skip
    device: str = DEVICE_OPTION,
) -> TrainOptions:
    """``vitrieve train``'s recipe options, as the ``TrainOptions`` the trainer takes."""
    options = TrainOptions(
        loss=loss, batch_size=batch_size, lr=lr, weight_decay=weight_decay, epochs=epochs,
        minutes=minutes, accum=accum, hard_negatives=hard_negatives, grey_fraction=grey_fraction,
        warmup_fraction=warmup_fraction, checkpoint_every=checkpoint_every, seed=seed,
        threads=threads, stream=stream, device=device,
    )  # fmt: skip
    _check(epochs, minutes, options)
    return options


@takes(columns, "cols")
@takes(train_options, "options")
def train(
    data: Path = typer.Option(..., "--data", help=DATA_HELP),
    out: Path = typer.Option(..., "--out", help="Run directory: its checkpoint, metrics, curves."),
    val: Path | None = typer.Option(
        None, "--val", help="Labelled validation pairs (label column) for zero-shot curves."
    ),
    label_col: str = typer.Option(REQUEST["label_col"], "--label-col", help="--val's labels."),
    arch: str = typer.Option(
        REQUEST["model"], "--arch", help="Architecture: tiny | small | an open_clip name | .json"
    ),
    image_size: int | None = typer.Option(REQUEST["image_size"], "--image-size", min=16, max=4096),
    text_tower: str = typer.Option(
        REQUEST["text_tower"], "--text-tower", help="minilm (pretrained) | own (from scratch)."
    ),
    lock_text: bool = typer.Option(
        REQUEST["lock_text"], "--lock-text/--train-text", help="Freeze the pretrained text tower."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue RUN_DIR/checkpoint."),
    json_out: bool = JSON_OPTION,
    world_size: int = typer.Option(1, envvar="WORLD_SIZE", hidden=True),  # set by torchrun
    local_rank: int = typer.Option(0, envvar="LOCAL_RANK", hidden=True),  # set by torchrun
    *,
    cols: Columns,
    options: TrainOptions,
) -> None:
    """Train a CLIP-style model on captioned images (contrastive, from scratch)."""
    from encoders.training.main import train_from_files

    if text_tower not in TEXT_TOWERS:
        raise typer.BadParameter(f"--text-tower must be one of {', '.join(TEXT_TOWERS)}")
    request = TrainRequest(
        data=data, out=out, model=arch, val=val, image_size=image_size, text_tower=text_tower,
        lock_text=lock_text, resume=resume, sep=cols.sep, image_col=cols.image_col,
        caption_col=cols.caption_col, label_col=label_col, options=options,
    )  # fmt: skip
    rank = _join_torchrun(world_size, local_rank, options.device)
    # --device is kept as given (common.DEVICE_OPTION): cuda/auto become this rank's own GPU
    options = dataclasses.replace(options, device=str(train_device(options.device, local_rank)))
    request = dataclasses.replace(request, options=options)
    try:
        with _bar(Console(stderr=True, quiet=rank != 0)) as progress:
            task = progress.add_task(
                "training", total=None, loss="-", lr="-", rate="-", eta="-", val="", health=""
            )
            result = train_from_files(request, _progress_callback(progress, task))
    finally:
        if rank >= 0:
            from encoders.training.distributed import cleanup_distributed

            cleanup_distributed()
    if rank <= 0:
        _report(result, out, device_name(options.device), json_out)


def _report(result, out: Path, device: str, as_json: bool) -> None:
    summary = {
        "checkpoint": str(result.checkpoint),
        "steps": result.state.step,
        "samples": result.state.samples,
        "samples_per_s": round(result.samples_per_s, 1),
        "validation": result.final,
        "device": device,
    }
    if as_json:
        typer.echo(json.dumps(summary))
        return
    typer.echo(f"wrote {result.checkpoint} after {result.state.step} steps "
               f"({result.samples_per_s:.0f} samples/s on {device})")  # fmt: skip
    if result.final:
        typer.echo(
            "validation zero-shot " + "  ".join(f"{k} {v:.3f}" for k, v in result.final.items())
        )
    layout = RunLayout(out)
    typer.echo(f"curves: {layout.curves}  metrics: {layout.metrics}")


def finetune(
    data: Path = typer.Option(..., "--data", help="Folder with one subfolder per class."),
    model: Path = typer.Option(
        ..., "--model", "-m", "--from", help="Checkpoint directory whose ViT to start from."
    ),
    out: Path = typer.Option(..., "--out", help="Run directory for the classifier."),
    linear_probe: bool = typer.Option(False, "--linear-probe", help="Freeze the ViT."),
    epochs: float = typer.Option(FINETUNE.epochs, "--epochs", min=0.01),
    batch_size: int = typer.Option(FINETUNE.batch_size, "--batch-size", min=1),
    lr: float | None = typer.Option(FINETUNE.lr, "--lr", help="Default: 1e-3 probe, 1e-4 full."),
    holdout: float = typer.Option(FINETUNE.holdout, "--holdout", min=0.01, max=0.9),
    seed: int = typer.Option(FINETUNE.seed, "--seed"),
    device: str = DEVICE_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Train a classification head on the ViT (and the ViT, unless --linear-probe)."""
    from encoders.training.finetune import finetune_folder

    if not data.is_dir():
        raise VitrieveError(f"{data} is not a folder of class subfolders")
    options = FinetuneOptions(
        epochs=epochs, batch_size=batch_size, lr=lr, linear_probe=linear_probe,
        holdout=holdout, seed=seed, device=device,
    )  # fmt: skip
    result = finetune_folder(data, model, out, options)
    if json_out:
        typer.echo(json.dumps({**result, "device": device_name(device)}))
        return
    typer.echo(
        f"{result['mode']}: held-out accuracy {result['accuracy']:.3f} on {result['test']} images "
        f"({result['classes']} classes, {result['train']} training images); wrote {out}"
    )
