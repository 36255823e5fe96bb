"""Logistic regression to convergence: the objective's optimum (checked against scipy's own
L-BFGS on the same objective), standardisation, and the validation-chosen penalty."""

import numpy as np
import pytest
import torch

from bigr.evaluation.logistic import accuracy, fit_logistic, fit_with_validation, standardiser


def _blobs(n=300, d=6, classes=3, seed=0, spread=1.0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, d, generator=g) * 2
    y = torch.arange(n) % classes
    x = centres[y] + spread * torch.randn(n, d, generator=g)
    return x, y


def _objective(x, y, l2):
    """The penalised mean cross-entropy on standardised features, as numpy for scipy."""
    mean, inv_std = (t.numpy() for t in standardiser(x.double()))
    z, yy = (x.double().numpy() - mean) * inv_std, y.numpy()
    d, c = z.shape[1], int(yy.max()) + 1

    def f(theta):
        w, b = theta[: d * c].reshape(c, d), theta[d * c :]
        logits = z @ w.T + b
        logits -= logits.max(1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
        p = np.exp(logp)
        p[np.arange(len(yy)), yy] -= 1
        grad_w = p.T @ z / len(yy) + l2 * w
        grad_b = p.mean(0)
        loss = -logp[np.arange(len(yy)), yy].mean() + 0.5 * l2 * (w**2).sum()
        return loss, np.concatenate([grad_w.ravel(), grad_b])

    return f, d, c


def test_the_fit_reaches_the_optimum_scipy_finds():
    from scipy.optimize import minimize

    x, y = _blobs(spread=2.0)
    l2 = 1e-2
    model = fit_logistic(x, y, l2)
    f, d, c = _objective(x, y, l2)
    ref = minimize(f, np.zeros(d * c + c), jac=True, method="L-BFGS-B", options={"gtol": 1e-10})
    ours = np.concatenate(
        [model.linear.weight.detach().numpy().ravel(), model.linear.bias.detach().numpy()]
    )
    assert f(ours)[0] == pytest.approx(ref.fun, abs=1e-8)
    assert np.abs(f(ours)[1]).max() < 1e-4  # a stationary point


def test_separable_classes_are_learned_and_constant_columns_ignored():
    x, y = _blobs(spread=0.1)
    x = torch.cat([x, torch.full((len(x), 2), 7.0)], 1)  # two constant columns (padding)
    model = fit_logistic(x, y, 1e-6)
    assert accuracy(model, x, y) == 100.0
    _, inv_std = standardiser(x)
    assert torch.equal(inv_std[-2:], torch.zeros(2))


def test_the_penalty_is_chosen_on_validation_rows_and_reported_once_on_test():
    x, y = _blobs(n=400, spread=3.0, seed=1)
    tx, ty, ex, ey = x[:300], y[:300], x[300:], y[300:]
    out = fit_with_validation(tx, ty, ex, ey, val=100, l2_grid=(1e-4, 1.0))
    assert set(out["val_top1"]) == {"0.0001", "1.0"}
    best = max(out["val_top1"].values())
    assert out["val_top1"][str(out["l2"])] == best
    assert out["train_size"] == 300 and out["test_size"] == 100 and 0 <= out["top1"] <= 100
    with pytest.raises(ValueError, match="val"):
        fit_with_validation(tx, ty, ex, ey, val=300)
