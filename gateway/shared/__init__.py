"""State shared by several gateway instances through Redis: membership, one leader, summed stats, pokes,
and the endpoints of replicas only the leader runs (the local backend)."""
