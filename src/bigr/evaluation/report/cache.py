"""The JSON cache of report sections under `OUT/results/`, keyed by the settings they use."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path

from .config import COMMON_SETTINGS, ReportConfig
from .sections import SECTION_SETTINGS


def _cached(out: Path, name: str, force: bool, compute: Callable[[], dict], key: str) -> dict:
    """A section's result from `OUT/results/NAME.json` if it was computed with the same
    settings (`key`), else computed now and stored."""
    path = out / "results" / f"{name}.json"
    if path.is_file() and not force:
        cached = json.loads(path.read_text())
        if cached.get("settings_key") == key:
            return cached
    start = time.perf_counter()
    result = compute()
    result["section_seconds"] = time.perf_counter() - start
    result["settings_key"] = key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    return result


def section_key(name: str, config: ReportConfig, model_name: str) -> str:
    """The cache key of a section: the model and the settings that section depends on."""
    settings = {**dataclasses.asdict(config), "orders_count": config.orders_count}
    fields = (*COMMON_SETTINGS, *SECTION_SETTINGS[name])
    chosen = {f: settings[f] for f in fields}
    return json.dumps({"config": chosen, "model": model_name, "section": name}, sort_keys=True)
