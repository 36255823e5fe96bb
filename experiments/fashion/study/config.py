"""The settings of a report, and the ones every section's cache key shares."""

from __future__ import annotations

from dataclasses import dataclass

from bigr.sampler_plan import ORDERS, SamplerConfig


@dataclass(frozen=True, kw_only=True)
class ReportConfig:
    recipe: SamplerConfig
    num_fid: int = 10_000
    num_sweep: int = 2_000
    num_orders: int | None = None  # samples per order / bit-draw point (None: `num_sweep`)
    steps_sweep: tuple[int, ...] = (4, 8, 12, 20)
    head_sweep: tuple[int, ...] = (5, 10, 25, 50)
    orders: tuple[str, ...] = ORDERS
    seeds: int = 3  # sample draws per point of the order / bit-draw comparisons
    gumbel_sweep: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.45)  # each certainty order's own
    selection_data: str = "fashion-mnist:val"  # held-out training images to choose settings on
    probe_train: int = 60_000  # training images the probe features come from (all of them)
    probe_val: int = 5_000  # the last of those held out to choose the block
    probe_test: int = 10_000
    probe_epochs: int = 30
    inpaint_images: int = 1_000
    edit_images: int = 50  # held-out images per class-edit pair (the edits section)
    edit_recipe: SamplerConfig | None = None  # None: the built-in "edit" recipe
    num_text: int = 1_500  # text models: samples over the 30 (class, tone) prompts
    text_fid: bool = False  # also the FID of the prompted samples (an Inception pass)
    # (label, model directory): generators trained otherwise (e.g. predicting x0 instead of
    # flips) at one budget, compared by FID-`num_sweep` with the recipe in the `variants` section
    variants: tuple[tuple[str, str], ...] = ()
    # the label of one variant the others are compared with instead of the report's model: a
    # checkpoint of the report's own training at the variants' budget (e.g. all stopped at step
    # 3,500 with `bigr train --stop-at`); "" = the report's model
    variant_base: str = ""
    model_steps: int = 0  # training steps the report's model records (0: unknown)
    # the speed section: (name, recipe) pairs timed in one run and compared by FID-`num_speed`
    # (None: `num_fid`) with the release's recipe; () = the recommended recipe (and the release's)
    speed_recipes: tuple[tuple[str, SamplerConfig], ...] = ()
    num_speed: int | None = None
    speed_batch: int = 100  # images per timed sampling call
    speed_repeats: int = 3  # timed calls per recipe, interleaved (the best is reported)
    speed_bootstrap: int = 20  # resamples for the FID-difference intervals
    compile: bool = False  # the backbone runs under torch.compile (`--compile`), every path alike
    batch_size: int = 250
    reference: str = "fashion-mnist:test"
    train_data: str = "fashion-mnist:train"
    seed: int = 0

    def __post_init__(self) -> None:
        labels = [label for label, _ in self.variants]
        if self.variant_base and self.variant_base not in labels:
            raise ValueError(
                f"variant_base {self.variant_base!r} is not one of the variants {labels}"
            )

    @property
    def orders_count(self) -> int:
        """Samples per order / bit-draw point."""
        return self.num_orders or self.num_sweep


# The settings each section's numbers depend on (its `SETTINGS`, besides these common ones):
# changing another one (say `num_sweep`) keeps that section's cached result valid. Every FID
# compares with the `num_fid` reference images.
COMMON_SETTINGS = ("batch_size", "reference", "seed")
FID_SETTINGS = ("num_fid", "recipe", "train_data")
