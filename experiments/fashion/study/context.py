"""What the sections share: the models, the reference statistics, real-data floors and memoised
sample FIDs (the image sets themselves are `bigr.evaluation.image_sets`)."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import torch
from torch import Tensor

from bigr.data import open_dataset
from bigr.data.images import save_grid
from bigr.evaluation.image_sets import fid_entry, generate, real_images
from bigr.evaluation.metrics import bootstrap_fids
from bigr.evaluation.reference import (
    ImageStatistics,
    load_statistics,
    save_statistics,
    statistics_from_images,
)
from bigr.model import BiGR
from bigr.sampler import SamplerConfig
from bigr.sampler_plan import sampler_record
from bigr.tokenizer import BinaryAutoencoder

from .config import ReportConfig


def pixel_classifier(ctx: Context):
    """A linear probe on real pixels (trained once per report): (classify, top-1 % on the
    held-out images). `classify(images)` returns class ids."""
    if getattr(ctx, "_pixel_classifier", None) is None:
        from bigr.evaluation.probe import ProbeConfig, train_probe

        cfg = ctx.config
        train_x, train_y = real_images(cfg.train_data, cfg.probe_train, ctx.size, seed=cfg.seed)
        test_x, test_y = real_images(cfg.reference, cfg.probe_test, ctx.size)
        probe = ProbeConfig(epochs=cfg.probe_epochs, warmup_epochs=max(1, cfg.probe_epochs // 10))
        head = train_probe(
            train_x.flatten(1), train_y, test_x.flatten(1), test_y, probe, return_head=True
        )
        predict = head.pop("head")

        def classify(images: Tensor) -> Tensor:
            with torch.no_grad():
                return predict(images.flatten(1)).argmax(1)

        ctx._pixel_classifier = (classify, head["top1"])
    return ctx._pixel_classifier


def digest(key: str) -> str:
    """A short file name for a cache key (SHA-256, 16 hex digits)."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def slug(text: str) -> str:
    """A file-name-safe form of a label or a data spec."""
    return "".join(c if c.isalnum() else "_" for c in text).strip("_").lower() or "x"


