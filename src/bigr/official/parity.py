"""`bigr parity`: recompute every tensor of an official reference file and compare.

A reference is a JSON file (`tensors`: name -> shape/dtype/description, plus the build
arguments `model_args` for BiGR or `hparams` for the B-AE, and the checkpoint it was made
with) next to a `.pt` file of the same stem holding the tensors (reference README §1-6). The
model is rebuilt from the JSON alone and loaded through the same import path as
`bigr convert`. Every entry is either an input (fed to the computation) or checked against
what this package computes, within the tolerances of reference README §7; an entry this
module cannot produce is a failure. What is computed for each entry is `parity_outputs.py`
(sampling entries replay the recorded uniform and Gumbel streams); this module owns the
driver, the inputs and tolerance tables and the comparison.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..model import BiGR
from ..tokenizer import BinaryAutoencoder
from .build_args import bigr_config_from_model_args, tokenizer_config_from_hparams
from .checkpoints import convert_state_dict, load_official_file
from .parity_outputs import bae_outputs, bigr_outputs

BIGR_INPUTS = re.compile(
    r"^(in\.(bits|labels|mask)|rope\.x|cls\.(all_labels|force_drop_ids)|interp\.(labels1|labels2|weights)"
    r"|den\.(x|t|c)|q\.(x0|t|one_step_in)|post\d+\.(p0|xt|t)|loss\.(t|x_t_in)"
    r"|dec\.(cfg_scale|uniform_stream)|(gen|inpaint)\.(uniform_stream|gumbel_stream)|inpaint\.mask)$"
)
BAE_INPUTS = re.compile(r"^(in\.image|encode\.uniform_stream|e2e\.codes)$")

# (pattern, atol, rtol); first match wins; integer and bool tensors are always compared exactly.
BIGR_TOLERANCES = [
    (r"^(sched\.|gen\.tokens$|inpaint\.tokens$)", 0.0, 0.0),
    (r"^(rope|cls|q|post\d+|loss|train_fwd)\.", 1e-6, 1e-5),
    (r"^(fwd|interp|ffi|den|dec)\.", 1e-5, 1e-5),
]
BAE_TOLERANCES = [
    (r"^(q\.codes_det|encode\.binary|encode\.binary_det)$", 0.0, 0.0),
    (r"^q\.", 1e-6, 1e-5),
    (r"^(enc|gen|dec|e2e|encode)\.", 1e-4, 1e-4),
]


@dataclass
class Row:
    name: str
    role: str  # "input" or "checked"
    max_abs_error: float | None
    atol: float | None
    rtol: float | None
    passed: bool
    note: str = ""


def _tolerance(name: str, table: list[tuple[str, float, float]]) -> tuple[float, float] | None:
    for pattern, atol, rtol in table:
        if re.search(pattern, name):
            return atol, rtol
    return None


def compare(name: str, expected: Tensor, actual: Tensor | None, table: list) -> Row:
    if actual is None:
        return Row(name, "checked", None, None, None, False, "not produced")
    actual = actual.detach().cpu()
    if tuple(actual.shape) != tuple(expected.shape):
        return Row(
            name,
            "checked",
            None,
            None,
            None,
            False,
            f"shape {tuple(actual.shape)} != {tuple(expected.shape)}",
        )
    exact = not expected.is_floating_point()
    tol = (0.0, 0.0) if exact else _tolerance(name, table)
    if tol is None:
        return Row(name, "checked", None, None, None, False, "no tolerance defined")
    atol, rtol = tol
    diff = (actual.double() - expected.double()).abs()
    err = float(diff.max()) if diff.numel() else 0.0
    passed = bool((diff <= atol + rtol * expected.double().abs()).all())
    return Row(name, "checked", err, atol, rtol, passed)


# -- driver ----------------------------------------------------------------------------------


def run_parity(json_path: str | Path) -> list[Row]:
    json_path = Path(json_path)
    meta = json.loads(json_path.read_text())
    ref_path = json_path.with_suffix(".pt")
    ref = torch.load(ref_path, map_location="cpu", weights_only=True)
    weights = meta.get("weights", {})
    torch.set_grad_enabled(False)
    try:
        if "model_args" in meta:
            config = bigr_config_from_model_args(meta["model_args"])
            file = json_path.parent / weights.get("checkpoint_file", "")
            state, _ = convert_state_dict(
                load_official_file(file, "bigr", weights.get("load_key", "ema")), config
            )
            model = BiGR(config)
            model.load_state_dict(state, strict=True)
            produced = bigr_outputs(model.eval(), ref, meta)
            inputs, table = BIGR_INPUTS, BIGR_TOLERANCES
        elif "hparams" in meta:
            config = tokenizer_config_from_hparams(meta["hparams"])
            file = json_path.parent / weights.get("file", "")
            state, _ = convert_state_dict(load_official_file(file, "bae"), config)
            model = BinaryAutoencoder(config)
            model.load_state_dict(state, strict=True)
            produced = bae_outputs(model.eval(), ref)
            inputs, table = BAE_INPUTS, BAE_TOLERANCES
        else:
            raise ValueError(f"{json_path}: neither 'model_args' (BiGR) nor 'hparams' (B-AE) found")
    finally:
        torch.set_grad_enabled(True)
    rows = []
    for name in meta["tensors"]:
        if name not in ref:
            rows.append(
                Row(name, "checked", None, None, None, False, "listed but missing from the .pt")
            )
        elif inputs.match(name):
            rows.append(Row(name, "input", None, None, None, True))
        else:
            rows.append(compare(name, ref[name], produced.get(name), table))
    return rows


def format_rows(rows: list[Row]) -> str:
    width = max(len(r.name) for r in rows)
    lines = [
        f"{'name':<{width}}  {'role':<7}  {'max abs err':>11}  {'atol':>7}  {'rtol':>7}  result"
    ]
    for r in rows:
        err = "" if r.max_abs_error is None else f"{r.max_abs_error:.3g}"
        atol = "" if r.atol is None else f"{r.atol:g}"
        rtol = "" if r.rtol is None else f"{r.rtol:g}"
        result = "pass" if r.passed else "FAIL"
        note = f"  ({r.note})" if r.note else ""
        lines.append(
            f"{r.name:<{width}}  {r.role:<7}  {err:>11}  {atol:>7}  {rtol:>7}  {result}{note}"
        )
    checked = [r for r in rows if r.role == "checked"]
    failed = [r for r in rows if not r.passed]
    lines.append(
        f"{len(rows)} entries: {len(rows) - len(checked)} inputs, {len(checked)} checked, "
        f"{len(failed)} failed"
    )
    return "\n".join(lines)
