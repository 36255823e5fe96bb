import json

import pytest
import torch

from bigr.cli import main
from bigr.recipes import (
    RECIPE_FILE,
    RECIPES,
    RecipeError,
    model_recipes,
    model_selections,
    recipe,
    save_recipes,
)
from bigr.sampler import SamplerConfig

OWN = SamplerConfig(steps=3, head_steps=4, guidance=1.5, gumbel=0.2, order="entropy")


@pytest.fixture
def model_dir(tiny_bigr, tiny_tokenizer, tmp_path):
    from bigr.model import save_tokenizer

    out = tmp_path / "m"
    tiny_bigr.save_pretrained(out)
    save_tokenizer(tiny_tokenizer, out / "tokenizer")
    return out


def test_a_models_recipe_file_is_what_recommended_means(model_dir):
    save_recipes(model_dir, {"recommended": OWN}, {"split": "fashion-mnist:val"})
    assert recipe("recommended", model_dir) == OWN
    assert recipe("release", model_dir) == RECIPES["release"]
    assert json.loads((model_dir / RECIPE_FILE).read_text())["selection"]["split"].endswith("val")


def test_selection_records_are_kept_per_recipe_and_an_old_single_one_is_recommendeds(model_dir):
    assert model_selections(model_dir) == {}
    old = {"method": "coordinate-descent sweep", "reference": "fashion-mnist:val"}
    save_recipes(model_dir, {"recommended": OWN}, old)  # the layout before per-recipe records
    assert model_selections(model_dir) == {"recommended": old}
    per_recipe = {"recommended": old, "fast": {"method": "within a budget"}}
    save_recipes(model_dir, {"recommended": OWN, "fast": OWN}, per_recipe)
    assert model_selections(model_dir) == per_recipe
    (model_dir / RECIPE_FILE).write_text(json.dumps({"recipes": {}, "selection": [1]}))
    with pytest.raises(RecipeError, match="selection"):
        model_selections(model_dir)


def test_without_a_recipe_file_recommended_is_the_release(model_dir):
    assert model_recipes(model_dir) == {}
    assert recipe("recommended", model_dir) == RECIPES["release"]
    assert recipe("recommended") == RECIPES["release"]


def test_the_embedded_model_carries_its_recipe():
    own = model_recipes("bigr:fashion")
    assert "recommended" in own
    assert recipe("recommended", "bigr:fashion") == own["recommended"]


@pytest.mark.parametrize(
    "content, message",
    [
        ("not json", "not a readable recipe file"),
        ('{"recipes": []}', "'recipes' object"),
        ('{"recipes": {"recommended": {"stepz": 3}}}', "unknown sampler fields stepz"),
        ('{"recipes": {"recommended": {"steps": "3"}}}', "steps must be a int"),
        ('{"recipes": {"recommended": {"steps": 0}}}', "steps must be in 1..1000"),
        ('{"recipes": {"recommended": {"order": "sideways"}}}', "order must be one of"),
    ],
)
def test_a_bad_recipe_file_is_refused_with_the_reason(model_dir, content, message):
    (model_dir / RECIPE_FILE).write_text(content)
    with pytest.raises(RecipeError, match=message):
        recipe("recommended", model_dir)


def test_unknown_names_list_what_is_known(model_dir):
    save_recipes(model_dir, {"recommended": OWN, "fast": OWN})
    with pytest.raises(RecipeError, match=r"known: .*fast.*release"):
        recipe("fastest", model_dir)
    assert recipe("fast", model_dir) == OWN


def test_sample_starts_from_the_models_recipe_and_flags_override_it(model_dir, tmp_path):
    # The tiny model's recipe uses 3 unmasking steps; the codes a run writes must equal those of
    # sampling with exactly that recipe (and differ from the release's 20 steps).
    save_recipes(model_dir, {"recommended": OWN})
    from bigr.model import BiGR
    from bigr.sampler import sample_codes

    model = BiGR.from_pretrained(model_dir)
    labels = torch.tensor([1, 1])

    def run(*flags: str) -> torch.Tensor:
        out = tmp_path / "codes.pt"
        args = ["sample", "--model", str(model_dir), "--classes", "1", "--num", "2"]
        assert main([*args, "--out", str(tmp_path / "s.png"), "--codes-out", str(out), *flags]) == 0
        return torch.load(out, weights_only=True)

    def expect(config: SamplerConfig) -> torch.Tensor:
        return sample_codes(model, labels, config, generator=torch.Generator().manual_seed(0))

    assert torch.equal(run(), expect(OWN))
    changed = SamplerConfig(**{**OWN.__dict__, "steps": 2})
    assert torch.equal(run("--steps", "2"), expect(changed))
    assert torch.equal(
        run("--recipe", "release", "--head-steps", "4"),
        expect(SamplerConfig(**{**RECIPES["release"].__dict__, "head_steps": 4})),
    )
