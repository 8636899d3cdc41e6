"""The edges: each adapter implements a port or an entry point, and owns one vendor library."""
