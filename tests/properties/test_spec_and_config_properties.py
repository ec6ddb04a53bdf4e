"""Property tests: defense specs and run configs survive their own round trips, and random text
is either a valid spec or one ConfigError (never another exception)."""

from __future__ import annotations

import math
import typing
from typing import Any, Literal

import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from medleak.defenses import DEFENSES, format_spec, parse_spec, resolve_spec
from medleak.errors import ConfigError
from medleak.experiments.config import (
    RunConfig,
    apply_overrides,
    config_flags,
    dump_config,
    from_dict,
    scalar_options,
)

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

NUMBERS = st.one_of(
    st.integers(-5, 1000),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from([0.0, 1e-320, 1e30, 0.5, 1.0, 2.0]),
)


def _value(param: Any) -> st.SearchStrategy[Any]:
    if param.choices:
        return st.sampled_from(param.choices)
    if param.kind is bool:
        return st.booleans()
    if param.kind is int:
        return st.integers(-3, 10_000)
    if param.kind is float:
        return NUMBERS
    return st.text(max_size=8)


@st.composite
def _spec_text(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(sorted(DEFENSES)))
    params = DEFENSES[name].params
    chosen = draw(st.lists(st.sampled_from(params), unique_by=lambda p: p.name)) if params else []
    items = [f"{p.name}={str(v).lower() if isinstance(v, bool) else v}" for p in chosen
             for v in [draw(_value(p))]]  # fmt: skip
    return name + (":" + ",".join(items) if items else "")


@FAST
@given(_spec_text())
def test_a_resolved_spec_round_trips_through_its_text(text: str) -> None:
    try:
        resolved = parse_spec(text)
    except ConfigError:
        assume(False)
    for value in resolved["params"].values():
        # a spec that parsed holds only finite numbers (NaN or inf is refused with its name)
        assert not (isinstance(value, float) and not math.isfinite(value)), text
    again = parse_spec(format_spec(resolved))
    assert again == resolved
    assert resolve_spec({"name": resolved["name"], "params": resolved["params"]}) == resolved


@FAST
@given(st.one_of(st.text(max_size=40), _spec_text().map(lambda s: s + ","), _spec_text()))
def test_any_text_is_a_spec_or_one_config_error(text: str) -> None:
    try:
        resolved = parse_spec(text)
    except ConfigError as exc:
        assert "\n" not in str(exc)
        return
    assert resolved["name"] in DEFENSES


def _flag_value(hint: Any) -> st.SearchStrategy[Any] | None:
    for option in scalar_options(hint):
        if typing.get_origin(option) is Literal:
            return st.sampled_from(typing.get_args(option))
        if option is bool:
            return st.booleans()
        if option is int:
            return st.integers(1, 64)
        if option is float:
            return st.floats(1e-6, 10.0)
    return None


SCALAR_FLAGS = [
    f for f in config_flags() if f.flag.kind != "append" and _flag_value(f.hint) is not None
]


@FAST
@given(st.data())
def test_a_config_round_trips_through_yaml(data: st.DataObject) -> None:
    chosen = data.draw(st.lists(st.sampled_from(SCALAR_FLAGS), unique_by=lambda f: f.key))
    overrides = {f.key: data.draw(_flag_value(f.hint)) for f in chosen}  # type: ignore[arg-type]
    try:
        config = apply_overrides(RunConfig(), overrides)
    except ConfigError:
        assume(False)
    back = from_dict(yaml.safe_load(dump_config(config)))
    assert back.to_dict() == config.to_dict()
