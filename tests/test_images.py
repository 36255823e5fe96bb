import pytest
import torch
from PIL import Image

from bigr.images import (
    ImageError,
    center_crop,
    load_image,
    load_mask,
    make_grid,
    save_image,
    to_tensor,
)


def test_center_crop_follows_the_release(tmp_path):
    img = Image.new("RGB", (600, 300), (10, 20, 30))
    img.paste((200, 0, 0), (250, 0, 350, 300))  # a red band in the middle
    out = center_crop(img, 64)
    assert out.size == (64, 64)
    t = to_tensor(out)
    assert t[0, 32, 32] > 0.7 and t[0, 32, 0] < 0.1  # the middle survives, the sides are cut


def test_save_then_load_round_trips(tmp_path):
    x = torch.rand(3, 16, 16)
    path = save_image(x, tmp_path / "a.png")
    y = load_image(path, 16)
    assert torch.allclose(x, y, atol=1 / 255)


def test_masks_are_bright_regions_cropped_like_images(tmp_path):
    m = Image.new("L", (32, 64), 0)
    m.paste(255, (0, 16, 32, 48))
    m.save(tmp_path / "m.png")
    mask = load_mask(tmp_path / "m.png", 32)
    assert mask.shape == (32, 32) and mask.dtype == torch.bool
    assert mask.all()  # the crop keeps exactly the white band
    with pytest.raises(ImageError, match="smaller than"):
        load_mask(tmp_path / "m.png", 64)


def test_unreadable_and_missing_files_raise_image_errors(tmp_path):
    (tmp_path / "bad.png").write_text("not an image")
    with pytest.raises(ImageError, match="cannot read"):
        load_image(tmp_path / "bad.png", 16)
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "nope.png", 16)


def test_grid_layout():
    imgs = torch.zeros(5, 3, 4, 4)
    imgs[4] = 1
    grid = make_grid(imgs, nrow=3, padding=1, pad_value=0.5)
    assert grid.shape == (3, 2 * 5 + 1, 3 * 5 + 1)
    assert grid[0, 7, 7] == 1.0 and grid[0, 0, 0] == 0.5
