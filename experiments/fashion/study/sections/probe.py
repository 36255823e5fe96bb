"""Linear probe: the layer chosen on a validation split carved from the training images, then
reported once on the test split with baselines trained in the same run.

Protocol: the first `probe_train` training images (a seeded random subset; all 60,000 by
default) give the features; their last `probe_val` images are held out, and a probe per block
is trained on the rest and scored on them. The block with the best validation top-1 is chosen;
then that block, the last block and the baselines are trained on all `probe_train` images and
scored on the `probe_test` test images, each top-1 with a 95 % Wilson interval. Baselines:
logistic regression fitted to convergence (`evaluation.logistic`, its L2 penalty chosen on the
same validation images) on raw pixels (one channel: the images are grey) and on the tokenizer's
bits, with the chosen BiGR block also put through it, so that "beats raw pixels" compares like
with like; and each `--variant` model's own validation-chosen block (an unconditional variant
answers the paper's Table 4 question).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from torch import Tensor

from bigr.evaluation.image_sets import encode_images, real_images
from bigr.evaluation.intervals import proportion_difference_interval, wilson_interval
from bigr.evaluation.logistic import fit_with_validation
from bigr.evaluation.probe import ProbeConfig, layer_features, train_probe

from ..config import ReportConfig
from ..context import Context
from ..format import fmt

SETTINGS = ("train_data", "probe_train", "probe_val", "probe_test", "probe_epochs", "variants")


def _scored(result: dict) -> dict:
    """A probe result with the 95 % Wilson interval of its top-1 (in %)."""
    n = int(result["test_size"])
    low, high = wilson_interval(round(result["top1"] * n / 100), n)[1:]
    return {**result, "top1_low": 100 * low, "top1_high": 100 * high}


def _select_and_test(
    model, train_codes, test_codes, train_y, test_y, val_rows: int, probe, note
) -> dict:
    """Validation top-1 per block (fit on all but the last `val_rows` images), then the chosen
    and the last block trained on all of them and scored on the test images; the chosen block
    also through logistic regression, as the baselines are. `note` gets a line per block."""
    layers = list(range(model.config.depth))
    batch = 250
    tr = layer_features(model, train_codes.split(batch), layers)
    te = layer_features(model, test_codes.split(batch), layers)
    fit = slice(None, len(train_y) - val_rows)
    held = slice(len(train_y) - val_rows, None)
    on_val = {}
    for i in layers:
        on_val[i] = train_probe(tr[i][fit], train_y[fit], tr[i][held], train_y[held], probe)["top1"]
        note(f"  block {i}: validation top-1 {on_val[i]:.2f}")
    chosen = max(layers, key=lambda i: (on_val[i], -i))  # ties: the shallower block
    test = {
        str(i): _scored(train_probe(tr[i], train_y, te[i], test_y, probe))
        for i in sorted({chosen, layers[-1]})
    }
    val = {str(i): v for i, v in on_val.items()}  # string keys, as they come back from JSON
    # the chosen block's features through the baselines' classifier too (like for like)
    logistic = _scored(fit_with_validation(tr[chosen], train_y, te[chosen], test_y, val=val_rows))
    return {
        "val_top1": val,
        "chosen": chosen,
        "last": layers[-1],
        "test": test,
        "logistic": logistic,
    }


def _baselines(train_x: Tensor, test_x: Tensor, train_codes, test_codes, train_y, test_y, val):
    """Logistic regression (fitted to convergence, penalty chosen on the validation rows) on
    raw pixels (one channel: the images are grey) and on the tokenizer's bits."""
    pairs = {
        "raw pixels": (train_x[:, 0].flatten(1), test_x[:, 0].flatten(1)),
        "tokenizer bits": (train_codes.flatten(1), test_codes.flatten(1)),
    }
    return {
        name: _scored(fit_with_validation(tr, train_y, te, test_y, val=val))
        for name, (tr, te) in pairs.items()
    }


