"""Prompt templates: Jinja2 with StrictUndefined, autoescape off.

A topic's text and every stage output are passed in as *values*; Jinja2 never renders a
value as a template, so ``{{ 7*7 }}`` inside a topic stays literally that.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jinja2

_env = jinja2.Environment(
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    keep_trailing_newline=False,
    auto_reload=False,
)

Template = jinja2.Template
TemplateError = jinja2.TemplateError
TemplateSyntaxError = jinja2.TemplateSyntaxError
UndefinedError = jinja2.UndefinedError


def compile_template(source: str) -> Template:
    """Compile ``source``; raises ``TemplateSyntaxError`` with ``lineno`` set."""
    return _env.from_string(source)


def render(template: Template, context: Mapping[str, Any]) -> str:
    """Render with the given variables; a missing variable raises ``UndefinedError``."""
    return template.render(context).strip()
