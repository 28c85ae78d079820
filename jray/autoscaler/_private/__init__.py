"""The autoscaler's parts, by concept:

- ``config.py``: cluster configs (Ray's format), validated, with defaults;
- ``resource_demand_scheduler.py``: which node types to launch for the
  demand (pure bin-packing);
- ``autoscaler.py``: ``StandardAutoscaler``, one update step: pair provider
  nodes with the GCS's, launch, terminate idle or lost nodes, back off after
  failed launches;
- ``monitor.py``: the process that runs the updates against the GCS and
  publishes what it decided (``python -m jray.autoscaler._private.monitor``);
- ``providers.py``: the registry of node providers (``local.py``: processes
  on this machine; ``slurm.py``: SLURM jobs);
- ``commands.py``: ``jray up`` / ``jray down`` (and the SDK's
  ``create_or_update_cluster`` / ``teardown_cluster``).
"""
