"""Training BiGR by masked modelling on pre-tokenized code shards (bigr-spec.md §3).

The release's objective — cosine mask ratio, label dropout for guidance, Bernoulli diffusion
with flip prediction and the class-balanced BCE — with the head run only on masked tokens (the
same gradient as the release, less work); AdamW with the release's weight-decay groups (no
decay for 1-D tensors, biases and the head), warmup and a constant or cosine schedule,
gradient clipping, EMA, bf16 autocast on GPUs, optional `torch.compile`.

One path from one device to many: every random draw of a step (data order, code variants,
masks, dropped labels, diffusion times and noise) is a function of (seed, step, row), and each
rank draws only its own rows (`step_draws`); losses are normalised by the global count of
masked bits. So a run gives the same result for any split of the same global
batch over ranks and accumulation steps (up to float rounding), and a resumed run repeats the
uninterrupted one exactly: the resume file holds the model, EMA, optimizer and step.

Outputs in the run folder (written by `generator_run.py`): `model/` (EMA weights, loadable
with `BiGR.from_pretrained`), `state.pt` (resume), `log.jsonl`, `loss.png`, `samples/step_*.png`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import distributed, schedules
from ..checkpoint import EMA, load_state
from ..config import BiGRConfig, config_to_json, require_choice, require_ranges
from ..data.shards import CodeShards
from ..memory import check_training_fits
from ..model import BiGR, count_parameters
from .generator_run import (
    BackgroundWriter,
    cpu_copy,
    export_ema,
    full_states,
    named_optimizer_state,
    parameter_names,
    positional_optimizer_state,
    read_log,
    run_writes,
    save_preview,
)
from .guards import (
    DivergenceWatch,
    check_finite,
    check_moved,
    check_resume_config,
    weights_sum,
)
from .step_draws import DRAW_SCHEMES, draw_step
from .stop import StopRequest


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    steps: int = 1000
    batch_size: int = 256  # global: per rank x ranks x accumulation
    grad_accum: int = 1
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.02
    warmup_steps: int = 0
    lr_schedule: str = "constant"
    min_lr: float = 0.0
    grad_clip: float = 1.0  # 0: no clipping
    ema_decay: float = 0.9999
    precision: str = "auto"  # auto = bf16 autocast on CUDA, fp32 elsewhere; or fp32, bf16
    compile: bool = False
    fsdp: bool = False
    fsdp_mode: str = "full"  # full: reshard after forward (ZeRO-3); grad-op: keep (ZeRO-2);
    # hybrid: shard within a node (LOCAL_WORLD_SIZE ranks), replicate across nodes (HSDP)
    fsdp_precision: str = "fp32"  # bf16: parameters all-gathered and computed in bf16
    activation_checkpointing: bool = False  # recompute each block in the backward pass
    tensorboard: str = ""  # a folder for TensorBoard event files ("" = none)
    per_sample_mask: bool = False  # the release draws one mask ratio per batch
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 500
    sample_every: int = 0  # 0: only at the end
    sample_classes: tuple[int, ...] = ()
    preview_steps: int = 10  # the release's training preview: 10 unmasking steps, guidance 4
    preview_guidance: float = 4.0
    rewarm_from: int = 0  # a warm start at this step re-warms the LR over warmup_steps
    stop_at: int = 0  # >0: checkpoint and stop after this step; the schedule still spans `steps`
    draw_scheme: int = DRAW_SCHEMES[-1]  # how a step's draws are made (`step_draws`)

    def __post_init__(self) -> None:
        require_ranges(
            self,
            {
                **dict.fromkeys(("steps", "batch_size", "grad_accum", "lr"), "pos"),
                **dict.fromkeys(("log_every", "checkpoint_every", "preview_steps"), "pos"),
                **dict.fromkeys(("weight_decay", "warmup_steps", "min_lr", "grad_clip"), "nonneg"),
                **dict.fromkeys(("sample_every", "preview_guidance", "seed"), "nonneg"),
                **dict.fromkeys(("sample_classes", "rewarm_from", "stop_at"), "nonneg"),
                "betas": "prob",
                "ema_decay": "prob",  # 1 would keep the EMA at its initialisation
            },
        )
        require_choice(self, "lr_schedule", schedules.LR_SCHEDULES)
        require_choice(self, "precision", ("auto", "fp32", "bf16"))
        require_choice(self, "fsdp_mode", FSDP_MODES)
        require_choice(self, "fsdp_precision", ("fp32", "bf16"))
        require_choice(self, "draw_scheme", DRAW_SCHEMES)
        if not self.fsdp and (self.fsdp_mode != "full" or self.fsdp_precision != "fp32"):
            raise ValueError(
                "fsdp_mode and fsdp_precision (--fsdp-mode, --fsdp-precision) apply to sharded "
                "runs: add --fsdp"
            )
        if self.stop_at > self.steps:
            raise ValueError(f"stop_at ({self.stop_at}) must be at most steps ({self.steps})")

    @property
    def end(self) -> int:
        """The step this invocation trains up to: `stop_at` if set, else `steps`."""
        return self.stop_at or self.steps


def warm_lr(step: int, train: TrainConfig) -> float:
    """The schedule's LR, re-warmed linearly over `warmup_steps` after a warm start (fresh
    optimizer moments) at step `rewarm_from`."""
    lr = schedules.run_learning_rate(step, train)
    if train.rewarm_from > 0 and train.warmup_steps > 0 and step >= train.rewarm_from:
        lr *= min(1.0, (step - train.rewarm_from + 1) / train.warmup_steps)
    return lr


def trained_steps(path: str | Path) -> int:
    """The step count a `bigr train` export records (0 when it records none)."""
    from ..checkpoint import model_extra, resolve

    resolve(path)  # a missing model is an error here, not 0 steps
    steps = model_extra(path).get("trained_steps", 0)
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"{path}: trained_steps must be a non-negative integer, got {steps!r}")
    return steps


def param_groups(model: BiGR, weight_decay: float) -> list[dict]:
    """The release's weight-decay groups: no decay for 1-D tensors, biases and the head."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.ndim < 2 or name.endswith(".bias") or name.startswith("head."):
            no_decay.append(param)
        else:
            decay.append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def _micro_batches(ctx: distributed.Context, train: TrainConfig) -> Iterator[slice]:
    per_rank = train.batch_size // ctx.world_size
    micro = per_rank // train.grad_accum
    start = ctx.rank * per_rank
    for i in range(train.grad_accum):
        yield slice(start + i * micro, start + (i + 1) * micro)


