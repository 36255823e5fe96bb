"""Bad report options end in one clear line, before any model or data is read."""

import pytest

from experiments.fashion.study.cli import main
from helpers import assert_one_clear_error

CASES = {
    "report unknown section": ("--out {d}/rep --sections nope", "unknown report", False),
    "report unknown order": ("--out {d}/rep --orders entropy,spiral", "spiral", False),
    "report unknown speed recipe": (
        "--out {d}/rep --speed-recipes release,warp",
        "unknown recipe 'warp'",
        False,
    ),
    "report negative gumbel": ("--out {d}/rep --gumbel-sweep 0.1,-1", "-1", False),
    "report empty sweep item": ("--out {d}/rep --steps-sweep 4,,8", "comma list", False),
    "report seeds 0": ("--out {d}/rep --seeds 0", "--seeds", False),
    "report select on test": (
        "--out {d}/rep --selection-data fashion-mnist:test",
        "the --reference",
        False,
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_report_options_fail_with_one_clear_line(case, tmp_path, capsys):
    line, message, _ = CASES[case]
    argv = line.format(d=tmp_path).split()
    assert_one_clear_error(argv, message, tmp_path / "out.png", capsys, add_out=False, main=main)
