"""`bigr report`: the results report of a generator + tokenizer pair, as markdown with plots.

Every number is measured here by the package's own code, on the data named in the report:

- FID / sFID / precision / recall of `num_fid` class-balanced samples (the recommended recipe)
  against the held-out split, beside the real-data floor (as many training images against the
  same reference);
- the speed/quality curve: FID of `num_sweep` samples against unmasking steps and against
  diffusion (head) steps, with measured seconds per image, and the floor at the same n;
- unmasking order (entropy, confidence, random, raster) and Bernoulli vs thresholded bits;
- linear-probe top-1/top-5 after every block, against raw pixels and the tokenizer's bits;
- an inpainting benchmark on held-out images: PSNR inside the regenerated region for a centre
  box, the right half and random tokens, against the tokenizer's own reconstruction (the
  ceiling) and a mean-colour fill (a floor).

Each section is cached as JSON under `OUT/results/`, so an interrupted report resumes where it
stopped; `--force` recomputes. Timings are taken on whatever the machine is doing: run the
report alone for clean seconds-per-image numbers.
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from .. import distributed
from ..apps.common import unconditional
from ..apps.editing import EDIT_SAMPLER
from ..apps.masks import box_mask, pixel_mask_of_tokens, token_mask
from ..data import open_dataset
from ..images import save_grid
from ..model import BiGR
from ..sampler import ORDERS, SamplerConfig, sample_codes
from ..tokenizer import BinaryAutoencoder
from .probe import ProbeConfig, layer_features, train_probe
from .reference import ImageStatistics, compare_statistics, statistics_from_images


@dataclass(frozen=True, kw_only=True)
class ReportConfig:
    recipe: SamplerConfig
    num_fid: int = 10_000
    num_sweep: int = 2_000
    num_orders: int | None = None  # samples per order / bit-draw point (None: `num_sweep`)
    steps_sweep: tuple[int, ...] = (4, 8, 12, 20)
    head_sweep: tuple[int, ...] = (5, 10, 25, 50)
    orders: tuple[str, ...] = ORDERS
    probe_train: int = 10_000
    probe_test: int = 10_000
    probe_epochs: int = 30
    inpaint_images: int = 1_000
    num_text: int = 1_500  # text models: samples over the 30 (class, tone) prompts
    text_fid: bool = False  # also the FID of the prompted samples (an Inception pass)
    # (label, model directory): generators trained otherwise (e.g. predicting x0 instead of
    # flips) at one budget, compared by FID-`num_sweep` with the recipe in the `variants` section
    variants: tuple[tuple[str, str], ...] = ()
    batch_size: int = 250
    reference: str = "fashion-mnist:test"
    train_data: str = "fashion-mnist:train"
    seed: int = 0

    @property
    def orders_count(self) -> int:
        """Samples per order / bit-draw point."""
        return self.num_orders or self.num_sweep


# -- helpers -----------------------------------------------------------------------------------


def _cached(out: Path, name: str, force: bool, compute: Callable[[], dict], key: str) -> dict:
    """A section's result from `OUT/results/NAME.json` if it was computed with the same
    settings (`key`), else computed now and stored."""
    path = out / "results" / f"{name}.json"
    if path.is_file() and not force:
        cached = json.loads(path.read_text())
        if cached.get("settings_key") == key:
            return cached
    start = time.perf_counter()
    result = compute()
    result["section_seconds"] = time.perf_counter() - start
    result["settings_key"] = key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    return result


def real_images(spec: str, count: int, size: int, seed: int | None = None) -> tuple[Tensor, Tensor]:
    """(count, 3, S, S) images and labels: the first `count`, or a seeded random subset."""
    data = open_dataset(spec, size)
    if count > len(data):
        raise ValueError(f"{spec} has {len(data)} images; {count} were asked for")
    if seed is None:
        index = torch.arange(count)
    else:
        index = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:count]
    pairs = [data[int(i)] for i in index]
    return torch.stack([p[0] for p in pairs]), torch.tensor([int(p[1]) for p in pairs])


@torch.no_grad()
def generate(
    model: BiGR,
    tokenizer: BinaryAutoencoder,
    sampler: SamplerConfig,
    count: int,
    *,
    batch_size: int,
    seed: int,
) -> tuple[Tensor, float]:
    """`count` class-balanced images (label i % classes) and the seconds spent sampling codes
    (decoding excluded). Batch b is drawn from a generator seeded by (seed, b)."""
    device = model.transformer.mask_token.device
    images, seconds = [], 0.0
    for b, start in enumerate(range(0, count, batch_size)):
        labels = torch.arange(start, min(start + batch_size, count), device=device)
        labels = labels % model.config.num_classes
        gen = distributed.generator(device, seed, "report", b)
        t0 = time.perf_counter()
        codes = sample_codes(model, labels, sampler, generator=gen)
        seconds += time.perf_counter() - t0
        images.append(tokenizer.decode(codes).clamp(0, 1).cpu())
    return torch.cat(images), seconds


def _fid_entry(stats: ImageStatistics, reference: ImageStatistics, **extra) -> dict:
    scores = compare_statistics(stats, reference)
    return {**{k: float(v) for k, v in scores.items()}, "n": stats.num_images, **extra}


# -- sections ----------------------------------------------------------------------------------


class _Context:
    def __init__(self, model, tokenizer, extractor, config: ReportConfig, out: Path, force: bool):
        self.model, self.tokenizer, self.extractor = model, tokenizer, extractor
        self.config, self.out, self.force = config, out, force
        self.size = tokenizer.config.image_size
        self._reference: ImageStatistics | None = None
        self._memo: dict[str, dict] = {}  # the same sampler at the same n is measured once

    def stats(self, images: Tensor, keep_features: bool = False) -> ImageStatistics:
        return statistics_from_images(images, self.extractor, keep_features=keep_features)

    def reference(self) -> ImageStatistics:
        """Statistics of `num_fid` held-out images (features kept for precision/recall)."""
        if self._reference is None:
            cache = self.out / "results" / f"reference_{self.config.num_fid}.npz"
            from .reference import load_statistics, save_statistics

            if cache.is_file() and not self.force:
                self._reference = load_statistics(cache)
            else:
                images, _ = real_images(self.config.reference, self.config.num_fid, self.size)
                self._reference = self.stats(images, keep_features=True)
                save_statistics(self._reference, cache)
        return self._reference

    def floor(self, count: int, seed: int) -> dict:
        """FID of `count` real training images against the reference (cached: no model)."""
        path = self.out / "results" / f"floor_{count}_{seed}.json"
        if path.is_file() and not self.force:
            return json.loads(path.read_text())
        train, _ = real_images(self.config.train_data, count, self.size, seed=seed)
        entry = _fid_entry(self.stats(train, keep_features=True), self.reference())
        path.write_text(json.dumps(entry, indent=2) + "\n")
        return entry

    def sample_fid(
        self, sampler: SamplerConfig, count: int, name: str, model: BiGR | None = None
    ) -> dict:
        key = json.dumps([dataclasses.asdict(sampler), count, name if model else ""])
        if key not in self._memo:
            self._memo[key] = self._sample_fid(sampler, count, name, model or self.model)
        return self._memo[key]

    def _sample_fid(self, sampler: SamplerConfig, count: int, name: str, model: BiGR) -> dict:
        images, seconds = generate(
            model,
            self.tokenizer,
            sampler,
            count,
            batch_size=self.config.batch_size,
            seed=self.config.seed,
        )
        save_grid(images[:100], self.out / "samples" / f"{name}.png", nrow=10)
        stats = self.stats(images, keep_features=count == self.config.num_fid)
        return _fid_entry(
            stats,
            self.reference(),
            seconds_per_image=seconds / count,
            sampler=dataclasses.asdict(sampler),
        )


def section_fid(ctx: _Context) -> dict:
    cfg = ctx.config
    main = ctx.sample_fid(cfg.recipe, cfg.num_fid, "recipe")
    return {"model": main, "floor": ctx.floor(cfg.num_fid, cfg.seed)}


@torch.no_grad()
def section_tokenizer(ctx: _Context) -> dict:
    """Reconstruction of the `num_fid` reference images: PSNR, and rFID against them."""
    cfg, tok = ctx.config, ctx.tokenizer
    images, _ = real_images(cfg.reference, cfg.num_fid, ctx.size)
    codes = _encode(tok, images, cfg.batch_size)
    recon = torch.cat([tok.decode(c).clamp(0, 1).cpu() for c in codes.split(cfg.batch_size)])
    mse = (recon - images).pow(2).flatten(1).mean(1)
    psnr = float((10 * torch.log10(1 / mse.clamp_min(1e-10))).mean())
    save_grid(torch.cat([images[:16], recon[:16]]), ctx.out / "samples" / "recon.png", nrow=16)
    rfid = _fid_entry(ctx.stats(recon, keep_features=True), ctx.reference())
    return {
        "n": len(images),
        "psnr": psnr,
        "rfid": rfid["fid"],
        "precision": rfid.get("precision"),
        "recall": rfid.get("recall"),
    }


def section_sweeps(ctx: _Context) -> dict:
    cfg, n = ctx.config, ctx.config.num_sweep
    floor = ctx.floor(n, cfg.seed + 1)
    steps = [
        ctx.sample_fid(dataclasses.replace(cfg.recipe, steps=s), n, f"steps_{s}")
        for s in cfg.steps_sweep
    ]
    head = [
        ctx.sample_fid(dataclasses.replace(cfg.recipe, head_steps=h), n, f"head_{h}")
        for h in cfg.head_sweep
    ]
    return {"floor": floor, "steps": steps, "head_steps": head}


def section_orders(ctx: _Context) -> dict:
    cfg = ctx.config
    n = cfg.orders_count
    orders = {
        o: ctx.sample_fid(dataclasses.replace(cfg.recipe, order=o), n, f"order_{o}")
        for o in cfg.orders
    }
    bits = {
        b: ctx.sample_fid(dataclasses.replace(cfg.recipe, bits=b), n, f"bits_{b}")
        for b in ("bernoulli", "threshold")
    }
    return {"floor": ctx.floor(n, cfg.seed + 1), "orders": orders, "bits": bits}


def section_variants(ctx: _Context) -> dict:
    """FID-`num_sweep` of each variant generator with the recipe (same seeds, same reference)."""
    cfg, n = ctx.config, ctx.config.num_sweep
    device = ctx.model.transformer.mask_token.device
    results = {}
    for label, directory in cfg.variants:
        model = BiGR.from_pretrained(directory, device=device).eval()
        if (model.config.code_bits, model.config.grid_size) != (
            ctx.model.config.code_bits,
            ctx.model.config.grid_size,
        ):
            raise ValueError(f"variant {label!r} ({directory}) does not match the tokenizer")
        entry = ctx.sample_fid(cfg.recipe, n, f"variant_{_slug(label)}", model=model)
        config_file = Path(directory) / "config.json"
        extra = json.loads(config_file.read_text()).get("extra", {})
        results[label] = {
            **entry,
            "directory": str(directory),
            "predict_flip": model.config.head.predict_flip,
            "trained_steps": extra.get("trained_steps"),
        }
    return {"floor": ctx.floor(n, cfg.seed + 1), "variants": results}


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in label).strip("_").lower()


@torch.no_grad()
def _encode(tokenizer: BinaryAutoencoder, images: Tensor, batch: int) -> Tensor:
    device = next(tokenizer.parameters()).device
    return torch.cat(
        [
            tokenizer.encode(chunk.to(device), stochastic=False).codes.cpu()
            for chunk in images.split(batch)
        ]
    )


def section_probe(ctx: _Context) -> dict:
    cfg = ctx.config
    train_x, train_y = real_images(cfg.train_data, cfg.probe_train, ctx.size, seed=cfg.seed)
    test_x, test_y = real_images(cfg.reference, cfg.probe_test, ctx.size)
    train_codes = _encode(ctx.tokenizer, train_x, cfg.batch_size)
    test_codes = _encode(ctx.tokenizer, test_x, cfg.batch_size)
    layers = list(range(ctx.model.config.depth))
    probe = ProbeConfig(epochs=cfg.probe_epochs, warmup_epochs=max(1, cfg.probe_epochs // 10))
    tr = layer_features(ctx.model, train_codes.split(cfg.batch_size), layers)
    te = layer_features(ctx.model, test_codes.split(cfg.batch_size), layers)
    results = {f"layer {i}": train_probe(tr[i], train_y, te[i], test_y, probe) for i in layers}
    results["tokenizer bits"] = train_probe(
        train_codes.flatten(1), train_y, test_codes.flatten(1), test_y, probe
    )
    results["raw pixels"] = train_probe(
        train_x.flatten(1), train_y, test_x.flatten(1), test_y, probe
    )
    return {"probe": dataclasses.asdict(probe), "results": results}


def _region_psnr(a: Tensor, b: Tensor, region: Tensor) -> Tensor:
    """(N,) PSNR over the pixels where `region` (N, S, S) is true."""
    err = (a - b).pow(2).mean(1)  # (N, S, S)
    mse = (err * region).flatten(1).sum(1) / region.flatten(1).sum(1).clamp_min(1)
    return 10 * torch.log10(1 / mse.clamp_min(1e-10))


@torch.no_grad()
def section_inpaint(ctx: _Context) -> dict:
    cfg, model, tok = ctx.config, ctx.model, ctx.tokenizer
    n, grid, size = cfg.inpaint_images, model.config.grid_size, ctx.size
    images, _ = real_images(cfg.reference, n, size)
    codes = _encode(tok, images, cfg.batch_size)
    recon = torch.cat([tok.decode(c).clamp(0, 1).cpu() for c in codes.split(cfg.batch_size)])
    g = torch.Generator().manual_seed(cfg.seed)
    random_tokens = torch.rand(n, grid * grid, generator=g) < 0.5
    masks = {
        "centre box": token_mask(box_mask(size, (0.25, 0.25, 0.75, 0.75)), grid).expand(n, -1),
        "right half": token_mask(box_mask(size, (0.5, 0.0, 1.0, 1.0)), grid).expand(n, -1),
        "random 50% tokens": random_tokens,
    }
    sampler = unconditional(EDIT_SAMPLER)
    device = model.transformer.mask_token.device
    null = model.transformer.null_condition(n, device)
    results, grids = {}, []
    for name, tokens in masks.items():
        region = torch.stack([pixel_mask_of_tokens(t, grid, size) for t in tokens])
        filled, seconds = [], 0.0
        for b, rows in enumerate(torch.arange(n).split(cfg.batch_size)):
            gen = distributed.generator(device, cfg.seed, "report-inpaint", name, b)
            t0 = time.perf_counter()
            out = sample_codes(
                model,
                null[rows],
                sampler,
                known_codes=codes[rows].to(device),
                known_mask=~tokens[rows].to(device),
                generator=gen,
            )
            seconds += time.perf_counter() - t0
            filled.append(tok.decode(out).clamp(0, 1).cpu())
        filled_t = torch.cat(filled)
        # A floor: every regenerated pixel set to the mean colour of the kept pixels.
        keep = (~region)[:, None].float()
        mean = (images * keep).sum((2, 3)) / keep.sum((2, 3)).clamp_min(1)
        mean_fill = torch.where(region[:, None], mean[:, :, None, None], images)
        results[name] = {
            "tokens_regenerated": float(tokens.float().sum(1).mean()),
            "psnr_inpaint": float(_region_psnr(filled_t, images, region).mean()),
            "psnr_reconstruction": float(_region_psnr(recon, images, region).mean()),
            "psnr_mean_fill": float(_region_psnr(mean_fill, images, region).mean()),
            "seconds_per_image": seconds / n,
        }
        grids.append(torch.cat([images[:8], filled_t[:8]]))
    save_grid(torch.cat(grids), ctx.out / "samples" / "inpaint.png", nrow=8)
    return {"n": n, "sampler": dataclasses.asdict(sampler), "masks": results}


def text_prompts() -> list[dict]:
    """One prompt per (class, tone): "a {tone} {item}" with each class's first name."""
    from ..captions import ITEMS, TONES

    return [
        {"text": f"a {tone} {names[0]}", "class": c, "tone": t}
        for c, names in enumerate(ITEMS)
        for t, tone in enumerate(TONES)
    ]


