"""The sampler screen on a tiny random model: every candidate sampled, scored and timed, the
table written, an interrupted screen resumed from its FIDs, the test split refused."""

import json

import pytest

from bigr.config import PRESETS
from bigr.model import save_tokenizer
from bigr.tokenizer import BinaryAutoencoder
from experiments.fashion import sampler_screen
from helpers import class_image_folder


def test_screen_measures_every_candidate_and_resumes(random_bigr, tmp_path, monkeypatch):
    model = random_bigr.save_pretrained(tmp_path / "model")
    tokenizer = save_tokenizer(BinaryAutoencoder(PRESETS["bae-tiny"]), tmp_path / "tok")
    ref = class_image_folder(tmp_path / "ref", per_class=4, classes=2, size=16)
    out = tmp_path / "screen"
    argv = [
        "--out", str(out), "--model", str(model), "--tokenizer", str(tokenizer),
        "--ref", str(ref), "--num", "8", "--batch-size", "4", "--timing-batch", "2",
        "--repeats", "1", "--features", "pixels",
        "plain=release,steps=3,head_steps=2",
        "kept=release,steps=3,head_steps=2,kv_refresh=2",
        "revised=release,steps=3,head_steps=2,revise=2",
    ]  # fmt: skip
    assert sampler_screen.main(argv) == 0
    result = json.loads((out / "screen.json").read_text())
    assert [r["name"] for r in result["rows"]] == ["plain", "kept", "revised"]
    assert result["rows"][1]["changes"] == {"steps": 3, "head_steps": 2, "kv_refresh": 2}
    assert all(r["seconds_per_image"] > 0 and r["fid"] >= 0 for r in result["rows"])
    assert (
        "| kept | `release`: steps 3, head_steps 2, kv_refresh 2 |"
        in (out / "screen.md").read_text()
    )
    assert (out / "screen.png").stat().st_size > 0
    # a second run re-times but reuses every FID (no sampling)
    runs = []
    monkeypatch.setattr(sampler_screen.subprocess, "run", lambda *a, **k: runs.append(a))
    assert sampler_screen.main(argv) == 0 and runs == []

    # a kept FID of another sample count is not reused: that candidate is measured again
    def measured(*a, **k):
        raise RuntimeError("measured again")

    monkeypatch.setattr(sampler_screen.subprocess, "run", measured)
    larger = [*argv[: argv.index("--num") + 1], "16", *argv[argv.index("--num") + 2 :]]
    with pytest.raises(RuntimeError, match="measured again"):
        sampler_screen.main(larger)


def test_screen_refuses_the_test_split_and_unknown_options(tmp_path, capsys):
    with pytest.raises(SystemExit):
        sampler_screen.main(["--out", str(tmp_path), "--ref", "fashion-mnist:test"])
    assert "not the test split" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        sampler_screen.main(["--out", str(tmp_path), "bad=release,spiral=1"])
    assert "'spiral' is not a sampler option" in capsys.readouterr().err


def test_the_screen_names_turbo_and_refined_by_their_rules():
    def row(name, seconds, fid):
        return {"name": name, "seconds_per_image": seconds, "fid": fid}

    rows = [
        row("release", 1.0, 40.0),
        row("recommended", 0.5, 35.0),
        row("fastest", 0.05, 41.0),  # faster, but worse than the release's recipe
        row("quick", 0.08, 39.0),
        row("slow-best", 0.6, 30.0),  # best, but slower than recommended
        row("good", 0.3, 33.0),
    ]
    chosen = sampler_screen.choose(rows)
    assert chosen["turbo"]["name"] == "quick" and chosen["refined"]["name"] == "good"
    with pytest.raises(ValueError, match="release"):
        sampler_screen.choose(rows[1:])
    slow_and_worse = [*rows[:2], row("slow-worse", 0.9, 50.0)]
    assert sampler_screen.choose(slow_and_worse) == {}  # nothing qualifies: nothing named


