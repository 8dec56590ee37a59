"""The swarm protocol: pure formats and state machines (no Django, no IO).

Inputs are messages and the current time in integer milliseconds; outputs are
messages and timers. The browser peer mirrors this package in ``static/swarm/``
and both are held byte-compatible by the vectors in ``tests/vectors/``.
"""
