"""Session benchmark: a whole camcheck session against a plain inference loop, process to process.

Process A runs pytest on a one-test project whose test is a dataset-level gate
(``assert_pass_rate(camcheck.pointing_game(region="object", tolerance=15), min_rate=0.0)``) over
an annotated ImageFolder of JPEGs (default 512 images of 300-500 px, resnet18 with seeded random
weights, 224 px, batch 32). Process B is what a user would write without camcheck: a script that
builds the same model and a ``torch.utils.data.DataLoader`` with the same settings (batch size,
workers, ``pin_memory`` only on CUDA) over the same JPEGs, decodes each with PIL, applies the
same transform (torchvision v2 ``ToImage`` + ``Resize((size, size))`` + ``ToDtype(float32)`` +
``Normalize(ImageNet)``, camcheck's default) and runs ``model(x)`` under
``torch.inference_mode()``.

Each whole process is timed on the wall clock (interpreter start, imports, model build, data,
compute, exit). After ``--warmup`` rounds of each (default 1, not counted: they also fill the OS
file cache), A and B alternate for ``--rounds`` rounds. The ratio is median(A) / median(B);
target <= 1.2. Per-round ratios are printed too. With ``--device cuda`` the pair runs twice: with
``--workers`` workers and with none (inline loading).

    python benchmarks/bench_session.py [--images 512] [--size 224] [--rounds 3] [--workers N]
        [--batch-size 32] [--device cpu|cuda] [--warmup 1] [--out DIR] [--keep] [--json PATH]
        [--no-check] [--timeout 1800]

Every run of process A, warm-up included, must report exactly ``1 passed`` (and B must see every
image), else the script prints the process's output and exits 2. A ratio above the target exits 1
unless ``--no-check``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

TARGET = 1.2
CLASSES = ("cat", "dog")
MARKER = ".bench_session"  # marks a work folder this script made (and may overwrite)
TOLERANCE_PX = 15

MODEL_MODULE = '''\
"""The benchmark's model: resnet18, 2 classes, seeded random weights (nothing downloaded)."""

import torch
import torchvision


def build() -> torch.nn.Module:
    """resnet18(weights=None, num_classes=2) after torch.manual_seed(0), in eval mode."""
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None, num_classes=2).eval()
'''

GATE_TEST = f"""\
from pytest_camcheck import assert_pass_rate


def test_gate(camcheck):
    assert_pass_rate(
        camcheck.pointing_game(region="object", tolerance={TOLERANCE_PX}), min_rate=0.0
    )
"""

LOOP_SCRIPT = '''\
"""Plain loop: decode, transform and run the forward over every JPEG of the data folder."""

import argparse
import time
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from benchmodel import build

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


class JpegFolder(Dataset):
    """The JPEGs under a folder, decoded with PIL (RGB) and transformed to (3, size, size)."""

    def __init__(self, paths, size):
        self.paths = paths
        self.transform = v2.Compose(
            [
                v2.ToImage(),
                v2.Resize((size, size), antialias=True),
                v2.ToDtype(torch.float32, scale=True),
                v2.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD),
            ]
        )

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        with Image.open(self.paths[i]) as im:
            image = im.convert("RGB")
        return self.transform(image)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="data")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    paths = sorted(Path(args.data).rglob("*.jpg"))
    model = build().to(device)
    loader = DataLoader(
        JpegFolder(paths, args.size),
        batch_size=args.batch_size,
        shuffle=False,
        num_workers=args.workers,
        pin_memory=device.type == "cuda",
    )
    start = time.perf_counter()
    preds = []
    with torch.inference_mode():
        for x in loader:
            preds.append(model(x.to(device, non_blocking=True)).argmax(dim=1).cpu())
    n = sum(len(p) for p in preds)
    print(f"loop: {n} images in {time.perf_counter() - start:.2f}s")
    if n != len(paths):
        raise SystemExit(f"loop saw {n} images, expected {len(paths)}")


