"""The Fashion-MNIST study's results report of a generator + tokenizer pair, as markdown with plots.

Every number is measured here by the package's own code, on the data named in the report:

- FID / sFID / precision / recall of `num_fid` class-balanced samples (the recommended recipe)
  against the held-out split, beside the real-data floor (as many training images against the
  same reference);
- the speed/quality curve: FID of `num_sweep` samples against unmasking steps and against
  diffusion (head) steps, with measured seconds per image, and the floor at the same n;
- unmasking order (entropy, confidence, random, raster) and Bernoulli vs thresholded bits;
- a linear probe: the block chosen on a validation split of the training images, reported on
  the test split against raw pixels, the tokenizer's bits and variant models;
- an inpainting benchmark on held-out images: PSNR inside the regenerated region for a centre
  box, the right half and random tokens, against the tokenizer's own reconstruction (the
  ceiling) and a mean-colour fill (a floor).

Each section is cached as JSON under `OUT/results/`, so an interrupted report resumes where it
stopped; `--force` recomputes. Timings are taken on whatever the machine is doing: run the
report alone for clean seconds-per-image numbers.

Layout: `config` (ReportConfig), `context` (what the sections share: models, reference
statistics, floors, memoised sample FIDs), `cache` (the JSON section cache and its keys),
`sections/` (one module per section: its settings, `compute` and `markdown`), `markdown`
(report.md and results/all.json) and `runner` (`run_report`, `precompute_real`).
"""

from .cache import section_key
from .config import ReportConfig
from .markdown import summary, write_markdown
from .runner import precompute_real, run_report
from .sections import CLASS_SECTIONS, SECTION_SETTINGS, SECTIONS, TEXT_SECTIONS

__all__ = [
    "CLASS_SECTIONS",
    "SECTIONS",
    "SECTION_SETTINGS",
    "TEXT_SECTIONS",
    "ReportConfig",
    "precompute_real",
    "run_report",
    "section_key",
    "summary",
    "write_markdown",
]
