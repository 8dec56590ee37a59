from django.urls import path

from . import views

app_name = "beacon"

# announce and peers are served by beacon.asgi.BeaconApp before Django sees them.
urlpatterns = [
    path("openapi.json", views.openapi, name="openapi"),
]
