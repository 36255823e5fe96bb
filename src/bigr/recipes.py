"""Sampling recipes by name: the release's and the paper's, each app's, and a model's own.

One table (`RECIPES`) holds every built-in recipe. A model directory may carry its own in
`recipe.json` — at least `recommended` (the settings chosen for it, with how they were chosen),
optionally one per app (`edit`, `interpolate`, `enrich`) — and those take precedence for that
model: `bigr sample`, `sample-fid --recipe recommended`, the apps, `demo` and `serve` start from
them when no flag overrides a field.

`recipe.json`: {"recipes": {NAME: {SamplerConfig field: value, ...}, ...}, "selection": {NAME:
{...}, ...}} where `selection` records each recipe's free-form evidence (split used, n, metric,
the sweep's table file); e.g. `recommended` (the lowest FID) and `fast` (the lowest FID within a
speed budget, `bigr tune-recipe --fast`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from .outputs import atomic_write_text
from .sampler import SamplerConfig
from .sampler_plan import sampler_record, without_retired

RECIPE_FILE = "recipe.json"

RELEASE = SamplerConfig(steps=20, guidance=3.0, gumbel=0.01)  # script/sample.sh, all sizes
RECIPES: dict[str, SamplerConfig] = {
    "release": RELEASE,
    # paper Table 7 (gumbel schedule not stated there: constant)
    "paper-l": SamplerConfig(steps=20, guidance=2.5, gumbel=0.17),
    "paper-xl": SamplerConfig(steps=25, guidance=2.5, gumbel=0.25),
    "paper-xxl": SamplerConfig(steps=25, guidance=2.5, gumbel=0.30),
    # run_BiGR.ipynb
    "notebook": SamplerConfig(steps=20, guidance=2.5, gumbel=0.01, gumbel_schedule="down"),
    # the apps' defaults for a model without its own (bigr-spec.md §6)
    "edit": SamplerConfig(steps=25, schedule="linear", guidance=2.5, gumbel=0.0),
    "interpolate": SamplerConfig(steps=20, guidance=2.5, gumbel=0.0),
    "enrich": SamplerConfig(steps=20, schedule="linear", guidance=1.0, gumbel=0.0),
}
PRESET_RECIPES = {
    "bigr-l-d24": {"paper": "paper-l", "release": "release"},
    "bigr-xl-d24": {"paper": "paper-xl", "release": "release"},
    "bigr-xxl-d24": {"paper": "paper-xxl", "release": "release"},
    "bigr-xxl-d32": {"paper": "paper-xxl", "release": "release"},
    "bigr-l-d32-512": {"paper": "paper-l", "release": "release"},
}


class RecipeError(ValueError):
    """An unknown recipe name or an unreadable recipe file."""


def _config_from_dict(values: dict, where: str) -> SamplerConfig:
    try:
        values = without_retired(values)
    except ValueError as err:
        raise RecipeError(f"{where}: {err}") from None
    fields = {f.name: f for f in dataclasses.fields(SamplerConfig)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise RecipeError(f"{where}: unknown sampler fields {', '.join(unknown)}")
    defaults = SamplerConfig()
    clean = {}
    for key, value in values.items():
        kind = type(getattr(defaults, key))
        if kind is float and type(value) is int:
            value = float(value)
        if type(value) is not kind:
            raise RecipeError(f"{where}: {key} must be a {kind.__name__}, got {value!r}")
        clean[key] = value
    config = SamplerConfig(**clean)
    try:
        config.validate()
    except ValueError as err:
        raise RecipeError(f"{where}: {err}") from None
    return config


def model_directory(model: str | Path | None) -> Path | None:
    """The local directory of a model argument (embedded names included); None otherwise.

    Never fetches anything: a hub id has no recipe until it is downloaded and passed as a path.
    """
    if model is None:
        return None
    if str(model).startswith("bigr:"):
        from .checkpoint import resolve

        return resolve(str(model))
    path = Path(model)
    return path if path.is_dir() else None


def _recipe_file(model: str | Path | None) -> tuple[Path, dict] | None:
    """A model directory's `recipe.json` and its parsed object; None when it has none."""
    root = model_directory(model)
    if root is None or not (root / RECIPE_FILE).is_file():
        return None
    file = root / RECIPE_FILE
    try:
        data = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RecipeError(f"{file}: not a readable recipe file ({err})") from None
    if not isinstance(data, dict) or not isinstance(data.get("recipes"), dict):
        raise RecipeError(f"{file}: expected an object with a 'recipes' object")
    return file, data


def model_recipes(model: str | Path | None) -> dict[str, SamplerConfig]:
    """The recipes a model directory carries in `recipe.json` ({} when it has none)."""
    found = _recipe_file(model)
    if found is None:
        return {}
    file, data = found
    out = {}
    for name, values in data["recipes"].items():
        if not isinstance(values, dict):
            raise RecipeError(f"{file}: recipe {name!r} must be an object of sampler fields")
        out[name] = _config_from_dict(values, f"{file}: recipe {name!r}")
    return out


def model_selections(model: str | Path | None) -> dict[str, dict]:
    """The evidence records a model directory's `recipe.json` keeps, per recipe name ({} when
    it has none; a single record from before records were kept per recipe is `recommended`'s).
    """
    found = _recipe_file(model)
    if found is None:
        return {}
    file, data = found
    kept = data.get("selection") or {}
    if not isinstance(kept, dict):
        raise RecipeError(f"{file}: 'selection' must be an object")
    return {"recommended": kept} if "method" in kept else kept


def recipe(name: str, model: str | Path | None = None) -> SamplerConfig:
    """A recipe by name: the model's own first, then `RECIPES`, then `PRESET/paper|release`.

    `recommended` is the model's chosen recipe; a model without one falls back to `release`.

    >>> from bigr import recipe
    >>> recipe("release").steps, recipe("fast", "bigr:fashion").steps
    (20, 12)
    """
    own = model_recipes(model)
    if name in own:
        return own[name]
    if name == "recommended":
        return RECIPES["release"]
    if "/" in name:
        preset, which = name.split("/", 1)
        if preset not in PRESET_RECIPES or which not in PRESET_RECIPES[preset]:
            raise RecipeError(
                f"no recipe {name!r}; known presets: {sorted(PRESET_RECIPES)} (paper|release)"
            )
        name = PRESET_RECIPES[preset][which]
    if name not in RECIPES:
        known = sorted({*RECIPES, *own, "recommended"})
        raise RecipeError(f"unknown recipe {name!r}; known: {', '.join(known)}")
    return RECIPES[name]


def save_recipes(
    model_dir: str | Path, recipes: dict[str, SamplerConfig], selection: dict | None = None
) -> Path:
    """Write `recipe.json` into a model directory (atomically); returns its path."""
    for config in recipes.values():
        config.validate()
    data = {
        "recipes": {name: sampler_record(c) for name, c in recipes.items()},
        "selection": selection or {},
    }
    return atomic_write_text(Path(model_dir) / RECIPE_FILE, json.dumps(data, indent=2) + "\n")
