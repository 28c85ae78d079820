"""jray: Ray's core API on a real gRPC cluster, built for Jupyter."""
