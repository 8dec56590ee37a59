"""The swarm: ``protocol/`` (pure formats and state machines), ``peerjs/`` (a Python PeerJS
client), ``signaling/`` (the PeerJS-compatible signaling server), and the Django apps
``superpeer/`` and ``replication/``. The package root has no module of its own (README "Map")."""
