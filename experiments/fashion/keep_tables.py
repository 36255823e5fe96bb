"""Keep a recipe sweep's tables beside the study and point the model's recipe.json at them.

    python -m experiments.fashion.keep_tables SWEEP_DIR TABLES_DIR POINTS MD JSON \
        --model MODEL_DIR --recipe NAME

copies SWEEP_DIR/points.jsonl, tuning.md and tuning.json to TABLES_DIR under the names POINTS,
MD and JSON, and records TABLES_DIR/MD as the evidence of recipe NAME in MODEL_DIR/recipe.json
(the sweep folder is run state; the tables are what is committed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from .stages import ROOT


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.fashion.keep_tables")
    p.add_argument("sweep")
    p.add_argument("tables")
    p.add_argument("names", nargs=3, metavar=("POINTS", "MD", "JSON"))
    p.add_argument("--model", required=True)
    p.add_argument("--recipe", required=True)
    args = p.parse_args(argv)
    sweep, tables = Path(args.sweep), Path(args.tables)
    tables.mkdir(parents=True, exist_ok=True)
    for source, name in zip(("points.jsonl", "tuning.md", "tuning.json"), args.names, strict=True):
        shutil.copyfile(sweep / source, tables / name)
    path = Path(args.model) / "recipe.json"
    kept = json.loads(path.read_text())
    table = (tables / args.names[1]).resolve()
    if table.is_relative_to(ROOT):  # the repository's own tables, by relative path
        table = table.relative_to(ROOT)
    kept.setdefault("selection", {}).setdefault(args.recipe, {})["table"] = str(table)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(kept, indent=2) + "\n")
    os.replace(tmp, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
