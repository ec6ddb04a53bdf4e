"""Federated-learning client side: what a hospital computes and sends."""

from medleak.fl.client import client_update_tensors, compute_update, parameters_of
from medleak.fl.update import Declaration, FLSettings, Update

__all__ = [
    "Declaration",
    "FLSettings",
    "Update",
    "client_update_tensors",
    "compute_update",
    "parameters_of",
]
