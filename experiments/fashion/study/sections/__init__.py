"""The report's sections, one module each. A section module declares

- `SETTINGS`: the `ReportConfig` fields its cached numbers depend on (besides
  `config.COMMON_SETTINGS`), which make up its cache key;
- `compute(ctx) -> dict`: its numbers (JSON), measured with a `context.Context`;
- `markdown(result, config, out) -> list[str]`: its part of `report.md`, plots written under
  `out`.
"""

from __future__ import annotations

from . import edits, fid, inpaint, orders, probe, speed, sweeps, text, tokenizer, variants

MODULES = {
    "tokenizer": tokenizer,
    "fid": fid,
    "sweeps": sweeps,
    "speed": speed,
    "orders": orders,
    "probe": probe,
    "inpaint": inpaint,
    "edits": edits,
    "text": text,
    "variants": variants,
}
SECTIONS = {name: module.compute for name, module in MODULES.items()}
SECTION_SETTINGS: dict[str, tuple[str, ...]] = {
    name: module.SETTINGS for name, module in MODULES.items()
}
CLASS_SECTIONS = ("tokenizer", "fid", "sweeps", "speed", "orders", "probe", "inpaint", "edits")
TEXT_SECTIONS = ("text", "probe", "inpaint")
