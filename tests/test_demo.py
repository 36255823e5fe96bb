import numpy as np
from PIL import Image

from bigr.demo import asset_dir, load_demo_models, run_demo
from bigr.sampler import SamplerConfig


def test_embedded_models_load_as_a_matching_pair():
    model, tokenizer = load_demo_models()
    assert model.config.code_bits == tokenizer.config.code_bits
    assert model.config.grid_size == tokenizer.config.grid_size
    assert (asset_dir() / "MODEL_CARD.md").is_file()


def test_every_embedded_generator_names_a_tokenizer_that_matches_it():
    from bigr.apps.common import check_pair
    from bigr.checkpoint import EMBEDDED, EMBEDDED_TOKENIZER
    from bigr.model import BiGR, load_tokenizer

    assert set(EMBEDDED_TOKENIZER) == {"bigr:fashion", "bigr:fashion-text"}
    assert EMBEDDED_TOKENIZER["bigr:fashion-text"] == "bigr:fashion-text-autoencoder"
    for model_name, tokenizer_name in EMBEDDED_TOKENIZER.items():
        assert tokenizer_name in EMBEDDED
        check_pair(BiGR.from_pretrained(model_name), load_tokenizer(tokenizer_name))


def test_the_text_autoencoder_still_loads_under_its_old_name():
    from bigr.checkpoint import resolve

    old, new = "bigr:fashion-text-tokenizer", "bigr:fashion-text-autoencoder"
    assert resolve(old) == resolve(new)
    assert resolve(new).name == "text-autoencoder"


def test_demo_writes_every_section_and_an_index(tmp_path):
    fast = SamplerConfig(steps=2, head_steps=3, guidance=2.0, gumbel=0.0)
    result = run_demo(tmp_path, per_class=1, sampler=fast, progress=False)
    index = (tmp_path / "index.html").read_text()
    for name in ("classes", "inpaint", "outpaint", "edit", "interpolate", "enrich"):
        path = tmp_path / f"{name}.png"
        assert path.is_file() and f"{name}.png" in index
        pixels = np.asarray(Image.open(path))
        assert pixels.std() > 1  # not a blank image
    assert set(result["seconds"]) >= {"class-conditional grid", "inpainting", "enrichment"}
