"""Measure the numbers the README quotes and write them into it: ``make readme-numbers``.

Every number in README.md that comes from running medleak sits between two markers,
``<!--n:KEY-->value<!--/n-->``. This script runs the README's example commands as written (in a
temporary folder, with the repository's ``medleak``), stores what they printed or wrote in
``docs/readme-numbers.json`` together with the machine and its load, and rewrites every marked
value from that file. ``tests/test_readme.py`` checks that the README and the file agree, so a
quoted number cannot drift from what runs.

    python docs/readme_numbers.py                 # demo, train, flower (minutes on 2 cores)
    python docs/readme_numbers.py --only setup    # make demo + make test on a fresh clone
    python docs/readme_numbers.py --only demo     # one group
    python docs/readme_numbers.py --write-only    # rewrite README.md from the JSON file
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
NUMBERS = REPO / "docs" / "readme-numbers.json"
MARKER = re.compile(r"<!--n:([\w.-]+)-->(.*?)<!--/n-->")


def medleak() -> str:
    found = shutil.which("medleak", path=str(Path(sys.executable).parent))
    return found or "medleak"


def run(cmd: list[str], cwd: Path) -> tuple[float, str]:
    """Run a README command as written; its wall time and stdout."""
    start = time.monotonic()
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()}")
    return time.monotonic() - start, done.stdout


def seconds(value: float) -> str:
    return f"{value:.0f} s" if value < 120 else f"{value / 60:.1f} min"


def group_demo(work: Path) -> dict[str, str]:
    """`medleak demo` and the ROG reference core on the same kind of batch."""
    wall, _ = run([medleak(), "demo", "--quiet"], work)
    m = json.loads((work / "runs" / "demo" / "metrics.json").read_text())
    _, _ = run([medleak(), "attack", "--preset", "rog-core", "--quiet", "--out", "core"], work)
    core = json.loads((work / "core" / "metrics.json").read_text())
    return {
        "demo.seconds": seconds(wall),
        "demo.attack_seconds": seconds(m["seconds"]),
        "demo.psnr": f"{m['psnr']:.1f}",
        "demo.ssim": f"{m['ssim']:.2f}",
        "demo.blank_psnr": f"{m['blank_psnr']:.1f}",
        "demo.blank_ssim": f"{m['blank_ssim']:.2f}",
        "demo.reid": f"{round(m['reid_rate'] * m['num_images'])} of {m['num_images']}",
        "demo.gallery": str(m["gallery_size"]),
        "demo.chance": f"{m['reid_chance']:.1%}",
        "core.psnr": f"{core['psnr']:.1f}",
        "core.ssim": f"{core['ssim']:.2f}",
    }


TRAIN = [
    "train", "--set", "data.image_size=32", "--set", "model.channels=1",
    "--set", "data.phantom_count=400", "--set", "train.rounds=10",
    "--defense", "topk:ratio=0.1", "--out", "runs/train",
]  # fmt: skip


def group_train(work: Path) -> dict[str, str]:
    """The README's `medleak train` example."""
    wall, _ = run([medleak(), *TRAIN, "--quiet"], work)
    record = json.loads((work / "runs" / "train" / "train.json").read_text())
    out = {"train.seconds": seconds(wall), "train.accuracy": f"{record['accuracy']:.2f}"}
    if record.get("auc") is not None:
        out["train.auc"] = f"{record['auc']:.2f}"
    return out


def group_flower(work: Path) -> dict[str, str]:
    """The Flower example (guard on, then off)."""
    script = str(REPO / "examples" / "flower" / "hospitals.py")
    wall, _ = run([sys.executable, script, "--out", "runs/flower"], work)
    guarded = _audit_range(work / "runs" / "flower" / "audit.sqlite")
    _, _ = run([sys.executable, script, "--out", "runs/off", "--guard", "off"], work)
    off = _audit_range(work / "runs" / "off" / "audit.sqlite")
    return {
        "flower.seconds": seconds(wall),
        "flower.guarded_ssim": guarded["ssim"],
        "flower.guarded_psnr": guarded["psnr"],
        "flower.off_ssim": off["ssim"],
        "flower.off_psnr": off["psnr"],
    }


