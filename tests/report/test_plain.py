"""The report's first sentence is plain words that follow the numbers, and the verdict's reason
(with SSIM, PSNR and p-values) appears once on the page, after it."""

from __future__ import annotations

from medleak.report.plain import plain_sentence, update_size_note


def _run(hits: int, ssim: float, **extra) -> dict:
    return {
        "num_images": 4,
        "reid_count": hits,
        "reid_rate": hits / 4,
        "gallery_size": 104,
        "reid_chance": 1 / 26,
        "ssim": ssim,
        "blank_ssim": 0.3,
        "psnr": 30.0 if ssim > 0.5 else 10.0,
        "blank_psnr": 12.0,
        **extra,
    }


def test_a_full_re_identification_reads_as_every_patient_picked_out() -> None:
    sentence = plain_sentence(_run(4, 0.9))
    assert sentence == (
        "All 4 patients' X-rays were rebuilt well enough to pick each one out of 104 candidates."
    )
    assert "SSIM" not in sentence and "p =" not in sentence
    assert plain_sentence(_run(2, 0.9), synthetic=True).startswith("2 of the 4 synthetic X-rays")


def test_nothing_found_and_too_little_power_read_differently() -> None:
    safe = _run(0, 0.1, gallery_size=400)
    assert plain_sentence(safe).startswith("The server could not rebuild the X-rays: none of the 4")
    weak = _run(0, 0.1, gallery_size=6)  # half re-identified would not be significant
    assert plain_sentence(weak).startswith("This run cannot tell")


def test_the_update_size_of_a_wide_linear_layer_is_explained() -> None:
    note = update_size_note({"model": "lenet", "bits_raw": 32 * 33_000_000})
    assert note is not None and "33.0 million parameters" in note and "wide linear layer" in note
    assert update_size_note({"model": "resnet18-rog", "bits_raw": 32 * 11e6}) is None


def test_the_verdict_reason_is_on_the_page_once(tmp_path) -> None:  # noqa: ANN001
    from conftest import make_run_dir

    from medleak.report.html import load_run_view, verdict, write_report

    run = make_run_dir(tmp_path / "run")
    page = write_report([run], tmp_path / "r.html").read_text()
    reason = verdict(load_run_view(run).metrics)[2]
    from html import escape

    assert page.count(escape(reason)) == 1
