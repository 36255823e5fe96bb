"""Models on the Hugging Face hub, named `hf://OWNER/REPO[@REVISION][/PATH]`.

- `hf://OWNER/REPO` (or a folder PATH inside it): a repository already in bigr's format
  (config.json + model.safetensors), fetched as it is.
- `hf://OWNER/REPO/FILE.pt` or `.th`: a checkpoint of the official release (e.g.
  `hf://haoosz/BiGR/gpt/bigr_L_d24.pt`), downloaded once, converted once into bigr's format
  under `cache_dir()/converted/`, keyed by the file's content hash, and reused after that.

Downloads go through `huggingface_hub` (pip install "bigr[hub]"), so its cache, `HF_HOME`,
`HF_HUB_CACHE` and `HF_HUB_OFFLINE` apply as they do for any hub library. The release's
generators know their tokenizer (`paired_tokenizer`): L/XL/XXL at 256 px with 24-bit codes use
`bae_d24`, XXL-d32 uses `bae_d32`, the 512 px L-d32 uses `bae_d32_512`.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

PREFIX = "hf://"
RELEASE_REPO = "haoosz/BiGR"
_BAE_D24 = "bae/bae_d24/binaryae_ema_1000000.th"
# generator file -> the B-AE file it was trained with (the same repository)
RELEASE_TOKENIZERS = {
    "gpt/bigr_L_d24.pt": _BAE_D24,
    "gpt/bigr_XL_d24.pt": _BAE_D24,
    "gpt/bigr_XXL_d24.pt": _BAE_D24,
    "gpt/bigr_XXL_d32.pt": "bae/bae_d32/binaryae_ema_950000.th",
    "gpt/bigr_L_d32_512.pt": "bae/bae_d32_512/binaryae_ema_720000.th",
}
MODEL_FILES = ("config.json", "model.safetensors", "recipe.json")


class HubError(OSError):
    """A hub name that cannot be fetched, with what to do about it."""


@dataclass(frozen=True)
class HubName:
    repo: str  # OWNER/REPO
    path: str  # a file or folder inside it ("" = the repository's root)
    revision: str | None = None

    def __str__(self) -> str:
        rev = f"@{self.revision}" if self.revision else ""
        return f"{PREFIX}{self.repo}{rev}" + (f"/{self.path}" if self.path else "")


def is_hub_name(text: str | Path) -> bool:
    return str(text).startswith(PREFIX)


def parse(text: str) -> HubName:
    """`hf://OWNER/REPO[@REVISION][/PATH]` split into its parts."""
    if not is_hub_name(text):
        raise HubError(f"{text}: a hub name starts with {PREFIX}")
    parts = text[len(PREFIX) :].strip("/").split("/")
    if len(parts) < 2 or not all(parts[:2]) or any(p in ("", ".", "..") for p in parts):
        raise HubError(f"{text}: expected {PREFIX}OWNER/REPO or {PREFIX}OWNER/REPO/PATH")
    name, _, revision = parts[1].partition("@")
    return HubName(f"{parts[0]}/{name}", "/".join(parts[2:]), revision or None)


def cache_dir() -> Path:
    """Where converted release files are kept: `BIGR_CACHE`, else `XDG_CACHE_HOME/bigr`, else
    `~/.cache/bigr`."""
    if os.environ.get("BIGR_CACHE"):
        return Path(os.environ["BIGR_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "bigr"


def _hub():
    try:
        import huggingface_hub
    except ImportError:
        raise HubError(
            "reading hf:// models needs huggingface_hub: pip install huggingface_hub "
            "(or the package's hub extra, pip install -e '.[hub]')"
        ) from None
    return huggingface_hub


def _fetch(name: HubName, call, *args, **kwargs) -> str:
    """A huggingface_hub download, its errors turned into one line saying what to do."""
    hub = _hub()
    errors = hub.errors
    try:
        return call(*args, **kwargs)
    except errors.LocalEntryNotFoundError:
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
        where = hub.constants.HF_HUB_CACHE
        if offline:
            raise HubError(
                f"{name}: not in the Hugging Face cache ({where}) and HF_HUB_OFFLINE is set: "
                "unset HF_HUB_OFFLINE to download it, or set HF_HOME to a cache that holds it"
            ) from None
        raise HubError(
            f"{name}: not in the Hugging Face cache ({where}) and the hub cannot be reached: "
            "connect to the network, or set HF_HOME to a cache that holds it"
        ) from None
    except (errors.RepositoryNotFoundError, errors.RevisionNotFoundError) as err:
        raise HubError(f"{name}: {type(err).__name__}: no such repository or revision") from None
    except errors.EntryNotFoundError:
        raise HubError(f"{name}: the repository has no file {name.path!r}") from None
    except errors.HfHubHTTPError as err:
        raise HubError(f"{name}: {str(err).splitlines()[0]}") from None


def download(text: str) -> Path:
    """The local path of the file `hf://OWNER/REPO/FILE` (downloaded if not cached)."""
    name = parse(text)
    if not name.path:
        raise HubError(f"{text}: name a file inside the repository")
    hub = _hub()
    return Path(_fetch(name, hub.hf_hub_download, name.repo, name.path, revision=name.revision))


def _content_key(file: Path) -> str:
    """The file's content hash: the hub cache names each blob by it (an LFS file's SHA-256);
    a file elsewhere is hashed here."""
    real = Path(os.path.realpath(file))
    if real.parent.name == "blobs":
        return real.name
    digest = hashlib.sha256()
    with open(real, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()


def converted_release_file(text: str) -> Path:
    """A release checkpoint `hf://.../FILE.pt|.th` as a bigr model directory: converted on
    first use into `cache_dir()/converted/`, then reused (keyed by the file's content)."""
    from .official.convert import convert_checkpoint, kind_of

    name = parse(text)
    kind = kind_of(name.path)
    file = download(text)
    key = _content_key(file)
    out = cache_dir() / "converted" / f"{key[:16]}-{Path(name.path).stem}"
    if (out / "config.json").is_file() and (out / "model.safetensors").is_file():
        return out
    extra = {"hub": str(name)}
    paired = paired_tokenizer(text)
    if paired is not None:
        extra["tokenizer"] = paired
    convert_checkpoint(file, kind, out, extra=extra)
    return out


def resolve(text: str) -> Path:
    """A bigr model directory for a hub name (see the module docstring)."""
    name = parse(text)
    if Path(name.path).suffix in (".pt", ".th"):
        return converted_release_file(text)
    hub = _hub()
    prefix = f"{name.path}/" if name.path else ""
    root = _fetch(
        name,
        hub.snapshot_download,
        name.repo,
        revision=name.revision,
        allow_patterns=[prefix + f for f in MODEL_FILES],
    )
    path = Path(root) / name.path
    if not (path / "config.json").is_file():
        raise HubError(
            f"{text}: no config.json there: a release checkpoint is named by its file "
            f"(e.g. {PREFIX}{RELEASE_REPO}/gpt/bigr_L_d24.pt)"
        )
    return path


def paired_tokenizer(text: str) -> str | None:
    """The hub name of the tokenizer a release generator file was trained with, else None."""
    if not is_hub_name(text):
        return None
    name = parse(text)
    tokenizer = RELEASE_TOKENIZERS.get(name.path)
    if tokenizer is None:
        return None
    rev = f"@{name.revision}" if name.revision else ""
    return f"{PREFIX}{name.repo}{rev}/{tokenizer}"
