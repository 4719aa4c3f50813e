"""Backplanes: how the hubs of several nodes share rooms.

Each implements the hub's port, `cursorshare.hub.Backplane`; the single-node default (no other
nodes) is `cursorshare.hub.InMemoryBackplane`. `cursorshare.backplanes.redis` links nodes
through Redis (import it explicitly: only multi-node deployments need redis-py).
"""
