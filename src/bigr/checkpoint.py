"""The package's own checkpoint format: a directory with `config.json` + `model.safetensors`.

Owns atomic writes (a temporary sibling directory renamed into place, so an interrupted save
never leaves a half-written model) and loading without unpickling anything. A name that is not
a local directory is looked up on the Hugging Face hub when `huggingface_hub` is installed
(never in tests). Model classes live in `model.py` and `tokenizer.py`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .config import Config, config_from_json, config_to_json
from .outputs import OutputError, atomic_write, check_replaceable, fsync_tree

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, of another kind, or inconsistent."""


def _default_modes(folder: Path) -> None:
    """Give a model folder made by mkdtemp (0700) and its files the modes a plain mkdir and
    open would: readable by others unless the umask says otherwise."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for f in folder.iterdir():
        f.chmod(0o666 & ~umask)


def save_directory(
    path: str | Path,
    config: Config,
    state_dict: dict[str, torch.Tensor],
    extra: dict | None = None,
    *,
    force: bool = False,
) -> Path:
    """Write config and weights to `path` atomically and durably; returns the path. A folder
    already there is replaced only if it is empty or a model folder (`outputs.check_replaceable`;
    `force` replaces anything)."""
    path = Path(path)
    check_replaceable(path, force=force)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        meta = config_to_json(config)
        if extra:
            meta["extra"] = extra
        (tmp / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
        save_file(
            tensors, str(tmp / WEIGHTS_FILE), metadata={"format": "pt", "bigr_kind": meta["kind"]}
        )
        _default_modes(tmp)
        fsync_tree(tmp)  # a full disk fails here, before the old folder is touched
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except OSError as err:
        if isinstance(err, OutputError):
            raise
        raise OutputError(f"{path}: could not be written ({err.strerror or err})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


# Models shipped inside the package (src/bigr/assets/fashion; see its MODEL_CARD.md).
# The text model keeps its own image autoencoder, so that the class model's can be replaced alone.
EMBEDDED = {
    "bigr:fashion": "model",
    "bigr:fashion-tokenizer": "tokenizer",
    "bigr:fashion-text": "text-model",
    "bigr:fashion-text-autoencoder": "text-autoencoder",
}
EMBEDDED_TOKENIZER = {
    "bigr:fashion": "bigr:fashion-tokenizer",
    "bigr:fashion-text": "bigr:fashion-text-autoencoder",
}
# Earlier names of embedded models, still accepted.
EMBEDDED_ALIASES = {"bigr:fashion-text-tokenizer": "bigr:fashion-text-autoencoder"}


def embedded_path(name: str) -> Path:
    from importlib import resources

    name = EMBEDDED_ALIASES.get(name, name)
    if name not in EMBEDDED:
        raise CheckpointError(f"{name}: no such embedded model; known: {', '.join(EMBEDDED)}")
    path = Path(str(resources.files("bigr") / "assets" / "fashion" / EMBEDDED[name]))
    if not (path / WEIGHTS_FILE).is_file():
        raise CheckpointError(f"{name}: the embedded model is missing from {path}")
    return path


def resolve(path_or_name: str | Path) -> Path:
    """A model directory: a local one, an embedded model (`bigr:fashion`, ...; see
    `EMBEDDED`), a hub name `hf://OWNER/REPO[/PATH]` (a release checkpoint file is converted
    once and cached: `bigr.hub`), or a bare hub repository id in bigr's format."""
    if str(path_or_name).startswith("bigr:"):
        return embedded_path(str(path_or_name))
    if str(path_or_name).startswith("hf://"):
        from .hub import resolve as resolve_hub

        return resolve_hub(str(path_or_name))
    path = Path(path_or_name)
    if path.is_dir():
        return path
    if path.exists():
        raise CheckpointError(
            f"{path} is a file, not a bigr model directory "
            "(official checkpoints are imported with `bigr convert`)"
        )
    text = str(path_or_name)
    if text.count("/") == 1 and not text.startswith((".", "/")):
        try:
            from huggingface_hub import snapshot_download
        except ImportError:
            raise CheckpointError(
                f"{text}: no such directory (install huggingface_hub to fetch hub ids)"
            ) from None
        return Path(snapshot_download(text, allow_patterns=[CONFIG_FILE, WEIGHTS_FILE]))
    raise CheckpointError(f"{text}: no such model directory")


