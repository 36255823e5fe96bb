"""`bigr parity`: recompute every tensor of an official reference file and compare.

A reference is a JSON file (`tensors`: name -> shape/dtype/description, plus the build
arguments `model_args` for BiGR or `hparams` for the B-AE, and the checkpoint it was made
with) next to a `.pt` file of the same stem holding the tensors (reference README §1-6). The
model is rebuilt from the JSON alone and loaded through the same import path as
`bigr convert`. Every entry is either an input (fed to the computation) or checked against
what this package computes, within the tolerances of reference README §7; an entry this
module cannot produce is a failure. Sampling entries are reproduced by replaying the recorded
uniform and Gumbel streams with the release's amount of work and draw order.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .. import schedules
from ..denoiser import timestep_features
from ..diffusion_head import bit_loss
from ..draws import RecordedDraws
from ..layers import apply_rope
from ..model import BiGR
from ..sampler import SamplerConfig, predict_probs, sample_codes
from ..tokenizer import BinaryAutoencoder, codes_to_grid, grid_to_codes
from .build_args import bigr_config_from_model_args, tokenizer_config_from_hparams
from .checkpoints import convert_state_dict, load_official_file

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


@contextlib.contextmanager
def capture(
    modules: dict[str, nn.Module], pre: dict[str, nn.Module] | None = None
) -> Iterator[dict[str, Tensor]]:
    """Record the output of each named module (or the first input, for `pre`)."""
    store: dict[str, Tensor] = {}
    handles = []
    for key, module in modules.items():
        handles.append(
            module.register_forward_hook(lambda m, a, out, key=key: store.__setitem__(key, out))
        )
    for key, module in (pre or {}).items():
        handles.append(
            module.register_forward_pre_hook(lambda m, a, key=key: store.__setitem__(key, a[0]))
        )
    try:
        yield store
    finally:
        for handle in handles:
            handle.remove()


def _call_kwargs(description: str) -> dict[str, Any]:
    """Keyword arguments written in a tensor description, e.g. `num_iter=4, cfg_scale=3.0`."""
    out: dict[str, Any] = {}
    for key, value in re.findall(r"(\w+)=('[^']*'|-?[\d.]+(?:e-?\d+)?)", description):
        out[key] = value.strip("'") if value.startswith("'") else float(value)
    return out


def _sampler_config(desc: str, num_iter: int, args: dict[str, Any], **extra: Any) -> SamplerConfig:
    kw = _call_kwargs(desc)
    schedule = {"cos": "cosine", "cosine": "cosine", "linear": "linear"}[
        kw.get("mask_schedule", "cosine")
    ]
    return SamplerConfig(
        steps=int(kw.get("num_iter", num_iter)),
        schedule=schedule,
        order="confidence",
        guidance=float(kw["cfg_scale"]),
        guidance_schedule=kw.get("cfg_schedule", "constant"),
        gumbel=float(kw.get("gumbel_temp", 0.0)),
        gumbel_schedule=kw.get("gumbel_schedule", "constant"),
        head_steps=int(args.get("infer_steps", 100)),
        head_temperature=float(args.get("sample_temperature", 1.0)),
        head_tokens="all",
        **extra,
    )


# -- BiGR ------------------------------------------------------------------------------------


def bigr_outputs(model: BiGR, ref: dict[str, Tensor], meta: dict[str, Any]) -> dict[str, Tensor]:
    tr, head, cfg = model.transformer, model.head, model.config
    bits, labels, mask = ref["in.bits"], ref["in.labels"], ref["in.mask"]
    b, _, k = bits.shape
    out: dict[str, Tensor] = {}
    descriptions = {name: info.get("description", "") for name, info in meta["tensors"].items()}
    args = meta["model_args"]

    out["rope.freqs_cis"] = tr.rope
    if "rope.x" in ref:
        out["rope.x_rotated"] = apply_rope(ref["rope.x"], tr.rope)
    out["cls.table"] = tr.class_embed.weight
    if "cls.all_labels" in ref:
        out["cls.embed_all_eval"] = tr.class_embed(ref["cls.all_labels"]).unsqueeze(1)
    if "cls.force_drop_ids" in ref:
        dropped = torch.where(ref["cls.force_drop_ids"] == 1, cfg.null_class, labels)
        out["cls.dropped_labels"] = dropped
        out["cls.embed_forced"] = tr.class_embed(dropped).unsqueeze(1)

    hooks = {"fwd.tok_emb_raw": tr.token_embed, "fwd.final_norm": tr.norm}
    if tr.adaln is not None:
        hooks["fwd.adaLN_out"] = tr.adaln
    for i, layer in enumerate(tr.layers):
        hooks |= {
            f"fwd.layer{i}.attn_out": layer.attention,
            f"fwd.layer{i}.ffn_out": layer.feed_forward,
            f"fwd.layer{i}.out": layer,
        }
    with capture(hooks, pre={"fwd.seq_in": tr.layers[0]}) as store:
        z = tr(bits, labels, mask)
    out |= store
    if "fwd.adaLN_out" in out:
        out["fwd.adaLN_out"] = out["fwd.adaLN_out"].view(b, 1, 6, cfg.dim)
    out["fwd.cond_features"] = z

    if "interp.labels1" in ref:
        pair = torch.stack([ref["interp.labels1"], ref["interp.labels2"]], dim=1)
        weights = ref["interp.weights"].view(1, 2).expand(b, 2)
        out["interp.cond_features"] = tr(bits, pair, mask, label_weights=weights)
    for name in ref:
        if m := re.fullmatch(r"ffi\.layer_index_(\d+)", name):
            out[name] = tr.features(bits, int(m.group(1)), labels)

    if "den.x" in ref:
        x, t, c = ref["den.x"], ref["den.t"], ref["den.c"]
        out["den.t_freq"] = timestep_features(t)
        out["den.t_emb"] = head.denoiser.t_embedder(t)
        out["den.logits"] = head.denoiser(x, t, c)
        m = x.shape[0]
        out["den.logits_fwd_cond"] = head.denoiser(
            bits.reshape(-1, k)[:m], t, z.reshape(-1, cfg.dim)[:m]
        )

    tables = schedules.noise_tables(cfg.head.diffusion_steps)
    out |= {f"sched.{name}": table for name, table in tables.items()}
    out["sched.sampling_steps"] = torch.tensor(
        schedules.sampling_timesteps(cfg.head.diffusion_steps, int(args.get("infer_steps", 100)))
    )
    kf, bf, beta = tables["k_final"], tables["b_final"], tables["beta"]
    if "q.x0" in ref:
        t = ref["q.t"]
        out["q.xt_prob"] = schedules.q_prob(ref["q.x0"], kf[t, None], bf[t, None])
        out["q.one_step_out"] = schedules.one_step(ref["q.one_step_in"], beta[t, None])
    for name in ref:
        if m := re.fullmatch(r"post(\d+)\.p0", name):
            j = m.group(1)
            t, t_prev = ref[f"post{j}.t"].tolist()
            keep = schedules.transition_keep(beta.tolist(), t, t_prev)
            out[f"post{j}.prob_xtm1"] = schedules.posterior_prob(
                ref[name], ref[f"post{j}.xt"], kf[t_prev], bf[t_prev], keep
            )

    if "loss.t" in ref:
        out |= _loss_outputs(model, ref, meta, z)
    if "dec.uniform_stream" in ref:
        out |= _decode_outputs(model, ref, args)
    if "gen.uniform_stream" in ref:
        draws = RecordedDraws(ref["gen.uniform_stream"], ref["gen.gumbel_stream"])
        config = _sampler_config(
            descriptions.get("gen.tokens", ""), ref["gen.gumbel_stream"].shape[0], args
        )
        out["gen.tokens"] = sample_codes(model, labels, config, draws=draws)
        out["gen.bernoulli_call_sizes"] = torch.tensor(draws.call_sizes)
    if "inpaint.uniform_stream" in ref:
        draws = RecordedDraws(ref["inpaint.uniform_stream"], ref["inpaint.gumbel_stream"])
        config = _sampler_config(
            descriptions.get("inpaint.tokens", ""),
            ref["inpaint.gumbel_stream"].shape[0],
            args,
            budget="official",
        )
        keep = ~ref["inpaint.mask"]
        out["inpaint.tokens"] = sample_codes(
            model, labels, config, known_codes=bits, known_mask=keep, draws=draws
        )
        out["inpaint.bernoulli_call_sizes"] = torch.tensor(draws.call_sizes)
    return out


def _loss_outputs(
    model: BiGR, ref: dict[str, Tensor], meta: dict[str, Any], z: Tensor
) -> dict[str, Tensor]:
    bits, labels, mask = ref["in.bits"], ref["in.labels"], ref["in.mask"]
    b, l, k = bits.shape
    tables = schedules.noise_tables(model.config.head.diffusion_steps)
    t, x_t = ref["loss.t"], ref["loss.x_t_in"]
    x0, cond = bits.reshape(-1, k), z.reshape(-1, model.config.dim)
    raw = model.head.denoiser(x_t, t - 1, cond)
    out = {
        "loss.x0": x0,
        "loss.cond": cond,
        "loss.logits_raw": raw,
        "loss.xt_prob": schedules.q_prob(
            x0, tables["k_final"][t, None], tables["b_final"][t, None]
        ),
    }
    for case, params in meta.get("loss_cases", {}).items():
        focal = float(params["focal"])
        loss_all, acc = bit_loss(
            raw,
            x0,
            x_t,
            predict_flip=bool(params["p_flip"]),
            focal_gamma=focal if focal >= 0 else None,
            alpha=float(params["alpha"]),
        )
        out |= {
            f"loss.{case}.loss_all": loss_all,
            f"loss.{case}.loss": loss_all.mean(),
            f"loss.{case}.acc": acc,
        }
    stats = model.training_loss(bits, labels, mask=mask, t=t.view(b, l), x_t=x_t.view(b, l, k))
    out["train_fwd.loss"], out["train_fwd.bce_loss"] = stats["loss"], stats["bce_loss"]
    return out


def _decode_outputs(model: BiGR, ref: dict[str, Tensor], args: dict[str, Any]) -> dict[str, Tensor]:
    bits, labels, mask = ref["in.bits"], ref["in.labels"], ref["in.mask"]
    guidance = float(ref["dec.cfg_scale"])
    draws = RecordedDraws(ref["dec.uniform_stream"])
    config = SamplerConfig(
        guidance=guidance,
        head_steps=int(args.get("infer_steps", 100)),
        head_temperature=float(args.get("sample_temperature", 1.0)),
        head_tokens="all",
    )
    probs = predict_probs(
        model, bits, mask, labels, guidance, config, draws, max_unknown=bits.shape[1]
    )
    null = torch.full_like(labels, model.config.null_class)
    return {
        "dec.probs": probs,
        "dec.bernoulli_probs": torch.stack(draws.call_probs),
        "dec.cond_combined": torch.cat([labels, null]),
    }


# -- B-AE ------------------------------------------------------------------------------------


def bae_outputs(model: BinaryAutoencoder, ref: dict[str, Tensor]) -> dict[str, Tensor]:
    image = ref["in.image"]
    out: dict[str, Tensor] = {}
    enc_hooks = {f"enc.block{i}": block for i, block in enumerate(model.encoder.blocks)}
    with capture(enc_hooks) as store:
        h = model.encoder(image)
    out |= store
    out["enc.h"] = h
    probs = model.binarizer.probs(h)
    det = (probs > 0.5).float()
    out |= {"q.probs": probs, "q.codes_det": det, "encode.binary_det": det}
    if "encode.uniform_stream" in ref:
        encoded = model.encode(
            image, stochastic=True, draws=RecordedDraws(ref["encode.uniform_stream"])
        )
        binary = codes_to_grid(encoded.codes, model.config.grid_size)
        out["encode.binary"] = binary
        out["encode.quant"] = model.binarizer.embed_bits(binary)
        out["dec.image_from_binary"] = model.decode(encoded.codes)
        out["e2e.binary_as_sequence"] = encoded.codes
    out["dec.quant_det"] = model.binarizer.embed_bits(det)
    gen_hooks = {f"gen.block{i}": block for i, block in enumerate(model.decoder.blocks)}
    with capture(gen_hooks) as store:
        out["dec.image_from_det"] = model.decode(grid_to_codes(det))
    out |= store
    if "dec.quant_det" in ref:
        out["dec.image_from_quant"] = model.decoder(ref["dec.quant_det"])
    if "e2e.codes" in ref:
        out["e2e.image"] = model.decode(grid_to_codes(ref["e2e.codes"]))
    return out


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
