from django.urls import path

from . import capsule_views

app_name = "capsules"

# keys.json first: a community named "keys" has no capsule (beacon.capsules.RESERVED_NAMES).
urlpatterns = [
    path("keys.json", capsule_views.keys, name="keys"),
    path("<str:community>.json", capsule_views.capsule, name="capsule"),
]
