"""Sweep specs: grid x list expansion, --set overrides, one-line validation errors."""

from __future__ import annotations

import pytest

from medleak.errors import ConfigError
from medleak.experiments.sweep_spec import expand, parse_set

BASE = {
    "data": {"source": "phantom", "image_size": 32, "batch_size": 2},
    "model": {"name": "lenet", "channels": 1},
    "attack": {"name": "rog", "iterations": 5},
}


def test_grid_is_a_product_and_list_a_union() -> None:
    spec = {
        "base": BASE,
        "grid": {"defenses": [[], ["topk:ratio=0.1"], ["gaussian:relative=0.5"]], "seed": [0, 1]},
        "list": [{"defenses": ["sign"], "attack.iterations": 7}],
    }
    sweep = expand(spec)
    # the grid has its no-defense runs; the list's sign run gets its baseline added
    assert len(sweep.attacks) == 8 and not sweep.trainings and sweep.added_baselines == 1
    seeds = sorted(j.config["seed"] for j in sweep.attacks[:6])
    assert seeds == [0, 0, 0, 1, 1, 1]
    picked, baseline = sweep.attacks[6].config, sweep.attacks[7].config
    assert picked["defenses"] == ["sign"] and picked["attack"]["iterations"] == 7
    assert baseline == {**picked, "defenses": []}
    assert len({j.run_id for j in sweep.attacks}) == 8


def test_a_grid_without_no_defense_gets_one_baseline_per_defended_point() -> None:
    spec = {
        "base": BASE,
        "grid": {"defenses": [["topk:ratio=0.1"], ["sign"]], "seed": [0, 1]},
        "train": {"clients": 2, "rounds": 1},
    }
    sweep = expand(spec)
    baselines = [j for j in sweep.attacks if j.config["defenses"] == []]
    # one per (seed): both defenses share it; its training is added too (the no-defense utility)
    assert sweep.added_baselines == 2 and sorted(j.config["seed"] for j in baselines) == [0, 1]
    assert len(sweep.attacks) == 6 and len(sweep.trainings) == 6
    defended = next(j for j in sweep.attacks if j.config["defenses"] == ["sign"])
    twin = next(j for j in baselines if j.config["seed"] == defended.config["seed"])
    assert {**defended.config, "defenses": []} == twin.config
    assert expand({"base": BASE, "grid": {"defenses": [[], ["sign"]]}}).added_baselines == 0


def test_the_issue_example_links_each_attack_to_its_training() -> None:
    spec = {
        "base": BASE,
        "grid": {"defenses": [[], ["topk:ratio=0.1"]], "seed": [0, 1], "data.offset": [0, 2]},
        "train": {"clients": 4, "rounds": 3},
    }
    sweep = expand(spec)
    # The batch offset does not change the federation: 2 defenses x 2 seeds trainings.
    assert len(sweep.attacks) == 8 and len(sweep.trainings) == 4
    trainings = {t.run_id for t in sweep.trainings}
    assert all(a.train_id in trainings for a in sweep.attacks)
    assert sweep.trainings[0].train["clients"] == 4


def test_set_overrides_base_and_model_round_is_saved() -> None:
    spec = {"base": BASE, "grid": {"model.round": [0, 2]}, "train": {"rounds": 3}}
    sweep = expand(spec, overrides=parse_set(["data.image_size=16", "train.clients=2"]))
    assert all(j.config["data"]["image_size"] == 16 for j in sweep.attacks)
    assert len(sweep.trainings) == 1
    assert sweep.trainings[0].train["save_rounds"] == [0, 2]
    assert sweep.trainings[0].train["clients"] == 2


def test_hash_is_stable_and_ignores_threads() -> None:
    one = expand({"base": {**BASE, "threads": 1}}).jobs[0].run_id
    two = expand({"base": {**BASE, "threads": 2}}).jobs[0].run_id
    other = expand({"base": {**BASE, "seed": 5}}).jobs[0].run_id
    assert one == two != other


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ({"base": BASE, "grid": {"attack.iteratons": [1]}}, "attack.iteratons"),
        ({"base": BASE, "grid": {"defenses": [["topk:ratio=7"]]}}, "ratio"),
        ({"base": BASE, "grid": {"defenses": [["nosuch"]]}}, "nosuch"),
        ({"base": BASE, "grid": {"seed": []}}, "seed"),
        ({"base": BASE, "grdi": {}}, "grdi"),
        ({"base": BASE, "train": {"partition": "bogus"}}, "partition"),
        ({"base": BASE, "train": {"clinets": 3}}, "clinets"),
        ({"base": BASE, "grid": {"model.round": [1]}}, "train"),
        ({"base": BASE, "grid": {"model.round": [9]}, "train": {"rounds": 3}}, "model.round"),
        ({"base": {**BASE, "model": {"name": "vgg"}}}, "vgg"),
        ({"base": BASE, "grid": {"data.image_size": ["big"]}}, "image_size"),
    ],
)
def test_validation_errors_are_one_line_and_name_the_key(spec: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        expand(spec, "s.yaml")
    message = str(info.value)
    assert needle in message and "\n" not in message and message.startswith("s.yaml")


def test_cli_rejects_a_bad_spec_with_exit_2(tmp_path, capsys) -> None:
    from medleak.cli import main

    path = tmp_path / "bad.yaml"
    path.write_text("base: {attack: {name: nope}}\n")
    assert main(["sweep", str(path), "--store", str(tmp_path / "r.db")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nope" in err
    assert not (tmp_path / "r.db").exists()


def test_shipped_frontier_specs_validate() -> None:
    from pathlib import Path

    from medleak.experiments.sweep_spec import load_spec

    root = Path(__file__).resolve().parents[2] / "examples"
    sweep = load_spec(root / "frontier.yaml")
    names = {
        d[0].split(":")[0] if d else "none" for d in (j.config["defenses"] for j in sweep.attacks)
    }
    assert {"none", "gaussian", "dp", "topk", "qsgd", "sign", "powersgd"} <= names
    # three attacked batches (offsets) per defense setting share its one training
    assert len(sweep.attacks) == 3 * len(sweep.trainings)
    assert {j.config["data"]["offset"] for j in sweep.attacks} == {0, 2, 4}
    kaggle = load_spec(root / "frontier-kaggle.yaml", {"data.source": "/data/chest_xray"})
    assert kaggle.attacks[0].config["data"]["source"] == "/data/chest_xray"


def test_the_shipped_phantom_frontier_holds_out_enough_for_a_tight_accuracy_interval() -> None:
    """The accuracy's 95% Wilson half-width is <= 0.05 even at 0.5 (phantoms alternate class,
    and the stratified split holds out round(eval_split * members) of each class)."""
    from pathlib import Path

    from medleak.experiments.sweep_spec import load_spec
    from medleak.fl.utility import wilson_interval
    from medleak.metrics.reidentification import chance_p_value

    sweep = load_spec(Path(__file__).resolve().parents[2] / "examples" / "frontier.yaml")
    training = sweep.trainings[0]
    count = training.config["data"]["phantom_count"]
    per_class = (count // 2, count - count // 2)
    held = sum(round(training.train["eval_split"] * n) for n in per_class)
    low, high = wilson_interval(held // 2, held)
    assert (high - low) / 2 <= 0.05 and count - held >= 4 * training.train["local_batch_size"]
    # and re-identifying one of the two victims would be significant: safety is reachable
    attack = sweep.attacks[0].config
    victims = attack["data"]["batch_size"]
    gallery = victims + attack["metrics"]["gallery_size"]  # the distractors beside the victims
    assert chance_p_value(max(1, victims // 2), victims, gallery) < 0.05
