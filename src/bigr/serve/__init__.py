"""`bigr serve`: a local web page for generation and brush-based editing.

Modules:
- `app.py`: the Flask routes, the page (`bigr/web/index.html`) and loading the model pairs;
- `jobs.py`: the server state (model pairs, uploads, jobs) and its worker thread;
- `requests.py`: validating what the page sends (uploads, brush masks, job fields) and the
  data URLs sent back.
"""

from .app import create_app, load_pairs, page
from .jobs import Job, ModelPair, Server

__all__ = ["Job", "ModelPair", "Server", "create_app", "load_pairs", "page"]
