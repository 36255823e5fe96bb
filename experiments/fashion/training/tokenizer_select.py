"""Choosing between tokenizers on validation images (never the test split): PSNR and rFID of
deterministic-code reconstructions of the first N images of fashion-mnist:val (the last 5,000
training images, which no tokenizer trained on), one shared reference, through the report's
tokenizer section.

    python reports/fashion/training/tokenizer_select.py N OUT NAME=DIR [NAME=DIR ...]

writes OUT/selection.json ({name: {psnr, rfid, precision, recall, n}}) and caches the
reference statistics in OUT/results/.
"""

import json
import sys
from pathlib import Path

from bigr.evaluation.inception import InceptionFeatures
from bigr.model import load_tokenizer
from bigr.recipes import recipe
from experiments.fashion.study import ReportConfig
from experiments.fashion.study.context import Context
from experiments.fashion.study.sections import SECTIONS

n, out = int(sys.argv[1]), Path(sys.argv[2])
cfg = ReportConfig(recipe=recipe("release"), num_fid=n, reference="fashion-mnist:val")
(out / "results").mkdir(parents=True, exist_ok=True)
extractor = InceptionFeatures()
path = out / "selection.json"
results = json.loads(path.read_text()) if path.is_file() else {}
for pair in sys.argv[3:]:
    name, tok_dir = pair.split("=", 1)
    if name in results:
        continue
    ctx = Context(None, load_tokenizer(tok_dir), extractor, cfg, out, force=False)
    results[name] = SECTIONS["tokenizer"](ctx) | {"tokenizer": tok_dir}
    path.write_text(json.dumps(results, indent=2))
    print(name, json.dumps(results[name]), flush=True)
