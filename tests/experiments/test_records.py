"""Run ids are hashes of the canonical configuration, one function for the run folder and the
sweep store; a store keyed by the first scheme is recognised, not rerun blindly; the run-folder
store round-trips a record; experiments never imports the report."""

from __future__ import annotations

import ast
from pathlib import Path

import torch

import medleak
from medleak.experiments.config import RunConfig, apply_overrides, from_dict
from medleak.experiments.records import RunRecord, canonical_config, run_id
from medleak.experiments.sqlite_store import SweepStore
from medleak.experiments.stores import RunFolderStore
from medleak.experiments.sweep import SweepSummary, plan_todo
from medleak.experiments.sweep_spec import expand, load_spec

TINY = {
    "data": {"source": "phantom", "image_size": 16, "batch_size": 2, "phantom_count": 16},
    "model": {"name": "lenet", "channels": 1},
    "attack": {"name": "rog", "iterations": 2, "prior": "none"},
    "metrics": {"gallery_size": 4},
    "defenses": ["gaussian:sigma=0.1"],
}
SPEC = {
    # no added no-defense baselines: the store below is what the first scheme's sweep wrote
    "base": {**TINY, "metrics": {**TINY["metrics"], "baseline": False}},
    "grid": {"model.round": [0, 1]},
    "list": [{"seed": 3}],
    # local_lr pinned at the default of the scheme-1 days (now 0.1): the ids below hash it
    "train": {"clients": 2, "rounds": 1, "local_steps": 2, "local_batch_size": 4, "local_lr": 0.05},
}
# The ids the first sweep store (before one id function) gave SPEC's jobs, in job order.
SCHEME_1_IDS = [
    "70f0a15efae76078",
    "8dd7b658076ca683",
    "6e56429ce61c1c71",
    "4cceaa4ffdf22fbb",
    "2d7105672d46faf2",
]


def test_run_id_ignores_threads_output_and_lpips_folder_but_not_numbers() -> None:
    base = RunConfig()
    assert run_id(base) == run_id(apply_overrides(base, {"threads": 1}))
    assert run_id(base) == run_id(apply_overrides(base, {"metrics.lpips_weights": "/x"}))
    assert run_id(base) != run_id(apply_overrides(base, {"seed": 1}))
    assert run_id(base) != run_id(apply_overrides(base, {"attack.iterations": 5}))


def test_run_id_resolves_defense_defaults_and_hashes_weight_files(tmp_path: Path) -> None:
    short = apply_overrides(RunConfig(), {"defenses": ["topk:ratio=0.1"]})
    full = apply_overrides(RunConfig(), {"defenses": ["topk:ratio=0.1,scope=tensor"]})
    assert run_id(short) == run_id(full)
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    a.write_bytes(b"same")
    b.write_bytes(b"same")
    with_a = apply_overrides(RunConfig(), {"model.weights": str(a)})
    with_b = apply_overrides(RunConfig(), {"model.weights": str(b)})
    assert canonical_config(with_a)["model"]["weights"].startswith("sha256:")
    assert run_id(with_a) == run_id(with_b)
    b.write_bytes(b"other")
    assert run_id(with_a) != run_id(with_b)


def test_the_sweep_and_the_run_folder_use_one_run_id() -> None:
    sweep = expand({"base": TINY, "grid": {"seed": [0, 1]}})
    for job in sweep.jobs:
        # what ``medleak attack`` writes into metrics.json for the same configuration
        assert job.run_id == run_id(from_dict(job.config))
    spaced = expand({"base": {**TINY, "defenses": ["topk:ratio=0.1,scope=tensor"]}})
    short = expand({"base": {**TINY, "defenses": ["topk:ratio=0.1"]}})
    # the canonical form resolves defense parameters, which the first scheme did not
    assert spaced.jobs[0].run_id == short.jobs[0].run_id
    assert spaced.jobs[0].legacy_id != short.jobs[0].legacy_id


def test_a_store_of_the_first_id_scheme_is_reported_as_another_version(tmp_path: Path) -> None:
    sweep = expand(SPEC)
    assert [j.legacy_id for j in sweep.jobs] == SCHEME_1_IDS
    assert all(j.run_id != j.legacy_id for j in sweep.jobs)
    with SweepStore(tmp_path / "old.db") as store:
        train = sweep.trainings[0]
        for job in sweep.jobs:  # what the old version wrote: every run finished, old ids
            assert job.legacy_id is not None
            old_train = SCHEME_1_IDS[0] if job.train_id == train.run_id else SCHEME_1_IDS[1]
            link = old_train if job.kind == "attack" else None
            store.mark_running(job.legacy_id, job.kind, job.label, job.config, link)
            blobs = {"round-0.safetensors": ("x", b"0"), "round-1.safetensors": ("x", b"1")}
            provenance = {"medleak_version": medleak.__version__}
            store.finish(job.legacy_id, {"ssim": 0.5}, None, blobs, 1.0, provenance)
        summary = SweepSummary()
        todo = plan_todo(sweep, store, rerun=False, summary=summary)
        assert todo == [] and summary.skipped == len(sweep.jobs)
        assert len(summary.other_version) == len(sweep.jobs)
        assert all("older run id" in line for line in summary.other_version)
        rows = {r.run_id: r for r in store.runs()}
        assert set(rows) == {j.run_id for j in sweep.jobs}  # moved, not duplicated
        assert {rows[j.run_id].train_id for j in sweep.attacks} == {
            j.run_id for j in sweep.trainings
        }
        assert store.blob(train.run_id, "round-1.safetensors") == b"1"
        again = plan_todo(sweep, store, rerun=True, summary=SweepSummary())
        assert again == []  # same version now, under the current ids: resume skips them


