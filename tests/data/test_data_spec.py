"""DataSpec validates its values once, with one-line ConfigErrors."""

import pytest

from medleak.data import DataSpec
from medleak.errors import ConfigError


def test_defaults_are_the_phantom_at_128_crop_balanced():
    spec = DataSpec()
    assert (spec.source, spec.split, spec.image_size) == ("phantom", None, 128)
    assert (spec.resize, spec.order, spec.phantom_count) == ("crop", "balanced", 200)
    assert spec.is_phantom and not DataSpec(source="/data/chest_xray").is_phantom


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"image_size": 7}, "image size"),
        ({"image_size": True}, "image size"),
        ({"image_size": "128"}, "image size"),
        ({"resize": "stretch"}, "crop or squash"),
        ({"order": "random"}, "balanced or sorted"),
        ({"phantom_count": 0}, "phantom count"),
        ({"source": "  "}, "source"),
        ({"split": ""}, "split"),
    ],
)
def test_bad_values_raise_config_errors(kwargs, words):
    with pytest.raises(ConfigError, match=words) as info:
        DataSpec(**kwargs)
    assert "\n" not in str(info.value)


def test_spec_is_frozen():
    with pytest.raises(AttributeError):
        DataSpec().image_size = 64  # type: ignore[misc]
