"""Release checkpoints named `hf://OWNER/REPO/PATH`, read through the real huggingface_hub
client from a cache laid out as it lays one out, offline (HF_HUB_OFFLINE=1)."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bigr.hub import HubError, paired_tokenizer, parse

pytest.importorskip("huggingface_hub")

REFERENCE = Path(__file__).parent / "data" / "reference"
GENERATOR = "gpt/bigr_L_d24.pt"
TOKENIZER = "bae/bae_d24/binaryae_ema_1000000.th"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def lay_out_hub_cache(hf_home: Path, repo: str, files: dict[str, Path]) -> Path:
    """`HF_HOME/hub/models--OWNER--REPO` as huggingface_hub writes it: content-addressed
    blobs, `refs/main` naming the commit, and `snapshots/COMMIT/PATH` relative symlinks."""
    root = hf_home / "hub" / f"models--{repo.replace('/', '--')}"
    (root / "blobs").mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(COMMIT)
    for path_in_repo, source in files.items():
        data = source.read_bytes()
        blob = root / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = root / "snapshots" / COMMIT / path_in_repo
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    return root


@pytest.fixture
def hub_env(tmp_path):
    """An offline environment whose hub cache holds the tiny official-format checkpoints of
    the reference data under the release's file names."""
    hf_home = tmp_path / "hf"
    lay_out_hub_cache(
        hf_home,
        "haoosz/BiGR",
        {
            GENERATOR: REFERENCE / "tiny" / "tiny_bigr_ckpt.pt",
            TOKENIZER: REFERENCE / "tiny_bae" / "tiny_binaryae_ema.th",
        },
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "BIGR_CACHE"))}
    env |= {"HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "BIGR_CACHE": str(tmp_path / "bc")}
    return env


def _bigr(env, *args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "bigr", *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        cwd=cwd,
    )


def test_one_command_samples_a_release_generator_with_its_own_tokenizer(hub_env, tmp_path):
    out = tmp_path / "x.png"
    model = f"hf://haoosz/BiGR/{GENERATOR}"
    args = ("sample", "--model", model, "--classes", "1,2", "--steps", "2", "--head-steps", "2")
    done = _bigr(hub_env, *args, "--out", out)
    assert done.returncode == 0, done.stderr
    assert out.is_file()
    converted = sorted((tmp_path / "bc" / "converted").iterdir())
    assert [p.name.split("-", 1)[1] for p in converted] == ["binaryae_ema_1000000", "bigr_L_d24"]
    config = json.loads((converted[1] / "config.json").read_text())
    assert config["extra"]["tokenizer"] == f"hf://haoosz/BiGR/{TOKENIZER}"
    # converted once: a second call reuses the converted folders as they are
    stamps = [(p / "model.safetensors").stat().st_mtime_ns for p in converted]
    assert _bigr(hub_env, *args, "--out", tmp_path / "y.png").returncode == 0
    assert [(p / "model.safetensors").stat().st_mtime_ns for p in converted] == stamps


def test_the_hub_conversion_equals_bigr_convert_of_the_local_file(hub_env, tmp_path):
    local = tmp_path / "local"
    source = REFERENCE / "tiny" / "tiny_bigr_ckpt.pt"
    assert _bigr(hub_env, "convert", "bigr", source, "--out", local).returncode == 0
    via_hub = tmp_path / "via-hub"
    done = _bigr(hub_env, "convert", "bigr", f"hf://haoosz/BiGR/{GENERATOR}", "--out", via_hub)
    assert done.returncode == 0, done.stderr
    code = (
        "import sys, torch; from bigr.model import BiGR; "
        "a = BiGR.from_pretrained(sys.argv[1]).state_dict(); "
        "b = BiGR.from_pretrained(sys.argv[2]).state_dict(); "
        "print(all(torch.equal(a[k], b[k]) for k in a) and a.keys() == b.keys())"
    )
    model = f"hf://haoosz/BiGR/{GENERATOR}"
    for other in (via_hub, model):  # the command's output, and the Python API's hub name
        done = subprocess.run(
            [sys.executable, "-c", code, str(local), str(other)],
            env=hub_env,
            capture_output=True,
            text=True,
        )
        assert done.stdout.strip() == "True", done.stderr


def test_an_empty_offline_cache_says_what_to_set(hub_env, tmp_path):
    env = hub_env | {"HF_HOME": str(tmp_path / "empty")}
    model = f"hf://haoosz/BiGR/{GENERATOR}"
    done = _bigr(env, "sample", "--model", model, "--classes", "1", "--out", tmp_path / "z.png")
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "HF_HUB_OFFLINE" in errors[0] and "HF_HOME" in errors[0]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "z.png").exists()


def test_a_file_the_repository_lacks_is_one_clear_line(hub_env, tmp_path):
    model = "hf://haoosz/BiGR/gpt/bigr_M_d99.pt"
    done = _bigr(hub_env, "sample", "--model", model, "--classes", "1", "--out", tmp_path / "z.png")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "bigr_M_d99.pt" in done.stderr


def test_hub_names_parse_and_release_generators_know_their_tokenizer():
    name = parse("hf://haoosz/BiGR@v1/gpt/bigr_XXL_d32.pt")
    assert (name.repo, name.revision, name.path) == ("haoosz/BiGR", "v1", "gpt/bigr_XXL_d32.pt")
    assert str(name) == "hf://haoosz/BiGR@v1/gpt/bigr_XXL_d32.pt"
    assert parse("hf://someone/converted").path == ""
    assert paired_tokenizer("hf://haoosz/BiGR@v1/gpt/bigr_XXL_d32.pt") == (
        "hf://haoosz/BiGR@v1/bae/bae_d32/binaryae_ema_950000.th"
    )
    paired = paired_tokenizer("hf://haoosz/BiGR/gpt/bigr_L_d32_512.pt")
    assert paired.endswith("bae_d32_512/binaryae_ema_720000.th")
    assert paired_tokenizer("hf://someone/converted") is None
    for bad in ("hf://only-owner", "hf://a/b/../c", "hf:///b", "haoosz/BiGR"):
        with pytest.raises(HubError):
            parse(bad)
