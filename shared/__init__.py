"""Helpers every part of the project may use (the web apps, the super-peer, workers, tests).

Nothing here imports an app (``beacon``, ``ops``, ``page``, ``peers``' subpackages) or the
project wiring (``swarmweb``); ``peers.protocol`` is the one package below it. The import
contracts in pyproject.toml hold that.

- ``atomic``: atomic file replacement;
- ``identity``: Ed25519 keys kept as PEM files;
- ``clock``: the wall clock in protocol milliseconds;
- ``db``: Django database connections that survive a database restart;
- ``redis``: Redis clients that survive a Redis restart or stall;
- ``clientaddr``: the client's address behind trusted proxies, and its network;
- ``fastpath``: what the lean ASGI paths in front of Django share.
"""
