"""Multinomial logistic regression fitted to convergence: the classical linear baseline ("logistic
regression on raw pixels"), as scikit-learn's `LogisticRegression(solver="lbfgs")` fits it, in
plain torch.

Features are standardised with the training set's mean and standard deviation (constant
features, such as a zero border that every image shares, are left at zero). The loss is the mean
cross-entropy plus `l2 / 2 * ||W||^2` (no penalty on the biases; scikit-learn's C corresponds to
l2 = 1 / (C n)); full-batch L-BFGS with a strong-Wolfe line search runs until the gradient's
largest entry falls below `tolerance` or `max_iter` iterations. `fit_with_validation` chooses
`l2` from a grid by accuracy on held-out training rows, then refits on all of them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


def standardiser(x: Tensor) -> tuple[Tensor, Tensor]:
    """(mean, 1/std) of the columns of x, with 1/std = 0 for constant columns."""
    mean = x.mean(0)
    std = x.std(0)
    return mean, torch.where(std > 1e-12, 1 / std.clamp_min(1e-12), torch.zeros_like(std))


def fit_logistic(
    x: Tensor, y: Tensor, l2: float, *, max_iter: int = 500, tolerance: float = 1e-5
) -> nn.Module:
    """A fitted classifier: standardisation, then the linear layer (float64 throughout)."""
    x = x.double()
    mean, inv_std = standardiser(x)
    z = (x - mean) * inv_std
    classes = int(y.max()) + 1
    linear = nn.Linear(z.shape[1], classes).double()
    nn.init.zeros_(linear.weight)
    nn.init.zeros_(linear.bias)
    opt = torch.optim.LBFGS(
        linear.parameters(),
        max_iter=max_iter,
        tolerance_grad=tolerance,
        tolerance_change=1e-12,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure() -> Tensor:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(linear(z), y) + 0.5 * l2 * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return _Standardised(mean, inv_std, linear).eval()


class _Standardised(nn.Module):
    def __init__(self, mean: Tensor, inv_std: Tensor, linear: nn.Linear) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("inv_std", inv_std)
        self.linear = linear

    def forward(self, x: Tensor) -> Tensor:
        return self.linear((x.double() - self.mean) * self.inv_std)


@torch.no_grad()
def accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """Top-1 accuracy in %."""
    return 100.0 * float((model(x).argmax(1) == y).double().mean())


def fit_with_validation(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    *,
    val: int,
    l2_grid: Sequence[float] = (1e-4, 1e-3, 1e-2, 1e-1),
    max_iter: int = 500,
) -> dict:
    """Choose l2 on the last `val` training rows (fit on the others), refit on all training
    rows, score once on the test rows: {"top1", "l2", "val_top1" per l2, sizes}."""
    if not 0 < val < len(train_x):
        raise ValueError(f"val must be in (0, {len(train_x)}), got {val}")
    fit, held = slice(None, len(train_x) - val), slice(len(train_x) - val, None)
    on_val = {
        l2: accuracy(
            fit_logistic(train_x[fit], train_y[fit], l2, max_iter=max_iter),
            train_x[held],
            train_y[held],
        )
        for l2 in l2_grid
    }
    best = max(l2_grid, key=lambda l2: (on_val[l2], l2))  # ties: the stronger penalty
    model = fit_logistic(train_x, train_y, best, max_iter=max_iter)
    return {
        "top1": accuracy(model, test_x, test_y),
        "l2": best,
        "val_top1": {str(k): v for k, v in on_val.items()},
        "train_size": float(len(train_x)),
        "test_size": float(len(test_x)),
    }
