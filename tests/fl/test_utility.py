"""Utility with its uncertainty: the Wilson interval, the bootstrap AUC interval, ``learned``."""

from __future__ import annotations

import numpy as np
import pytest

from medleak.fl.utility import (
    auc_interval,
    roc_auc,
    stored_utility,
    utility_metrics,
    wilson_interval,
)


def test_wilson_interval_matches_hand_values() -> None:
    # 8 of 10, z = 1.96: centre (0.8 + 0.19208) / 1.38416, half-width 1.41602 * sqrt(0.025604)
    low, high = wilson_interval(8, 10)
    assert (low, high) == pytest.approx((0.49016, 0.94332), abs=2e-5)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.27753), abs=2e-5)
    # 400 held-out images at 0.5: the half-width the shipped specs size for (<= 0.05)
    low, high = wilson_interval(200, 400)
    assert (high - low) / 2 == pytest.approx(0.04877, abs=1e-4)
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def test_bootstrap_auc_interval_is_reproducible_with_its_seed() -> None:
    rng = np.random.default_rng(0)
    labels = np.arange(200) % 2
    scores = rng.normal(size=200) + 0.8 * labels
    first = auc_interval(scores, labels, seed=3)
    assert first == auc_interval(scores, labels, seed=3)
    assert first != auc_interval(scores, labels, seed=4)
    auc = roc_auc(scores, labels)
    assert first[0] < auc < first[1] and 0.05 < first[1] - first[0] < 0.25
    assert auc_interval(labels.astype(float), labels, seed=0) == (1.0, 1.0)  # separable
    assert auc_interval(scores, np.zeros(200), seed=0) is None  # one class: no AUC


def test_a_model_that_answers_the_majority_class_did_not_learn() -> None:
    labels = np.array([1] * 70 + [0] * 30)
    always_one = utility_metrics(np.ones(100), labels, np.full(100, 0.9), classes=2, seed=0)
    # 0.70 is above chance (0.5) but it is the majority rate: nothing was learned
    assert always_one["accuracy"] == 0.7 and always_one["majority_rate"] == 0.7
    assert always_one["chance_rate"] == 0.5 and always_one["learned"] is False
    assert always_one["auc"] == 0.5
    right = utility_metrics(labels, labels, labels.astype(float), classes=2, seed=0)
    assert right["learned"] is True and right["accuracy_ci_low"] > 0.95
    # 24 of 40 (0.60) on a balanced set: the interval still reaches 0.5
    balanced = np.arange(40) % 2
    guesses = balanced.copy()
    guesses[:16] = 1 - guesses[:16]
    noisy = utility_metrics(guesses, balanced, guesses.astype(float), classes=2, seed=0)
    assert noisy["accuracy"] == 0.6 and noisy["accuracy_ci_low"] < 0.5
    assert noisy["learned"] is False


def test_an_older_record_gets_its_interval_from_accuracy_and_held_out_count() -> None:
    old = {"accuracy": 0.8, "test_images": 10, "chance": 0.5, "auc": 0.9}
    rebuilt = stored_utility(old)
    assert (rebuilt["accuracy_ci_low"], rebuilt["accuracy_ci_high"]) == wilson_interval(8, 10)
    assert rebuilt["learned"] is False and rebuilt["auc_ci_low"] is None
    assert stored_utility({"accuracy": 0.9, "test_images": 400, "chance": 0.5})["learned"]