if __name__ == "__main__":
    main()
'''


@dataclass
class Pair:
    """The timings of one configuration (device, workers): session (A) vs plain loop (B)."""

    device: str
    workers: int
    warmup_session_s: list[float] = field(default_factory=list)
    warmup_loop_s: list[float] = field(default_factory=list)
    session_s: list[float] = field(default_factory=list)
    loop_s: list[float] = field(default_factory=list)
    session_cpu_s: list[float] = field(default_factory=list)  # user + sys, workers included
    loop_cpu_s: list[float] = field(default_factory=list)
    session_pytest_s: list[float] = field(default_factory=list)  # pytest's own "in X s"

    @property
    def ratio(self) -> float:
        """median(session) / median(loop), wall clock: the benchmark's figure."""
        return statistics.median(self.session_s) / statistics.median(self.loop_s)

    @property
    def round_ratios(self) -> list[float]:
        """session / loop of each round (the two ran back to back)."""
        return [a / b for a, b in zip(self.session_s, self.loop_s)]

    @property
    def cpu_ratio(self) -> float | None:
        """median(session CPU) / median(loop CPU), when CPU times were measured: less sensitive
        to other jobs on the machine than the wall clock (info only)."""
        if not self.session_cpu_s or not self.loop_cpu_s or min(self.loop_cpu_s) <= 0:
            return None
        return statistics.median(self.session_cpu_s) / statistics.median(self.loop_cpu_s)


# ---------------------------------------------------------------------------- the dataset


def smooth_noise(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A (height, width, 3) uint8 image of smooth random colour: coarse noise, bicubic-upsampled."""
    coarse = rng.integers(40, 216, size=(max(2, height // 48), max(2, width // 48), 3))
    small = Image.fromarray(coarse.astype(np.uint8), "RGB")
    return np.asarray(small.resize((width, height), Image.Resampling.BICUBIC)).copy()


def make_image(
    rng: np.random.Generator, class_index: int
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """One image of 300-500 px a side with a coloured rectangle; returns it and the rectangle's
    box ``(x0, y0, x1, y1)`` in its pixels (``x1``, ``y1`` exclusive)."""
    width, height = (int(v) for v in rng.integers(300, 501, size=2))
    pixels = smooth_noise(rng, width, height)
    box_w = int(rng.integers(width // 4, width // 2 + 1))
    box_h = int(rng.integers(height // 4, height // 2 + 1))
    x0 = int(rng.integers(0, width - box_w + 1))
    y0 = int(rng.integers(0, height - box_h + 1))
    colour = np.array([220, 60, 40] if class_index == 0 else [40, 80, 220], dtype=np.int16)
    colour += rng.integers(-30, 31, size=3, dtype=np.int16)
    pixels[y0 : y0 + box_h, x0 : x0 + box_w] = np.clip(colour, 0, 255).astype(np.uint8)
    return pixels, (x0, y0, x0 + box_w, y0 + box_h)


def make_dataset(data: Path, images: int, seed: int = 0) -> None:
    """Write ``images`` JPEGs (quality 90) as ``data/<class>/<name>.jpg`` (two classes,
    alternating) and ``data/annotations.csv`` giving each image's class and its "object" box."""
    rng = np.random.default_rng(seed)
    rows = ["image,label,region,x0,y0,x1,y1"]
    for name in CLASSES:
        (data / name).mkdir(parents=True, exist_ok=True)
    for i in range(images):
        cls = i % len(CLASSES)
        pixels, (x0, y0, x1, y1) = make_image(rng, cls)
        rel = f"{CLASSES[cls]}/{CLASSES[cls]}_{i:04d}.jpg"
        Image.fromarray(pixels, "RGB").save(data / rel, format="JPEG", quality=90)
        rows.append(f"{rel},{CLASSES[cls]},object,{x0},{y0},{x1},{y1}")
    (data / "annotations.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------- the two projects


def pytest_ini(device: str, workers: int, batch_size: int, size: int) -> str:
    """The session project's ``pytest.ini``."""
    return textwrap.dedent(
        f"""\
        [pytest]
        camcheck_model = benchmodel:build
        camcheck_dataset = data
        camcheck_annotations = data/annotations.csv
        camcheck_device = {device}
        camcheck_batch_size = {batch_size}
        camcheck_image_size = {size}
        camcheck_num_workers = {workers}
        """
    )


def write_project(work: Path, images: int) -> None:
    """The dataset, the model module, the gate test and the plain loop script, in ``work``."""
    data = work / "data"
    if data.exists():
        shutil.rmtree(data)
    make_dataset(data, images)
    (work / "benchmodel.py").write_text(MODEL_MODULE, encoding="utf-8")
    (work / "test_gate.py").write_text(GATE_TEST, encoding="utf-8")
    (work / "benchloop.py").write_text(LOOP_SCRIPT, encoding="utf-8")


def child_env(work: Path) -> dict[str, str]:
    """The environment of both processes: ours, ``work`` first on PYTHONPATH, and no
    ``PYTEST_*`` variable (PYTEST_ADDOPTS, PYTEST_PLUGINS, PYTEST_DISABLE_PLUGIN_AUTOLOAD, an
    outer pytest's PYTEST_CURRENT_TEST...): the session runs exactly the command shown."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(work), env.get("PYTHONPATH")) if p)
    return env


def session_cmd() -> list[str]:
    """Process A: pytest on the one-test project."""
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"]


def loop_cmd(args: argparse.Namespace, device: str, workers: int) -> list[str]:
    """Process B: the plain loop script."""
    return [
        sys.executable,
        "benchloop.py",
        "--size",
        str(args.size),
        "--batch-size",
        str(args.batch_size),
        "--workers",
        str(workers),
        "--device",
        device,
    ]


@dataclass
class Timed:
    """One finished process: wall seconds, CPU seconds (None where unmeasurable), its output."""

    wall_s: float
    cpu_s: float | None
    out: str


def children_cpu_s() -> float | None:
    """User + system CPU seconds of every waited-for descendant so far (Unix only)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_timed(cmd: list[str], work: Path, timeout: float) -> Timed:
    """Run ``cmd`` in ``work`` and time it: wall clock, and CPU time of the process and its own
    children (DataLoader workers). Exits 2, printing the output, when it fails."""
    cpu0 = children_cpu_s()
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd,
            cwd=work,
            env=child_env(work),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.output if isinstance(exc.output, str) else (exc.output or b"").decode()
        sys.stdout.write(out)
        raise SystemExit(f"timed out after {timeout:g} s: {' '.join(cmd)}") from None
    elapsed = time.perf_counter() - start
    cpu1 = children_cpu_s()
    if proc.returncode != 0:
        sys.stdout.write(proc.stdout)
        print(f"FAILED (exit {proc.returncode}): {' '.join(cmd)} in {work}", flush=True)
        raise SystemExit(2)
    cpu = None if cpu0 is None or cpu1 is None else cpu1 - cpu0
    return Timed(elapsed, cpu, proc.stdout)


def check_session_output(out: str) -> float | None:
    """Process A must report exactly one passed test and nothing failed; returns the time
    pytest itself reports (``in X s``) when it can be read. Exits 2 otherwise."""
    summary = out.strip().splitlines()[-1] if out.strip() else ""
    passed = re.search(r"\b(\d+) passed\b", summary)
    bad = re.search(r"\b\d+ (failed|errors?|skipped|xfailed|xpassed)\b", summary)
    if not passed or passed.group(1) != "1" or bad:
        sys.stdout.write(out)
        print(f"FAILED: the camcheck session must report '1 passed', got {summary!r}")
        raise SystemExit(2)
    took = re.search(r" in ([0-9.]+)s\b", summary)
    return float(took.group(1)) if took else None


# ---------------------------------------------------------------------------- running


def run_pair(args: argparse.Namespace, work: Path, device: str, workers: int) -> Pair:
    """Warm-up A and B once, then alternate A, B for ``args.rounds`` rounds."""
    (work / "pytest.ini").write_text(
        pytest_ini(device, workers, args.batch_size, args.size), encoding="utf-8"
    )
    pair = Pair(device=device, workers=workers)
    a_cmd, b_cmd = session_cmd(), loop_cmd(args, device, workers)
    print(f"\n== {device}, {workers} DataLoader worker(s)")
    print(f"  A: {' '.join(a_cmd)}")
    print(f"  B: {' '.join(b_cmd)}")

    print(f"  {'':<10} {'session s':>10} {'loop s':>8} {'ratio':>6} {'CPU s A':>9} {'CPU s B':>8}")
    for w in range(args.warmup):
        a = run_timed(a_cmd, work, args.timeout)
        check_session_output(a.out)  # the sanity check: the gate ran and passed
        warn_unknown_key(a.out, first=w == 0)
        b = run_timed(b_cmd, work, args.timeout)
        pair.warmup_session_s.append(a.wall_s)
        pair.warmup_loop_s.append(b.wall_s)
        print(row("warm-up", a, b) + "   (not counted)", flush=True)
    for r in range(1, args.rounds + 1):
        a = run_timed(a_cmd, work, args.timeout)
        inner = check_session_output(a.out)  # every timed session must pass too
        warn_unknown_key(a.out, first=r == 1 and args.warmup == 0)
        b = run_timed(b_cmd, work, args.timeout)
        pair.session_s.append(a.wall_s)
        pair.loop_s.append(b.wall_s)
        if a.cpu_s is not None and b.cpu_s is not None:
            pair.session_cpu_s.append(a.cpu_s)
            pair.loop_cpu_s.append(b.cpu_s)
        if inner is not None:
            pair.session_pytest_s.append(inner)
        print(row(f"round {r}", a, b), flush=True)
    med_a, med_b = statistics.median(pair.session_s), statistics.median(pair.loop_s)
    print(f"  {'median':<10} {med_a:10.2f} {med_b:8.2f} {pair.ratio:6.2f}")
    print(
        f"  ratio of medians {pair.ratio:.2f}; per-round ratios "
        + ", ".join(f"{r:.2f}" for r in pair.round_ratios)
        + f" (median {statistics.median(pair.round_ratios):.2f})"
    )
    if pair.cpu_ratio is not None:
        print(f"  CPU-time ratio (info, less sensitive to other load): {pair.cpu_ratio:.2f}")
    if pair.session_pytest_s:
        print(
            "  pytest's own time in A (from the start of its session, after interpreter start "
            f"and plugin imports): median {statistics.median(pair.session_pytest_s):.2f} s"
        )
    return pair


def row(name: str, a: Timed, b: Timed) -> str:
    """One line of the table: wall seconds of A and B, their ratio and their CPU seconds."""
    cpu = "".join(f" {'-' if t.cpu_s is None else f'{t.cpu_s:.2f}':>8}" for t in (a, b))
    return f"  {name:<10} {a.wall_s:10.2f} {b.wall_s:8.2f} {a.wall_s / b.wall_s:6.2f} {cpu}"


def warn_unknown_key(out: str, first: bool) -> None:
    """Say once when the session's camcheck ignored ``camcheck_num_workers``."""
    if first and "Unknown config option: camcheck_num_workers" in out:
        print("  note: this camcheck does not know camcheck_num_workers (ignored, warned)")


def num_workers_key_known() -> bool:
    """Whether this camcheck has the ``camcheck_num_workers`` setting (cheap: no torch)."""
    try:
        from pytest_camcheck.settings import OPTIONS
    except ImportError:
        return False
    return any(opt.name == "num_workers" for opt in OPTIONS)


def prepare_work(out: str | None) -> tuple[Path, bool]:
    """The work folder and whether it is a temporary one. ``--out`` must be empty, missing or
    a folder this script made before (it holds the marker file)."""
    if out is None:
        return Path(tempfile.mkdtemp(prefix="camcheck-bench-session-")), True
    work = Path(out).resolve()
    if work.exists() and any(work.iterdir()) and not (work / MARKER).exists():
        raise SystemExit(f"--out {work} is not empty and was not made by this script")
    work.mkdir(parents=True, exist_ok=True)
    (work / MARKER).write_text("made by benchmarks/bench_session.py\n", encoding="utf-8")
    return work, False


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=512, help="JPEGs in the dataset")
    parser.add_argument("--size", type=int, default=224, help="model input size (square)")
    parser.add_argument("--rounds", type=int, default=3, help="timed A, B rounds")
    parser.add_argument("--warmup", type=int, default=1, help="A, B rounds not counted first")
    parser.add_argument(
        "--workers",
        type=int,
        default=min(4, os.cpu_count() or 1),
        help="DataLoader workers of both processes (default min(4, cpu count); 0 = inline)",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--out", help="work folder (kept); default a temporary folder")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    parser.add_argument("--json", help="write the timings to this JSON file")
    parser.add_argument("--no-check", action="store_true", help="exit 0 even above the target")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per process")
    args = parser.parse_args(argv)
    if args.images < 2 or args.size < 32 or args.rounds < 1 or args.batch_size < 1:
        parser.error("need --images >= 2, --size >= 32, --rounds >= 1, --batch-size >= 1")
    if args.workers < 0 or args.warmup < 0:
        parser.error("--workers and --warmup must be >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when every ratio is within the target (or ``--no-check``)."""
    args = parse_args(argv)
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("--device cuda: no CUDA device here")
            return 2
    work, temporary = prepare_work(args.out)
    known = num_workers_key_known()
    started = time.perf_counter()
    try:
        t0 = time.perf_counter()
        write_project(work, args.images)
        print(
            f"pytest-camcheck session benchmark | python {platform.python_version()}, "
            f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}"
        )
        print(
            f"{args.images} JPEGs (300-500 px, 2 classes) written in {time.perf_counter() - t0:.1f}"
            f" s to {work}; resnet18 (random weights), {args.size} px, batch {args.batch_size}, "
            f"{args.rounds} round(s) after {args.warmup} warm-up round(s)"
        )
        if not known:
            print(
                "note: camcheck_num_workers is not a camcheck setting yet: the session loads "
                "its data its own way, whatever --workers says"
            )
        configs = [args.workers]
        if args.device == "cuda" and args.workers != 0:
            configs.append(0)
        pairs = [run_pair(args, work, args.device, w) for w in configs]
    finally:
        if temporary and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        elif temporary:
            print(f"kept {work}")
    wall = time.perf_counter() - started

    print()
    for pair in pairs:
        print(
            f"session/loop ratio: {pair.ratio:.2f} (target <= {TARGET}) "
            f"[{pair.device}, {pair.workers} worker(s)]"
        )
    ok = all(pair.ratio <= TARGET for pair in pairs)
    print(f"benchmark wall time {wall:.1f} s; {'PASS' if ok else 'FAIL'}")
    if args.json:
        report = {
            "target": TARGET,
            "images": args.images,
            "size": args.size,
            "batch_size": args.batch_size,
            "rounds": args.rounds,
            "device": args.device,
            "num_workers_key_known": known,
            "wall_s": wall,
            "pairs": [
                {
                    **asdict(p),
                    "ratio": p.ratio,
                    "round_ratios": p.round_ratios,
                    "cpu_ratio": p.cpu_ratio,
                }
                for p in pairs
            ],
            "pass": ok,
        }
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0 if ok or args.no_check else 1


if __name__ == "__main__":
    sys.exit(main())
