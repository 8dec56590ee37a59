"""ASGI entry point: HTTP through Django, WebSockets through Channels routing.

daphne imports this module before it builds its server, which is where the
connection-level limits are installed (swarmweb/connlimits.py).
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "swarmweb.settings")

from django.core.asgi import get_asgi_application

django_http = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from beacon import presence  # noqa: E402
from beacon.asgi import BeaconApp  # noqa: E402
from peers.signaling.asgi import Departures, SignalHttpApp  # noqa: E402
from shared.clientaddr import ClientAddressMiddleware  # noqa: E402
from swarmweb import connlimits  # noqa: E402
from swarmweb.routing import websocket_urlpatterns  # noqa: E402
from swarmweb.static_handler import static_app  # noqa: E402

connlimits.install()
# The beacon skips the tickets of peers signaling saw leave (beacon/presence.py).
presence.set_departures(Departures())

# The client address is resolved first (trusted proxies only), so every limit below sees it.
application = ClientAddressMiddleware(
    ProtocolTypeRouter(
        {
            "http": BeaconApp(SignalHttpApp(static_app(django_http))),
            "websocket": URLRouter(websocket_urlpatterns),
        }
    )
)

if os.environ.get("SWARM_GC_FREEZE", "1") == "1":
    import gc

    # Everything loaded so far lives as long as the process: keep it out of the cyclic
    # collector, so full collections (latency spikes under load) scan only request garbage.
    gc.collect()
    gc.freeze()
