"""PeerJS-compatible signaling (DESIGN section 5, docs/signaling.md).

``messages`` (wire frames), ``config``, ``hub`` (the sans-IO protocol core) and
``directory`` (the registry of ids and the queues, in memory) are pure: no Django, no IO.
``redis_directory`` keeps the same directory in Redis so that several web processes share
it; ``node`` and ``asgi`` are the asyncio/ASGI adapters.
"""