class Context:
    """The models and settings of one report. `image_size` defaults to the tokenizer's; the
    model-free part (`precompute_real`) passes it with no model or tokenizer."""

    def __init__(
        self,
        model: BiGR | None,
        tokenizer: BinaryAutoencoder | None,
        extractor,
        config: ReportConfig,
        out: Path,
        force: bool,
        *,
        image_size: int | None = None,
        progress: bool = False,
    ):
        self.model, self.tokenizer, self.extractor = model, tokenizer, extractor
        self.progress = progress
        self.config, self.out, self.force = config, out, force
        self.size = tokenizer.config.image_size if image_size is None else image_size
        self._reference: ImageStatistics | None = None
        self._other_references: dict[str, ImageStatistics] = {}
        # the same sampler at the same n is measured once: (FID entry, sample statistics)
        self._memo: dict[str, tuple[dict, ImageStatistics]] = {}
        self.weights = ""  # fingerprint of the model and tokenizer (set by the runner)
        self.sets_reused = 0  # sample sets read back from `OUT/results/sets/`, not measured

    def note(self, message: str) -> None:
        """One progress line on stderr for steps that draw no progress bar (if `progress`)."""
        if self.progress:
            print(message, file=sys.stderr, flush=True)

    def stats(self, images: Tensor, keep_features: bool = False) -> ImageStatistics:
        return statistics_from_images(images, self.extractor, keep_features=keep_features)

    def reference(self, spec: str | None = None) -> ImageStatistics:
        """Statistics of `num_fid` held-out images (features kept for precision/recall); with
        `spec`, of another image set (e.g. a validation split for choosing settings: at most
        `num_fid` of its images)."""
        if spec is None or spec == self.config.reference:
            if self._reference is None:
                self._reference = self._statistics(self.config.reference, "reference")
            return self._reference
        if spec not in self._other_references:
            self._other_references[spec] = self._statistics(spec, f"reference_{slug(spec)}")
        return self._other_references[spec]

    def _statistics(self, spec: str, stem: str) -> ImageStatistics:
        count = min(self.config.num_fid, len(open_dataset(spec, self.size)))
        cache = self.out / "results" / f"{stem}_{count}.npz"
        if cache.is_file() and not self.force:
            return load_statistics(cache)
        images, _ = real_images(spec, count, self.size)
        stats = self.stats(images, keep_features=True)
        save_statistics(stats, cache)
        return stats

    def floor(self, count: int, seed: int) -> dict:
        """FID of `count` real training images against the reference (cached: no model)."""
        path = self.out / "results" / f"floor_{count}_{seed}.json"
        if path.is_file() and not self.force:
            return json.loads(path.read_text())
        train, _ = real_images(self.config.train_data, count, self.size, seed=seed)
        entry = fid_entry(self.stats(train, keep_features=True), self.reference())
        path.write_text(json.dumps(entry, indent=2) + "\n")
        return entry

    def sample_fid(
        self,
        sampler: SamplerConfig,
        count: int,
        name: str,
        model: BiGR | None = None,
        *,
        bootstrap: int = 0,
        bootstrap_seed: int = 0,
        **options,
    ) -> dict:
        """FID of `count` samples against the test reference (or `reference=`, a selection
        split), drawn with `seed=` (default the report's): `sample_statistics`' entry. With
        `bootstrap` > 0 the entry also holds that many FIDs of bootstrap resamples of the
        samples' features (`metrics.bootstrap_fids`, seeded `bootstrap_seed`) under
        "bootstrap": the spread an interval of a difference between two sets needs.

        The entry is also kept in `OUT/results/sets/`, keyed by everything it depends on (the
        weights of model and tokenizer, the sampler, count, seed, batch size, the reference and
        its size, the feature extractor, the bootstrap), so a section cut off part-way (an
        ended session, a lost machine) resumes from the sample sets it had measured: they are
        small JSON files meant to be committed with the report."""
        if bootstrap < 0:
            raise ValueError(f"bootstrap must be >= 0, got {bootstrap}")
        if bootstrap:
            options["keep_features"] = True
        spread_of = (bootstrap, bootstrap_seed) if bootstrap else None
        key = self._set_key(sampler, count, model, bootstrap=spread_of, **options)
        path = self.out / "results" / "sets" / f"{digest(key)}.json"
        if path.is_file() and not self.force:
            kept = json.loads(path.read_text())
            if kept.get("key") == key:
                self.sets_reused += 1
                return kept["entry"]
        entry, stats = self.sample_statistics(sampler, count, name, model, **options)
        if bootstrap:
            reference = self.reference(options.get("reference")).pool
            spread = bootstrap_fids(stats.features, reference, bootstrap, seed=bootstrap_seed)
            entry = {**entry, "bootstrap": [float(v) for v in spread]}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps({"key": key, "name": name, "entry": entry}, indent=2) + "\n")
        os.replace(tmp, path)
        return entry

    def _set_key(
        self,
        sampler: SamplerConfig,
        count: int,
        model: BiGR | None,
        *,
        seed: int | None = None,
        reference: str | None = None,
        keep_features: bool = False,
        bootstrap: tuple[int, int] | None = None,
    ) -> str:
        """What one sample set's FID entry depends on, as a JSON string (`bootstrap`: resamples
        and seed, named only when asked for, so earlier sets keep their keys)."""
        cfg = self.config
        spread = {} if bootstrap is None else {"bootstrap": list(bootstrap)}
        return json.dumps(
            {
                **spread,
                "weights": self._weights_of(model or self.model),
                "sampler": sampler_record(sampler),
                "count": count,
                "seed": cfg.seed if seed is None else seed,
                "batch_size": cfg.batch_size,
                "reference": reference or cfg.reference,
                "reference_count": cfg.num_fid,
                "features": keep_features or count == cfg.num_fid,
                "extractor": type(self.extractor).__name__,
            },
            sort_keys=True,
        )

    def _weights_of(self, model: BiGR) -> str:
        """Fingerprint of `model` with the report's tokenizer (the runner's, for its model)."""
        if model is self.model and self.weights:
            return self.weights
        from .cache import weights_fingerprint

        return weights_fingerprint(model, self.tokenizer)

    def sample_statistics(
        self,
        sampler: SamplerConfig,
        count: int,
        name: str,
        model: BiGR | None = None,
        *,
        seed: int | None = None,
        reference: str | None = None,
        keep_features: bool = False,
    ) -> tuple[dict, ImageStatistics]:
        """The FID entry of `count` samples (drawn with `seed`, default the report's) against the
        test reference or `reference` (a selection split), and their statistics; the Inception
        features are kept (with precision and recall in the entry) at `num_fid` samples or when
        asked. Memoised per (sampler, count, seed, reference, features, and the model when it
        is not the report's)."""
        seed = self.config.seed if seed is None else seed
        keep = keep_features or count == self.config.num_fid
        key = json.dumps(
            [sampler_record(sampler), count, seed, reference or "", name if model else "", keep]
        )
        if key not in self._memo:
            self._memo[key] = self._sample_fid(
                sampler, count, name, model or self.model, seed, reference, keep
            )
        return self._memo[key]

    def codes_dir(self, model: BiGR, sampler: SamplerConfig, seed: int) -> Path:
        """Where the codes of one sample set are kept while it is drawn (see `generate`):
        keyed by the model's weights, the sampler, the seed and the batch size, not the count.
        Batch b of a set is seeded by (seed, b) and labelled from its position alone, so the
        first batches of a larger set are those of a smaller one: a set of 10,000 extends a
        set of 2,000 drawn before it (a batch of another size is drawn anew)."""
        key = json.dumps(
            [self._weights_of(model), sampler_record(sampler), seed, self.config.batch_size]
        )
        return self.out / "codes" / digest(key)

    def _sample_fid(
        self,
        sampler: SamplerConfig,
        count: int,
        name: str,
        model: BiGR,
        seed: int,
        reference: str | None,
        keep_features: bool,
    ) -> tuple[dict, ImageStatistics]:
        images, seconds = generate(
            model,
            self.tokenizer,
            sampler,
            count,
            batch_size=self.config.batch_size,
            seed=seed,
            codes_dir=self.codes_dir(model, sampler, seed),
        )
        save_grid(images[:100], self.out / "samples" / f"{name}.png", nrow=10)
        stats = self.stats(images, keep_features=keep_features)
        entry = fid_entry(
            stats,
            self.reference(reference),
            seconds_per_image=seconds / count,
            sampler=sampler_record(sampler),
            seed=seed,
        )
        return entry, stats
