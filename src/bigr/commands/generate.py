"""Handlers of `bigr sample`, `inpaint`, `outpaint`, `edit`, `interpolate` and `enrich`.

Each reads the parsed arguments, loads models and images, calls one function of `bigr.apps`
or `bigr.sampler`, and writes PNGs, printing what it wrote; `add_generation_commands` adds
their subparsers. Sampler flags, model loading and the progress bar are `common.py`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..apps import (
    box_mask,
    edit,
    enrich,
    inpaint,
    interpolate,
    outpaint,
)
from ..checkpoint import EMBEDDED_TOKENIZER
from ..classes import class_conditions, class_id, class_ids, class_names
from ..data.images import (
    ImageError,
    check_output,
    load_image,
    load_mask,
    open_image,
    save_grid,
    save_image,
)
from ..sampler import sample_codes
from .argtypes import int_in
from .common import (
    Progress,
    add_sampler_arguments,
    load_pair,
    sampler_from_args,
    save_tensor,
)


def _generator(args: argparse.Namespace) -> torch.Generator:
    return torch.Generator(args.device).manual_seed(args.seed)


def _written(*paths: Path) -> int:
    for path in paths:
        print(f"wrote {path}")
    return 0


# -- commands ----------------------------------------------------------------------------------


def cmd_sample(args: argparse.Namespace) -> int:
    if not args.codes_only:
        check_output(args.out)  # before any work: a bad path fails fast
    model, tokenizer = load_pair(args, need_tokenizer=not args.codes_only)
    if model.config.text_dim:
        if not args.prompt or args.classes:
            raise ValueError("this model is conditioned on text: use --prompt TEXT (repeatable)")
        from ..data.text_encoder import TextEncoder

        conditions = TextEncoder(device=args.device)(args.prompt).to(args.device)
    else:
        if args.prompt or (model.config.num_classes and not args.classes):
            raise ValueError("this model is class-conditional: use --classes, not --prompt")
        # an unconditional model takes no classes: --num images of its one condition
        conditions = class_conditions(model, args.classes, class_names(args.model))
    condition = conditions.repeat_interleave(args.num, dim=0)
    sampler = sampler_from_args(args, "recommended")
    progress = Progress("sampling")
    codes = sample_codes(model, condition, sampler, generator=_generator(args), progress=progress)
    progress.close()
    out = Path(args.out)
    written = []
    if args.codes_out:
        save_tensor(codes.cpu(), args.codes_out)
        written.append(Path(args.codes_out))
    if tokenizer is not None:
        with torch.no_grad():
            images = tokenizer.decode(codes).clamp(0, 1).cpu()
        written.append(save_grid(images, out, nrow=args.num))
    return _written(*written)


def box_arg(text: str) -> tuple[float, float, float, float]:
    try:
        values = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not four numbers x0,y0,x1,y1") from None
    if len(values) != 4 or not all(0 <= v <= 1 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: give four fractions in [0, 1]")
    x0, y0, x1, y1 = values
    if not (x0 < x1 and y0 < y1):
        raise argparse.ArgumentTypeError(f"{text!r}: need x0 < x1 and y0 < y1")
    return values


def _load_image_and_mask(args: argparse.Namespace, size: int, required: bool = True):
    image = load_image(args.image, size)
    if getattr(args, "box", None) is not None:
        if args.mask is not None:
            raise ValueError("give --mask or --box, not both")
        return image, box_mask(size, args.box)
    if args.mask is None:
        if required:
            raise ValueError("--mask (an image) or --box (x0,y0,x1,y1 fractions) is required")
        return image, None
    w, h = open_image(args.image).size
    mw, mh = open_image(args.mask).size
    if (w, h) != (mw, mh):
        raise ImageError(f"{args.mask}: the mask is {mw}x{mh} but the image is {w}x{h}")
    mask = load_mask(args.mask, size)
    if not mask.any():
        raise ValueError(f"{args.mask}: the mask is empty (white marks the region)")
    return image, mask


def _save_edit(result, args: argparse.Namespace) -> int:
    out = Path(args.out)
    main = (
        save_image(result.images[0], out)
        if len(result.images) == 1
        else save_grid(result.images, out)
    )
    masked = result.original.clone()
    masked[:, result.pixel_mask] = 0.5
    compare = torch.cat(
        [result.original[None], masked[None], result.reconstruction[None], result.images]
    )
    side = save_grid(compare, out.with_name(out.stem + "_compare.png"), nrow=len(compare))
    return _written(main, side)


def _edit_kwargs(args: argparse.Namespace) -> dict:
    return dict(
        num=args.num,
        sampler=sampler_from_args(args, "edit"),
        rule=args.rule,
        blend_result=not args.no_blend,
        feather_radius=args.feather,
        stochastic_codes=args.stochastic_codes,
        generator=_generator(args),
    )


def cmd_inpaint(args: argparse.Namespace) -> int:
    check_output(args.out)  # before any work: a bad path fails fast
    model, tokenizer = load_pair(args)
    image, mask = _load_image_and_mask(args, tokenizer.config.image_size)
    progress = Progress("inpainting")
    result = inpaint(model, tokenizer, image, mask, progress=progress, **_edit_kwargs(args))
    progress.close()
    return _save_edit(result, args)


def cmd_edit(args: argparse.Namespace) -> int:
    check_output(args.out)  # before any work: a bad path fails fast
    model, tokenizer = load_pair(args)
    image, mask = _load_image_and_mask(args, tokenizer.config.image_size)
    progress = Progress("editing")
    result = edit(
        model,
        tokenizer,
        image,
        mask,
        class_id(args.class_id, class_names(args.model), model.config.num_classes),
        progress=progress,
        **_edit_kwargs(args),
    )
    progress.close()
    return _save_edit(result, args)


def cmd_outpaint(args: argparse.Namespace) -> int:
    check_output(args.out)  # before any work: a bad path fails fast
    model, tokenizer = load_pair(args)
    size = tokenizer.config.image_size
    image, keep = _load_image_and_mask(args, size, required=False)
    if keep is None:
        keep = box_mask(size, (0.25, 0.25, 0.75, 0.75))  # keep the central half
    progress = Progress("outpainting")
    result = outpaint(model, tokenizer, image, keep, progress=progress, **_edit_kwargs(args))
    progress.close()
    return _save_edit(result, args)


def cmd_interpolate(args: argparse.Namespace) -> int:
    check_output(args.out)  # before any work: a bad path fails fast
    model, tokenizer = load_pair(args)
    classes = class_ids(args.classes, class_names(args.model), model.config.num_classes)
    if len(classes) != 2:
        raise ValueError("--classes takes exactly two classes, e.g. 284,388")
    if args.num < 2:
        raise ValueError("--num must be at least 2 (the two end points)")
    weights = [i / (args.num - 1) for i in range(args.num)]
    progress = Progress("interpolating")
    images, _ = interpolate(
        model,
        tokenizer,
        classes[0],
        classes[1],
        weights,
        sampler=sampler_from_args(args, "interpolate"),
        seed=args.seed,
        progress=progress,
    )
    progress.close()
    return _written(save_grid(images, args.out, nrow=len(images)))


def cmd_enrich(args: argparse.Namespace) -> int:
    check_output(args.out)  # before any work: a bad path fails fast
    model, tokenizer = load_pair(args)
    size = tokenizer.config.image_size
    if size % args.ds:
        raise ValueError(f"--ds {args.ds} does not divide the image size {size}")
    small = load_image(args.image, size // args.ds)
    progress = Progress("enriching")
    result = enrich(
        model,
        tokenizer,
        small,
        ds=args.ds,
        rounds=args.rounds,
        sampler=sampler_from_args(args, "enrich"),
        seed=args.seed,
        progress=progress,
    )
    progress.close()
    out = Path(args.out)
    main = save_image(result.images[-1], out)
    side = save_grid(
        torch.cat([result.low_res[None], result.images]),
        out.with_name(out.stem + "_rounds.png"),
        nrow=len(result.images) + 1,
    )
    return _written(main, side)


def add_generation_commands(sub: argparse._SubParsersAction) -> None:
    """`bigr sample`, `inpaint`, `outpaint`, `edit`, `interpolate` and `enrich`."""
    p = sub.add_parser("sample", help="class-conditional or text-to-image generation")
    _model_args(p)
    p.add_argument(
        "--classes",
        help="comma-separated class ids or names, e.g. 207,360 or sneaker,bag (names where the "
        "model records them); leave out for an unconditional model",
    )
    p.add_argument(
        "--prompt", action="append", help="a caption (text models; repeatable, one row each)"
    )
    p.add_argument(
        "--num",
        type=int_in(1, 4096),
        default=1,
        help="images per class or prompt (one row each)",
    )
    p.add_argument("--codes-out", help="also save the codes (B, L, K) with torch.save")
    p.add_argument("--codes-only", action="store_true", help="do not decode (no tokenizer needed)")
    add_sampler_arguments(p)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("inpaint", help="regenerate the white region of a mask")
    _model_args(p)
    _edit_args(p, "mask image of the same size as --image; white = regenerate")
    add_sampler_arguments(p)
    p.set_defaults(func=cmd_inpaint)

    p = sub.add_parser("outpaint", help="keep the white region of a mask, regenerate the rest")
    _model_args(p)
    _edit_args(p, "mask of the same size; white = keep (default: keep the central half)")
    add_sampler_arguments(p)
    p.set_defaults(func=cmd_outpaint)

    p = sub.add_parser("edit", help="regenerate the white region of a mask as a given class")
    _model_args(p)
    _edit_args(p, "mask image of the same size as --image; white = regenerate")
    p.add_argument("--class", dest="class_id", required=True, help="target class: an id or a name")
    add_sampler_arguments(p)
    p.set_defaults(func=cmd_edit)

    p = sub.add_parser("interpolate", help="generate along a mix of two classes")
    _model_args(p)
    p.add_argument(
        "--classes", required=True, help="two class ids or names, e.g. 284,388 or sneaker,bag"
    )
    p.add_argument("--num", type=int_in(2, 256), default=7, help="frames, end points included")
    add_sampler_arguments(p)
    p.set_defaults(func=cmd_interpolate)

    p = sub.add_parser("enrich", help="add detail to a low-resolution image")
    _model_args(p)
    p.add_argument("--image", required=True)
    p.add_argument("--ds", type=int_in(1, 16), default=2, help="down-sampling factor of the input")
    p.add_argument("--rounds", type=int_in(1, 32), default=4)
    add_sampler_arguments(p)
    p.set_defaults(func=cmd_enrich)


def _model_args(p: argparse.ArgumentParser) -> None:
    """--model, --tokenizer and --out, which every generation command takes."""
    p.add_argument(
        "--model",
        required=True,
        help=f"bigr model directory, or an embedded model: {', '.join(EMBEDDED_TOKENIZER)}",
    )
    p.add_argument("--tokenizer", help="tokenizer directory (default: MODEL/tokenizer)")
    p.add_argument("--out", required=True, help="output PNG")


def _edit_args(p: argparse.ArgumentParser, mask_help: str) -> None:
    """The input image, its mask (or box) and the blending of inpaint, outpaint and edit."""
    p.add_argument(
        "--image",
        required=True,
        help="input image (centre-cropped and resized as the release does)",
    )
    p.add_argument(
        "--mask",
        help=f"{mask_help}; with transparency, transparent pixels count as black (a mask of one "
        "colour on a transparent sheet: its opaque part is the white)",
    )
    p.add_argument(
        "--box",
        type=box_arg,
        help="instead of --mask: the box x0,y0,x1,y1 in fractions of the image (0..1)",
    )
    p.add_argument("--num", type=int_in(1, 256), default=1, help="variants to generate")
    p.add_argument(
        "--rule",
        default="any",
        choices=["any", "all", "majority", "official"],
        help="when a partly masked token is regenerated (see bigr.apps.masks)",
    )
    p.add_argument(
        "--no-blend",
        action="store_true",
        help="do not paste the original back outside the mask",
    )
    p.add_argument(
        "--feather",
        type=int_in(0, 64),
        default=None,
        help="soften the blend over this many pixels (default 0; outpaint: half a token)",
    )
    p.add_argument(
        "--stochastic-codes",
        action="store_true",
        help="encode the input with Bernoulli codes, as the release does (default: p > 0.5)",
    )
