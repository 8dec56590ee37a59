"""The always-on super-peer: a swarm member on aiortc that holds and serves content.

``python manage.py superpeer`` runs :class:`peers.superpeer.service.SuperPeerService`
(docs/superpeer.md). The pieces below it are small and mostly pure: the chunk store on
disk, the holdings index (quota, eviction), the fair upload scheduler, the download core.
"""
