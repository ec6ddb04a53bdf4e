import json

import pytest
import torch

from medleak.metrics import evaluate, label_accuracy, rdlv

PER_IMAGE_KEYS = {
    "index",
    "source",
    "label",
    "matched_to",
    "psnr",
    "ssim",
    "ms_ssim",
    "lpips",
    "reid_rank",
    "reidentified",
    "rdlv",
    "rdlv_reason",
    "prior_psnr",  # the prior floor per image (None without a prior image)
    "prior_ssim",
}


def test_label_accuracy_compares_counts_not_order() -> None:
    assert label_accuracy(torch.tensor([0, 0, 1, 1]), torch.tensor([1, 1, 0, 0])) == 1.0
    assert label_accuracy(torch.tensor([0, 0, 1, 1]), torch.tensor([1, 0, 1, 1])) == 0.75
    assert label_accuracy(torch.tensor([0, 0]), torch.tensor([1, 1])) == 0.0


def test_rdlv_hand_value_and_null_when_init_ssim_tiny() -> None:
    values, reasons = rdlv(torch.tensor([0.6, 0.9, 0.5]), torch.tensor([0.3, 0.01, 0.05]))
    assert values[0] == pytest.approx(1.0) and reasons[0] is None
    assert values[1] is None and reasons[1] == "SSIM(init, x) < 0.05"
    assert values[2] == pytest.approx(9.0)


def _batch():
    g = torch.Generator().manual_seed(0)
    low = torch.rand(4, 1, 6, 6, generator=g)
    x = torch.nn.functional.interpolate(low, size=(48, 48), mode="bicubic").clamp(0, 1)
    perm = [2, 0, 3, 1]
    recon = (x[perm] + 0.05 * torch.randn(4, 1, 48, 48, generator=g)).clamp(0, 1)
    return x, recon, perm


def test_evaluate_matches_scores_and_is_json_ready(tmp_path) -> None:
    x, recon, perm = _batch()
    init_close = (0.5 * recon + 0.25).clamp(0, 1)  # a start that already resembles the image
    init_close[0] = torch.rand(1, 48, 48)  # ...except one: random start, RDLV undefined
    scores = evaluate(
        x,
        recon,
        initial=init_close,
        true_labels=torch.tensor([0, 1, 0, 1]),
        used_labels=torch.tensor([1, 1, 1, 1]),
        sources=["a.png", "b.png", "c.png", "d.png"],
        patients=["p1", "p2", "p3", "p3"],
        gallery=torch.rand(6, 1, 48, 48, generator=torch.Generator().manual_seed(1)),
        lpips_weights=tmp_path,
    )
    expected = [perm.index(i) for i in range(4)]
    assert scores.matched == expected
    out = scores.to_dict()
    json.dumps(out, allow_nan=False)
    assert [p["index"] for p in out["per_image"]] == [0, 1, 2, 3]
    assert all(set(p) == PER_IMAGE_KEYS for p in out["per_image"])
    assert [p["matched_to"] for p in out["per_image"]] == expected
    assert out["label_accuracy"] == 0.5
    assert out["gallery_size"] == 10 and out["reid_chance"] == pytest.approx(1 - 0.9**4)
    assert 0 < out["reid_p_value"] < 0.01
    assert out["reid_rate"] == 1.0 and out["patient_reid_rate"] == 1.0
    assert out["patient_count"] == 3
    assert out["ssim"] > 0.8 and out["psnr"] > 20
    assert out["ms_ssim"] is None and "160" in out["ms_ssim_reason"]
    assert out["lpips"] is None and out["lpips_reason"]
    # the randomly started image (matched to original perm[0] = 2) has no RDLV; the mean skips it
    rd = {p["index"]: p for p in out["per_image"]}
    assert rd[2]["rdlv"] is None and rd[2]["rdlv_reason"] == "SSIM(init, x) < 0.05"
    defined = [p["rdlv"] for p in out["per_image"] if p["rdlv"] is not None]
    assert len(defined) == 3 and out["rdlv"] == pytest.approx(sum(defined) / 3)


def test_evaluate_without_optional_inputs() -> None:
    x, recon, _ = _batch()
    out = evaluate(
        x, recon, true_labels=torch.tensor([0, 1, 0, 1]), sources=list("abcd"), patients=None
    ).to_dict()
    json.dumps(out, allow_nan=False)
    assert out["label_accuracy"] is None and out["label_accuracy_reason"]
    assert out["rdlv"] is None and out["rdlv_reason"]
    assert out["patient_reid_rate"] is None and out["patient_reid_reason"]
    assert out["gallery_size"] == 4


def test_exact_copy_is_json_safe() -> None:
    x, _, _ = _batch()
    out = evaluate(x, x, true_labels=torch.zeros(4), sources=list("abcd"), patients=None).to_dict()
    json.dumps(out, allow_nan=False)
    assert out["psnr"] == 100.0 and out["ssim"] == pytest.approx(1.0)


def test_blank_scores_are_what_a_mid_gray_reconstruction_gets() -> None:
    x, recon, _ = _batch()
    kwargs = {"true_labels": torch.zeros(4), "sources": list("abcd"), "patients": None}
    blank = torch.full_like(x, 0.5)
    attack = evaluate(x, recon, **kwargs).to_dict()
    nothing = evaluate(x, blank, **kwargs).to_dict()
    assert attack["blank_psnr"] == pytest.approx(nothing["psnr"])
    assert attack["blank_ssim"] == pytest.approx(nothing["ssim"])
    assert attack["blank_psnr"] != pytest.approx(attack["psnr"])  # not just the attack's score
