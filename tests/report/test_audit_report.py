"""Flower audit records in the sweep store: read back, listed by ``medleak results`` and shown by
``medleak report``, alone or mixed with a sweep (synthetic records, no Flower needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_audit_store

from medleak.cli import main
from medleak.experiments.audit_store import load_audits, save_audit
from medleak.experiments.sqlite_store import SweepStore
from medleak.metrics.verdict import INCONCLUSIVE, LEAKS, NO_MEASURABLE_LEAKAGE
from medleak.report.audit import federation_verdict, write_audit_report


def _add_sweep(path: Path) -> None:
    config = {"defenses": ["topk:ratio=0.1"], "seed": 0, "data": {"source": "phantom"}}
    with SweepStore(path) as store:
        store.mark_running("a0", "attack", "topk", {**config, "attack": {"name": "rog"}}, "t0")
        store.finish("a0", {"ssim": 0.5, "blank_ssim": 0.1}, None, {}, 1.0, {})
        store.mark_running("t0", "train", "topk", config, None)
        store.finish("t0", {"accuracy": 0.8}, {"accuracy": [0.5, 0.8]}, {}, 1.0, {})


def test_audits_are_runs_of_kind_audit_and_read_back(tmp_path: Path) -> None:
    store = make_audit_store(tmp_path / "s.db")
    with SweepStore(store, create=False) as db:
        runs = db.runs()
    assert [r.kind for r in runs] == ["audit"] * 4 and len({r.run_id for r in runs}) == 4
    assert runs[0].config["defenses"] == ["topk:ratio=0.5,scope=tensor"]
    assert runs[0].metrics["ssim"] == runs[0].metrics["scores"]["ssim"]  # flat, for results
    assert runs[0].metrics["bits_ratio"] == pytest.approx(3.9 / 6.9)
    records = load_audits(store)
    assert [(r["round"], r["client"], r["status"]) for r, _ in records] == [
        (1, "11", "attacked"),
        (1, "12", "attacked"),
        (2, "11", "attacked"),
        (2, "12", "client-error"),
    ]
    first, tensors = records[0]
    assert set(tensors) == {"reconstructions", "initial", "originals", "labels"}
    assert first["scores"]["num_images"] == 2 and first["guard"]["outcome"] == "re-obfuscated"
    assert records[1][1].keys() == {"reconstructions", "initial"} and records[3][1] == {}


def test_a_failed_attack_is_a_failed_run_with_its_reason(tmp_path: Path) -> None:
    record = {"federation": "f", "round": 3, "client": "7", "status": "attack-failed"}
    save_audit(tmp_path / "s.db", {**record, "reason": "MedleakError: diverged"})
    with SweepStore(tmp_path / "s.db", create=False) as db:
        (run,) = db.runs()
    assert (run.status, run.error) == ("failed", "MedleakError: diverged")
    ((back, _),) = load_audits(tmp_path / "s.db")
    assert back["status"] == "attack-failed" and back["reason"] == "MedleakError: diverged"


def test_results_lists_audits_beside_a_sweep(tmp_path: Path, capsys) -> None:
    store = make_audit_store(tmp_path / "s.db")
    _add_sweep(store)
    assert main(["results", str(store)]) == 0
    table = capsys.readouterr().out
    header = table.splitlines()[0].split()
    assert {"round", "client", "audit_status", "verdict", "ssim"} <= set(header)
    assert "(6 rows)" in table and "client-error" in table and "train" in table
    assert main(["results", str(store), "--kind", "audit", "--where", "round=2"]) == 0
    assert "(2 rows)" in capsys.readouterr().out
    assert main(["results", str(store), "--group-by", "kind"]) == 0
    assert "audit" in capsys.readouterr().out


def test_report_of_a_mixed_store_shows_the_audit_and_the_frontier(tmp_path: Path) -> None:
    store = make_audit_store(tmp_path / "s.db")
    _add_sweep(store)
    out = tmp_path / "r.html"
    assert main(["report", str(store), "--out", str(out)]) == 0
    html = out.read_text()
    assert "Audit of a Flower federation" in html and "Frontier" in html
    assert "2 runs in the store" in html  # the frontier counts the sweep's runs, not the audits
    assert html.count('class="grid"') == 3  # one picture per update the server attacked
    assert html.index("Leaks: the server rebuilt") < html.index("<table")
    assert "synthetic phantoms" in html


def test_audit_only_store_has_no_frontier_and_refuses_to_overwrite(tmp_path: Path) -> None:
    store = make_audit_store(tmp_path / "s.db")
    out = write_audit_report(store, tmp_path / "r.html")
    html = out.read_text()
    assert "Frontier" not in html and "Round 2, client 2 (node id 12)" in html
    assert out.stat().st_mode & 0o777 == 0o600
    with pytest.raises(Exception, match="already exists"):
        write_audit_report(store, out)


def _r(status: str, verdict: str | None = None, scores: dict | None = None, r: int = 1) -> dict:
    return {"round": r, "status": status, "verdict": verdict, "scores": scores}


def test_federation_verdict_never_calls_the_unseen_safe() -> None:
    outcome, sentence = federation_verdict([_r("not-visible", r=1), _r("not-visible", r=2)])
    assert outcome == INCONCLUSIVE and "secure aggregation" in sentence
    assert "rounds 1-2" in sentence
    outcome, sentence = federation_verdict([_r("attacked", INCONCLUSIVE), _r("client-error")])
    assert outcome == INCONCLUSIVE and "none of the hospitals' images" in sentence
    leak = {"ssim": 0.9, "blank_ssim": 0.1}
    safe = {"ssim": 0.1, "blank_ssim": 0.1}
    outcome, sentence = federation_verdict(
        [_r("attacked", NO_MEASURABLE_LEAKAGE, safe), _r("attacked", LEAKS, leak, r=2)]
    )
    assert outcome == LEAKS and "1 of the 2" in sentence and "0.90" in sentence
    weak = {**_r("attacked", INCONCLUSIVE, safe), "verdict_reason": "Inconclusive: tiny gallery"}
    outcome, sentence = federation_verdict([weak, _r("attacked", NO_MEASURABLE_LEAKAGE, safe)])
    assert outcome == INCONCLUSIVE and sentence.endswith(
        "1 of the 2 the server attacked "
        "(round 1) a leak could not be ruled out; first reason: tiny gallery"
    )
    outcome, _ = federation_verdict([_r("attacked", NO_MEASURABLE_LEAKAGE, safe)])
    assert outcome == NO_MEASURABLE_LEAKAGE
    outcome, sentence = federation_verdict([_r("client-error"), _r("client-error")])
    assert outcome == NO_MEASURABLE_LEAKAGE and "Nothing reached the server" in sentence


def test_the_audit_table_shows_short_client_labels_with_the_node_id_on_hover(
    tmp_path: Path,
) -> None:
    page = write_audit_report(make_audit_store(tmp_path / "s.db"), tmp_path / "a.html")
    html = page.read_text()
    assert '<td title="node id 11">client 1</td>' in html
    assert '<td title="node id 12">client 2</td>' in html
    assert "Round 2, client 2 (node id 12)" in html
    header = html[html.index('<table class="audit') : html.index("</thead>")]
    assert header.count("<th>") == 12  # sent and raw size share one column
