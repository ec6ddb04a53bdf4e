"""Reconstruction versus original -> numbers: pixel fidelity, perceptual distance, leakage.

``evaluate`` is the entry point the pipeline calls; the pieces are usable on their own.
"""

from medleak.metrics.evaluate import Scores, evaluate
from medleak.metrics.label_accuracy import label_accuracy
from medleak.metrics.lpips import LpipsResult, LpipsWeightsMissing, load_lpips, lpips
from medleak.metrics.matching import match_reconstructions
from medleak.metrics.ms_ssim import ms_ssim, ms_ssim_unavailable_reason
from medleak.metrics.psnr import PSNR_CAP_DB, psnr
from medleak.metrics.rdlv import rdlv
from medleak.metrics.reidentification import SIMILARITIES, Reidentification, reidentify
from medleak.metrics.ssim import pairwise_ssim, ssim

__all__ = [
    "PSNR_CAP_DB",
    "SIMILARITIES",
    "LpipsResult",
    "LpipsWeightsMissing",
    "Reidentification",
    "Scores",
    "evaluate",
    "label_accuracy",
    "load_lpips",
    "lpips",
    "match_reconstructions",
    "ms_ssim",
    "ms_ssim_unavailable_reason",
    "pairwise_ssim",
    "psnr",
    "rdlv",
    "reidentify",
    "ssim",
]
