"""The Global Control Service (head node only). Run: ``python -m jray._private.gcs``."""
