"""jray's autoscaler (Ray's ``ray.autoscaler``): clusters that grow and
shrink with their demand.

- :mod:`jray.autoscaler.sdk`: ``request_resources``,
  ``create_or_update_cluster``, ``teardown_cluster`` (Ray's names);
- :mod:`jray.autoscaler.node_provider`: the interface a node provider
  implements (local processes, SLURM jobs, ...);
- ``jray.autoscaler._private``: the config, the bin-packing, the update
  loop, the monitor process and the providers.
"""
