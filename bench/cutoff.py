"""The "no good match" cut-off as a classifier: answerable vs unanswerable queries.

A cut-off that flags good queries teaches people to ignore it; one that lets nonsense through
shows confident junk. This measures both, per model and library, through the real search path
(``Searcher.search(...).no_good_match``):

* **models**: the tests' fixture (``trained_tiny``, from the tests' cache, trained there if
  missing), a shorter-trained one (``--short-steps`` of the same loop) and random weights
  (0 steps: every query is effectively unanswerable) — all from ``tests/retrieval/minitrain.py``;
* **libraries**: the tests' 48 photos (``tests/retrieval/synthlib.py``: 4 colours × 4 shapes
  and two copies) and a larger one, ``shapes`` (``--photos``, one large object each, 40 of the
  64 classes present, anywhere on any background);
* **queries**: captions of classes present in the library — *answerable* when at least half of
  the model's top 10 are right (half the class's photos where it has fewer than 10), *missed*
  when not: the model cannot see that class — and *unanswerable* text: nonsense and
  out-of-domain phrases, none of them in the calibration's caption bank (``NULL_CAPTIONS``). Both
  kinds come in a ``tune`` and a ``held-out`` split (other classes, other phrasings, other
  words); the figures quoted in docs/decisions.md are the held-out ones. Also shown, without a
  target: captions of classes absent from the library, and out-of-domain phrases with a colour
  or shape word ("a red car").

Targets (docs/decisions.md, "The no-good-match cut-off"): ≤ 5 % of answerable queries flagged,
≥ 95 % of unanswerable ones flagged. Models and libraries are cached under ``--cache``; the first
run trains the short model and indexes six libraries (minutes on 2 idle cores, ~20 on busy
ones); later runs take a minute or two. ``--baseline REV`` adds a column measured with
``retrieval/search/calibration.py`` as it was at that git revision.

    python bench/cutoff.py                      # all models, both libraries
    python bench/cutoff.py --baseline 9266d93   # before / after
    python bench/cutoff.py --fixture DIR        # another checkpoint as the fixture
"""

from __future__ import annotations

import argparse
import fcntl
import sys
import time
from pathlib import Path

import torch
from fixture_key import fixture_key  # tests/retrieval: on PYTHONPATH (make bench)
from minitrain import fixture_config, train_tiny
from synthlib import POSITIONS, plant_duplicates, write_photos

from encoders.data.drawing import BACKGROUND_KINDS
from encoders.data.synthetic import SceneObject, class_names, render_scene
from encoders.model.clip import create_model
from encoders.runtime.encoder import Encoder
from encoders.weights.checkpoint import save_checkpoint
from indexer.pipeline.local import IndexOptions, index_library
from retrieval.library.handle import Library
from retrieval.search.calibration import compute_calibration
from retrieval.search.searcher import Searcher

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"

LIBRARY_SEED = 11  # which classes the shapes library holds, and where its objects are
PRESENT = 40  # classes of the 64 present in the generated library
ANSWERED = 0.5  # share of the top 10 (of the class's photos if fewer) right: "answerable"

# Phrasings of a class ("a red circle"): the tune split uses the first three and even-numbered
# classes, the held-out split the others.
TUNE_TEMPLATES = ("{a} {cs}", "{cs}", "a photo of {a} {cs}")
HELD_OUT_TEMPLATES = (
    "a picture of {a} {cs}",
    "a drawing of a large {cs}",
    "{a} {cs} in the middle",
)

# Written before any tuning; none is in calibration.NULL_CAPTIONS.
UNANSWERABLE = {
    "tune": (
        "xyzzy", "quarterly tax invoice spreadsheet", "blarg fnord", "zxcvbnm", "qqq rrr sss",
        "mimsy borogoves", "glorp snazzle wub", "hjkl yuio", "florbix", "wibble wobble",
        "kwyjibo", "snarfblat", "a dog on the beach", "my grandmother's birthday party",
        "sunset over the mountains", "a plate of spaghetti", "the eiffel tower at night",
        "a cat sleeping on a sofa", "a wedding ceremony", "a traffic jam in the city",
        "a bowl of fruit", "children playing football", "a snowy forest", "a passport photo",
        "an airport departure board", "a vintage car", "the annual budget report",
        "minutes of the board meeting", "a recipe for banana bread", "my electricity bill",
        "the python standard library", "a love letter",
    ),
    "held-out": (
        "plugh", "frobnicate the quux", "zorblax vemmit", "asdfghjkl", "mnbvcx lkjh",
        "tove gyre gimble", "wug blick dax", "zzzzzz", "qpwoeiruty", "skibbidy bop",
        "flibbertigibbet", "grobble snerp", "a horse in a field", "a birthday cake with candles",
        "the beach at low tide", "a man riding a bicycle", "new york skyline", "a cup of coffee",
        "a christmas tree", "a baby in a stroller", "a rainy street at night", "a mountain lake",
        "a concert crowd", "a dentist appointment reminder", "the company's annual tax filing",
        "a chess board", "a hospital waiting room", "an old castle", "a flock of birds",
        "the quarterly sales figures", "a pile of laundry", "a train station",
    ),
}  # fmt: skip
# Out-of-domain, but with a word the model knows: reported, no target.
COLOUR_WORDS = ("a red car", "a blue sky", "green grass", "a yellow taxi", "a black cat",
                "a white wedding dress", "an orange sunset", "a purple flower",
                "a star-shaped cookie", "a heart drawn on a window", "a square building",
                "a circle of friends")  # fmt: skip


