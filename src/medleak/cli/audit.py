"""``medleak audit``: attack an update a client really sent (captured with
``medleak.capture.save_update``), on the user's own model, and write a run folder like
``medleak attack``'s (scored only when the client's originals are given)."""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path
from typing import Any

from medleak.cli.common import CHECK_HELP, check_threads, set_threads
from medleak.errors import ConfigError

#: Top-level keys of an audit YAML that are not run-config keys.
FACTORY_KEYS = ("model_factory", "model_args")


def add_parser(commands: Any) -> None:
    audit = commands.add_parser(
        "audit", help="attack an update captured from your own FL deployment (save_update)"
    )
    audit.add_argument("--update", required=True, help="the captured update (.safetensors)")
    which = audit.add_mutually_exclusive_group()
    which.add_argument("--model", help="a registry model name")
    which.add_argument(
        "--model-factory",
        help="your model: PKG.MODULE:FUNCTION, called with the YAML's model_args",
    )
    audit.add_argument(
        "--weights",
        help="the global weights the server sent (.safetensors or a torch state dict), "
        "when not the update file's own",
    )
    audit.add_argument(
        "--config", help="YAML: run-config keys the update lacks (attack, seed), model_args"
    )
    audit.add_argument(
        "--originals",
        help="the client's batch (folder or .npz) to score the reconstructions against",
    )
    audit.add_argument("--out", help="output folder (default runs/audit-<attack>-<time>)")
    audit.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    audit.add_argument("--quiet", action="store_true", help="no progress bar")
    audit.add_argument("--force", action="store_true", help="replace a run already in --out")
    audit.add_argument("--check", action="store_true", help=CHECK_HELP)


def _yaml(path: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(run-config keys, factory keys) of the audit YAML."""
    if path is None:
        return {}, {}
    from medleak.yaml_input import read_yaml

    mapping = read_yaml(path, "config file") or {}
    if not isinstance(mapping, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    factory = {k: mapping.pop(k) for k in FACTORY_KEYS if k in mapping}
    return mapping, factory


def command_audit(args: argparse.Namespace) -> int:
    from medleak.capture import read_settings
    from medleak.experiments.audit_run import audit_file, audit_record, build_audit_model
    from medleak.experiments.config import AttackConfig
    from medleak.experiments.stores import RunFolderStore, prepare_run_folder
    from medleak.progress import Progress
    from medleak.report import render_run, render_unscored

    extra, factory_keys = _yaml(args.config)
    # a flag names the model over the YAML's factory
    factory = args.model_factory or (None if args.model else factory_keys.get("model_factory"))
    _, settings = read_settings(args.update)
    model, model_text = build_audit_model(
        settings,
        extra,
        model_name=args.model,
        factory=factory,
        factory_args=factory_keys.get("model_args"),
    )
    global_state = None
    if args.weights is not None:
        from medleak.models.weights import read_state_dict

        global_state = read_state_dict(args.weights)
    check_threads(args.threads)
    if args.check:
        from medleak.capture import read_update
        from medleak.experiments.audit_run import audit_config

        captured = read_update(args.update, model)
        audit_config(
            captured.settings, extra, form=captured.form, model=model, originals=args.originals
        )
        print("the options are valid")
        return 0
    set_threads(args.threads)
    attack_name = (extra.get("attack") or {}).get("name", "rog")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.out or f"runs/audit-{attack_name}-{stamp}")
    prepare_run_folder(out, force=args.force)
    bars: list[Progress] = []
    total = (extra.get("attack") or {}).get("iterations") or AttackConfig().iterations

    def progress(iteration: int, loss: float) -> None:
        if not bars:
            bars.append(Progress(int(total), "audit", "iteration", args.quiet))
        bars[0].set_postfix(loss=f"{loss:.4g}")
        bars[0].update(1)

    try:
        result = audit_file(
            args.update,
            model,
            extra=extra,
            originals=args.originals,
            progress=progress,
            model_text=model_text,
            global_state=global_state,
            weights_name=f"--weights {args.weights}",
        )
    finally:
        for bar in bars:
            bar.close()
    record = audit_record(result)
    RunFolderStore(out).save(record)
    if result.scored:
        from medleak.cli.run import _summary

        render_run(out, record)
        print(_summary(record.metrics, out))
    else:
        render_unscored(out, record)
        audit = record.metrics["audit"]
        composition = ", ".join(f"{k}: {v}" for k, v in audit["recovered_composition"].items())
        print(
            f"{record.metrics['attack']} on {model_text}, {record.metrics['iterations']} "
            f"iterations, {record.metrics['seconds']:.1f} s\n"
            f"recovered labels: {audit['recovered_labels']} ({composition})\n"
            f"verdict: {record.metrics['verdict_reason']}\n"
            f"results in {out}/ (metrics.json, report.html)"
        )
    return 0
