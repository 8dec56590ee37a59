"""The Celery app: Redis broker with REDIS_URL, kombu's filesystem transport without."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "swarmweb.settings")

app = Celery("swarmweb")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
