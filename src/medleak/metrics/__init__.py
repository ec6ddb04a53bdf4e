"""Reconstruction versus original -> numbers: pixel fidelity, perceptual distance, leakage.

``evaluate`` is the entry point the pipeline calls: it computes every metric in ``METRICS``
(``metrics/registry.py``, each a ``Metric`` from ``metrics/base.py``); the pieces are usable on
their own.
"""

from medleak.metrics.base import Cell, Inputs, Metric, Value, per_image_value
from medleak.metrics.evaluate import Scores, evaluate
from medleak.metrics.label_accuracy import label_accuracy
from medleak.metrics.lpips import LpipsResult, LpipsWeightsMissing, load_lpips, lpips
from medleak.metrics.matching import match_reconstructions
from medleak.metrics.ms_ssim import ms_ssim, ms_ssim_unavailable_reason
from medleak.metrics.psnr import PSNR_CAP_DB, psnr
from medleak.metrics.rdlv import rdlv
from medleak.metrics.registry import METRICS
from medleak.metrics.reidentification import SIMILARITIES, Reidentification, reidentify
from medleak.metrics.ssim import pairwise_ssim, ssim

__all__ = [
    "METRICS",
    "PSNR_CAP_DB",
    "SIMILARITIES",
    "Cell",
    "Inputs",
    "LpipsResult",
    "LpipsWeightsMissing",
    "Metric",
    "Reidentification",
    "Scores",
    "Value",
    "evaluate",
    "label_accuracy",
    "load_lpips",
    "lpips",
    "match_reconstructions",
    "ms_ssim",
    "ms_ssim_unavailable_reason",
    "pairwise_ssim",
    "per_image_value",
    "psnr",
    "rdlv",
    "reidentify",
    "ssim",
]
