"""`bigr serve`: a local web page for generation and brush-based editing.

A small Flask application (bound to 127.0.0.1 by default) serving one page (`web/index.html`)
and a JSON API:

- `GET  /api/models`            the loaded model pairs (name, classes, image size, class names)
- `POST /api/upload`            an image file -> its id and the model-size crop (data URL);
                                validated by decoding it (PNG, JPEG, WebP, BMP, GIF), by byte
                                size and by dimensions, with a one-line JSON error otherwise
- `POST /api/jobs`              start generation or an app (sample, inpaint, outpaint, edit,
                                interpolate, enrich) with the sampler's options -> job id
- `GET  /api/jobs/<id>`         progress (done / total), then the result images (data URLs),
                                the cropped input and the mask actually used

This module owns the routes and loading the model pairs; the jobs and their worker thread are
`jobs.py`, the validation of what the page sends is `requests.py`.
"""

from __future__ import annotations

import dataclasses
from importlib import resources
from pathlib import Path

from ..classes import class_names
from ..model import BiGR, load_tokenizer
from ..recipes import recipe
from ..sampler_plan import ORDERS
from .jobs import Job, ModelPair, Server
from .requests import MAX_UPLOAD_BYTES, OPERATIONS, RequestError

__all__ = ["Job", "ModelPair", "Server", "create_app", "load_pairs", "page"]


def page() -> str:
    return (resources.files("bigr") / "web" / "index.html").read_text()


def create_app(server: Server):
    from flask import Flask, jsonify, request
    from werkzeug.exceptions import HTTPException

    app = Flask("bigr")
    app.config["MAX_CONTENT_LENGTH"] = MAX_UPLOAD_BYTES + 64 * 1024

    @app.errorhandler(RequestError)
    def bad_request(error):
        return jsonify(error=str(error)), 400

    @app.errorhandler(HTTPException)
    def http_error(error):
        message = error.description
        if error.code == 413:
            message = f"the upload is larger than {MAX_UPLOAD_BYTES} bytes"
        return jsonify(error=message), error.code

    @app.get("/")
    def index():
        return page(), 200, {"Content-Type": "text/html; charset=utf-8"}

    @app.get("/api/models")
    def models():
        return jsonify(
            models=[p.describe() for p in server.pairs.values()],
            operations=list(OPERATIONS),
            orders=list(ORDERS),
            defaults=dataclasses.asdict(next(iter(server.pairs.values())).recipe),
        )

    @app.post("/api/upload")
    def upload():
        file = request.files.get("image")
        if file is None:
            raise RequestError("no file in the form field 'image'")
        return jsonify(server.upload(file.read(), request.form.get("model")))

    @app.post("/api/jobs")
    def submit():
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise RequestError("the request body must be a JSON object")
        return jsonify(server.submit(body))

    @app.get("/api/jobs/<job_id>")
    def job(job_id: str):
        try:
            return jsonify(server.job(job_id))
        except KeyError:
            return jsonify(error=f"no job {job_id}"), 404

    return app


def load_pairs(specs: list[tuple[str, str | None]], device: str = "cpu") -> list[ModelPair]:
    """(model dir, tokenizer dir or None) pairs; none given: the embedded demo models."""
    from ..apps.common import check_pair

    if not specs:
        from ..demo import embedded_pairs

        return [ModelPair(*pair) for pair in embedded_pairs(device)]
    pairs = []
    for model_dir, tok_dir in specs:
        model = BiGR.from_pretrained(model_dir, device=device).eval()
        tok_path = tok_dir or Path(model_dir) / "tokenizer"
        tok = load_tokenizer(tok_path, device=device).eval()
        check_pair(model, tok)
        pairs.append(
            ModelPair(
                Path(model_dir).name,
                model,
                tok,
                class_names(model_dir),
                recipe("recommended", model_dir),
            )
        )
    return pairs
