"""Replication, pure: the planner that keeps every manifest at its redundancy target
(``planner``), its inputs and outputs (``model``), the holdings it counts, the jobs it hands
out, its state and targets, the wire messages between super-peers and the backfill, and the
snapshot that carries its state between backfill runs (docs/replication.md)."""
