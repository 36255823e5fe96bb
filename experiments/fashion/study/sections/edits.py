"""Do class edits do what they say? A pixel classifier's verdict on edited held-out images.

For each (source class, target class, box) pair, `edit_images` held-out images of the source
class get the box regenerated as the target class (the edit recipe, blended, one variant each,
`batch_size` images per sampling call: what `bigr edit` does to one image), and a linear probe
on real pixels classifies the results. Reported: the share assigned to the target class,
against the same share for the unedited images (what the classifier says before any edit) and
the share still assigned to the source class.
"""

from __future__ import annotations

from pathlib import Path

import torch

from bigr import distributed
from bigr.apps.common import blend
from bigr.apps.masks import box_mask, token_mask
from bigr.data.images import save_grid
from bigr.recipes import RECIPES
from bigr.sampler import sample_codes
from bigr.sampler_plan import sampler_record

from ..config import ReportConfig
from ..context import Context, pixel_classifier
from ..format import fmt

SETTINGS = ("edit_images", "edit_recipe", "train_data", "probe_train", "probe_test", "probe_epochs")

# (source, target, box as fractions left, top, right, bottom, what the box is)
EDITS = (
    (7, 9, (0.0, 0.0, 1.0, 0.5), "upper half"),  # sneaker -> ankle boot: the shaft on top
    (0, 3, (0.0, 0.5, 1.0, 1.0), "lower half"),  # T-shirt -> dress: the skirt below
    (5, 7, (0.0, 0.0, 1.0, 1.0), "whole image"),  # sandal -> sneaker
    (1, 3, (0.0, 0.0, 1.0, 1.0), "whole image"),  # trouser -> dress
)


def _images_of(spec: str, label: int, count: int, size: int) -> torch.Tensor:
    """The first `count` images of class `label` in `spec` (fewer if it has fewer)."""
    from bigr.data import open_dataset

    data = open_dataset(spec, size)
    labels = torch.as_tensor([int(y) for y in data.labels]) if hasattr(data, "labels") else None
    if labels is None:
        labels = torch.tensor([data[i][1] for i in range(len(data))])
    index = (labels == label).nonzero().flatten()[:count]
    return torch.stack([data[int(i)][0] for i in index]) if len(index) else torch.empty(0)


@torch.no_grad()
def _edit_batch(
    ctx: Context, originals: torch.Tensor, pixel_mask: torch.Tensor, target: int, pair: int
) -> torch.Tensor:
    """`originals` (N, 3, S, S) with the tokens under `pixel_mask` regenerated as class
    `target` (the edit recipe, deterministic codes, blended), `batch_size` images per call."""
    cfg, model, tok = ctx.config, ctx.model, ctx.tokenizer
    sampler = cfg.edit_recipe or RECIPES["edit"]
    device = model.transformer.mask_token.device
    keep = ~token_mask(pixel_mask, model.config.grid_size, "any").to(device)
    edited = []
    for b, rows in enumerate(originals.split(cfg.batch_size)):
        gen = distributed.generator(device, cfg.seed, "report-edit", pair, b)
        codes = tok.encode(rows.to(device), stochastic=False).codes
        labels = torch.full((len(rows),), target, device=device)
        out = sample_codes(
            model,
            labels,
            sampler,
            known_codes=codes,
            known_mask=keep.expand(len(rows), -1),
            generator=gen,
        )
        edited.append(blend(tok.decode(out).clamp(0, 1).cpu(), rows, pixel_mask))
    return torch.cat(edited)


def compute(ctx: Context) -> dict:
    cfg, model = ctx.config, ctx.model
    sampler = cfg.edit_recipe or RECIPES["edit"]
    classify, probe_top1 = pixel_classifier(ctx)
    rows, grids = [], []
    for i, (source, target, box, where) in enumerate(EDITS):
        if max(source, target) >= model.config.num_classes:
            continue
        originals = _images_of(cfg.reference, source, cfg.edit_images, ctx.size)
        if not len(originals):
            continue
        edited = _edit_batch(ctx, originals, box_mask(ctx.size, box), target, i)
        before, after = classify(originals), classify(edited)
        rows.append(
            {
                "source": source,
                "target": target,
                "box": list(box),
                "region": where,
                "n": len(originals),
                "target_after": float((after == target).float().mean()),
                "target_before": float((before == target).float().mean()),
                "source_after": float((after == source).float().mean()),
            }
        )
        grids.append(torch.cat([originals[:8], edited[:8]]))
    if grids:
        save_grid(torch.cat(grids), ctx.out / "samples" / "edits.png", nrow=8)
    return {"sampler": sampler_record(sampler), "probe_real_top1": probe_top1, "edits": rows}


def markdown(result: dict, config: ReportConfig, out: Path) -> list[str]:
    from bigr.demo import CLASSES

    lines = [
        "## Class editing: does the edit reach the target class?",
        "",
        "Held-out images of the source class, the region regenerated as the target class "
        f"(edit recipe: {result['sampler']['steps']} {result['sampler']['schedule']} steps, "
        f"guidance {result['sampler']['guidance']}, blended), classified by a linear probe on "
        f"real pixels (top-1 {fmt(result['probe_real_top1'])}% on real held-out images).",
        "",
        "| edit | region | n | classified as target after | before | still source |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["edits"]:
        name = f"{CLASSES[r['source']]} -> {CLASSES[r['target']]}"
        lines.append(
            f"| {name} | {r['region']} | {r['n']} | {fmt(100 * r['target_after'], 1)} % | "
            f"{fmt(100 * r['target_before'], 1)} % | {fmt(100 * r['source_after'], 1)} % |"
        )
    lines += [
        "",
        "![edits](samples/edits.png)",
        "",
        "Pairs of rows: originals, then their edits, in the order of the table.",
        "",
    ]
    return lines
