import numpy as np
import pytest
import torch
from PIL import Image

from bigr.data.images import (
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


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path):
    import numpy as np

    arr = np.full((8, 8), 32768, dtype=np.uint16)  # half of the 16-bit range
    Image.fromarray(arr).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    image = load_image(tmp_path / "g16.png", 8)
    assert torch.allclose(image, torch.full_like(image, 128 / 255))


def test_transparent_pixels_are_composited_on_white(tmp_path):
    rgba = Image.new("RGBA", (8, 8), (255, 0, 0, 0))  # fully transparent red
    rgba.paste((0, 0, 255, 255), (0, 0, 4, 8))  # opaque blue left half
    rgba.save(tmp_path / "a.png")
    image = load_image(tmp_path / "a.png", 8)
    assert torch.equal(
        image[:, :, :4], torch.tensor([0.0, 0.0, 1.0])[:, None, None].expand(3, 8, 4)
    )
    assert torch.equal(image[:, :, 4:], torch.ones(3, 8, 4))


def test_images_over_the_pixel_limit_are_refused_before_decoding(tmp_path, monkeypatch):
    import bigr.data.images

    Image.new("RGB", (20, 20)).save(tmp_path / "big.png")
    monkeypatch.setattr(bigr.data.images, "MAX_PIXELS", 399)
    with pytest.raises(ImageError, match="20x20 pixels is over the limit of 399"):
        load_image(tmp_path / "big.png", 8)


def test_a_failed_write_keeps_the_earlier_file(tmp_path, monkeypatch):
    import bigr.data.images

    target = tmp_path / "out.png"
    save_image(torch.zeros(3, 4, 4), target)
    before = target.read_bytes()

    def broken(image):
        raise OSError("disk full")

    monkeypatch.setattr(bigr.data.images, "to_pil", broken)
    with pytest.raises(OSError, match="disk full"):
        save_image(torch.ones(3, 4, 4), target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]  # no temporary left behind


def _square() -> np.ndarray:
    inside = np.zeros((16, 16), dtype=bool)
    inside[4:12, 4:12] = True
    return inside


def _mask_files(tmp_path) -> dict[str, tuple[object, np.ndarray]]:
    """name -> (PIL image, the region it must select) for every mode a mask may come in."""
    sq = _square()
    grey = (sq * 255).astype(np.uint8)
    right = np.zeros((16, 16), dtype=bool)
    right[:, 8:] = True
    rgba_mixed = np.zeros((16, 16, 4), np.uint8)
    rgba_mixed[..., :3] = grey[..., None]  # white square on black...
    rgba_mixed[..., 3] = right * 255  # ... but only the right half is visible
    white_sheet = np.full((16, 16, 4), 255, np.uint8)
    white_sheet[..., 3] = grey  # white brush, hidden colour white too
    black_brush = np.zeros((16, 16, 4), np.uint8)
    black_brush[..., 3] = grey  # black brush on a transparent sheet
    la = np.stack([np.full((16, 16), 200, np.uint8), grey], -1)
    palette = Image.fromarray(sq.astype(np.uint8), mode="P")
    palette.putpalette([0, 0, 0, 255, 255, 255])
    transparent = palette.copy()
    transparent.info["transparency"] = 0  # index 0 (outside) transparent
    return {
        "L": (Image.fromarray(grey, mode="L"), sq),
        "RGB": (Image.fromarray(np.repeat(grey[..., None], 3, -1), mode="RGB"), sq),
        "16-bit": (Image.fromarray((sq * 65535).astype(np.uint16)), sq),
        "P": (palette, sq),
        "P with a transparent entry": (transparent, sq),
        "LA, one colour": (Image.fromarray(la, mode="LA"), sq),
        "RGBA, white brush": (Image.fromarray(white_sheet, mode="RGBA"), sq),
        "RGBA, black brush": (Image.fromarray(black_brush, mode="RGBA"), sq),
        "RGBA, colours and alpha": (Image.fromarray(rgba_mixed, mode="RGBA"), sq & right),
    }


def test_masks_of_every_mode_follow_one_rule(tmp_path):
    for name, (image, expected) in _mask_files(tmp_path).items():
        path = tmp_path / f"{name}.png"
        image.save(path)
        got = load_mask(path, 16).numpy()
        assert got.dtype == bool and (got == expected).all(), name
