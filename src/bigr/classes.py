"""Classes by id or by name: a model trained by `bigr train` on a labelled dataset records its
class names (config.json, `extra.classes`), so `--classes sneaker,7` and
`pipe.generate(["sneaker", 7])` mean the same as `--classes 7,7`.

A name matches when it equals a class name once both are lower-cased and stripped of
everything but letters and digits ("t-shirt/top" = "T-shirt/top" = "tshirttop"), or when it
is at least three such characters that start exactly one class name ("tshirt", "ankle").
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path


def class_names(model_dir: str | Path) -> list[str]:
    """The class names a model directory (or embedded model) records, else []."""
    from .checkpoint import resolve

    try:
        extra = json.loads((resolve(model_dir) / "config.json").read_text()).get("extra", {})
    except (OSError, ValueError, AttributeError):
        return []
    names = extra.get("classes", []) if isinstance(extra, dict) else []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return []
    return names


def _key(text: str) -> str:
    return "".join(c for c in text.lower() if c.isalnum())


def class_id(item: int | str, names: Sequence[str], num_classes: int) -> int:
    """One class id from an id (int or digits) or a name; ValueError naming the choices."""
    if num_classes == 0:
        raise ValueError("this model is unconditional: it has no classes to choose")
    if isinstance(item, bool) or not isinstance(item, int | str):
        raise TypeError(f"a class is an id or a name, got {type(item).__name__}")
    text = item.strip() if isinstance(item, str) else ""
    if isinstance(item, int) or text.lstrip("-").isdecimal():
        label = int(item) if isinstance(item, int) else int(text)
        if not 0 <= label < num_classes:
            raise ValueError(
                f"class {label} is out of range: this model has classes 0..{num_classes - 1}"
            )
        return label
    if not names:
        raise ValueError(
            f"class {item!r}: this model records no class names; give class ids "
            f"0..{num_classes - 1}"
        )
    key = _key(text)
    exact = [i for i, n in enumerate(names) if _key(n) == key]
    starts = [i for i, n in enumerate(names) if len(key) >= 3 and _key(n).startswith(key)]
    found = exact or starts
    if len(found) == 1:
        return found[0]
    listing = ", ".join(f"{i} {n}" for i, n in enumerate(names))
    what = "matches several classes" if found else "is not a class of this model"
    raise ValueError(f"class {item!r} {what}; the classes are: {listing}")


def class_ids(
    items: str | Sequence[int | str], names: Sequence[str], num_classes: int
) -> list[int]:
    """Class ids from a comma-separated string or a sequence of ids and names."""
    parts = [p for p in items.split(",") if p.strip()] if isinstance(items, str) else list(items)
    if not parts:
        raise ValueError("no classes given")
    return [class_id(p, names, num_classes) for p in parts]
