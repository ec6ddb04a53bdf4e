import torch

from medleak.metrics import reidentify


def _smooth(n: int, size: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 1, 6, 6, generator=g)
    return torch.nn.functional.interpolate(low, size=(size, size), mode="bicubic").clamp(0, 1)


def _noisy(x: torch.Tensor, seed: int, sigma: float = 0.08) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (x + sigma * torch.randn(x.shape, generator=g)).clamp(0, 1)


def test_true_source_ranks_first_even_with_brightness_and_contrast_shift() -> None:
    victims = _smooth(3, 96, 0)
    distractors = _smooth(20, 96, 1)
    recon = _noisy(0.3 * victims + 0.6, 2, 0.03)[[2, 0, 1]]  # any order, washed out
    res = reidentify(victims, recon, distractors)
    assert res.ranks == [1, 1, 1] and all(res.reidentified)
    assert res.rate == 1.0 and res.gallery_size == 23
    assert abs(res.chance - (1 - (22 / 23) ** 3)) < 1e-12
    assert res.p_value < 0.001  # three of three among 23 is no accident


def test_identical_distractor_pushes_the_victim_to_rank_two() -> None:
    victims = _smooth(3, 64, 3)
    recon = _noisy(victims, 4)
    distractors = torch.cat([recon[:1].clone(), _smooth(5, 64, 5)])  # copy of recon 0
    res = reidentify(victims, recon, distractors)
    assert res.ranks[0] == 2 and not res.reidentified[0]
    assert res.ranks[1:] == [1, 1]
    assert abs(res.rate - 2 / 3) < 1e-12


def test_ranks_do_not_depend_on_reconstruction_order() -> None:
    victims = _smooth(4, 64, 6)
    recon = _noisy(victims, 7, 0.3)
    distractors = _smooth(8, 64, 8)
    a = reidentify(victims, recon, distractors)
    b = reidentify(victims, recon[[3, 1, 0, 2]], distractors)
    assert a.ranks == b.ranks


def test_patient_level() -> None:
    victims = _smooth(3, 64, 9)
    distractors = _smooth(4, 64, 10)
    # recon 0 resembles victim 0; recon 1 is a copy of a distractor of patient "p2";
    # recon 2 is unrelated noise-like and ranks some distractor of no victim's patient.
    recon = torch.cat([_noisy(victims[:1], 11), distractors[1:2], distractors[3:4]])
    res = reidentify(
        victims,
        recon,
        distractors,
        victim_patients=["p1", "p1", "p2"],
        distractor_patients=["q", "p2", "r", "s"],
    )
    assert res.patients_total == 2 and res.patients_reidentified == 2
    assert res.patient_rate == 1.0
    assert res.reidentified == [True, False, False]
    unknown = reidentify(victims, recon, distractors, victim_patients=[None, "p1", "p2"])
    assert unknown.patient_rate is None and "unknown" in unknown.patient_reason


def test_chance_level_and_p_value_by_hand() -> None:
    from medleak.metrics.reidentification import chance_p_value, chance_rate

    assert abs(chance_rate(1, 10) - 0.1) < 1e-12  # one guess among ten
    assert abs(chance_rate(4, 8) - (1 - (7 / 8) ** 4)) < 1e-12
    assert abs(chance_p_value(1, 1, 10) - 0.1) < 1e-12
    # two guesses among 4 images (2 victims): both victims hit = 2/4 * 1/4
    assert abs(chance_p_value(2, 2, 4) - 1 / 8) < 1e-12
    assert abs(chance_p_value(1, 2, 4) - (1 - (2 / 4) ** 2)) < 1e-12
    assert chance_p_value(0, 3, 9) == 1.0
    # expected hits from the distribution equal n * chance_rate
    n, g = 4, 8
    mean = sum(chance_p_value(k, n, g) for k in range(1, n + 1))  # E[K] = sum P(K >= k)
    assert abs(mean - n * chance_rate(n, g)) < 1e-12
