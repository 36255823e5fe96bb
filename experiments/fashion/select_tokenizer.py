"""Choosing between tokenizers on validation images (never the test split): PSNR and rFID of
the deterministic-code reconstructions of the first N images of a held-out split, against one
shared reference; the lowest rFID wins.

    python -m experiments.fashion.select_tokenizer --data fashion-mnist:val --num 2000 \
        --out DIR NAME=TOKENIZER_DIR [NAME=TOKENIZER_DIR ...]

writes DIR/selection.json ({name: {psnr, rfid, precision, recall, n, tokenizer}}), resumable
per candidate, and DIR/chosen.json ({"name", "tokenizer"}); the reference statistics are kept
under DIR/results/.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bigr.commands.common import add_features_argument
from bigr.evaluation.inception import feature_extractor
from bigr.model import load_tokenizer
from bigr.recipes import recipe

from .study import ReportConfig
from .study.context import Context
from .study.sections import SECTIONS


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.fashion.select_tokenizer")
    p.add_argument("--data", required=True, help="held-out images, e.g. fashion-mnist:val")
    p.add_argument("--num", type=int, default=2000, help="images compared")
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="cpu")
    add_features_argument(p)
    p.add_argument("candidates", nargs="+", metavar="NAME=DIR")
    args = p.parse_args(argv)
    out = Path(args.out)
    (out / "results").mkdir(parents=True, exist_ok=True)
    config = ReportConfig(recipe=recipe("release"), num_fid=args.num, reference=args.data)
    extractor = feature_extractor(args.features).to(args.device)
    path = out / "selection.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    for pair in args.candidates:
        name, sep, directory = pair.partition("=")
        if not sep:
            p.error(f"candidates are NAME=DIR, got {pair!r}")
        if results.get(name, {}).get("tokenizer") == directory:
            continue
        tokenizer = load_tokenizer(directory, device=args.device)
        ctx = Context(None, tokenizer, extractor, config, out, force=False)
        results[name] = SECTIONS["tokenizer"](ctx) | {"tokenizer": directory}
        path.write_text(json.dumps(results, indent=2) + "\n")
        print(name, json.dumps(results[name]), flush=True)
    names = [pair.partition("=")[0] for pair in args.candidates]
    best = min(names, key=lambda n: results[n]["rfid"])
    chosen = {"name": best, "tokenizer": results[best]["tokenizer"], "by": "lowest rFID"}
    (out / "chosen.json").write_text(json.dumps(chosen, indent=2) + "\n")
    print(f"chosen: {best} (rFID {results[best]['rfid']:.2f}, PSNR {results[best]['psnr']:.2f} dB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
