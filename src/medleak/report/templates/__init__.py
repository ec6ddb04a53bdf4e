"""The report's HTML as Jinja2 templates (autoescaped) with its CSS and script as package files,
inlined at render time so a report is still one self-contained file that opens offline.

``render(template, **values)``: strings are escaped; a fragment already rendered as HTML (an image,
a table, another section) comes in wrapped in ``Markup``.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

__all__ = ["Markup", "render"]


@cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("medleak.report", "templates"),
        autoescape=select_autoescape(["html", "j2"], default_for_string=True),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )
    static = resources.files("medleak.report") / "static"
    env.globals["css"] = Markup((static / "report.css").read_text())
    env.globals["script"] = Markup((static / "report.js").read_text())
    return env


def render(template: str, /, **values: Any) -> str:
    return _environment().get_template(template).render(**values)
