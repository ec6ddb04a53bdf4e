"""Label leakage: the fraction of the batch's labels (diagnoses) the attack recovered.

A batch attack's labels come back in arbitrary order, so they are compared as multisets (counts
per class), as in iDLG/LLG-style label-inference evaluations: the accuracy is
sum_c min(#true c, #recovered c) / N.
"""

from __future__ import annotations

from collections import Counter

import torch


def label_accuracy(true_labels: torch.Tensor, used_labels: torch.Tensor) -> float:
    """Fraction of labels recovered, order-free; 1.0 when the class counts agree."""
    t = Counter(int(v) for v in true_labels.flatten().tolist())
    u = Counter(int(v) for v in used_labels.flatten().tolist())
    n = sum(t.values())
    if n == 0:
        raise ValueError("no true labels")
    return sum(min(c, u[k]) for k, c in t.items()) / n
