"""A hospital's FedAvg round in a plain PyTorch loop, captured for ``medleak audit``.

The client receives the global model, takes two local SGD steps on its batch and sends its
weights; the three lines marked "capture" are all a deployment adds to let its server's view be
audited. The batch is read through medleak's data loader so that the audit team can score the
reconstructions against the same images (``--originals``); any loader would do for training.

    python train_and_capture.py --out update.safetensors            # synthetic phantoms, 32 px
    python train_and_capture.py --data /path/to/chest_xray --size 64
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import torch
import torch.nn.functional as F
from my_model import build

from medleak.capture import save_update  # capture
from medleak.data import DataSpec, open_dataset, select_batch

LOCAL_STEPS, LOCAL_LR, BATCH = 2, 0.01, 2


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="update.safetensors")
    parser.add_argument("--data", default="phantom", help="phantom, an image folder or a .npz")
    parser.add_argument("--size", type=int, default=32, help="image side in pixels")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    global_model = build(channels=1, image_size=args.size)  # what the server sent this round
    batch = select_batch(
        open_dataset(DataSpec(source=args.data, image_size=args.size), seed=0), BATCH
    )

    client = copy.deepcopy(global_model).train()
    optimiser = torch.optim.SGD(client.parameters(), lr=LOCAL_LR)
    for _ in range(LOCAL_STEPS):
        optimiser.zero_grad()
        F.cross_entropy(client(batch.images), batch.labels).backward()
        optimiser.step()

    settings = {  # capture: what the server knows of this client's training
        "fl": {"algorithm": "fedavg", "local_steps": LOCAL_STEPS, "local_lr": LOCAL_LR},
        "data": {"batch_size": BATCH, "image_size": args.size},
        "model": {"channels": 1},
    }
    path = save_update(global_model, client, args.out, settings)  # capture
    print(f"update written to {path}")
    return path


if __name__ == "__main__":
    main()
