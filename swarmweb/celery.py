"""The Celery app: Redis broker with REDIS_URL, kombu's filesystem transport without."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "swarmweb.settings")

app = Celery("swarmweb")
# The app that ``celery.app.default_app`` is, whatever other app a process (a test) makes
# later: the apps send tasks through it (ops.enqueue) without importing the project.
app.set_default()
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
