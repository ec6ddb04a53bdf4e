"""A Flower federation of simulated hospitals, audited by medleak (synthetic phantoms only).

Four hospitals (ClientApps) each hold a few synthetic chest-radiograph phantoms and train ROG's
LeNet with FedAvg; every hospital sends its update through a medleak defense mod and checks it
with the leakage guard first; the server (ServerApp) wraps FedAvg in medleak's AuditStrategy,
which attacks every update it receives and stores audit records in an SQLite file. At the end the
HTML audit report is written from that store.

    .venv/bin/python examples/flower/hospitals.py --out runs/flower

The images are procedurally generated phantoms, not patient data; a real deployment would read
each hospital's own folder (``--data`` a Kaggle-layout folder, split across the hospitals).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from medleak.attacks import AttackOptions
from medleak.data import DataSpec, open_dataset, select_batch
from medleak.integrations.flower import (
    AttackPlan,
    AuditStrategy,
    DefenseMod,
    LeakageGuardMod,
    load_global,
    offer_originals,
    remember_batch,
    train_local,
)
from medleak.models import build_model
from medleak.report.audit import write_audit_report

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Settings:
    """Everything the example varies; the defaults are the documented run."""

    out: Path = Path("runs/flower")
    clients: int = 4
    rounds: int = 3
    image_size: int = 32
    images_per_client: int = 2
    data: str = "phantom"
    lr: float = 0.01
    local_steps: int = 1
    minibatch: int | None = None  # shuffled minibatches of this size: outside the threat model
    defense: tuple[str, ...] = ("topk:ratio=0.5",)
    guard: str = "reobfuscate"  # "block", or "off" (no guard)
    stronger: tuple[str, ...] = ("gaussian:relative=2", "sign:scaled=true")
    guard_ssim_margin: float | None = None
    iterations: int = 60
    offer_originals: bool = True
    server_pool: int = 100  # other patients' images the server holds (gallery and prior floor)
    seed: int = 0
    threads: int = 1

    @property
    def store(self) -> Path:
        return self.out / "audit.sqlite"


def model_factory(settings: Settings):
    def make() -> torch.nn.Module:
        return build_model("lenet", 1, settings.image_size, seed=settings.seed)

    return make


def plan(settings: Settings) -> AttackPlan:
    options = AttackOptions(iterations=settings.iterations, labels="inferred")
    return AttackPlan("rog", settings.image_size, options)


def hospital_batch(settings: Settings, partition: int):
    """Hospital ``partition``'s images: its own slice of the data set, never another's."""
    spec = DataSpec(
        source=settings.data,
        image_size=settings.image_size,
        phantom_count=max(settings.clients * settings.images_per_client, 8),
    )
    dataset = open_dataset(spec, seed=settings.seed)
    return select_batch(dataset, settings.images_per_client, partition * settings.images_per_client)


def server_pool(settings: Settings) -> torch.Tensor | None:
    """Images of other patients the server holds (issue 22): phantoms it generated itself with
    another seed, or the images of the folder past those the hospitals hold."""
    if settings.server_pool <= 0:
        return None
    held = settings.clients * settings.images_per_client
    if settings.data == "phantom":
        spec = DataSpec(image_size=settings.image_size, phantom_count=settings.server_pool)
        dataset = open_dataset(spec, seed=settings.seed + 1)
        return dataset.load(list(range(settings.server_pool))).images
    spec = DataSpec(source=settings.data, image_size=settings.image_size)
    dataset = open_dataset(spec, seed=settings.seed)
    indices = list(range(held, min(len(dataset), held + settings.server_pool)))
    return dataset.load(indices).images if indices else None


def make_client_app(settings: Settings) -> ClientApp:
    """The hospital side: train, remember the batch for the guard; mods obfuscate and guard."""
    make = model_factory(settings)
    mods = [DefenseMod(list(settings.defense), make, seed=settings.seed)]
    if settings.guard != "off":
        guard = LeakageGuardMod(
            make,
            plan(settings),
            action=settings.guard,  # type: ignore[arg-type]
            stronger=settings.stronger if settings.guard == "reobfuscate" else (),
            ssim_margin=settings.guard_ssim_margin,
            seed=settings.seed,
        )
        mods.insert(0, guard)  # the first mod is outermost: the guard sees what is sent
    app = ClientApp(mods=mods)

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        torch.set_num_threads(settings.threads)
        partition = int(context.node_config["partition-id"])
        batch = hospital_batch(settings, partition)
        model = make()
        load_global(model, msg.content["arrays"])
        metrics = train_local(model, batch, msg.content["config"], seed=settings.seed + partition)
        remember_batch(context, batch)
        content = RecordDict(
            {"arrays": ArrayRecord(model.state_dict()), "metrics": MetricRecord(metrics)}
        )
        if settings.offer_originals:
            offer_originals(content, batch)  # simulation only: lets the audit score itself
        return Message(content, reply_to=msg)

    return app


def make_server_app(settings: Settings, keep: list | None = None) -> ServerApp:
    """The server side: FedAvg, wrapped by the audit; aggregation itself is FedAvg's.

    keep: a list the audit strategy is appended to (tests read what the server decoded).
    """
    app = ServerApp()
    make = model_factory(settings)

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        torch.set_num_threads(settings.threads)
        fedavg = FedAvg(
            fraction_evaluate=0.0,
            min_train_nodes=settings.clients,
            min_available_nodes=settings.clients,
        )
        strategy = AuditStrategy(
            fedavg,
            make,
            settings.store,
            plan(settings),
            use_originals=settings.offer_originals,
            data_note="synthetic phantoms, not patient data" if settings.data == "phantom" else "",
            seed=settings.seed,
            history=keep is not None,
            distractors=server_pool(settings),
        )
        if keep is not None:
            keep.append(strategy)
        config: dict = {"lr": settings.lr, "local-steps": settings.local_steps}
        if settings.minibatch:
            config = {"lr": settings.lr, "local-epochs": 1, "batch-size": settings.minibatch}
        strategy.start(
            grid=grid,
            initial_arrays=ArrayRecord(make().state_dict()),
            num_rounds=settings.rounds,
            train_config=ConfigRecord(config),
        )

    return app


def run(settings: Settings, keep: list | None = None) -> Path:
    """Run the federation in Flower's simulation engine, then write the report from the store."""
    from flwr.simulation import run_simulation

    settings.out.mkdir(parents=True, exist_ok=True, mode=0o700)
    if settings.store.exists():
        from medleak.errors import MedleakError

        raise MedleakError(f"{settings.store} exists; choose a new --out")
    # Flower runs ClientApps in Ray worker processes, which must be able to import this file.
    previous = os.environ.get("PYTHONPATH")
    paths = [str(HERE), *filter(None, (previous or "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    try:
        run_simulation(
            server_app=make_server_app(settings, keep),
            client_app=make_client_app(settings),
            num_supernodes=settings.clients,
            backend_config={
                "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                "init_args": {"num_cpus": max(1, min(2, os.cpu_count() or 1))},
            },
        )
    finally:
        if previous is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = previous
    return write_audit_report(settings.store, settings.out / "report.html")


class _OneLineParser(argparse.ArgumentParser):
    """A usage error is one line and exit 2, as in medleak's own CLI."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _number(kind: type, low: float, high: float) -> Callable[[str], Any]:
    """argparse type: a finite number in [low, high] (NaN, infinity, 0 clients refused)."""

    def convert(text: str) -> Any:
        value = kind(text)
        if not (math.isfinite(value) and low <= value <= high):
            raise argparse.ArgumentTypeError(f"must be in [{low:g}, {high:g}], got {text}")
        return value

    convert.__name__ = kind.__name__
    return convert


def check(settings: Settings) -> None:
    """Validate what the hospitals would build, in this process and before Flower starts: a bad
    defense or unreadable data is one line here, not a traceback per simulated client."""
    from medleak.defenses import build_chain
    from medleak.errors import ConfigError

    if settings.image_size % 4:
        raise ConfigError(
            f"--image-size must be a multiple of 4 (ROG's scale), got {settings.image_size}"
        )
    build_chain(list(settings.defense))
    if settings.guard == "reobfuscate":
        build_chain(list(settings.stronger))
    for partition in range(settings.clients):
        hospital_batch(settings, partition)


def parse(argv: list[str]) -> Settings:
    p = _OneLineParser(description=__doc__.splitlines()[0])
    d = Settings()
    p.add_argument("--out", type=Path, default=d.out)
    p.add_argument("--clients", type=_number(int, 1, 64), default=d.clients)
    p.add_argument("--rounds", type=_number(int, 1, 1000), default=d.rounds)
    p.add_argument("--image-size", type=_number(int, 8, 1024), default=d.image_size)
    p.add_argument("--images-per-client", type=_number(int, 1, 10_000), default=d.images_per_client)
    p.add_argument("--data", default=d.data, help="phantom or a Kaggle-layout folder")
    p.add_argument("--defense", action="append", help="repeat to chain (default topk:ratio=0.5)")
    p.add_argument("--guard", choices=("block", "reobfuscate", "off"), default=d.guard)
    p.add_argument("--guard-ssim-margin", type=_number(float, -1, 1), default=d.guard_ssim_margin)
    p.add_argument("--iterations", type=_number(int, 1, 10**6), default=d.iterations)
    p.add_argument("--minibatch", type=_number(int, 1, 10_000), default=None)
    p.add_argument("--no-originals", action="store_true", help="audit without scoring")
    p.add_argument(
        "--server-pool",
        type=_number(int, 0, 100_000),
        default=d.server_pool,
        help="other patients' images the server holds: its gallery and prior floor (0 = none)",
    )
    p.add_argument("--seed", type=_number(int, 0, 2**32 - 1), default=d.seed)
    a = p.parse_args(argv)
    return Settings(
        out=a.out,
        clients=a.clients,
        rounds=a.rounds,
        image_size=a.image_size,
        images_per_client=a.images_per_client,
        data=a.data,
        defense=tuple(a.defense) if a.defense else d.defense,
        guard=a.guard,
        guard_ssim_margin=a.guard_ssim_margin,
        iterations=a.iterations,
        minibatch=a.minibatch,
        offer_originals=not a.no_originals,
        server_pool=a.server_pool,
        seed=a.seed,
    )


def main(argv: list[str]) -> int:
    """Run the example; bad arguments or data are one line and exit 2, a failed run exit 3."""
    from medleak.errors import MedleakError
    from medleak.private_files import redact_sources

    started = time.perf_counter()
    settings = parse(argv)
    try:
        check(settings)
        report = run(settings)
    except MedleakError as exc:
        message = redact_sources(" ".join(str(exc).split()))  # file names carry patient numbers
        print(f"hospitals: error: {message}", file=sys.stderr)
        return 2
    if not _audits(settings.store):
        print("hospitals: run failed: the server audited no update (see Flower's log above)",
              file=sys.stderr)  # fmt: skip
        return 3
    print(f"report: {report} ({time.perf_counter() - started:.0f} s)")
    return 0


def _audits(store: Path) -> int:
    from medleak.experiments.sqlite_store import SweepStore

    if not store.is_file():
        return 0
    with SweepStore(store, create=False) as db:
        return len(db.runs(kind="audit"))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
