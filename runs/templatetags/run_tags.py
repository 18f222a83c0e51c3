"""Filters of the run page."""

import json

from django import template

register = template.Library()


@register.filter
def as_json(value) -> str:
    """Indented JSON (for <pre>; the template escapes it)."""
    return json.dumps(value, indent=2, sort_keys=True, default=str)


@register.filter
def ms(value) -> str:
    """A duration in milliseconds, readable: 850 ms, 12.3 s, 4 min 05 s."""
    if value is None or value == "":
        return ""
    value = int(value)
    if value < 1000:
        return f"{value} ms"
    if value < 60_000:
        return f"{value / 1000:.1f} s"
    minutes, seconds = divmod(value // 1000, 60)
    return f"{minutes} min {seconds:02d} s"
