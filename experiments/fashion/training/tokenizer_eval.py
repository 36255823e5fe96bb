"""Tokenizer-only reconstruction numbers (PSNR, rFID) through the report's tokenizer section."""

import json
import sys
from pathlib import Path

from bigr.evaluation.inception import InceptionFeatures
from bigr.model import load_tokenizer
from bigr.recipes import recipe
from experiments.fashion.study import ReportConfig
from experiments.fashion.study.context import Context
from experiments.fashion.study.sections import SECTIONS

tok_dir, ref, n, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
tok = load_tokenizer(tok_dir)
cfg = ReportConfig(recipe=recipe("release"), num_fid=n, reference=ref)
(out / "results").mkdir(parents=True, exist_ok=True)
ctx = Context(None, tok, InceptionFeatures(), cfg, out, force=False)
res = SECTIONS["tokenizer"](ctx)
res["tokenizer"] = tok_dir
(out / "tokenizer.json").write_text(json.dumps(res, indent=2))
print(json.dumps(res))