def model_extra(path_or_name: str | Path) -> dict:
    """What a model folder's config.json records besides the config (`extra`: training
    steps, class names, the paired tokenizer, ...); {} when it records nothing readable."""
    try:
        extra = json.loads((resolve(path_or_name) / CONFIG_FILE).read_text()).get("extra", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return extra if isinstance(extra, dict) else {}


def paired_tokenizer(model: str | Path) -> str | None:
    """The tokenizer a generator comes with, if it says: an embedded model's, a release
    generator file's on the hub (`bigr.hub.RELEASE_TOKENIZERS`), a `tokenizer/` folder inside a
    model directory, or the one a (converted) model's config records; else None."""
    text = str(model)
    if text in EMBEDDED_TOKENIZER:
        return EMBEDDED_TOKENIZER[text]
    if text.startswith("hf://"):
        from .hub import paired_tokenizer as hub_pair

        paired = hub_pair(text)
        if paired is not None:
            return paired
    elif text.startswith("bigr:"):
        return None
    elif (Path(text) / "tokenizer").is_dir():
        return str(Path(text) / "tokenizer")
    paired = model_extra(text).get("tokenizer")
    return paired if isinstance(paired, str) else None


def check_device(device: str | torch.device) -> torch.device:
    """`device` as a torch.device, or a ValueError saying why this machine cannot use it."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device {device!r}: {err}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {str(device)!r}: this torch sees no CUDA device "
                f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}); "
                "use device='cpu'"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {str(device)!r}: there are {torch.cuda.device_count()} CUDA devices"
            )
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {str(device)!r}: MPS is not available here; use device='cpu'")
    return dev


def load_directory(
    path_or_name: str | Path, device: str | torch.device = "cpu"
) -> tuple[Config, dict[str, torch.Tensor]]:
    check_device(device)
    path = resolve(path_or_name)
    config_file, weights_file = path / CONFIG_FILE, path / WEIGHTS_FILE
    for f in (config_file, weights_file):
        if not f.is_file():
            raise CheckpointError(f"{path} is not a bigr model directory: {f.name} is missing")
    try:
        data = json.loads(config_file.read_text())
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        config = config_from_json(data)
    except (ValueError, TypeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{config_file}: {err}") from None
    try:
        state = load_file(str(weights_file), device=str(device))
    except Exception as err:  # safetensors raises its own error type, or OSError, or others
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(
            f"{weights_file}: not a readable safetensors file ({reason})"
        ) from None
    check_weights(weights_file, state)
    return config, state


def check_weights(file: Path, state: dict[str, torch.Tensor]) -> None:
    """Every tensor floating point and finite (NaN weights would sample garbage silently)."""
    if not state:
        raise CheckpointError(f"{file}: holds no tensors")
    for name, tensor in state.items():
        if not tensor.is_floating_point():
            raise CheckpointError(f"{file}: tensor {name} has dtype {tensor.dtype}, not a float")
        if not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{file}: tensor {name} holds NaN or infinite values")


# -- training state ----------------------------------------------------------------------------


def save_state(path: str | Path, state: dict) -> Path:
    """Write a resume state (tensors and plain Python values only) atomically and durably; a
    failure (a kill, a full disk) leaves the previous state intact."""
    return atomic_write(path, lambda f: torch.save(state, f))


def load_state(path: str | Path, device: str | torch.device = "cpu") -> dict:
    """Read a resume state without unpickling code."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such training state") from None
    except Exception as err:  # truncated zip, a pickle with code, random bytes, ...
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(
            f"{path}: not a readable training state ({reason[:200]}); move it away to start "
            "the run over"
        ) from None
    if not isinstance(state, dict) or "step" not in state:
        raise CheckpointError(f"{path}: not a bigr training state (no 'step' entry)")
    return state


class EMA:
    """Exponential moving average of a model's parameters, kept in float32.

    As in the release, buffers are not averaged and the average starts as a copy.
    """

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = {n: p.detach().float().clone() for n, p in model.named_parameters()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module, apply: torch.Tensor | None = None) -> None:
        """Move the average toward the weights; with `apply` (a 0-dim bool tensor on the
        weights' device), only where it is true, decided on the device (no host read)."""
        weight = 1.0 - self.decay
        if apply is not None:
            weight = apply.float() * weight
        for name, param in model.named_parameters():
            self.shadow[name].lerp_(param.detach().float(), weight)

    @torch.no_grad()
    def copy_to(self, model: torch.nn.Module) -> None:
        for name, param in model.named_parameters():
            param.copy_(self.shadow[name].to(param.dtype))

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Full tensors. Under FSDP this gathers the shards: call it on every rank."""
        return {n: _full(t) for n, t in self.shadow.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = set(self.shadow) - set(state)
        if missing:
            raise CheckpointError(f"EMA state lacks {sorted(missing)[:3]}")
        for name in self.shadow:
            self.shadow[name].copy_(state[name])

    @torch.no_grad()
    def shard_like(self, model: torch.nn.Module) -> None:
        """After FSDP has sharded `model`, shard the average the same way (from full tensors)."""
        from torch.distributed.tensor import DTensor, distribute_tensor

        for name, param in model.named_parameters():
            if isinstance(param, DTensor) and not isinstance(self.shadow[name], DTensor):
                self.shadow[name] = distribute_tensor(
                    self.shadow[name].to(param.device), param.device_mesh, param.placements
                )


def _full(tensor: torch.Tensor) -> torch.Tensor:
    full_tensor = getattr(tensor, "full_tensor", None)  # a DTensor shard: gather it
    return full_tensor() if full_tensor is not None else tensor


def weights_fingerprint(*modules: torch.nn.Module) -> str:
    """A short hash of the modules' weights as they compute (float32), so a float16 export and
    the same export loaded again agree, and any changed weight does not."""
    digest = hashlib.sha256()
    for module in modules:
        for name, tensor in sorted(module.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]
