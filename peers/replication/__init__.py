"""Replication orchestrator: keeps every manifest at its redundancy target (docs/replication.md)."""
