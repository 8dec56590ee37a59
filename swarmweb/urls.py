from django.contrib import admin
from django.urls import include, path

from peers import views as peer_views
from swarmweb import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics_view, name="metrics"),
    path("beacon/v1/", include("beacon.urls")),
    path("admin/", admin.site.urls),
    path("", peer_views.index, name="index"),
]
