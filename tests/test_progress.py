"""Long work says how long it will take, and a log gets a few lines instead of a redrawn bar."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from medleak.progress import Progress, format_duration


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_log_gets_one_line_per_tenth_and_an_early_estimate() -> None:
    out, clock = io.StringIO(), FakeClock()
    bar = Progress(200, "rog", "iteration", interactive=False, out=out, clock=clock)
    clock.now = 5.0  # the first step carries the set-up
    bar.update()
    for _ in range(199):
        clock.now += 0.5
        bar.update()
    bar.close()
    lines = out.getvalue().splitlines()
    estimate = [line for line in lines if "estimated" in line]
    assert len(estimate) == 1
    # 5 s of set-up, then 0.5 s per iteration: about 104.5 s, not 200 x 5 s
    assert "1.7 min" in estimate[0] and "0.5 s per iteration" in estimate[0]
    progress = [line for line in lines if "estimated" not in line]
    assert len(progress) == 10 and progress[-1].startswith("rog: 200/200 iterations (100%")
    assert "\r" not in out.getvalue()


def test_quiet_prints_nothing_and_lines_false_prints_only_the_estimate() -> None:
    out, clock = io.StringIO(), FakeClock()
    bar = Progress(10, "x", quiet=True, interactive=False, out=out, clock=clock)
    for _ in range(10):
        clock.now += 1
        bar.update()
    assert out.getvalue() == ""
    bar = Progress(10, "train", "round", interactive=False, out=out, clock=clock, lines=False)
    for _ in range(10):
        clock.now += 60
        bar.update()
    assert out.getvalue().count("\n") == 1 and "estimated 10.0 min" in out.getvalue()


def test_durations_read_as_a_person_would_say_them() -> None:
    assert format_duration(0.25) == "0.25 s"
    assert format_duration(45) == "45 s"
    assert format_duration(600) == "10.0 min"
    assert format_duration(7200) == "2.0 h"


def test_no_command_draws_a_bar_when_stdout_is_not_a_terminal(tmp_path: Path) -> None:
    """A real attack with its output piped: plain lines, no carriage-return redraws."""
    cmd = [
        sys.executable, "-m", "medleak.cli", "attack", "--image-size", "16", "--batch-size", "1",
        "--iterations", "20", "--phantom-count", "8", "--gallery-size", "2", "--channels", "1",
        "--out", str(tmp_path / "run"),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True)
    both = done.stdout + done.stderr
    assert "\r" not in both
    assert "rog: 20/20 iterations (100%" in done.stdout
    assert "estimated" in done.stdout
