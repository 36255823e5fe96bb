"""What `bigr parity` computes from a reference file's inputs, named as the reference names it.

Owns: `bigr_outputs` (RoPE, class table, backbone per layer, features, transcoder, noise
schedules, losses, one decoding step, generation and inpainting replayed from the recorded
uniform and Gumbel streams with the release's amount of work and draw order) and
`bae_outputs` (encoder, binarizer, decoder, end to end), with the forward hooks they share.

Leaves to others: building the models from the JSON, the tolerances and the comparison
(`parity.py`).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from .. import schedules
from ..denoiser import timestep_features
from ..diffusion_head import bit_loss
from ..draws import RecordedDraws
from ..layers import apply_rope
from ..model import BiGR
from ..sampler import (
    Conditioning,
    SamplerConfig,
    guided_features,
    head_probabilities,
    sample_codes,
)
from ..tokenizer import BinaryAutoencoder, codes_to_grid, grid_to_codes
from .strategies import RELEASE_INPAINTING, RELEASE_WORK


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


def _sampler_config(desc: str, num_iter: int, args: dict[str, Any]) -> SamplerConfig:
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
    )


# -- BiGR ------------------------------------------------------------------------------------


def bigr_outputs(model: BiGR, ref: dict[str, Tensor], meta: dict[str, Any]) -> dict[str, Tensor]:
    """Every BiGR tensor of a reference file this package can compute, by reference name."""
    bits, labels, mask = ref["in.bits"], ref["in.labels"], ref["in.mask"]
    args = meta["model_args"]
    out = _embedding_outputs(model, ref)
    forward, z = _forward_outputs(model, bits, labels, mask)
    out |= forward
    out |= _feature_outputs(model, ref)
    out |= _denoiser_outputs(model, ref, z)
    out |= _schedule_outputs(model, ref, args)
    if "loss.t" in ref:
        out |= _loss_outputs(model, ref, meta, z)
    if "dec.uniform_stream" in ref:
        out |= _decode_outputs(model, ref, args)
    out |= _sampling_outputs(model, ref, meta)
    return out


def _embedding_outputs(model: BiGR, ref: dict[str, Tensor]) -> dict[str, Tensor]:
    """2-D RoPE and the class table, with forced label dropout."""
    tr, labels = model.transformer, ref["in.labels"]
    out = {"rope.freqs_cis": tr.rope}
    if "rope.x" in ref:
        out["rope.x_rotated"] = apply_rope(ref["rope.x"], tr.rope)
    out["cls.table"] = tr.class_embed.weight
    if "cls.all_labels" in ref:
        out["cls.embed_all_eval"] = tr.class_embed(ref["cls.all_labels"]).unsqueeze(1)
    if "cls.force_drop_ids" in ref:
        dropped = torch.where(ref["cls.force_drop_ids"] == 1, model.config.null_class, labels)
        out["cls.dropped_labels"] = dropped
        out["cls.embed_forced"] = tr.class_embed(dropped).unsqueeze(1)
    return out


def _forward_outputs(
    model: BiGR, bits: Tensor, labels: Tensor, mask: Tensor
) -> tuple[dict[str, Tensor], Tensor]:
    """The backbone's intermediate outputs (hooked per layer) and its features z (B, L, D)."""
    tr, cfg = model.transformer, model.config
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
    out = dict(store)
    if "fwd.adaLN_out" in out:
        out["fwd.adaLN_out"] = out["fwd.adaLN_out"].view(bits.shape[0], 1, 6, cfg.dim)
    out["fwd.cond_features"] = z
    return out, z


def _feature_outputs(model: BiGR, ref: dict[str, Tensor]) -> dict[str, Tensor]:
    """Features under interpolated labels and after chosen layers."""
    tr = model.transformer
    bits, labels, mask = ref["in.bits"], ref["in.labels"], ref["in.mask"]
    out = {}
    if "interp.labels1" in ref:
        pair = torch.stack([ref["interp.labels1"], ref["interp.labels2"]], dim=1)
        weights = ref["interp.weights"].view(1, 2).expand(bits.shape[0], 2)
        out["interp.cond_features"] = tr(bits, pair, mask, condition_weights=weights)
    for name in ref:
        if m := re.fullmatch(r"ffi\.layer_index_(\d+)", name):
            # the release's features(n) runs every block when n is past the depth
            layer = min(int(m.group(1)), tr.config.depth - 1)
            out[name] = tr.features(bits, layer, labels)
    return out


def _denoiser_outputs(model: BiGR, ref: dict[str, Tensor], z: Tensor) -> dict[str, Tensor]:
    """The transcoder on recorded inputs and on the backbone's own features."""
    if "den.x" not in ref:
        return {}
    denoiser, bits = model.head.denoiser, ref["in.bits"]
    x, t, c = ref["den.x"], ref["den.t"], ref["den.c"]
    m = x.shape[0]
    return {
        "den.t_freq": timestep_features(t),
        "den.t_emb": denoiser.t_embedder(t),
        "den.logits": denoiser(x, t, c),
        "den.logits_fwd_cond": denoiser(
            bits.reshape(-1, bits.shape[-1])[:m], t, z.reshape(-1, model.config.dim)[:m]
        ),
    }


def _schedule_outputs(
    model: BiGR, ref: dict[str, Tensor], args: dict[str, Any]
) -> dict[str, Tensor]:
    """Noise tables, sampling timesteps, q(x_t | x_0) and the reverse posteriors."""
    steps = model.config.head.diffusion_steps
    tables = schedules.noise_tables(steps)
    out = {f"sched.{name}": table for name, table in tables.items()}
    out["sched.sampling_steps"] = torch.tensor(
        schedules.sampling_timesteps(steps, int(args.get("infer_steps", 100)))
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
    return out


def _sampling_outputs(
    model: BiGR, ref: dict[str, Tensor], meta: dict[str, Any]
) -> dict[str, Tensor]:
    """Generation and inpainting replayed from the recorded uniform and Gumbel streams."""
    bits, labels, args = ref["in.bits"], ref["in.labels"], meta["model_args"]
    descriptions = {name: info.get("description", "") for name, info in meta["tensors"].items()}
    out = {}
    if "gen.uniform_stream" in ref:
        draws = RecordedDraws(ref["gen.uniform_stream"], ref["gen.gumbel_stream"])
        config = _sampler_config(
            descriptions.get("gen.tokens", ""), ref["gen.gumbel_stream"].shape[0], args
        )
        out["gen.tokens"] = sample_codes(model, labels, config, draws=draws, strategy=RELEASE_WORK)
        out["gen.bernoulli_call_sizes"] = torch.tensor(draws.call_sizes)
    if "inpaint.uniform_stream" in ref:
        draws = RecordedDraws(ref["inpaint.uniform_stream"], ref["inpaint.gumbel_stream"])
        config = _sampler_config(
            descriptions.get("inpaint.tokens", ""),
            ref["inpaint.gumbel_stream"].shape[0],
            args,
        )
        keep = ~ref["inpaint.mask"]
        out["inpaint.tokens"] = sample_codes(
            model,
            labels,
            config,
            known_codes=bits,
            known_mask=keep,
            draws=draws,
            strategy=RELEASE_INPAINTING,
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
    steps = int(args.get("infer_steps", 100))
    config = SamplerConfig(
        guidance=guidance,
        head_steps=steps,
        head_temperature=float(args.get("sample_temperature", 1.0)),
    )
    # one decoding step as the release does it: both branches, the head on every token
    branches = guided_features(model, bits, mask, Conditioning(labels), guidance)
    probs = head_probabilities(model, branches, None, guidance, steps, config, draws)
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
