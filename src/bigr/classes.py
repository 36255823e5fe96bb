"""Classes by id or by name: a model trained by `bigr train` on a labelled dataset records its
class names (config.json, `extra.classes`), so `--classes sneaker,7` and
`pipe.generate(["sneaker", 7])` mean the same as `--classes 7,7`.

A name matches when it equals a class name once both are lower-cased and stripped of
everything but letters and digits ("t-shirt/top" = "T-shirt/top" = "tshirttop"), or when it
is at least three such characters that start exactly one class name ("tshirt", "ankle").
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch import Tensor


def class_names(model_dir: str | Path) -> list[str]:
    """The class names a model directory (or embedded model) records, else []."""
    from .checkpoint import model_extra

    names = model_extra(model_dir).get("classes", [])
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


def class_conditions(
    model, classes: str | int | Sequence[int | str] | None, names: Sequence[str]
) -> Tensor:
    """The conditions (C,) on the model's device for `classes` (ids or names; a string is a
    comma list): one null condition for an unconditional model, which takes no classes."""
    import torch

    config, device = model.config, model.transformer.mask_token.device
    if config.num_classes == 0:
        if classes is not None:
            raise ValueError("this model is unconditional: leave out the classes")
        return model.transformer.null_condition(1, device)
    if classes is None:
        raise ValueError("this model is class-conditional: give classes (ids or names)")
    items = [classes] if isinstance(classes, int) else classes
    return torch.tensor(class_ids(items, names, config.num_classes), device=device)