def test_the_screen_writes_the_named_recipes_with_their_evidence(random_bigr, tmp_path):
    from bigr.recipes import model_selections, recipe

    model = random_bigr.save_pretrained(tmp_path / "model")
    tokenizer = save_tokenizer(BinaryAutoencoder(PRESETS["bae-tiny"]), tmp_path / "tok")
    ref = class_image_folder(tmp_path / "ref", per_class=4, classes=2, size=16)
    argv = [
        "--out", str(tmp_path / "screen"), "--model", str(model), "--tokenizer",
        str(tokenizer), "--ref", str(ref), "--num", "8", "--batch-size", "4",
        "--timing-batch", "2", "--repeats", "1", "--features", "pixels", "--write", str(model),
        "release=release,steps=3,head_steps=2",
        "recommended=release,steps=8,head_steps=8",
        "twin=release,steps=3,head_steps=2",  # the release's samples: its FID, so turbo
        "quick=release,steps=2,head_steps=2,kv_refresh=2",  # far less work than recommended
    ]  # fmt: skip
    assert sampler_screen.main(argv) == 0
    rows = json.loads((tmp_path / "screen" / "screen.json").read_text())["rows"]
    chosen = sampler_screen.choose(rows)
    assert set(chosen) == {"turbo", "refined"}
    for name in ("turbo", "refined"):
        row = chosen[name]
        expected = sampler_screen.Candidate(row["name"], "release", row["changes"]).sampler(model)
        assert recipe(name, model) == expected
        assert model_selections(model)[name]["candidate"] == row["name"]
        assert model_selections(model)[name]["fid"] == row["fid"]
        assert model_selections(model)[name]["points"] == len(rows)
    assert "`turbo` =" in (tmp_path / "screen" / "screen.md").read_text()


def test_write_needs_the_yardstick_candidates(tmp_path, capsys):
    with pytest.raises(SystemExit):
        sampler_screen.main(["--out", str(tmp_path), "--write", str(tmp_path), "a=fast"])
    assert "release and recommended" in capsys.readouterr().err


def test_a_larger_screen_reuses_timings_and_names_only_the_chosen_rule(random_bigr, tmp_path):
    from bigr.recipes import model_selections, recipe

    model = random_bigr.save_pretrained(tmp_path / "model")
    tokenizer = save_tokenizer(BinaryAutoencoder(PRESETS["bae-tiny"]), tmp_path / "tok")
    ref = class_image_folder(tmp_path / "ref", per_class=4, classes=2, size=16)
    common = [
        "--model", str(model), "--tokenizer", str(tokenizer), "--ref", str(ref),
        "--batch-size", "4", "--features", "pixels",
    ]  # fmt: skip
    candidates = ["release=release,steps=3,head_steps=2", "twin=release,steps=3,head_steps=2"]
    timed = tmp_path / "timed"
    first = [*common, "--out", str(timed), "--num", "4", "--timing-batch", "2", "--repeats", "1"]
    assert sampler_screen.main([*first, *candidates]) == 0
    earlier = json.loads((timed / "screen.json").read_text())
    larger = tmp_path / "larger"
    argv = [
        *common,
        "--out",
        str(larger),
        "--num",
        "8",
        "--timings-from",
        str(timed / "screen.json"),
    ]
    argv += ["--write", str(model), "--rules", "turbo", "--seed", "1"]
    assert sampler_screen.main([*argv, *candidates]) == 0
    result = json.loads((larger / "screen.json").read_text())
    # the timings are the earlier screen's, the FIDs this screen's own
    assert [r["seconds_per_image"] for r in result["rows"]] == [
        r["seconds_per_image"] for r in earlier["rows"]
    ]
    assert result["timings_from"] == str(timed / "screen.json") and result["num"] == 8
    assert "read from the earlier screen" in (larger / "screen.md").read_text()
    # only turbo was asked for: refined is neither required (no `recommended`) nor written
    selections = model_selections(model)
    assert selections["turbo"]["candidate"] == "twin" and "refined" not in selections
    assert selections["turbo"]["samples_per_point"] == 8
    assert recipe("turbo", model).steps == 3
    # a candidate the earlier screen did not time is refused before any work
    with pytest.raises(SystemExit):
        sampler_screen.main([*argv, *candidates, "new=release,steps=2,head_steps=2"])
