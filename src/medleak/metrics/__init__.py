"""Reconstruction versus original -> numbers: pixel fidelity, perceptual distance, leakage."""

from medleak.metrics.matching import match_reconstructions
from medleak.metrics.psnr import PSNR_CAP_DB, psnr
from medleak.metrics.ssim import pairwise_ssim, ssim

__all__ = ["PSNR_CAP_DB", "match_reconstructions", "pairwise_ssim", "psnr", "ssim"]
