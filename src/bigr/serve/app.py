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

Only requests addressed to an allowed host name are served (`localhost`, `127.0.0.1`, `::1`
and any `--allow-host`), so a page on another site cannot reach the API through a DNS name
rebound to this machine; a POST whose `Origin` (or `Sec-Fetch-Site`) says it comes from another
site is refused, and job requests must be JSON.

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
from .requests import MAX_JSON_BYTES, MAX_UPLOAD_BYTES, OPERATIONS, RequestError, parse_json

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


def host_name(host: str) -> str:
    """The name part of a Host header or an origin's netloc (port and IPv6 brackets removed)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def cross_site(headers, host: str) -> str | None:
    """Why a state-changing request is refused as coming from another site (None: allowed):
    its `Origin` names another host and port than the `Host` it was sent to, or the browser's
    `Sec-Fetch-Site` says it is cross-site."""
    from urllib.parse import urlsplit

    origin = headers.get("Origin")
    if origin is not None:
        if origin == "null" or urlsplit(origin).netloc.lower() != host.lower():
            return f"requests from another origin ({origin}) are refused"
        return None
    site = headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return f"requests from another site (Sec-Fetch-Site: {site}) are refused"
    return None


__all__ = ["Job", "ModelPair", "Server", "create_app", "load_pairs", "page"]


def page() -> str:
    return (resources.files("bigr") / "web" / "index.html").read_text()


def _too_large(path: str) -> str:
    if path == "/api/upload":
        return f"the upload is larger than {MAX_UPLOAD_BYTES} bytes"
    return f"the request is larger than {MAX_JSON_BYTES} bytes"


def create_app(server: Server, allowed_hosts: tuple[str, ...] = ()):
    """The Flask app over `server`; `allowed_hosts` adds host names to the local ones."""
    from flask import Flask, jsonify, request
    from werkzeug.exceptions import HTTPException

    app = Flask("bigr")
    app.config["MAX_CONTENT_LENGTH"] = max(MAX_UPLOAD_BYTES, MAX_JSON_BYTES) + 64 * 1024
    hosts = {host_name(h) for h in (*LOCAL_HOSTS, *allowed_hosts)}

    @app.before_request
    def guard():
        name = host_name(request.host)
        if name not in hosts:
            message = f"host {name!r} is not served; start bigr serve with --allow-host {name}"
            return jsonify(error=message), 403
        if request.method == "POST":
            refused = cross_site(request.headers, request.host)
            if refused:
                return jsonify(error=refused), 403

    @app.errorhandler(RequestError)
    def bad_request(error):
        return jsonify(error=str(error)), 400

    @app.errorhandler(HTTPException)
    def http_error(error):
        message = error.description
        if error.code == 413:
            message = _too_large(request.path)
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
        if (request.content_length or 0) > MAX_UPLOAD_BYTES + 64 * 1024:  # before reading it
            return jsonify(error=_too_large(request.path)), 413
        file = request.files.get("image")
        if file is None:
            raise RequestError("no file in the form field 'image'")
        return jsonify(server.upload(file.read(), request.form.get("model")))

    @app.post("/api/jobs")
    def submit():
        if request.mimetype != "application/json":
            raise RequestError("send the job as JSON (Content-Type: application/json)")
        return jsonify(server.submit(parse_json(request.get_data(cache=False))))

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
