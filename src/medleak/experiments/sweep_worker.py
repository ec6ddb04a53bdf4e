"""What a sweep worker process does: one job in, plain data out (the driver writes the store).

Workers are tied to the driver: the kernel kills a worker when the driver dies
(PR_SET_PDEATHSIG, even on SIGKILL) and a watchdog thread exits if the parent changed, so a
killed sweep never leaves a worker computing.
"""

from __future__ import annotations

import ctypes
import io
import os
import signal
import threading
import time
import traceback
from typing import Any

PR_SET_PDEATHSIG = 1


def tie_to_parent(parent: int) -> None:
    """Die with the driver: kernel signal on parent death, plus a polling fallback."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(1)

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(0.5)

    threading.Thread(target=watch, daemon=True, name="medleak-parent-watch").start()


def init_worker(parent: int, threads: int) -> None:
    tie_to_parent(parent)
    import torch

    torch.set_num_threads(threads)


def _strip_png(images: Any) -> bytes:
    """One row of gray images as a PNG (0 black, 1 white)."""
    import numpy as np
    from PIL import Image

    array = images.detach().float().clamp(0, 1)[:, 0].cpu().numpy()
    row = np.concatenate(list(array), axis=1)
    buffer = io.BytesIO()
    Image.fromarray((row * 255).round().astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _attack(job: dict[str, Any]) -> dict[str, Any]:
    import torch
    from safetensors.torch import load as load_tensors
    from safetensors.torch import save as save_tensors

    from medleak.experiments.config import from_dict
    from medleak.experiments.run import execute, plan_run
    from medleak.experiments.store import metrics_record

    config = from_dict(job["config"])
    plan = plan_run(config)
    if job.get("state") is not None:
        state = load_tensors(job["state"])
        plan.model.load_state_dict(state, strict=True)
    result = execute(plan)
    record = metrics_record(result)
    record.pop("config", None)
    record["model_round"] = config.model.round
    order = result.matched
    reconstructions = result.reconstruction.images[order].contiguous()
    originals = result.plan.batch.images.contiguous()
    # The tensors, not a rendered grid: drawing is the report's job (it reads this blob).
    tensors = {"originals": originals, "reconstructions": reconstructions}
    with torch.no_grad():
        blobs = {
            "originals.png": ("image/png", _strip_png(originals)),
            "reconstructions.png": ("image/png", _strip_png(reconstructions)),
            "tensors.safetensors": ("application/safetensors", save_tensors(tensors)),
        }
    return {"metrics": record, "curves": None, "blobs": blobs}


def _train(job: dict[str, Any]) -> dict[str, Any]:
    from safetensors.torch import save as save_tensors

    from medleak.defenses import build_chain
    from medleak.experiments.config import from_dict
    from medleak.experiments.run import model_for
    from medleak.fl.training import TrainConfig, load_split, train_federated

    config = from_dict(job["config"])
    train = TrainConfig(**job["train"])
    train.check()
    chain = build_chain(config.defenses)
    split = load_split(config.data.federation_spec(), config.seed, train.eval_split)
    model = model_for(config, split.classes)
    result = train_federated(model, split, chain, train, seed=config.seed, progress=_diverged)
    blobs = {
        f"round-{r}.safetensors": ("application/safetensors", save_tensors(state))
        for r, state in result.states.items()
    }
    return {"metrics": result.metrics, "curves": result.curves, "blobs": blobs}


def _diverged(round_: int, scores: dict[str, Any]) -> None:
    """A training whose test loss is no longer finite fails (the evaluation reports it as None)."""
    if scores.get("loss") is None:
        raise RuntimeError(
            f"the training diverged at round {round_} (its test loss is not finite); "
            "lower train.local_lr or train.server_lr"
        )


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Run one job; an exception becomes a failed result with its reason (one line)."""
    from medleak.experiments.provenance import provenance

    start = time.perf_counter()
    cpu = time.process_time()
    try:
        out = _train(job) if job["kind"] == "train" else _attack(job)
        # CPU seconds of this worker: on a shared machine, what the run would take alone
        out["metrics"]["cpu_seconds"] = time.process_time() - cpu
        out["status"] = "finished"
    except MemoryError:
        out = {"status": "failed", "error": "MemoryError: out of memory"}
    except Exception as exc:  # a run that raises is recorded, the sweep goes on
        last = traceback.extract_tb(exc.__traceback__)[-1:]
        where = f" (at {os.path.basename(last[0].filename)}:{last[0].lineno})" if last else ""
        message = str(exc).splitlines()[0] if str(exc) else ""
        out = {"status": "failed", "error": f"{type(exc).__name__}: {message}{where}"}
    if out["status"] == "failed" and not job["config"].get("metrics", {}).get("show_sources"):
        from medleak.private_files import redact_sources

        out["error"] = redact_sources(out["error"])  # a data file's name carries a patient number
    out["seconds"] = time.perf_counter() - start
    out["run_id"] = job["run_id"]
    out["provenance"] = provenance()
    return out