def _a(phrase: str) -> str:
    return "an" if phrase[0] in "aeiou" else "a"


def class_queries(classes: list[str], split: str) -> list[tuple[str, str]]:
    """(query, class) for ``split``: tune = even classes × tune phrasings, else the rest."""
    templates = TUNE_TEMPLATES if split == "tune" else HELD_OUT_TEMPLATES
    chosen = classes[0::2] if split == "tune" else classes[1::2]
    return [(t.format(a=_a(c), cs=c), c) for c in chosen for t in templates]


# --- models and libraries ------------------------------------------------------------------------


def fixture_model() -> Path:
    """The tests' ``trained_tiny`` checkpoint (the conftest's cache and key; trained if absent)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("tests_conftest", TESTS / "conftest.py")
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)
    settings = repr(fixture_config().to_dict()).encode() + str(conftest.TRAIN_STEPS).encode()
    key = fixture_key(TESTS / "retrieval" / "minitrain.py", ROOT, settings)
    out = conftest._test_cache() / f"trained_tiny-{key}"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(str(out) + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "model.safetensors").is_file():
            train_tiny(out, steps=conftest.TRAIN_STEPS)
    return out


def trained(cache: Path, steps: int) -> Path:
    """``minitrain.train_tiny`` for ``steps``, cached (0 steps: the fixture's architecture
    with its initial random weights)."""
    out = cache / f"tiny-{steps}steps"
    if not (out / "model.safetensors").is_file():
        if steps:
            train_tiny(out, steps=steps)
        else:
            torch.manual_seed(0)
            save_checkpoint(create_model(fixture_config()), out, extra={"steps": 0})
    return out


def tests_library(root: Path) -> dict[str, set[str]]:
    """The tests' 48 photos and 2 copies; {relative path: classes shown}."""
    if not root.is_dir():
        photos = write_photos(root, per_class=3)
        plant_duplicates(root, photos, count=2)
    truth = {}
    for path in root.rglob("*.*"):
        relative = path.relative_to(root).as_posix()
        colour, shape = relative.split("/")[0], path.stem.split("_")[0]
        truth[relative] = {f"{'red' if colour == 'copies' else colour} {shape}"}
    return truth


def shapes_library(root: Path, count: int) -> dict[str, set[str]]:
    """``count`` photos of one large object each, of ``PRESENT`` classes, anywhere on any
    background; {relative path: classes shown}."""
    import numpy as np

    names = class_names()
    rng = np.random.default_rng(LIBRARY_SEED)
    present = [names[i] for i in sorted(rng.choice(len(names), PRESENT, replace=False))]
    truth = {}
    for i in range(count):
        name = present[i % PRESENT]
        relative = f"{i // 250:02d}/{i:05d}.jpg"
        if not (root / relative).is_file():
            obj = SceneObject(*name.split(" "), "large", POSITIONS[int(rng.integers(5))])
            scene = render_scene([obj], 96, seed=i, background=BACKGROUND_KINDS[i % 3])
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            scene.image.save(root / relative, quality=90)
        truth[relative] = {name}
    return truth


def indexed(photos: Path, checkpoint: Path, library: Path) -> Library:
    if not (library / "library.json").is_file():
        encoder = Encoder.load(checkpoint, precision="fp32")
        index_library(photos, encoder, model_ref=str(checkpoint), library=library,
                      options=IndexOptions(workers=0))  # fmt: skip
    return Library.open(library)


# --- measuring -------------------------------------------------------------------------------


