"""Progress for long work: a bar on a terminal, a few plain lines in a log, an estimate early.

A bar redraws itself; written to a pipe or a file it becomes thousands of carriage-return
fragments. So the bar is drawn only when both stdout and stderr are terminals; otherwise a line
is printed at every tenth of the work. Either way, once the first steps have been timed, one line
states the estimated total, so nobody waits an hour without being told.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

#: The estimate is printed after this many steps or this many seconds, whichever comes first
#: (at least one step: the first is often slower, so two are preferred when they are quick).
ESTIMATE_AFTER_STEPS = 3
ESTIMATE_AFTER_SECONDS = 5.0
#: A first step this long (seconds) is reported on its own, before any second step.
LONG_FIRST_STEP = 30.0
#: Without a terminal, one line per tenth of the work.
LINES = 10


def is_interactive() -> bool:
    """True when a redrawing bar would be seen rather than logged."""
    return _isatty(sys.stdout) and _isatty(sys.stderr)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def format_duration(seconds: float) -> str:
    """A human duration: 45 s, 3.5 min, 1.2 h."""
    if seconds < 10:
        return f"{seconds:.2g} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class Progress:
    """Counts steps of one piece of work; ``update`` after each, ``close`` at the end.

    ``unit`` names a step (``iteration``, ``run``, ``round``, ``step``). ``postfix`` is shown on
    the bar (a terminal) and on the plain lines (a log). ``interactive`` None = decide from the
    streams. ``lines`` False: no bar and no periodic lines (the caller prints a line per step),
    only the estimate.
    """

    def __init__(
        self,
        total: int,
        desc: str,
        unit: str = "it",
        quiet: bool = False,
        interactive: bool | None = None,
        out: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        lines: bool = True,
    ) -> None:
        self.total = max(0, int(total))
        self.desc, self.unit, self.quiet = desc, unit, quiet
        self.interactive = is_interactive() if interactive is None else interactive
        self._out = out
        self._clock = clock
        self._start = clock()
        self._done = 0
        self._first_step_at: float | None = None
        self._first_steps = 0
        self._estimated = False
        self._lines_done = 0
        self._postfix = ""
        self._bar: Any = None
        # lines=False: the caller prints its own line per step; only the estimate is added
        self._lines = lines
        if lines and not quiet and self.interactive and self.total:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, desc=desc, unit=unit)

    @property
    def out(self) -> TextIO:
        return self._out if self._out is not None else sys.stdout

    def _say(self, line: str) -> None:
        if self.quiet:
            return
        if self._bar is not None:
            self._bar.write(line, file=sys.stdout)
        else:
            print(line, file=self.out, flush=True)

    def set_postfix(self, **values: Any) -> None:
        self._postfix = ", ".join(f"{k} {v}" for k, v in values.items())
        if self._bar is not None:
            self._bar.set_postfix(values, refresh=False)

    def update(self, steps: int = 1) -> None:
        self._done += steps
        if self._bar is not None:
            self._bar.update(steps)
        elapsed = self._clock() - self._start
        if self._first_step_at is None:
            self._first_step_at, self._first_steps = elapsed, self._done
        later = self._done - self._first_steps
        if not self._estimated and self.total and self._done < self.total:
            # the first step carries the set-up (imports, caches): time the later ones, unless
            # the first alone is already long enough to be worth a warning
            if (
                later >= ESTIMATE_AFTER_STEPS - 1
                or (later >= 1 and elapsed >= ESTIMATE_AFTER_SECONDS)
                or elapsed >= LONG_FIRST_STEP
            ):
                self._estimated = True
                per_step = (
                    (elapsed - self._first_step_at) / later if later > 0 else elapsed / self._done
                )
                left = per_step * (self.total - self._done)
                self._say(
                    f"{self.desc}: estimated {format_duration(elapsed + left)} in all "
                    f"({self.total} {self.unit}s at {format_duration(per_step)} per {self.unit}, "
                    f"measured over the first {self._done})"
                )
        if self._lines and self._bar is None and self.total:
            fraction = self._done / self.total
            due = 0
            while due + self._lines_done < LINES and self._done >= math.ceil(
                (self._lines_done + due + 1) * self.total / LINES
            ):
                due += 1
            if due:
                self._lines_done += due
                tail = f", {self._postfix}" if self._postfix else ""
                self._say(
                    f"{self.desc}: {self._done}/{self.total} {self.unit}s "
                    f"({fraction:.0%}, {format_duration(elapsed)}{tail})"
                )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
