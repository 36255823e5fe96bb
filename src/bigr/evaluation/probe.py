"""Linear probing of BiGR features (bigr-spec.md §5), with baselines in the same protocol.

Features: the hidden state after transformer block `layer` (any, or a sweep of layers), from
the full image's codes with nothing masked and the null class as condition, averaged over
tokens. The classifier follows MAE's linear-probe recipe: BatchNorm without affine parameters,
then a linear layer, trained with a cosine schedule after a warmup on frozen features. MAE uses
LARS at batch 16384 (lr = 0.1 x 16384/256 = 6.4); LARS's trust ratio makes its steps tiny at
small learning rates, so at the batch sizes a CPU affords the default is SGD with momentum (LARS
stays available: raise `base_lr` with it). Top-1 and top-5 accuracy on a held-out split.
Baselines go through the same classifier: raw pixels and the tokenizer's bits (flattened codes).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ..model import BiGR


@dataclass(frozen=True, kw_only=True)
class ProbeConfig:
    epochs: int = 90
    batch_size: int = 256
    base_lr: float = 0.1  # lr = base_lr * batch_size / 256, as MAE
    weight_decay: float = 0.0
    warmup_epochs: int = 10
    optimizer: str = "sgd"  # or "lars" (MAE's, for very large batches)
    seed: int = 0


@torch.no_grad()
def layer_features(
    model: BiGR,
    batches: Iterable[Tensor],
    layers: list[int],
    *,
    store: Path | None = None,
    count: int | None = None,
) -> dict[int, Tensor | np.ndarray]:
    """Pooled features (N, D) after each block in `layers`, from code batches (B, L, K), all
    layers in one pass. With `store` (a folder) and `count` (N), each layer's features are
    written chunk by chunk into `store/layer{i}.npy` and returned memory-mapped: memory is
    bounded by the batch, not the dataset."""
    tr = model.transformer
    device = tr.mask_token.device
    out: dict[int, list[Tensor]] = {layer: [] for layer in layers}
    maps = None
    if store is not None:
        if count is None:
            raise ValueError("a feature store needs the number of images (count)")
        store.mkdir(parents=True, exist_ok=True)
        maps = {
            i: np.lib.format.open_memmap(
                store / f"layer{i}.npy", "w+", np.float32, (count, model.config.dim)
            )
            for i in layers
        }
    deepest = max(layers)
    kept: dict[int, Tensor] = {}
    hooks = [
        tr.layers[min(i, len(tr.layers) - 1)].register_forward_hook(
            lambda m, a, o, i=i: kept.__setitem__(i, o)
        )
        for i in layers
    ]
    done = 0
    try:
        for codes in batches:
            null = tr.null_condition(codes.shape[0], device)
            tr.hidden_states(codes.to(device), tr.embed_classes(null), None, upto=deepest)
            for i in layers:
                pooled = kept[i][:, model.config.class_tokens :].float().mean(1).cpu()
                if maps is None:
                    out[i].append(pooled)
                else:
                    maps[i][done : done + len(pooled)] = pooled.numpy()
            done += codes.shape[0]
    finally:
        for h in hooks:
            h.remove()
    if maps is not None:
        if done != count:
            raise ValueError(f"expected {count} images, the batches held {done}")
        for m in maps.values():
            m.flush()
        return {i: np.load(store / f"layer{i}.npy", mmap_mode="r") for i in layers}
    return {i: torch.cat(v) for i, v in out.items()}


def write_store(path: Path, batches: Iterable[Tensor], count: int, width: int) -> np.ndarray:
    """Rows (e.g. flattened bits, as uint8) written chunk by chunk into a memory-mapped .npy."""
    array = np.lib.format.open_memmap(path, "w+", np.uint8, (count, width))
    done = 0
    for batch in batches:
        rows = batch.reshape(len(batch), -1).to(torch.uint8).numpy()
        array[done : done + len(rows)] = rows
        done += len(rows)
    array.flush()
    return np.load(path, mmap_mode="r")


def rows(x: Tensor | np.ndarray, index: Tensor) -> Tensor:
    """x[index] as float32, for in-memory tensors and memory-mapped arrays alike."""
    if isinstance(x, Tensor):
        return x[index].float()
    return torch.from_numpy(np.asarray(x[index.numpy()], dtype=np.float32))


class LARS(torch.optim.Optimizer):
    """Layer-wise adaptive rate scaling (You et al. 2017) as used by MAE's linear probe: SGD with
    momentum whose update of each weight matrix is scaled by ||w|| / ||grad|| (1-D tensors:
    plain SGD)."""

    def __init__(
        self,
        params,
        lr: float,
        weight_decay: float = 0.0,
        momentum: float = 0.9,
        trust_coefficient: float = 0.001,
    ) -> None:
        super().__init__(
            params,
            dict(
                lr=lr,
                weight_decay=weight_decay,
                momentum=momentum,
                trust_coefficient=trust_coefficient,
            ),
        )

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                d = p.grad
                if p.ndim > 1:
                    d = d.add(p, alpha=group["weight_decay"])
                    pn, dn = p.norm(), d.norm()
                    q = torch.where(
                        (pn > 0) & (dn > 0),
                        group["trust_coefficient"] * pn / dn,
                        torch.ones_like(pn),
                    )
                    d = d.mul(q)
                state = self.state[p]
                if "mu" not in state:
                    state["mu"] = torch.zeros_like(p)
                mu = state["mu"].mul_(group["momentum"]).add_(d)
                p.add_(mu, alpha=-group["lr"])


def _batches(n: int, size: int, generator: torch.Generator) -> Iterator[Tensor]:
    perm = torch.randperm(n, generator=generator)
    for start in range(0, n, size):
        yield perm[start : start + size]


def train_probe(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    config: ProbeConfig = ProbeConfig(),
    *,
    return_head: bool = False,
) -> dict:
    """BatchNorm(affine=False) + Linear on frozen features; returns top-1/top-5 (%) on test
    (and the trained classifier under "head", in eval mode, if `return_head`)."""
    torch.manual_seed(config.seed)
    classes = int(max(train_y.max(), test_y.max())) + 1  # features: tensors or memory maps
    head = nn.Sequential(
        nn.BatchNorm1d(train_x.shape[1], affine=False, eps=1e-6),
        nn.Linear(train_x.shape[1], classes),
    )
    nn.init.trunc_normal_(head[1].weight, std=0.01)
    nn.init.zeros_(head[1].bias)
    lr = config.base_lr * config.batch_size / 256
    if config.optimizer == "lars":
        opt: torch.optim.Optimizer = LARS(
            head.parameters(), lr=lr, weight_decay=config.weight_decay
        )
    else:
        opt = torch.optim.SGD(
            head.parameters(), lr=lr, momentum=0.9, weight_decay=config.weight_decay
        )
    g = torch.Generator().manual_seed(config.seed)
    steps_per_epoch = math.ceil(len(train_x) / config.batch_size)
    total, warmup = config.epochs * steps_per_epoch, config.warmup_epochs * steps_per_epoch
    step = 0
    for _ in range(config.epochs):
        head.train()
        for idx in _batches(len(train_x), config.batch_size, g):
            idx = idx.sort().values  # in file order: a memory map reads forward
            scale = (
                (step + 1) / warmup
                if step < warmup
                else 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))
            )
            for group in opt.param_groups:
                group["lr"] = lr * scale
            loss = nn.functional.cross_entropy(head(rows(train_x, idx)), train_y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
    head.eval()
    with torch.no_grad():
        chunks = torch.arange(len(test_x)).split(4096)
        logits = torch.cat([head(rows(test_x, chunk)) for chunk in chunks])
    top5 = logits.topk(min(5, classes), dim=1).indices
    result = {
        "top1": 100.0 * float((top5[:, 0] == test_y).float().mean()),
        "top5": 100.0 * float((top5 == test_y[:, None]).any(1).float().mean()),
        "train_size": float(len(train_x)),
        "test_size": float(len(test_x)),
    }
    if return_head:
        result["head"] = head
    return result
