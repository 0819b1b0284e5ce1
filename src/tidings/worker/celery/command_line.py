"""Only for Celery's own command line, e.g.

    celery -A tidings.worker.celery.command_line inspect ping

Celery finds an app as a module attribute, so importing this module builds `app` once from
the environment (the same `TIDINGS_*` variables as `tidings worker`). That is why nothing in
tidings imports it: the rest of the package builds its apps with `create_celery(settings)`.
"""

from __future__ import annotations

from tidings.config import load_settings
from tidings.worker.celery.config import create_celery

__all__ = ["app"]

app = create_celery(load_settings())
