"""The JSON cache of report sections under `OUT/results/`, keyed by the settings they use."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch

from bigr.sampler_plan import SamplerConfig, sampler_record

from .config import COMMON_SETTINGS, ReportConfig
from .sections import SECTION_SETTINGS


def cached(out: Path, name: str, force: bool, compute: Callable[[], dict], key: str) -> dict:
    """A section's result from `OUT/results/NAME.json` if it was computed with the same
    settings (`key`), else computed now and stored."""
    cached = None if force else valid_cached(out, name, key)
    if cached is not None:
        return cached
    start = time.perf_counter()
    result = compute()
    result["section_seconds"] = time.perf_counter() - start
    result["settings_key"] = key
    path = out / "results" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    return result


def valid_cached(out: Path, name: str, key: str) -> dict | None:
    """A section's stored result if it was computed with the settings `key`, else None."""
    path = out / "results" / f"{name}.json"
    if not path.is_file():
        return None
    cached = json.loads(path.read_text())
    return cached if cached.get("settings_key") == key else None


def section_key(name: str, config: ReportConfig, model_name: str, weights: str = "") -> str:
    """The cache key of a section: the model and the settings that section depends on. The
    model is its `weights` (a fingerprint of its tensors, so a retrained model never reads
    stale results), or its name when no fingerprint is given; with weights, the name is only
    the report's title. Variant models are keyed by their label and the fingerprint of their
    folder's files."""
    settings = {f.name: _plain(getattr(config, f.name)) for f in dataclasses.fields(config)}
    settings["orders_count"] = config.orders_count
    fields = (*COMMON_SETTINGS, *SECTION_SETTINGS[name])
    chosen = {f: settings[f] for f in fields}
    if "variants" in chosen:  # by label and files, not folder: a moved model keeps its results
        chosen["variants"] = [[label, directory_fingerprint(d)] for label, d in config.variants]
    key = {"config": chosen, "section": name, "weights": weights}
    if not weights:
        key["model"] = model_name
    return json.dumps(key, sort_keys=True)


def _plain(value):
    """A setting as JSON-ready data; sampler settings as their record (`sampler_record`), so a
    new sampler option left at its default never changes a section's key."""
    if isinstance(value, SamplerConfig):
        return sampler_record(value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    return value


def weights_fingerprint(*modules: torch.nn.Module) -> str:
    """SHA-256 (hex, 16 digits) of the modules' state: tensor names, dtypes, shapes, bytes."""
    digest = hashlib.sha256()
    for module in modules:
        for name, tensor in module.state_dict().items():
            t = tensor.detach().cpu().contiguous()
            digest.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
            digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()[:16]


def directory_fingerprint(directory: str | Path) -> str:
    """SHA-256 (hex, 16 digits) of a model directory's files (names and bytes)."""
    digest = hashlib.sha256()
    root = Path(directory)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b";")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
