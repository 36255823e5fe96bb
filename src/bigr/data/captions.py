"""Generated captions for Fashion-MNIST, and the caption table stored beside code shards.

Fashion-MNIST has class labels but no text. A caption is made from what the image shows: the
class (with synonyms: "sneaker", "trainer", "running shoe") and the garment's tone, measured
from its pixels — the mean brightness of the garment (pixels above 0.1 on the black
background), cut at fixed thresholds into "dark", "grey" and "light" — in one of three
phrasings. Synonym and phrasing are chosen per image from a seeded hash, so the captions of
a dataset are fixed. The vocabulary (every possible caption) is finite, so shards store a
caption id per image (in the label slot) and `captions.json` + `captions.safetensors` (the
MiniLM embedding of each caption) beside them.

The same tone rule measures generated images, which is how the results report checks that a
sample matches its prompt.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor

# The caption sources `bigr tokenize --captions` knows: "fashion" is `CaptionedFashion`.
CAPTION_SOURCES = ("fashion",)
ITEMS = (
    ("t-shirt", "top", "tee"),
    ("trousers", "pants"),
    ("pullover", "sweater", "jumper"),
    ("dress",),
    ("coat", "jacket"),
    ("sandal",),
    ("shirt",),
    ("sneaker", "trainer", "running shoe"),
    ("bag", "handbag"),
    ("ankle boot", "boot"),
)
TONES = ("dark", "grey", "light")
# Garment-brightness cut points: the tertiles of the Fashion-MNIST training set under this
# rule (measured with `tone_thresholds`), rounded.
TONE_CUTS = (0.56, 0.72)
PHRASES = ("a {tone} {item}", "a photo of a {tone} {item}", "{tone} {item}")
FOREGROUND = 0.1


def garment_brightness(images: Tensor) -> Tensor:
    """(B, 3, S, S) or (3, S, S) in [0, 1] -> mean brightness of the garment pixels (B,)."""
    gray = images.float().mean(-3)
    fg = gray > FOREGROUND
    total = (gray * fg).flatten(-2).sum(-1)
    return total / fg.flatten(-2).sum(-1).clamp_min(1)


def tone_of(images: Tensor) -> Tensor:
    """Tone index (0 dark, 1 grey, 2 light) of each image."""
    b = garment_brightness(images)
    return (b >= TONE_CUTS[0]).long() + (b >= TONE_CUTS[1]).long()


def tone_thresholds(images: Tensor) -> tuple[float, float]:
    """The tertiles of garment brightness over `images` (how TONE_CUTS was chosen)."""
    q = torch.quantile(garment_brightness(images), torch.tensor([1 / 3, 2 / 3]))
    return float(q[0]), float(q[1])


def vocabulary() -> list[dict]:
    """Every caption with its class and tone, in a fixed order (the caption ids)."""
    out = []
    for label, names in enumerate(ITEMS):
        for item in names:
            for tone_id, tone in enumerate(TONES):
                for phrase in PHRASES:
                    text = phrase.format(tone=tone, item=item)
                    out.append({"text": text, "class": label, "tone": tone_id})
    return out


def _choice(seed: int, index: int, salt: int, count: int) -> int:
    """A fixed pseudo-random choice in 0..count-1 for (seed, index)."""
    x = (seed * 1_000_003 + index * 7_919 + salt * 104_729) & 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x45D9F3B) & 0xFFFFFFFF
    x ^= x >> 16
    return x % count


class CaptionedFashion:
    """Wraps a Fashion-MNIST dataset: items become (image, caption id)."""

    def __init__(self, dataset, seed: int = 0) -> None:
        if len(getattr(dataset, "classes", [])) != len(ITEMS):
            raise ValueError("generated captions need Fashion-MNIST (10 classes)")
        self.dataset, self.seed = dataset, seed
        self.entries = vocabulary()
        self.index = {(e["class"], e["tone"], e["text"]): i for i, e in enumerate(self.entries)}
        self.classes = [e["text"] for e in self.entries]
        self.source = f"{getattr(dataset, 'source', 'fashion-mnist')}+captions"
        self.flip = False

    def __len__(self) -> int:
        return len(self.dataset)

    def caption(self, index: int, image: Tensor, label: int) -> int:
        names = ITEMS[label]
        item = names[_choice(self.seed, index, 1, len(names))]
        phrase = PHRASES[_choice(self.seed, index, 2, len(PHRASES))]
        tone = int(tone_of(image))
        return self.index[(label, tone, phrase.format(tone=TONES[tone], item=item))]

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        image, label = self.dataset[index]
        return image, self.caption(index, image, int(label))


def write_caption_table(out_dir: str | Path, entries: list[dict], encoder=None) -> Path:
    """`captions.json` and `captions.safetensors` (embeddings (C, 384)) in a shard folder."""
    from safetensors.torch import save_file

    from .text_encoder import TextEncoder

    out = Path(out_dir)
    encoder = encoder or TextEncoder()
    embeddings = encoder([e["text"] for e in entries]).float().contiguous()
    save_file({"embeddings": embeddings}, str(out / "captions.safetensors"))
    (out / "captions.json").write_text(json.dumps(entries, indent=1) + "\n")
    return out / "captions.safetensors"


def read_caption_table(shard_dir: str | Path) -> tuple[list[dict], Tensor]:
    from safetensors.torch import load_file

    path = Path(shard_dir)
    if not (path / "captions.safetensors").is_file():
        raise FileNotFoundError(
            f"{path} has no caption table: tokenize with --captions for a text-conditioned model"
        )
    entries = json.loads((path / "captions.json").read_text())
    return entries, load_file(str(path / "captions.safetensors"))["embeddings"]