def queries(truth: dict[str, set[str]]) -> list[tuple[str, str, str]]:
    """(query, category, class or "") for a library with these contents."""
    present = sorted({c for classes in truth.values() for c in classes}, key=class_names().index)
    absent = [c for c in class_names() if c not in present]
    out = []
    for split in ("tune", "held-out"):
        out += [(query, f"class {split}", cls) for query, cls in class_queries(present, split)]
        out += [(query, f"unanswerable {split}", "") for query in UNANSWERABLE[split]]
    out += [(query, "absent class", "") for query, _ in class_queries(absent, "tune")[:24]]
    return out + [(query, "colour-word ood", "") for query in COLOUR_WORDS]


def measure(
    library: Library, truth: dict[str, set[str]], calibrations: list
) -> dict[str, list[int]]:
    """{category: [total, flagged by each calibration...]}, through ``Searcher.search``.
    A class caption is "answerable" when the model's top 10 hold at least ``ANSWERED`` of
    what they can (the class's photos, at most 10), else "missed class"."""
    searchers = [Searcher(library.encoder, library.index, library.store, calibrate(
        library.encoder, library.index)) for calibrate in calibrations]  # fmt: skip
    sizes: dict[str, int] = {}
    for classes in truth.values():
        for cls in classes:
            sizes[cls] = sizes.get(cls, 0) + 1
    counts: dict[str, list[int]] = {}
    for query, category, cls in queries(truth):
        responses = [searcher.search(query, limit=10) for searcher in searchers]
        if cls:
            right = sum(cls in truth.get(r.path, ()) for r in responses[0].results)
            kind = "answerable" if right >= ANSWERED * min(10, sizes[cls]) else "missed class"
            category = category.replace("class", kind)
        tally = counts.setdefault(category, [0] * (1 + len(searchers)))
        tally[0] += 1
        for n, response in enumerate(responses, 1):
            tally[n] += int(response.no_good_match)
    return counts


def baseline_calibration(revision: str):
    """``compute_calibration`` of ``retrieval/search/calibration.py`` at a git revision."""
    import importlib.util
    import subprocess
    import tempfile

    command = ["git", "-C", str(ROOT), "show", f"{revision}:retrieval/search/calibration.py"]
    source = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "baseline_calibration.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("baseline_calibration", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module.compute_calibration


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", type=Path,
                        default=Path.home() / ".cache" / "vitrieve-bench" / "cutoff")  # fmt: skip
    parser.add_argument("--fixture", type=Path, help="checkpoint dir (default: the tests' one)")
    parser.add_argument("--short-steps", type=int, default=40)
    parser.add_argument("--photos", type=int, default=600, help="the shapes library's size")
    parser.add_argument("--models", nargs="*", default=["fixture", "short", "random"])
    parser.add_argument("--libraries", nargs="+", default=["tests48", "shapes"])
    parser.add_argument("--baseline", metavar="REV", help="also measure calibration.py at REV")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="NAME=DIR",
                        help="another model to measure, e.g. a `vitrieve train` run's")  # fmt: skip
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    checkpoints = {"fixture": lambda: args.fixture or fixture_model(),
                   "short": lambda: trained(args.cache, args.short_steps),
                   "random": lambda: trained(args.cache, 0)}  # fmt: skip
    for extra in args.checkpoint:
        name, _, where = extra.partition("=")
        checkpoints[name] = lambda where=where: Path(where)
        args.models.append(name)
    libraries = {"tests48": lambda root: tests_library(root),
                 "shapes": lambda root: shapes_library(root, args.photos)}  # fmt: skip
    calibrations = [compute_calibration]
    header = f"{'model':8} {'library':8} {'category':22} {'queries':>7} {'flagged':>8}"
    if args.baseline:
        calibrations.insert(0, baseline_calibration(args.baseline))
        header += f" {'at ' + args.baseline:>10}"
    print(header)
    for model in args.models:
        checkpoint = checkpoints[model]()
        tag = Encoder.load(checkpoint).model_id
        for name in args.libraries:
            photos = args.cache / (name if name == "tests48" else f"{name}-{args.photos}")
            truth = libraries[name](photos)
            started = time.perf_counter()
            where = args.cache / "libraries" / f"{photos.name}-{tag}"
            with indexed(photos, checkpoint, where) as library:
                counts = measure(library, truth, calibrations)
            for category, (total, *flagged) in sorted(counts.items()):
                rates = [f"{n:>3} {n / total:4.0%}" for n in reversed(flagged)]
                print(
                    f"{model:8} {name:8} {category:22} {total:>7} "
                    + " ".join(f"{r:>10}" for r in rates)
                )
            print(f"{'':8} {'':8} ({time.perf_counter() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
