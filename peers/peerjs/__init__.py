"""A Python PeerJS client: signaling (sans-IO core + asyncio adapter), DataConnections on aiortc.

Free of Django: settings reach it as plain values (see :mod:`peers.peerjs.ice`).
"""