def _audit_range(store: Path) -> dict[str, str]:
    sys.path.insert(0, str(REPO / "src"))
    from medleak.experiments.sqlite_store import SweepStore

    with SweepStore(store, create=False) as opened:
        runs = [r for r in opened.runs(kind="audit") if isinstance(r.metrics.get("ssim"), float)]
    if not runs:
        return {"ssim": "n/a", "psnr": "n/a"}
    ssim = [r.metrics["ssim"] for r in runs]
    psnr = [r.metrics["psnr"] for r in runs]
    return {
        "ssim": f"{min(ssim):.2f}-{max(ssim):.2f}",
        "psnr": f"{min(psnr):.1f}-{max(psnr):.1f}",
    }


def group_setup(work: Path) -> dict[str, str]:
    """The README's two commands on a fresh clone of the committed tree (about 15 minutes)."""
    clone = work / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    demo, _ = run(["make", "demo"], clone)
    test, _ = run(["make", "test"], clone)
    return {"setup.demo": seconds(demo), "setup.test": seconds(test)}


GROUPS: dict[str, Callable[[Path], dict[str, str]]] = {
    "demo": group_demo,
    "train": group_train,
    "flower": group_flower,
    "setup": group_setup,
}
#: What ``make readme-numbers`` measures; ``--only setup`` times the fresh-clone set-up too.
DEFAULT_GROUPS = ("demo", "train", "flower")


def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return {
        "machine.cpu": cpu,
        "machine.cores": str(os.cpu_count()),
        "machine.date": date.today().isoformat(),
        "machine.load": f"{load:.1f}",
    }


COMMANDS = re.compile(r"(<!--commands-->\n)(.*?)(<!--/commands-->)", re.S)


def commands_table() -> str:
    """README's Commands table, rendered from the parser: one row per command, its positional
    arguments and required options, and its help line."""
    import argparse

    sys.path.insert(0, str(REPO / "src"))
    from medleak.cli import build_parser

    parser = build_parser(full=())
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    rows = ["| command | what it does |", "|---|---|"]
    for choice in sub._choices_actions:
        command = sub.choices[choice.dest]
        words = [f"medleak {choice.dest}"]
        for action in command._actions:
            if not action.option_strings:
                words.append(
                    f"{(action.metavar or action.dest).upper()}" + ("..." * (action.nargs == "+"))
                )
            elif action.required:
                words.append(f"{action.option_strings[0]} {action.dest.upper()}")
        rows.append(f"| `{' '.join(words)}` | {choice.help} |")
    return "\n".join(rows) + "\n"


def write_readme(numbers: dict[str, str], readme: Path = README) -> list[str]:
    """Replace every marked value by the file's, and the Commands table by the parser's; returns
    the keys the README uses but the file lacks."""
    text = COMMANDS.sub(lambda m: m.group(1) + commands_table() + m.group(3), readme.read_text())
    missing: list[str] = []

    def value(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in numbers:
            missing.append(key)
            return match.group(0)
        return f"<!--n:{key}-->{numbers[key]}<!--/n-->"

    readme.write_text(MARKER.sub(value, text))
    return missing


def readme_problems(readme: Path = README, numbers_file: Path = NUMBERS) -> list[str]:
    """What differs between the README and what it must show (for tests/test_readme.py)."""
    text = readme.read_text()
    numbers = json.loads(numbers_file.read_text())
    problems = [
        f"{key}: README says {shown!r}, {numbers_file.name} {numbers.get(key)!r}"
        for key, shown in MARKER.findall(text)
        if numbers.get(key) != shown
    ]
    table = COMMANDS.search(text)
    if table is None:
        problems.append("README has no <!--commands--> table")
    elif table.group(2) != commands_table():
        problems.append("the Commands table differs from the parser (make readme-numbers)")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(GROUPS), action="append")
    parser.add_argument("--write-only", action="store_true", help="rewrite README.md only")
    args = parser.parse_args(argv)
    numbers = json.loads(NUMBERS.read_text()) if NUMBERS.is_file() else {}
    if not args.write_only:
        numbers.update(machine())
        for name in args.only or DEFAULT_GROUPS:
            with tempfile.TemporaryDirectory(prefix="medleak-readme-") as tmp:
                print(f"readme-numbers: {name} ...", flush=True)
                numbers.update(GROUPS[name](Path(tmp)))
        NUMBERS.write_text(json.dumps(numbers, indent=2, sort_keys=True) + "\n")
    missing = write_readme(numbers)
    if missing:
        print(f"readme-numbers: README.md uses keys with no number: {', '.join(missing)}")
        return 1
    print(f"readme-numbers: {README.name} rewritten from {NUMBERS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