def _check_batch(ctx: distributed.Context, train: TrainConfig) -> None:
    if train.batch_size % (ctx.world_size * train.grad_accum):
        raise ValueError(
            f"global batch {train.batch_size} is not divisible by {ctx.world_size} ranks x "
            f"{train.grad_accum} accumulation steps"
        )


def _autocast(ctx: distributed.Context, train: TrainConfig) -> contextlib.AbstractContextManager:
    use_bf16 = train.precision == "bf16" or (
        train.precision == "auto" and ctx.device.type == "cuda"
    )
    if not use_bf16:
        return contextlib.nullcontext()
    return torch.autocast(ctx.device.type, dtype=torch.bfloat16)


def _wrap(model: BiGR, ctx: distributed.Context, train: TrainConfig) -> nn.Module:
    wrapped: nn.Module = model
    model.transformer.checkpoint_blocks = train.activation_checkpointing
    if train.fsdp:
        from torch.distributed.fsdp import fully_shard

        options = _fsdp_options(ctx, train)
        for layer in model.transformer.layers:
            fully_shard(layer, **options)
        wrapped = fully_shard(model, **options)
    elif ctx.distributed:
        from torch.nn.parallel import DistributedDataParallel

        ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        wrapped = DistributedDataParallel(model, device_ids=ids)
    if train.compile:
        wrapped = torch.compile(wrapped)
    return wrapped


FSDP_MODES = ("full", "grad-op", "hybrid")


