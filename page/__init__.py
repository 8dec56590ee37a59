"""The browser peer's page: ``/`` and share links ``/f/<manifest id>``, with the page's
configuration (beacons, capsules and their pinned keys, signaling, ICE, mesh) and the
``modulepreload`` list of its ES modules. Templates in ``templates/swarm/``, modules in
``static/swarm/``."""
