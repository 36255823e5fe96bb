import json
import shutil

import torch

from bigr.official.parity import run_parity


def test_tiny_bigr_reference_is_reproduced(reference_dir):
    rows = run_parity(reference_dir / "tiny" / "tiny_reference.json")
    failed = [(r.name, r.note, r.max_abs_error) for r in rows if not r.passed]
    assert not failed
    checked = {r.name for r in rows if r.role == "checked"}
    # the sampled runs are part of what is checked, bit for bit
    assert {
        "gen.tokens",
        "inpaint.tokens",
        "dec.probs",
        "train_fwd.loss",
        "fwd.cond_features",
    } <= checked


def test_tiny_tokenizer_reference_is_reproduced(reference_dir):
    rows = run_parity(reference_dir / "tiny_bae" / "tiny_bae_reference.json")
    assert not [(r.name, r.note) for r in rows if not r.passed]
    assert {"encode.binary", "e2e.image", "gen.block16"} <= {
        r.name for r in rows if r.role == "checked"
    }


def test_a_perturbed_checkpoint_or_unknown_entry_fails(reference_dir, tmp_path):
    work = tmp_path / "tiny"
    shutil.copytree(reference_dir / "tiny", work)
    ckpt = torch.load(work / "tiny_bigr_ckpt.pt", weights_only=True)
    ckpt["ema"]["layers.1.ffn_norm.weight"] = ckpt["ema"]["layers.1.ffn_norm.weight"] * 1.001
    torch.save(ckpt, work / "tiny_bigr_ckpt.pt")
    meta = json.loads((work / "tiny_reference.json").read_text())
    ref = torch.load(work / "tiny_reference.pt", weights_only=True)
    meta["tensors"]["mystery.tensor"] = {"shape": [1], "dtype": "float32", "description": "?"}
    ref["mystery.tensor"] = torch.zeros(1)
    (work / "tiny_reference.json").write_text(json.dumps(meta))
    torch.save(ref, work / "tiny_reference.pt")
    rows = {r.name: r for r in run_parity(work / "tiny_reference.json")}
    assert not rows["fwd.layer1.out"].passed and rows["fwd.layer0.out"].passed
    assert not rows["mystery.tensor"].passed and rows["mystery.tensor"].note == "not produced"