def _fsdp_options(ctx: distributed.Context, train: TrainConfig) -> dict:
    """`fully_shard` keywords for the sharding mode and the mixed-precision policy."""
    options: dict = {"reshard_after_forward": train.fsdp_mode != "grad-op"}
    if train.fsdp_precision == "bf16":
        from torch.distributed.fsdp import MixedPrecisionPolicy

        # bf16 all-gathers and compute, gradients reduced in fp32 (the fp32 master weights
        # and AdamW moments stay sharded in fp32)
        options["mp_policy"] = MixedPrecisionPolicy(
            param_dtype=torch.bfloat16, reduce_dtype=torch.float32
        )
    if train.fsdp_mode == "hybrid":
        import os

        from torch.distributed.device_mesh import init_device_mesh

        local = int(os.environ.get("LOCAL_WORLD_SIZE", ctx.world_size))
        if ctx.world_size % local:
            raise ValueError(
                f"hybrid sharding: {ctx.world_size} ranks are not whole nodes of {local}"
            )
        shape = (ctx.world_size // local, local)
        options["mesh"] = init_device_mesh(
            ctx.device.type, shape, mesh_dim_names=("replicate", "shard")
        )
    return options


def train_step(
    step: int,
    wrapped: nn.Module,
    model: BiGR,
    opt: torch.optim.Optimizer,
    ema: EMA,
    data: CodeShards,
    ctx: distributed.Context,
    train: TrainConfig,
    watch: DivergenceWatch | None = None,
) -> dict[str, float | torch.Tensor]:
    """One optimizer step on the global batch of `step`; returns the global loss and stats.

    With a `watch` (and an optimizer that can skip a step on the device: `_skips_on_device`)
    nothing is read back to the host: a step that is not finite is skipped by the optimizer and
    the EMA and recorded in the watch, and the loss, accuracy and gradient norm are returned as
    device tensors (`_on_host` reads them). Without one, a step that is not finite stops the run
    at once (one host read per step)."""
    config = model.config
    micro = list(_micro_batches(ctx, train))
    draws = draw_step(step, config, train, data, slice(micro[0].start, micro[-1].stop))
    normalizer = draws.masked * config.code_bits / ctx.world_size
    lr = warm_lr(step, train)
    for group in opt.param_groups:
        group["lr"] = lr
    totals = torch.zeros(2, device=ctx.device)  # loss, accuracy x masked bits
    for i, rows in enumerate(draws.local(r) for r in micro):
        codes, labels = data.read(draws.indices[rows], draws.variants[rows])
        # shard labels are class ids, or caption ids whose embeddings condition a text model
        condition = data.caption_embeddings()[labels] if config.text_dim else labels
        condition = model.transformer.where_null(draws.drop[rows], condition)
        torch.manual_seed(distributed.derived_seed(train.seed, "dropout", step, ctx.rank, i))
        sync = i == len(micro) - 1 or not hasattr(wrapped, "no_sync")
        with contextlib.nullcontext() if sync else wrapped.no_sync(), _autocast(ctx, train):
            out = wrapped(
                codes.to(ctx.device),
                condition.to(ctx.device),
                mask=draws.mask[rows].to(ctx.device),
                t=draws.t[rows].to(ctx.device),
                noise=draws.noise[rows].to(ctx.device),
                drop_labels=False,
                normalizer=normalizer,
            )
            out["loss"].backward()
        masked_bits = float(draws.mask[rows].sum()) * config.code_bits
        totals += torch.stack(
            [out["loss"].detach().float(), out["acc"].detach().float() * masked_bits]
        )
    max_norm = train.grad_clip if train.grad_clip > 0 else math.inf  # 0: no clipping
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    if hasattr(grad_norm, "full_tensor"):  # FSDP: a replicated DTensor
        grad_norm = grad_norm.full_tensor()
    # the global loss and gradient norm are the same on every rank: all skip or stop together
    distributed.all_reduce_sum(ctx, totals)
    if watch is not None:
        finite = watch.observe(step + 1, totals[0], grad_norm)
        opt.found_inf = watch.skip  # fused AdamW leaves everything as it was when it is 1
        opt.step()
        ema.update(model, finite)
    else:
        check_finite(
            step + 1,
            lr,
            DIVERGENCE_HINT,
            loss=float(totals[0]),
            gradient_norm=float(grad_norm),
        )
        opt.step()
        ema.update(model)
    opt.zero_grad(set_to_none=True)
    masked_bits_global = draws.masked * config.code_bits
    return {
        "step": step + 1,
        "loss": totals[0] / ctx.world_size,
        "acc": totals[1] / masked_bits_global,
        "lr": lr,
        "grad_norm": grad_norm.detach(),
    }


DIVERGENCE_HINT = ", and keep --grad-clip on"
STOP_CHECK_EVERY = 10  # distributed runs agree on a stop signal every this many steps


def _on_host(stats: dict) -> dict[str, float]:
    """The step's stats as Python numbers (one host read for all of them)."""
    keys = [k for k, v in stats.items() if isinstance(v, torch.Tensor)]
    values = torch.stack([stats[k].float().reshape(()) for k in keys]).tolist() if keys else []
    return {**stats, **dict(zip(keys, values, strict=True))}


def _skips_on_device(opt: torch.optim.Optimizer) -> bool:
    """Whether the optimizer skips a step from a device flag (fused AdamW's `found_inf`)."""
    return all(group.get("fused") for group in opt.param_groups)


def _optimizer(model: nn.Module, train: TrainConfig) -> torch.optim.Optimizer:
    """AdamW with the release's weight-decay groups; the fused kernel where torch has one for
    these parameters (CPU and CUDA floats: the same updates, and a step skipped on the device),
    else the default one."""
    try:
        groups = param_groups(model, train.weight_decay)
        return torch.optim.AdamW(groups, lr=train.lr, betas=train.betas, fused=True)
    except (RuntimeError, ValueError, TypeError):  # fresh groups: the refused ones say fused
        groups = param_groups(model, train.weight_decay)
        return torch.optim.AdamW(groups, lr=train.lr, betas=train.betas)


def train_generator(
    config: BiGRConfig,
    data: CodeShards,
    out_dir: str | Path,
    train: TrainConfig,
    *,
    resume: bool = False,
    init: str | Path | None = None,
    tokenizer: nn.Module | None = None,
    device: str | None = None,
    progress: bool = True,
) -> dict[str, float]:
    """Train from scratch (or resume) and write the run folder; returns the last step's stats.

    `init`: a warm start from an exported model (weights into the model and the EMA, fresh
    optimizer moments) at the step it records, the LR re-warmed over `warmup_steps`; a run
    folder with a `state.pt` still resumes from that state."""
    warm, train = _warm_start(config, train, init)
    ctx = distributed.setup(device, group=train.fsdp)
    _check_batch(ctx, train)
    _check_codes(data, config)
    _check_preview_classes(config, data, train)
    out = Path(out_dir)
    torch.manual_seed(train.seed)
    micro = train.batch_size // (ctx.world_size * train.grad_accum)
    shards = ctx.world_size if train.fsdp else 1
    check_training_fits(config, micro, _parameters(config), ctx.device, shards)
    model = BiGR(config).to(ctx.device).train()
    ema, start, opt_state, train = _restore(model, out, resume, warm, ctx, train)
    initial = weights_sum(model)
    log = read_log(out / "log.jsonl", start)
    wrapped = _wrap(model, ctx, train)  # FSDP replaces the parameters: optimizer after this
    if train.fsdp:
        ema.shard_like(model)
    opt = _optimizer(model, train)
    if opt_state is not None:
        _load_optimizer(model, opt, opt_state, train)
        opt_state = None  # the optimizer holds its own copy now
    watch = DivergenceWatch(ctx.device) if _skips_on_device(opt) else None
    want_tokenizer = tokenizer is not None and bool(train.sample_classes)
    preview_condition = torch.tensor(train.sample_classes, dtype=torch.long)
    if config.text_dim and want_tokenizer:  # sample classes name caption ids
        preview_condition = data.caption_embeddings()[preview_condition]
    elif config.unconditional:  # only the null class was trained
        preview_condition = model.transformer.null_condition(len(preview_condition), "cpu")
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    bar = None
    if progress and ctx.is_main:
        from tqdm import tqdm

        bar = tqdm(total=train.steps, initial=start, desc="train", unit="step")
    stats: dict[str, float] = {}
    t0 = time.perf_counter()
    board = _tensorboard(train.tensorboard) if ctx.is_main and train.tensorboard else None
    writer, classes = BackgroundWriter(), data.meta.classes
    try:  # the bar ends its line before any error is printed
        with StopRequest() as stop:
            for step in range(start, train.end):
                stats = train_step(step, wrapped, model, opt, ema, data, ctx, train, watch)
                done = step + 1
                logged = done % train.log_every == 0 or done == train.steps
                # distributed ranks agree on a stop signal now and then, not every step
                agree = done % STOP_CHECK_EVERY == 0 or logged or done == train.end
                stopping = stop.requested(ctx) if agree or not ctx.distributed else 0
                preview = want_tokenizer and (
                    (train.sample_every and done % train.sample_every == 0) or done == train.steps
                )
                checkpoint = done % train.checkpoint_every == 0 or done == train.end or stopping
                if logged or checkpoint or preview:  # the only host reads of the loop
                    if watch is not None:
                        watch.check(lambda s: warm_lr(s, train), DIVERGENCE_HINT)
                    stats = _on_host(stats)
                if ctx.is_main:
                    _log_step(out, stats, log, done, logged, t0, bar, board)
                if checkpoint:  # never write a run whose weights did not move (on any rank)
                    check_moved(_moved(model, initial, ctx), done - start, stats["lr"])
                if preview or checkpoint:
                    states = full_states(model, ema, opt, train)  # every rank: FSDP gathers
                    if ctx.is_main and checkpoint:  # written while training goes on
                        snapshot = cpu_copy(states)
                        writer.submit(run_writes(out, config, snapshot, done, train, log, classes))
                        del snapshot
                    if ctx.is_main and preview:
                        export = export_ema(config, states, ctx.device)
                        save_preview(out, done, export, tokenizer, train, preview_condition)
                        del export
                    del states  # gathered copies: not kept between checkpoints
                distributed.barrier(ctx)
                if stopping:
                    stats["stopped_by_signal"] = stopping
                    break
        writer.wait()  # the last checkpoint is on disk before the run returns
    finally:
        if bar is not None:
            bar.close()
        if board is not None:
            board.close()
        _finish_writes(writer)
    distributed.teardown(ctx)
    return stats


def _finish_writes(writer: BackgroundWriter) -> None:
    """On the way out of a failed run: the checkpoint in flight is completed (an earlier good
    state is never left half-written); its own error, if any, is printed, not raised over the
    run's."""
    try:
        writer.wait()
    except Exception as err:  # the run's own error is the one to raise
        print(f"train: the last checkpoint could not be written: {err}", file=sys.stderr)


def _moved(model: BiGR, initial: float, ctx: distributed.Context) -> bool:
    """Whether any rank's weights differ from their checksum at the start of the run."""
    moved = torch.tensor(float(weights_sum(model) != initial), device=ctx.device)
    return bool(distributed.all_reduce_max(ctx, moved))


def _parameters(config: BiGRConfig) -> int:
    with torch.device("meta"):
        return count_parameters(BiGR(config))


def _warm_start(
    config: BiGRConfig, train: TrainConfig, init: str | Path | None
) -> tuple[BiGR | None, TrainConfig]:
    """The exported model of `--init` and `train` re-warmed from the step it records."""
    if init is None:
        return None, train
    warm = BiGR.from_pretrained(init)
    if config_to_json(warm.config) != config_to_json(config):
        raise ValueError(f"--init {init}: its config differs from the one being trained")
    train = dataclasses.replace(train, rewarm_from=trained_steps(init))
    if train.rewarm_from >= train.steps:
        raise ValueError(
            f"--init {init} was trained {train.rewarm_from} steps; --steps must be more"
        )
    return warm, train


def _check_codes(data: CodeShards, config: BiGRConfig) -> None:
    if data.meta.code_bits != config.code_bits or data.meta.num_tokens != config.num_tokens:
        raise ValueError(
            f"the codes are {data.meta.code_bits}-bit on {data.meta.num_tokens} tokens; the model "
            f"expects {config.code_bits}-bit on {config.num_tokens}"
        )
    if config.text_dim or config.unconditional:
        return  # caption ids, or an unconditional model: every label becomes the null one
    labels = np.concatenate([np.asarray(shard) for shard in data.labels])
    low, high = int(labels.min(initial=0)), int(labels.max(initial=0))
    if low < 0 or high >= config.num_classes:
        raise ValueError(
            f"the codes' labels span {low}..{high} but the model has classes "
            f"0..{config.num_classes - 1} (unlabelled images are -1: train them with "
            "class_dropout=1 for an unconditional model)"
        )


def _check_preview_classes(config: BiGRConfig, data: CodeShards, train: TrainConfig) -> None:
    if config.unconditional:
        return  # an unconditional model previews len(sample_classes) unconditional samples
    count = len(data.caption_embeddings()) if config.text_dim else config.num_classes
    bad = [c for c in train.sample_classes if c >= count]
    if bad:
        what = "caption ids" if config.text_dim else "classes"
        raise ValueError(
            f"--sample-classes {bad[0]} is out of range: the data has {what} 0..{count - 1}"
        )


def _restore(
    model: BiGR,
    out: Path,
    resume: bool,
    warm: BiGR | None,
    ctx: distributed.Context,
    train: TrainConfig,
) -> tuple[EMA, int, dict | None, TrainConfig]:
    """The EMA, the first step, the optimizer's state to resume (None unless resuming) and the
    settings, read on the CPU and dropped as soon as they are copied in: `state.pt` of the
    run folder when resuming (the run keeps the draw scheme it started with; states written
    before schemes were recorded drew scheme 1), else the warm start's weights, else a fresh
    start."""
    ema = EMA(model, train.ema_decay)
    if resume and (out / "state.pt").is_file():
        state = load_state(out / "state.pt", "cpu")
        check_resume_config(str(out / "state.pt"), state.get("config"), model.config)
        model.load_state_dict(state.pop("model"))
        ema.load_state_dict(state.pop("ema"))
        scheme = state.get("train", {}).get("draw_scheme", 1)
        return ema, state["step"], state["opt"], dataclasses.replace(train, draw_scheme=scheme)
    if warm is not None:
        model.load_state_dict(warm.state_dict())
        return EMA(model, train.ema_decay), train.rewarm_from, None, train
    return ema, 0, None, train


def _load_optimizer(
    model: BiGR, opt: torch.optim.Optimizer, state: dict, train: TrainConfig
) -> None:
    """Load a saved optimizer state, whichever way the run that saved it was launched (one
    process, DDP or FSDP; states from before names were stored are keyed by position)."""
    named = named_optimizer_state(state, parameter_names(model, opt))
    kernels = [group.get("fused") for group in opt.param_groups]
    if not train.fsdp:
        opt.load_state_dict(positional_optimizer_state(named, parameter_names(model, opt)))
    else:
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_optimizer_state_dict,
        )

        options = StateDictOptions(full_state_dict=True)
        set_optimizer_state_dict(model, opt, named, options=options)
    # a saved state carries the kernel of the run that saved it: keep this run's
    for group, fused in zip(opt.param_groups, kernels, strict=True):
        group["fused"] = fused


def _tensorboard(folder: str):
    """A TensorBoard writer (the optional `tensorboard` package), or one line saying so."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ValueError(
            "--tensorboard needs the tensorboard package: pip install 'bigr[tensorboard]'"
        ) from None
    return SummaryWriter(folder)


def _log_step(
    out: Path,
    stats: dict,
    log: list[dict],
    done: int,
    logged: bool,
    t0: float,
    bar,
    writer=None,
) -> None:
    """Append a `logged` step to `log.jsonl` (and TensorBoard); advance the bar (its loss is
    shown as of the last step read back)."""
    if logged:
        stats["seconds"] = time.perf_counter() - t0
        log.append(stats)
        with open(out / "log.jsonl", "a") as f:
            f.write(json.dumps(stats) + "\n")
        if writer is not None:
            for key in ("loss", "acc", "lr", "grad_norm"):
                writer.add_scalar(f"train/{key}", stats[key], done)
            writer.flush()
    if bar is not None:
        bar.update(1)
        if isinstance(stats["loss"], float):
            bar.set_postfix(loss=f"{stats['loss']:.4f}")
