"""Avro schemas, declared once as .avsc files and loaded by name."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources


@cache
def load_schema(name: str) -> dict:
    return json.loads(resources.files(__package__).joinpath(f"{name}.avsc").read_text())
