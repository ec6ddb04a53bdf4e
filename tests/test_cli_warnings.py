"""A library's warning is named as that library's and said once, never passed off as medleak's."""

from __future__ import annotations

import warnings

from medleak.cli import _one_line_warning


def test_warnings_name_their_origin() -> None:
    ours = _one_line_warning("slow path", UserWarning, "/x/src/medleak/fl/per_example.py", 3)
    theirs = _one_line_warning(
        "Optimal order is the smallest alpha",
        UserWarning,
        "/v/lib/python3.11/site-packages/opacus/accountants/analysis/rdp.py",
        332,
    )
    assert ours == "medleak: warning: slow path\n"
    assert theirs == "medleak: warning from opacus: Optimal order is the smallest alpha\n"


def test_a_repeated_library_warning_is_shown_once() -> None:
    from medleak.cli import main

    with warnings.catch_warnings(record=True) as caught:
        main(["defenses"])  # installs medleak's warning settings
        for _ in range(5):
            for line in (1, 2):  # another call site, same message
                warnings.warn_explicit("said once", UserWarning, "/v/site-packages/m.py", line)
    assert [str(w.message) for w in caught] == ["said once"]
