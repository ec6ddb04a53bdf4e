"""Typed config, one run, and the persistent result store."""

from medleak.experiments.config import RunConfig, apply_overrides, from_dict, load_config

__all__ = ["RunConfig", "apply_overrides", "from_dict", "load_config"]
