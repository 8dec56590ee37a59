from django.apps import AppConfig


class SuperPeerConfig(AppConfig):
    name = "peers.superpeer"
    # The label its tables, content types, admin URLs and migrations were made under,
    # when these models lived in the ``peers`` root: keeping it moves nothing in the
    # database (docs/superpeer.md "Database").
    label = "peers"
    verbose_name = "Super-peers"
