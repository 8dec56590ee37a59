from django.contrib import admin
from django.urls import include, path

from beacon import dashboard
from peers import views as peer_views
from swarmweb import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics_view, name="metrics"),
    path("beacon/v1/", include("beacon.urls")),
    path("capsules/", include("beacon.capsule_urls")),
    path("admin/dashboard/", include(dashboard.urlpatterns)),
    path("admin/", admin.site.urls),
    path("f/<str:manifest_id>", peer_views.share, name="share"),
    path("", peer_views.index, name="index"),
]
