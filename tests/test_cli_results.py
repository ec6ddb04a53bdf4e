"""`medleak results --group-by`: means per value and per kind, never across kinds."""

from __future__ import annotations

from medleak.cli_sweep import _grouped


def row(kind: str, defenses: str, **metrics: float) -> dict:
    return {"kind": kind, "status": "finished", "defenses": defenses, **metrics}


def test_group_by_keeps_attack_and_training_epsilons_apart() -> None:
    rows = [
        row("train", "dp", accuracy=0.7, epsilon=177.3),  # accounted over every round
        row("attack", "dp", ssim=0.13, epsilon=10.0),  # the one attacked update's
        row("attack", "dp", ssim=0.15, epsilon=12.0),
        row("attack", "none", ssim=0.7),
        {**row("attack", "none", ssim=0.1), "status": "failed"},  # not averaged in
    ]
    groups = {(g["defenses"], g["kind"]): g for g in _grouped(rows, "defenses")}
    assert set(groups) == {("dp", "train"), ("dp", "attack"), ("none", "attack")}
    assert groups["dp", "train"]["epsilon"] == 177.3 and groups["dp", "train"]["runs"] == 1
    assert groups["dp", "attack"]["epsilon"] == 11.0 and groups["dp", "attack"]["runs"] == 2
    assert groups["none", "attack"]["ssim"] == 0.7 and groups["none", "attack"]["runs"] == 1
