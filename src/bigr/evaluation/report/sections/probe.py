"""Linear-probe top-1/top-5 after every block, against raw pixels and the tokenizer's bits."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ...probe import ProbeConfig, layer_features, train_probe
from ..config import ReportConfig
from ..context import _Context, _encode, real_images
from ..format import _fmt

SETTINGS = ("train_data", "probe_train", "probe_test", "probe_epochs")


def compute(ctx: _Context) -> dict:
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


def markdown(result: dict, config: ReportConfig, out: Path) -> list[str]:
    from ....plots import plot_curves

    p = result
    rows = p["results"]
    lines = [
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
    layer_rows = [(int(k.split()[1]), v["top1"]) for k, v in rows.items() if k.startswith("layer")]
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
    return lines
