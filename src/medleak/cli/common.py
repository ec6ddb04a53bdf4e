"""What every command module shares: exit codes, the one-line parser, threads, messages in one
line (file names pseudonymised), and how library warnings are shown."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, NoReturn

from medleak.errors import MedleakError

EXIT_USAGE = 2
EXIT_RUN_FAILED = 3
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, what a shell reports for a process SIGTERM ended

CHECK_HELP = "validate the options and exit (nothing is computed or written)"


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is a single line rather than usage text plus error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled exactly as Ctrl-C: the sweep's workers are stopped, one line printed."""


def on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


MAX_THREADS = 4096


def check_threads(threads: int | None) -> None:
    """Refuse a --threads torch cannot take (it would overflow inside torch: a traceback)."""
    if threads is not None and not 1 <= threads <= MAX_THREADS:
        raise MedleakError(f"--threads must be in [1, {MAX_THREADS}], got {threads}")


def set_threads(threads: int | None) -> None:
    """Apply --threads (None keeps torch's default)."""
    import torch

    if threads is None:
        return
    check_threads(threads)
    torch.set_num_threads(threads)


def one_line_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001
    """medleak's own warnings as one line; a library's named as that library's, not ours."""
    origin = warning_origin(str(filename))
    text = one_line(str(message), False)
    if origin == "medleak":
        return f"medleak: warning: {text}\n"
    return f"medleak: warning from {origin}: {text}\n"


def warning_origin(filename: str) -> str:
    """The top-level package a warning was raised in (from its file's path)."""
    parts = Path(filename).parts
    for marker in ("site-packages", "dist-packages", "src"):
        if marker in parts[:-1]:
            index = len(parts) - 1 - parts[::-1].index(marker)
            if index + 1 < len(parts):
                return Path(parts[index + 1]).stem
    return Path(filename).stem or "python"


def one_line(text: str, show_sources: bool) -> str:
    """A message as one line, data file names pseudonymised unless ``--show-sources``."""
    from medleak.private_files import redact_sources

    text = " ".join(text.split())
    return text if show_sources else redact_sources(text)
