"""``medleak findings`` end to end on a tiny spec folder, and the shipped specs' variants."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from medleak.cli import main
from medleak.experiments.findings import plan_variants, trim
from medleak.experiments.sqlite_store import SweepStore

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "examples" / "findings"

TINY = """
base:
  data: {source: phantom, image_size: 16, batch_size: 1, phantom_count: 12}
  model: {name: lenet-dlg, channels: 1}
  attack: {name: dlg, iterations: 2}
  metrics: {gallery_size: 4}
grid:
  seed: [0, 1, 2, 3]
"""


def test_shipped_specs_expand_for_every_variant(tmp_path: Path) -> None:
    sample = tmp_path / "xrays"
    sample.mkdir()
    full = plan_variants(SHIPPED, quick=False, sample=sample)
    quick = plan_variants(SHIPPED, quick=True, sample=None)
    assert sorted({v.number for v in full}) == list(range(1, 9))
    assert {v.number for v in full if v.sample} == {1, 2, 3, 4, 5}
    assert all(not v.sample for v in quick)
    from medleak.experiments.findings import expand_variant

    for variant in full:
        sweep = expand_variant(variant)
        seeds = {j.config["seed"] for j in sweep.jobs}
        assert len(seeds) >= 3, variant.spec
        if variant.sample:
            assert all(j.config["data"]["batch_size"] <= 8 for j in sweep.jobs)
            assert all(j.config["data"]["source"] == str(sample) for j in sweep.jobs)
    quick_ids = {j.run_id for v in quick for j in expand_variant(v).jobs}
    full_ids = {j.run_id for v in full for j in expand_variant(v).jobs}
    assert quick_ids < full_ids  # a full run after a quick one only adds runs


def test_trim_drops_seeds_and_batches_in_grid_and_list() -> None:
    raw = {
        "grid": {"seed": [0, 1, 2, 3, 4], "data.batch_size": [1, 8, 16]},
        "list": [{"seed": 4}, {"seed": 1, "data.batch_size": 16}, {"seed": 2}],
    }
    out = trim(raw, 3, 8)
    assert out["grid"] == {"seed": [0, 1, 2], "data.batch_size": [1, 8]}
    assert out["list"] == [{"seed": 2}]
    assert raw["grid"]["seed"] == [0, 1, 2, 3, 4]  # the input is not changed


def test_findings_command_runs_resumes_and_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "1-tiny-dlg.yaml").write_text(TINY)
    store, out = tmp_path / "f.db", tmp_path / "docs"
    args = ["findings", "--quick", "--specs", str(specs), "--store", str(store)]
    args += ["--out", str(out), "--workers", "1", "--quiet"]
    assert main(args) == 0
    doc = out / "FINDINGS.md"
    text = doc.read_text()
    assert "## 1. DLG rebuilds a single image" in text
    assert "**phantoms (synthetic)**: medleak **" in text
    assert "quick version" in text and "medleak sweep" in text
    figure = out / "findings" / "finding-1.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for path in (doc, figure, store):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with SweepStore(store, create=False) as s:
        done = s.runs(status="finished")
        assert len(done) == 3  # --quick keeps seeds 0-2
        span = s.span(r.run_id for r in done)
        assert span is not None and span[0] <= span[1]
        assert s.span(["no-such-run"]) is None
    assert "Run time: the runs shown were computed between" in text
    capsys.readouterr()
    assert main(args) == 2  # refuses to overwrite, before any work
    assert "--force" in capsys.readouterr().err
    assert main(args + ["--force"]) == 0
    assert "0 runs computed, 3 reused" in capsys.readouterr().out


def test_findings_command_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "9-unknown.yaml").write_text(TINY)
    args = ["findings", "--specs", str(specs), "--store", str(tmp_path / "f.db")]
    assert main(args + ["--out", str(tmp_path / "d")]) == 2
    assert "no finding 9" in capsys.readouterr().err
    (specs / "9-unknown.yaml").write_text(TINY.replace("dlg, iterations", "nope, iterations"))
    (specs / "9-unknown.yaml").rename(specs / "1-bad.yaml")
    assert main(args + ["--out", str(tmp_path / "d")]) == 2
    assert "1-bad.yaml" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()
