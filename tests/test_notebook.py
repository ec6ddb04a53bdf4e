"""examples/notebooks/audit-your-model.ipynb runs top to bottom (every code cell, in order, in
one namespace, as a kernel would), so it never rots; nbclient is not needed for that."""

from __future__ import annotations

import json
from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "notebooks" / "audit-your-model.ipynb"


def test_the_audit_notebook_runs(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MEDLEAK_NOTEBOOK_ITERATIONS", "3")
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    namespace: dict = {"__name__": "__main__"}
    for index, cell in enumerate(cells):
        if cell["cell_type"] == "code":
            assert not cell.get("outputs"), f"cell {index} is stored with outputs"
            exec(compile("".join(cell["source"]), f"cell {index}", "exec"), namespace)  # noqa: S102
    printed = capsys.readouterr().out
    assert "not scored" in printed and "blank floor" in printed
    assert namespace["scored"].metrics["iterations"] == 3
    assert (tmp_path / "grid.png").stat().st_size > 0
    assert (tmp_path / "audit-run" / "report.html").is_file()
