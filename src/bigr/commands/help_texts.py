"""Help for the flags whose meaning is the same wherever they appear, keyed by flag, with
per-command wording where a flag means something particular there. `cli.build_parser` fills
in every flag that its command left without help, so `--help` describes every flag."""

from __future__ import annotations

import argparse

COMMON = {
    "--device": "torch device (cpu, cuda, cuda:1, mps)",
    "--seed": "random seed (results are a function of it)",
    "--batch-size": "images per batch",
    "--model": "bigr model directory, embedded model name (bigr:...) or hf://OWNER/REPO[/FILE]",
    "--tokenizer": "tokenizer directory, embedded tokenizer or hf:// name (default: the one the "
    "model names)",
    "--image": "input image file",
    "--out": "output path",
    "--force": "replace --out even if it holds files other than a bigr model (they are deleted)",
    "--dtype": "floating-point type the weights are stored in",
    "--steps": "optimisation steps of the whole schedule",
    "--lr": "peak learning rate",
    "--warmup": "linear warm-up steps of the learning rate",
    "--min-lr": "learning rate at the end of a cosine schedule",
    "--lr-schedule": "learning-rate schedule after the warm-up",
    "--weight-decay": "AdamW weight decay",
    "--grad-accum": "micro-batches accumulated per optimisation step",
    "--grad-clip": "clip the global gradient norm to this value (0: no clipping)",
    "--ema-decay": "decay of the exponential moving average of the weights, in [0, 1)",
    "--ema-every": "steps between EMA updates",
    "--precision": "arithmetic of the training step (auto: bf16 autocast on CUDA)",
    "--compile": "run the model under torch.compile (first steps compile for a minute)",
    "--log-every": "steps between lines of log.jsonl",
    "--checkpoint-every": "steps between checkpoints (state.pt and the exported model)",
    "--sample-every": "steps between preview grids (0: none)",
    "--eval-every": "steps between held-out PSNR evaluations",
    "--eval-images": "held-out images the PSNR and the reconstruction grid use",
    "--resume": "continue the run in --out from its state.pt",
    "--perceptual-weight": "weight of the perceptual distance in the reconstruction loss",
    "--perceptual-resolution": "image size the perceptual distance is computed at",
    "--perceptual-start": "step at which the perceptual term switches on",
    "--perceptual-images": "images per step the perceptual term sees (0: the whole batch)",
    "--disc-start": "step at which the PatchGAN discriminator starts",
    "--disc-warmup": "steps the discriminator learns alone before the autoencoder hears it",
    "--disc-weight-max": "upper clamp of the adaptive GAN weight",
    "--disc-lr": "discriminator learning rate (default: --lr)",
    "--shard-size": "images per output shard",
    "--workers": "data-loading worker processes",
    "--num": "number of images",
    "--rank": "this process's rank when sharding by hand (default: from torchrun)",
    "--world-size": "number of processes sharding the work (default: from torchrun)",
    "--port": "port to listen on (127.0.0.1 only)",
    "--epochs": "passes over the training features",
    "--optimizer": "optimiser of the linear probe",
    "--pixel-size": "image size of the raw-pixel baseline",
    "--train-num": "training images (default: all)",
    "--test-num": "test images (default: all)",
    "--preset": "model preset (see `bigr presets`)",
    "--guidance": "classifier-free guidance scale",
    "--head-steps": "diffusion steps of the binary transcoder per unmasking step",
    "--rounds": "enrichment rounds (each regenerates every token once)",
}
PER_COMMAND = {
    ("convert", "kind"): "bigr: a generator file (.pt); bae: a binary autoencoder file (.th)",
    ("bench", "what"): "sample: the sampling loop against the release's; train: a training step",
    ("bench", "--steps"): "unmasking steps of the timed sampling",
    ("bench", "--preset"): "model preset timed, with random weights (see `bigr presets`)",
    ("bench", "--dtype"): "dtype the timed model computes in",
    ("enrich", "--image"): "the low-resolution image to enrich",
    ("demo", "--seed"): "random seed of every example",
}


def fill_help(command: str, parser: argparse.ArgumentParser) -> None:
    """Give every flag of `parser` that has no help the wording of the tables above."""
    for action in parser._actions:
        if action.help is not None or isinstance(action, argparse._HelpAction):
            continue
        names = action.option_strings or [action.dest]
        for name in names:
            text = PER_COMMAND.get((command, name)) or COMMON.get(name)
            if text:
                action.help = text
                break
