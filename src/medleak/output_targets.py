"""One rule for every command that writes: never replace a file medleak did not write.

A target (``--out``) that does not exist, or is an empty folder, is written. A target holding
medleak's own earlier output of the same kind (a run folder, a training, a prior, a report) is
replaced only with ``--force``, and then only medleak's own file names are removed. Anything else
is the user's: a non-empty folder is written into only with ``--force`` and only when none of
medleak's file names is taken by a file medleak did not write; a file that is not medleak's is
never replaced, ``--force`` or not. Every check runs before any work, so a refusal costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from medleak.errors import MedleakError


def claim_folder(
    out: Path,
    *,
    what: str,
    is_own: Callable[[Path], bool],
    own_files: Callable[[Path], Iterable[Path]],
    force: bool,
    flag: str = "--out",
) -> None:
    """Make ``out`` ready for a new ``what`` under the rule above (raises one-line errors).

    is_own: whether the folder holds medleak's earlier output of this kind.
    own_files: the paths of medleak's file names in the folder (what ``--force`` may remove).
    """
    if out.exists() and not out.is_dir():
        raise MedleakError(f"{flag} {out} is a file, not a folder")
    if not out.exists() or not any(out.iterdir()):
        return
    names = [p for p in own_files(out) if p.exists() or p.is_symlink()]
    if is_own(out):
        if not force:
            raise MedleakError(
                f"{out} already holds a {what}; choose another {flag} or pass --force to replace it"
            )
        for path in names:
            path.unlink()
        return
    if names:
        taken = ", ".join(sorted(p.name for p in names)[:3])
        raise MedleakError(
            f"{out} holds files medleak did not write ({taken}); choose another {flag} "
            "(--force replaces only medleak's own output)"
        )
    if not force:
        raise MedleakError(
            f"{out} is not empty and holds no earlier {what}; choose another {flag} or pass "
            "--force to write beside its files"
        )


def claim_file(
    path: Path, *, what: str, is_own: Callable[[Path], bool], force: bool, flag: str = "--out"
) -> None:
    """Make ``path`` ready for a new ``what`` file under the rule above."""
    if path.is_dir():
        raise MedleakError(f"{flag} {path} is a folder, not a file")
    if not (path.exists() or path.is_symlink()):
        return
    if not is_own(path):
        raise MedleakError(
            f"{path} exists and is not a {what} medleak wrote; choose another {flag} "
            "(--force replaces only medleak's own output)"
        )
    if not force:
        raise MedleakError(
            f"{path} already exists (an earlier {what}); choose another {flag} or pass --force"
        )


def starts_with(path: Path, text: bytes, within: int = 4096) -> bool:
    """True when ``text`` occurs in the first ``within`` bytes of the file (a cheap signature)."""
    try:
        with path.open("rb") as handle:
            return text in handle.read(within)
    except OSError:
        return False
