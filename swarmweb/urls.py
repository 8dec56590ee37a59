from django.contrib import admin
from django.urls import include, path

from beacon import dashboard as beacon_dashboard
from beacon import health as beacon_health
from ops import dashboard, views
from page import turn as page_turn
from page import views as page_views
from peers.signaling import asgi as signaling

# What the lean ASGI paths experience, outside Django's request handling.
healthz = views.healthz_view([("beacon", beacon_health.check), ("signaling", signaling.check)])

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("metrics", views.metrics_view, name="metrics"),
    path("beacon/v1/", include("beacon.urls")),
    path("capsules/", include("beacon.capsule_urls")),
    path("admin/dashboard/", include(dashboard.urlpatterns)),
    path("admin/dashboard/", include(beacon_dashboard.urlpatterns)),
    path("admin/", admin.site.urls),
    path("turn/credentials", page_turn.credentials_view, name="turn_credentials"),
    path("sw.js", page_views.service_worker, name="service_worker"),
    path("f/<str:manifest_id>", page_views.share, name="share"),
    path("", page_views.index, name="index"),
]