def compute(ctx: Context) -> dict:
    from bigr.model import BiGR

    cfg = ctx.config
    if not 0 < cfg.probe_val < cfg.probe_train:
        raise ValueError(f"probe_val must be in (0, probe_train), got {cfg.probe_val}")
    train_x, train_y = real_images(cfg.train_data, cfg.probe_train, ctx.size, seed=cfg.seed)
    test_x, test_y = real_images(cfg.reference, cfg.probe_test, ctx.size)
    train_codes = encode_images(ctx.tokenizer, train_x, cfg.batch_size)
    test_codes = encode_images(ctx.tokenizer, test_x, cfg.batch_size)
    probe = ProbeConfig(epochs=cfg.probe_epochs, warmup_epochs=max(1, cfg.probe_epochs // 10))
    args = (train_codes, test_codes, train_y, test_y, cfg.probe_val, probe)
    ctx.note("probe: the report's model")
    models = {"model": _select_and_test(ctx.model, *args, note=ctx.note)}
    device = ctx.model.transformer.mask_token.device
    for label, directory in cfg.variants:
        ctx.note(f"probe: variant {label}")
        variant = BiGR.from_pretrained(directory, device=device)
        models[label] = _select_and_test(variant, *args, note=ctx.note)
    ctx.note("probe: baselines (raw pixels, tokenizer bits)")
    baselines = _baselines(train_x, test_x, train_codes, test_codes, train_y, test_y, cfg.probe_val)
    return {
        "probe": dataclasses.asdict(probe),
        "train_size": len(train_y),
        "val_size": cfg.probe_val,
        "test_size": len(test_y),
        "models": models,
        "baselines": baselines,
    }


def _row(name: str, r: dict) -> str:
    top5 = fmt(r["top5"]) if "top5" in r else "—"
    interval = f"[{fmt(r['top1_low'])}, {fmt(r['top1_high'])}]"
    return f"| {name} | {fmt(r['top1'])} {interval} | {top5} |"


def markdown(result: dict, config: ReportConfig, out: Path) -> list[str]:
    from bigr.plots import plot_curves

    p = result
    main = p["models"]["model"]
    lines = [
        "## Linear probe (pooled features after a block, null class, nothing masked)",
        "",
        f"Probe: BatchNorm without affine + linear layer, SGD, {p['probe']['epochs']} epochs "
        "(MAE's recipe); logistic regression: L-BFGS to convergence, L2 penalty chosen on the "
        "validation images. Block "
        f"chosen on {p['val_size']} validation images carved from the {p['train_size']} "
        f"training images (probe fitted on the other {p['train_size'] - p['val_size']}); then "
        f"trained on all {p['train_size']} and scored once on {p['test_size']} test images "
        "(top-1 with its 95 % Wilson interval).",
        "",
        "| features | test top-1 (%) [95 % interval] | test top-5 (%) |",
        "|---|---|---|",
    ]
    for label, m in p["models"].items():
        who = "BiGR" if label == "model" else label
        chosen = f"{who}, block {m['chosen']} (best on validation)"
        lines.append(_row(f"{chosen}, probe", _at(m, m["chosen"])))
        if "logistic" in m:
            lines.append(_row(f"{chosen}, logistic regression", m["logistic"]))
        if m["last"] != m["chosen"]:
            lines.append(_row(f"{who}, last block {m['last']}, probe", _at(m, m["last"])))
    for name, r in p["baselines"].items():
        lines.append(_row(f"{name}, logistic regression", r))
    best = main.get("logistic", _at(main, main["chosen"]))
    gap, low, high = top1_difference(best, p["baselines"]["raw pixels"])
    lines += [
        "",
        f"Through the same logistic regression, the chosen BiGR block's top-1 minus raw pixels': "
        f"{fmt(gap)} [{fmt(low)}, {fmt(high)}] points "
        f"({'meets' if gap >= 3 else 'misses'} the 3-point goal).",
    ]
    if "tokenizer bits" in p["baselines"]:
        d, low, high = top1_difference(p["baselines"]["tokenizer bits"], best)
        side = "above" if low > 0 else "below" if high < 0 else "not distinguishable from"
        lines.append(
            f"The tokenizer's bits (the generator's own input) minus that block: {fmt(d)} "
            f"[{fmt(low)}, {fmt(high)}] points, {side} it."
        )
    lines += [
        "",
        "![probe](probe.png)",
        "",
    ]
    series = {}
    for label, m in p["models"].items():
        xs = sorted(int(i) for i in m["val_top1"])
        name = f"{'BiGR' if label == 'model' else label} (validation)"
        series[name] = (xs, [m["val_top1"][str(i)] for i in xs])
    xs = sorted(int(i) for i in main["val_top1"])
    for base in ("tokenizer bits", "raw pixels"):
        series[f"{base} (test)"] = ([xs[0], xs[-1]], [p["baselines"][base]["top1"]] * 2)
    plot_curves(
        out / "probe.png",
        series,
        title="linear probe top-1 by block",
        xlabel="block index",
        ylabel="top-1 (%)",
        markers=True,
    )
    return lines


def top1_difference(a: dict, b: dict) -> tuple[float, float, float]:
    """Top-1 of a minus top-1 of b in points, with Newcombe's 95 % interval, from the two
    entries' test counts."""
    na, nb = int(a["test_size"]), int(b["test_size"])
    sa, sb = round(a["top1"] * na / 100), round(b["top1"] * nb / 100)
    d = proportion_difference_interval(sa, na, sb, nb)
    return 100 * d.estimate, 100 * d.low, 100 * d.high


def _at(model_result: dict, layer: int) -> dict:
    """The test entry of one block (keys are strings, as JSON gives them back)."""
    return model_result["test"][str(layer)]
