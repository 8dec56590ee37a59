"""The Celery app: Redis broker with REDIS_URL, kombu's filesystem transport without."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "swarmweb.settings")

app = Celery("swarmweb")
# The current app in every thread (Celery makes its first app the default; said here so
# that nothing depends on it by accident): apps send tasks through ``celery.current_app``
# (ops.enqueue), from whatever thread commits (sync_to_async's, the metrics flusher...).
app.set_default()
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