def test_run_folder_store_round_trips_a_record(tmp_path: Path) -> None:
    record = RunRecord(
        run_id="abc",
        metrics={"run_id": "abc", "psnr": 12.5},
        tensors={"originals": torch.rand(2, 1, 4, 4)},
        trace_csv="iteration,restart,loss\n0,0,1.0\n",
        config_yaml="seed: 0\n",
    )
    key = RunFolderStore(tmp_path / "run").save(record)
    back = RunFolderStore(key).load()
    assert back.run_id == "abc" and back.metrics == record.metrics
    assert torch.equal(back.tensors["originals"], record.tensors["originals"])
    assert back.trace_csv == record.trace_csv and back.config_yaml == record.config_yaml


def test_experiments_does_not_import_report() -> None:
    package = Path(__file__).resolve().parents[2] / "src" / "medleak" / "experiments"
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            assert not any(n.startswith("medleak.report") for n in names), path.name


def test_an_option_added_at_its_neutral_value_keeps_every_run_id(
    tmp_path: Path, monkeypatch
) -> None:
    """A contributor adds ``model.dropout`` (neutral 0.0): the store's runs stay found."""
    import medleak.experiments.records as records

    sweep = expand({"base": TINY, "grid": {"seed": [0, 1, 2]}})
    with SweepStore(tmp_path / "s.db") as store:
        for job in sweep.jobs:
            store.mark_running(job.run_id, job.kind, job.label, job.config, None)
            store.finish(job.run_id, {"ssim": 0.5}, None, {}, 1.0, {})
        plain_to_dict = RunConfig.to_dict

        def with_dropout(self: RunConfig) -> dict:
            data = plain_to_dict(self)
            data["model"]["dropout"] = 0.0
            return data

        monkeypatch.setattr(RunConfig, "to_dict", with_dropout)
        neutral = (("model", "dropout"), 0.0)
        declared = records.neutral_keys()  # the real options' neutral values stay in force
        monkeypatch.setattr(records, "neutral_keys", lambda: [*declared, neutral])
        again = expand({"base": TINY, "grid": {"seed": [0, 1, 2]}})
        summary = SweepSummary()
        assert plan_todo(again, store, rerun=False, summary=summary) == []
        assert summary.skipped == len(sweep.jobs)
        # away from its neutral value the option is part of what the numbers depend on
        moved_neutral = (("model", "dropout"), 0.9)
        monkeypatch.setattr(records, "neutral_keys", lambda: [*declared, moved_neutral])
        moved = expand({"base": TINY, "grid": {"seed": [0, 1, 2]}})
        assert {j.run_id for j in moved.jobs}.isdisjoint({j.run_id for j in sweep.jobs})


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_a_store_written_before_scheme_3_is_resumed_without_recomputing(
    tmp_path: Path, capsys
) -> None:  # noqa: ANN001
    """The fixture was written by the medleak before attack options were per attack (every
    option of every attack hashed); today's ids hash only the chosen attack's options."""
    import shutil

    from medleak.cli import main

    store = tmp_path / "old.db"
    shutil.copyfile(FIXTURES / "scheme2-store.db", store)
    with SweepStore(store, create=False) as db:
        before = {r.run_id: r.metrics for r in db.runs()}
    spec = str(FIXTURES / "scheme2-spec.yaml")
    sweep = load_spec(spec, {})
    assert not {j.run_id for j in sweep.jobs} & set(before)  # the ids did change
    assert main(["sweep", spec, "--store", str(store), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "0 to run" in out and "6 runs were stored under the run ids of an older" in out
    with SweepStore(store, create=False) as db:
        after = {r.run_id: r.metrics for r in db.runs()}
    assert set(after) == {j.run_id for j in sweep.jobs}  # migrated in place, not duplicated
    assert sorted(map(str, before.values())) == sorted(map(str, after.values()))
    main(["sweep", spec, "--store", str(store), "--quiet"])
    assert "re-keyed" not in capsys.readouterr().out  # once


def test_an_attack_takes_only_its_own_options_and_refuses_the_others(capsys) -> None:  # noqa: ANN001
    from medleak.cli import main

    ig = apply_overrides(RunConfig(), {"attack.name": "ig"})
    assert "scale_factor" not in canonical_config(ig)["attack"]
    assert "soft_labels" not in canonical_config(RunConfig())["attack"]
    for flags in (["--soft-labels"], ["--scale-factor", "8"], ["--init", "uniform"]):
        code = main(["attack", "--attack", "ig", *flags, "--check"])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "attack 'ig' has no option" in err
    code = main(["attack", "--attack", "dlg", "--preset", "rog-core", "--check"])
    assert code == 2 and "is for attack 'rog'" in capsys.readouterr().err


def test_issue_22_options_keep_old_ids_and_gallery_source_is_a_sweep_key() -> None:
    """--gallery-source / --auxiliary at None and --baseline at any value keep every run id;
    a gallery source changes the numbers (the gallery), so it is part of the id."""
    plain = run_id(from_dict(TINY))
    for overrides in (
        {"metrics.gallery_source": None, "metrics.auxiliary": None},
        {"metrics.baseline": True},
        {"metrics.baseline": False},
    ):
        assert run_id(apply_overrides(from_dict(TINY), overrides)) == plain, overrides
    sweep = expand({"base": TINY, "grid": {"metrics.gallery_source": [None, "/other/xrays"]}})
    assert sweep.jobs[0].run_id == plain and sweep.jobs[1].run_id != plain
    assert sweep.jobs[1].config["metrics"]["gallery_source"] == "/other/xrays"