def section_text(ctx: _Context) -> dict:
    """Does a sample match its prompt? Class by a linear probe on real pixels, tone by the
    captioning rule itself; against the same measures on unprompted (null) samples."""
    from ..captions import tone_of
    from ..text import TextEncoder

    cfg, model, tok = ctx.config, ctx.model, ctx.tokenizer
    prompts = text_prompts()
    per_prompt = max(1, cfg.num_text // len(prompts))
    embeddings = TextEncoder()([p["text"] for p in prompts])
    device = model.transformer.mask_token.device
    conditions = embeddings.repeat_interleave(per_prompt, 0).to(device)
    target_class = torch.tensor([p["class"] for p in prompts]).repeat_interleave(per_prompt)
    target_tone = torch.tensor([p["tone"] for p in prompts]).repeat_interleave(per_prompt)
    images, seconds = [], 0.0
    null_images = []
    for b, rows in enumerate(torch.arange(len(conditions)).split(cfg.batch_size)):
        gen = distributed.generator(device, cfg.seed, "report-text", b)
        t0 = time.perf_counter()
        codes = sample_codes(model, conditions[rows], cfg.recipe, generator=gen)
        seconds += time.perf_counter() - t0
        null = model.transformer.null_condition(len(rows), device)
        gen = distributed.generator(device, cfg.seed, "report-text-null", b)
        null_codes = sample_codes(model, null, unconditional(cfg.recipe), generator=gen)
        with torch.no_grad():
            images.append(tok.decode(codes).clamp(0, 1).cpu())
            null_images.append(tok.decode(null_codes).clamp(0, 1).cpu())
    images_t, null_t = torch.cat(images), torch.cat(null_images)
    # class probe on real pixels (the same recipe as the representation probe)
    train_x, train_y = real_images(cfg.train_data, cfg.probe_train, ctx.size, seed=cfg.seed)
    test_x, test_y = real_images(cfg.reference, cfg.probe_test, ctx.size)
    probe = ProbeConfig(epochs=cfg.probe_epochs, warmup_epochs=max(1, cfg.probe_epochs // 10))
    head = train_probe(
        train_x.flatten(1), train_y, test_x.flatten(1), test_y, probe, return_head=True
    )
    predict = head.pop("head")

    def class_of(x: Tensor) -> Tensor:
        with torch.no_grad():
            return predict(x.flatten(1)).argmax(1)

    rows = []
    for i, p in enumerate(prompts):
        sl = slice(i * per_prompt, (i + 1) * per_prompt)
        rows.append(
            {
                "prompt": p["text"],
                "class_match": float((class_of(images_t[sl]) == p["class"]).float().mean()),
                "tone_match": float((tone_of(images_t[sl]) == p["tone"]).float().mean()),
            }
        )
    grid = torch.stack([images_t[i * per_prompt] for i in range(len(prompts))])
    save_grid(grid, ctx.out / "samples" / "text_prompts.png", nrow=3)
    stats = ctx.stats(images_t) if cfg.text_fid and ctx.extractor is not None else None
    return {
        "n": len(images_t),
        "per_prompt": per_prompt,
        "sampler": dataclasses.asdict(cfg.recipe),
        "seconds_per_image": seconds / len(images_t),
        "class_match": float((class_of(images_t) == target_class).float().mean()),
        "tone_match": float((tone_of(images_t) == target_tone).float().mean()),
        "null_class_match": float((class_of(null_t) == target_class).float().mean()),
        "null_tone_match": float((tone_of(null_t) == target_tone).float().mean()),
        "probe_real_top1": head["top1"],
        "fid": None if stats is None else _fid_entry(stats, ctx.reference())["fid"],
        "prompts": rows,
    }


SECTIONS = {
    "tokenizer": section_tokenizer,
    "fid": section_fid,
    "sweeps": section_sweeps,
    "orders": section_orders,
    "probe": section_probe,
    "inpaint": section_inpaint,
    "text": section_text,
    "variants": section_variants,
}
CLASS_SECTIONS = ("tokenizer", "fid", "sweeps", "orders", "probe", "inpaint")
TEXT_SECTIONS = ("text", "probe", "inpaint")


# -- the report --------------------------------------------------------------------------------


# the settings each section's numbers depend on: changing another one (say `num_sweep`) keeps
# that section's cached result valid. Every FID compares with the `num_fid` reference images.
_COMMON = ("batch_size", "reference", "seed")
_FID = ("num_fid", "recipe", "train_data")
SECTION_SETTINGS: dict[str, tuple[str, ...]] = {
    "tokenizer": ("num_fid",),
    "fid": _FID,
    "sweeps": (*_FID, "num_sweep", "steps_sweep", "head_sweep"),
    "orders": (*_FID, "orders_count", "orders"),
    "probe": ("train_data", "probe_train", "probe_test", "probe_epochs"),
    "inpaint": ("inpaint_images",),  # samples with the edit recipe, not `recipe`
    "text": (
        "recipe",
        "train_data",
        "probe_train",
        "probe_test",
        "probe_epochs",
        "num_text",
        "text_fid",
        "num_fid",
    ),
    "variants": (*_FID, "num_sweep", "variants"),
}


def section_key(name: str, config: ReportConfig, model_name: str) -> str:
    """The cache key of a section: the model and the settings that section depends on."""
    settings = {**dataclasses.asdict(config), "orders_count": config.orders_count}
    fields = (*_COMMON, *SECTION_SETTINGS[name])
    chosen = {f: settings[f] for f in fields}
    return json.dumps({"config": chosen, "model": model_name, "section": name}, sort_keys=True)


def precompute_real(tokenizer_size: int, out_dir: str | Path, config: ReportConfig, extractor=None):
    """The model-free part of a report (reference statistics, real-data floors), so that it
    can run while the model still trains."""
    if extractor is None:
        from .inception import InceptionFeatures

        extractor = InceptionFeatures()

    class _Size:
        class config:
            image_size = tokenizer_size

    ctx = _Context(None, _Size(), extractor, config, Path(out_dir), force=False)
    (Path(out_dir) / "results").mkdir(parents=True, exist_ok=True)
    return {
        "fid": ctx.floor(config.num_fid, config.seed),
        "sweep": ctx.floor(config.num_sweep, config.seed + 1),
    }


def run_report(
    model: BiGR,
    tokenizer: BinaryAutoencoder,
    out_dir: str | Path,
    config: ReportConfig,
    *,
    extractor=None,
    sections: tuple[str, ...] | None = None,
    force: bool = False,
    model_name: str = "",
    progress: bool = True,
) -> Path:
    """Compute (or load cached) sections, then write `OUT/report.md` with its plots."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if sections is None:
        sections = TEXT_SECTIONS if model.config.text_dim else CLASS_SECTIONS
        if config.variants and not model.config.text_dim:
            sections = (*sections, "variants")
    if "variants" in sections and not config.variants:
        raise ValueError("the variants section needs variant models (--variant LABEL=DIR)")
    if model.config.text_dim and {"fid", "sweeps", "orders", "variants"} & set(sections):
        raise ValueError(
            "fid, sweeps and orders sample by class; a text model has the text section"
        )
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown report sections {sorted(unknown)}; known: {', '.join(SECTIONS)}")
    needs_inception = {"tokenizer", "fid", "sweeps", "orders", "variants"} & set(sections) or (
        "text" in sections and config.text_fid
    )
    if extractor is None and needs_inception:
        from .inception import InceptionFeatures

        extractor = InceptionFeatures()
    ctx = _Context(model, tokenizer, extractor, config, out, force)
    results = {}
    for name in sections:
        if progress:
            print(f"report: {name} ...", flush=True)
        key = section_key(name, config, model_name)
        results[name] = _cached(out, name, force, lambda name=name: SECTIONS[name](ctx), key)
    machine = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "processor": platform.processor() or platform.machine(),
        "device": str(model.transformer.mask_token.device),
    }
    write_markdown(out, results, config, machine, model_name)
    return out / "report.md"


def _fmt(value: float, digits: int = 2) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _fid_row(label: str, entry: dict) -> str:
    return (
        f"| {label} | {entry['n']} | {_fmt(entry['fid'])} | {_fmt(entry.get('sfid', math.nan))} "
        f"| {_fmt(entry.get('precision', math.nan), 3)} | {_fmt(entry.get('recall', math.nan), 3)} "
        f"| {_fmt(entry.get('seconds_per_image', math.nan), 4)} |"
    )


def write_markdown(
    out: Path, results: dict, config: ReportConfig, machine: dict, model_name: str
) -> Path:
    from ..plots import plot_curves

    r = config.recipe
    lines = [
        f"# bigr results report{f': {model_name}' if model_name else ''}",
        "",
        "Regenerated by `bigr report`; every number below was measured by this package's code "
        f"on {machine['processor']} ({machine['device']}, {machine['threads']} threads, "
        f"torch {machine['torch']}). Seconds per image count code sampling only (decoding "
        "and Inception excluded), at batch "
        f"{config.batch_size}. FID uses the standard 2015 FID Inception; the reference is "
        f"`{config.reference}`.",
        "",
        f"Recommended recipe: {r.steps} unmasking steps ({r.schedule}), {r.head_steps} "
        f"diffusion steps, guidance {r.guidance}, Gumbel {r.gumbel}, order `{r.order}`, bits "
        f"`{r.bits}`.",
        "",
    ]
    header = [
        "| | n | FID | sFID | precision | recall | s/image |",
        "|---|---|---|---|---|---|---|",
    ]
    if "tokenizer" in results:
        t = results["tokenizer"]
        lines += [
            f"## Tokenizer reconstruction ({t['n']} held-out images, deterministic codes)",
            "",
            f"PSNR {_fmt(t['psnr'])} dB; rFID {_fmt(t['rfid'])} (reconstructions against the "
            "originals' statistics).",
            "",
            "![reconstructions](samples/recon.png)",
            "",
            "Top: originals; bottom: reconstructions.",
            "",
        ]
    if "fid" in results:
        f = results["fid"]
        lines += [
            "## FID of the recommended recipe against the real-data floor",
            "",
            *header,
            _fid_row("model samples", f["model"]),
            _fid_row(f"real floor (`{config.train_data}`, random subset)", f["floor"]),
            "",
            "![samples](samples/recipe.png)",
            "",
        ]
    if "sweeps" in results:
        s = results["sweeps"]
        n = s["floor"]["n"]
        lines += [
            f"## Speed/quality: FID ({n} samples) against unmasking and diffusion steps",
            "",
            f"Real-data floor at the same n: FID {_fmt(s['floor']['fid'])}.",
            "",
            *header,
        ]
        lines += [_fid_row(f"{e['sampler']['steps']} unmasking steps", e) for e in s["steps"]]
        lines += [
            _fid_row(f"{e['sampler']['head_steps']} diffusion steps", e) for e in s["head_steps"]
        ]
        lines += ["", "![speed/quality](speed_quality.png)", ""]
        plot_curves(
            out / "speed_quality.png",
            {
                "unmasking steps " + ",".join(str(e["sampler"]["steps"]) for e in s["steps"]): (
                    [e["seconds_per_image"] * 1000 for e in s["steps"]],
                    [e["fid"] for e in s["steps"]],
                ),
                "diffusion steps "
                + ",".join(str(e["sampler"]["head_steps"]) for e in s["head_steps"]): (
                    [e["seconds_per_image"] * 1000 for e in s["head_steps"]],
                    [e["fid"] for e in s["head_steps"]],
                ),
            },
            title=f"FID-{n} vs sampling time",
            xlabel="ms per image (code sampling)",
            ylabel="FID",
            markers=True,
        )
    if "orders" in results:
        o = results["orders"]
        lines += ["## Unmasking order and bit sampling", ""]
        if "floor" in o:
            lines += [f"Real-data floor at the same n: FID {_fmt(o['floor']['fid'])}.", ""]
        lines += header
        lines += [_fid_row(f"order `{k}`", e) for k, e in o["orders"].items()]
        lines += [_fid_row(f"bits `{k}`", e) for k, e in o["bits"].items()]
        lines += [""]
        if "variants" not in results:
            lines += [
                "Flip prediction vs predicting x0: the shipped generator was trained with flip "
                "prediction only (as released); no variant was given to this report "
                "(`--variant LABEL=DIR`), so no number is given.",
                "",
            ]
    if "variants" in results:
        v = results["variants"]
        n = v["floor"]["n"]
        lines += [
            f"## Training variants: FID ({n} samples) of generators trained otherwise",
            "",
            "Each variant was trained by `bigr train` with the same data, recipe and budget "
            "except for what its label names, and sampled here with the recommended recipe. "
            f"Real-data floor at the same n: FID {_fmt(v['floor']['fid'])}.",
            "",
            *header,
        ]
        for label, e in v["variants"].items():
            target = "flips" if e["predict_flip"] else "x0"
            steps = e.get("trained_steps")
            lines.append(_fid_row(f"{label} (predicts {target}, {steps or '?'} steps)", e))
        lines += [""]
    if "probe" in results:
        p = results["probe"]
        rows = p["results"]
        lines += [
            "## Linear probe (pooled features after each block, null class, nothing masked)",
            "",
            f"BatchNorm without affine + linear layer, SGD, {p['probe']['epochs']} epochs; "
            f"train {int(next(iter(rows.values()))['train_size'])} images, held-out "
            f"{int(next(iter(rows.values()))['test_size'])}.",
            "",
            "| features | top-1 (%) | top-5 (%) |",
            "|---|---|---|",
        ]
        lines += [f"| {k} | {_fmt(v['top1'])} | {_fmt(v['top5'])} |" for k, v in rows.items()]
        lines += ["", "![probe](probe.png)", ""]
        layer_rows = [
            (int(k.split()[1]), v["top1"]) for k, v in rows.items() if k.startswith("layer")
        ]
        xs = [i for i, _ in layer_rows]
        series = {"BiGR block output": (xs, [v for _, v in layer_rows])}
        for base in ("tokenizer bits", "raw pixels"):
            series[base] = ([xs[0], xs[-1]], [rows[base]["top1"]] * 2)
        plot_curves(
            out / "probe.png",
            series,
            title="linear probe top-1",
            xlabel="block index",
            ylabel="top-1 (%)",
            markers=True,
        )
    if "inpaint" in results:
        q = results["inpaint"]
        lines += [
            f"## Inpainting benchmark ({q['n']} held-out images)",
            "",
            "PSNR (dB) inside the regenerated tokens' pixels, against the original image. "
            "The tokenizer's reconstruction is the ceiling (the generator can at best recover "
            "the true codes); a mean-colour fill of the region is a floor. Sampler: the "
            f"release's app settings ({q['sampler']['steps']} {q['sampler']['schedule']} "
            "steps), null class.",
            "",
            "| mask | tokens regenerated | inpainted | reconstruction (ceiling) | mean fill | "
            "s/image |",
            "|---|---|---|---|---|---|",
        ]
        for name, e in q["masks"].items():
            lines.append(
                f"| {name} | {_fmt(e['tokens_regenerated'], 1)} | {_fmt(e['psnr_inpaint'])} | "
                f"{_fmt(e['psnr_reconstruction'])} | {_fmt(e['psnr_mean_fill'])} | "
                f"{_fmt(e['seconds_per_image'], 4)} |"
            )
        lines += [
            "",
            "![inpainting](samples/inpaint.png)",
            "",
            "Rows: originals, then fills (centre box, right half, random tokens).",
            "",
        ]
    if "text" in results:
        t = results["text"]
        lines += [
            f"## Text-to-image: do samples match their prompts? ({t['n']} samples)",
            "",
            f'Prompts "a {{tone}} {{item}}" for the 10 classes x 3 tones, {t["per_prompt"]} '
            "samples each. Class: a linear probe on real pixels (top-1 "
            f"{_fmt(t['probe_real_top1'])}% on real held-out images). Tone: the captioning rule "
            "(garment brightness). Unprompted samples (null condition) give the chance level.",
            "",
            "| | class match (%) | tone match (%) |",
            "|---|---|---|",
            f"| prompted samples | {_fmt(100 * t['class_match'])} | "
            f"{_fmt(100 * t['tone_match'])} |",
            f"| unprompted samples | {_fmt(100 * t['null_class_match'])} | "
            f"{_fmt(100 * t['null_tone_match'])} |",
            "",
            (
                f"FID of the prompted samples against the reference: {_fmt(t['fid'])} "
                f"(n = {t['n']}). "
                if t["fid"] is not None
                else "FID not computed for this report (`--text-fid` adds it). "
            )
            + f"Sampling: {_fmt(t['seconds_per_image'], 4)} s per image.",
            "",
            "![prompts](samples/text_prompts.png)",
            "",
            "One sample per prompt; rows: classes 0-9, columns: dark, grey, light.",
            "",
        ]
    seconds = {k: v.get("section_seconds", math.nan) for k, v in results.items()}
    lines += [
        "## Cost of this report",
        "",
        ", ".join(f"{k}: {_fmt(v / 60, 1)} min" for k, v in seconds.items()),
        "",
    ]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    (out / "results" / "all.json").write_text(
        json.dumps({"results": results, "machine": machine}, indent=2, default=float) + "\n"
    )
    return path


def summary(path: str | Path) -> dict:
    """The headline numbers of a written report (for the README and the model card)."""
    data = json.loads((Path(path) / "results" / "all.json").read_text())["results"]
    out = {}
    if "tokenizer" in data:
        out["psnr"] = data["tokenizer"]["psnr"]
        out["rfid"] = data["tokenizer"]["rfid"]
    if "text" in data:
        out["text_class_match"] = data["text"]["class_match"]
        out["text_tone_match"] = data["text"]["tone_match"]
    if "fid" in data:
        out["fid"] = data["fid"]["model"]["fid"]
        out["fid_floor"] = data["fid"]["floor"]["fid"]
        out["n"] = data["fid"]["model"]["n"]
    if "probe" in data:
        best = max(
            (v["top1"], k) for k, v in data["probe"]["results"].items() if k.startswith("layer")
        )
        out["probe_best"] = {"layer": best[1], "top1": best[0]}
    return out
