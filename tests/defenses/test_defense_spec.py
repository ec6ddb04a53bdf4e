"""Spec text and YAML forms, defaults, and one clear ConfigError per bad input."""

from __future__ import annotations

import pytest
import yaml

from medleak.defenses import DEFENSES, describe_defenses, format_spec, parse_spec, resolve_spec
from medleak.errors import ConfigError


def test_text_spec_resolves_with_defaults() -> None:
    assert parse_spec("topk:ratio=0.1") == {
        "name": "topk",
        "params": {"ratio": 0.1, "scope": "tensor"},
    }
    assert parse_spec(" QSGD : levels = 16 , norm = MAX ") == {
        "name": "qsgd",
        "params": {"levels": 16, "norm": "max"},
    }
    assert parse_spec("sign:scaled=true")["params"] == {"scaled": True}
    assert parse_spec("fp16") == {"name": "fp16", "params": {}}
    assert parse_spec("dp:c=1,z=0.5")["params"] == {
        "c": 1.0,
        "z": 0.5,
        "delta": 1e-5,
        "client_size": None,
    }


def test_yaml_forms_resolve_like_text() -> None:
    text = parse_spec("topk:ratio=0.1,scope=global")
    loaded = yaml.safe_load(
        """
        - {name: topk, params: {ratio: 0.1, scope: global}}
        - topk: {ratio: 0.1, scope: global}
        - "topk:ratio=0.1,scope=global"
        - fp16:
        - name: bf16
        """
    )
    assert [resolve_spec(item) for item in loaded[:3]] == [text, text, text]
    assert resolve_spec(loaded[3]) == {"name": "fp16", "params": {}}
    assert resolve_spec(loaded[4]) == {"name": "bf16", "params": {}}
    # YAML ints are fine where floats are expected.
    assert resolve_spec({"clip": {"c": 2}})["params"] == {"c": 2.0}


@pytest.mark.parametrize("name", list(DEFENSES))
def test_resolved_specs_round_trip(name: str) -> None:
    examples = {
        "gaussian": "gaussian:relative=0.1",
        "clip": "clip:c=1",
        "dp": "dp:c=1,z=1,client_size=100",
        "uniform": "uniform:levels=4",
        "qsgd": "qsgd:levels=4",
        "topk": "topk:ratio=0.5",
        "randk": "randk:ratio=0.5",
        "powersgd": "powersgd:rank=2",
    }
    resolved = parse_spec(examples.get(name, name))
    assert resolve_spec(resolved) == resolved
    assert parse_spec(format_spec(resolved)) == resolved


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("gaussian:sigma=-1", ["'gaussian'", "'sigma'", ">= 0"]),
        ("gaussian:relative=-0.1", ["'gaussian'", "'relative'"]),
        ("gaussian", ["'gaussian'", "'sigma'", "'relative'"]),
        ("gaussian:sigma=1,relative=1", ["'gaussian'", "'sigma'", "'relative'"]),
        ("gaussian:sigma=nan", ["'gaussian'", "'sigma'"]),
        ("gaussian:sigma=abc", ["'gaussian'", "'sigma'", "number"]),
        ("uniform:levels=1", ["'uniform'", "'levels'", ">= 2"]),
        ("qsgd:levels=1", ["'qsgd'", "'levels'"]),
        ("qsgd:levels=2.5", ["'qsgd'", "'levels'", "integer"]),
        ("qsgd:levels=4,norm=l1", ["'qsgd'", "'norm'", "l2, max"]),
        ("topk:ratio=0", ["'topk'", "'ratio'", "(0, 1]"]),
        ("topk:ratio=1.5", ["'topk'", "'ratio'"]),
        ("topk:ratio=0.1,scope=layer", ["'topk'", "'scope'"]),
        ("topk", ["'topk'", "'ratio'", "required"]),
        ("randk:ratio=-0.2", ["'randk'", "'ratio'"]),
        ("powersgd:rank=0", ["'powersgd'", "'rank'", ">= 1"]),
        ("clip:c=0", ["'clip'", "'c'", "> 0"]),
        ("dp:c=1,z=-1", ["'dp'", "'z'"]),
        ("dp:c=1,z=1,delta=1", ["'dp'", "'delta'"]),
        ("dp:c=1,z=1,client_size=0", ["'dp'", "'client_size'"]),
        ("sign:scaled=maybe", ["'sign'", "'scaled'"]),
        ("topk:ratio=0.1,foo=2", ["'topk'", "unknown parameter 'foo'"]),
        ("fp16:bits=8", ["'fp16'", "unknown parameter 'bits'"]),
        ("topk:ratio=0.1,ratio=0.2", ["'topk'", "'ratio'", "twice"]),
        ("blur:sigma=1", ["unknown defense 'blur'"]),
        ("topk:ratio", ["malformed", "'ratio'"]),
        ("topk:", ["malformed"]),
        (":ratio=0.1", ["malformed"]),
        ("topk:ratio=0.1,", ["malformed"]),
    ],
)
def test_bad_specs_name_the_defense_and_parameter(spec: str, words: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        parse_spec(spec)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, (word, message)


@pytest.mark.parametrize(
    "obj",
    [
        {"topk": {"ratio": 0.1}, "sign": {}},
        {"name": "topk", "params": {"ratio": 0.1}, "extra": 1},
        {"name": 3},
        {"topk": [0.1]},
        42,
    ],
)
def test_bad_yaml_specs(obj: object) -> None:
    with pytest.raises(ConfigError):
        resolve_spec(obj)  # type: ignore[arg-type]


def test_yaml_bad_values_are_typed() -> None:
    with pytest.raises(ConfigError, match="'powersgd'.*'rank'.*integer"):
        resolve_spec({"powersgd": {"rank": 1.5}})
    with pytest.raises(ConfigError, match="'sign'.*'scaled'"):
        resolve_spec({"sign": {"scaled": 2}})
    with pytest.raises(ConfigError, match="'clip'.*'c'"):
        resolve_spec({"clip": {"c": True}})


def test_describe_lists_every_defense_and_parameter() -> None:
    table = describe_defenses()
    lines = table.splitlines()
    for name, defense in DEFENSES.items():
        assert any(line.startswith(name + " ") for line in lines), name
        assert defense.summary in table
        for param in defense.params:
            assert any(line.strip().startswith(param.name + " ") for line in lines), param.name
    assert "1e-05" in table and "required" in table and "l2|max" in table


def test_a_chain_reads_the_same_from_its_text_or_its_resolved_record() -> None:
    from medleak.defenses import describe_chain, resolve_spec

    text = ["topk:ratio=0.1", "qsgd:levels=4"]
    resolved = [resolve_spec(t) for t in text]
    assert describe_chain([]) == "none" and describe_chain(None) == "none"
    shown = describe_chain(resolved)
    assert shown.startswith("topk:ratio=0.1") and " -> qsgd:levels=4" in shown
    # the text of each resolved stage parses back to the same stage
    assert [resolve_spec(s) for s in shown.split(" -> ")] == resolved
