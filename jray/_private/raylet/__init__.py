"""The raylet: one per node. Run: ``python -m jray._private.raylet``."""
