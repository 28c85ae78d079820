"""The ``jray`` command line: start, inspect and stop clusters (Ray's ``ray``).

Every subcommand is one ``Command`` in ``COMMANDS`` below, the whole list in
one place: its name, its help line, the function that adds its options and
the function that runs it. They live by concept:

- ``cluster.py``: ``start``, ``stop``, ``status``;
- ``autoscale.py``: ``up``, ``down`` (autoscaling clusters from a config);
- ``state.py``: ``list``, ``summary``, ``memory`` (the state API);
- ``logs.py``: ``logs`` (the nodes' log files, a worker's, a task's);
- ``job.py``: ``job submit|status|logs|stop|delete|list`` (the Jobs SDK);
- ``debug.py``: ``debug`` (pdb on a task paused at ``breakpoint()``);
- ``bench.py``: ``microbenchmark`` (the workloads of ``jray.bench``);

with what they share in ``command.py`` (``Command``, ``CliError``),
``argtypes.py`` (option types), ``connect.py`` (which cluster, one GCS call)
and ``tables.py`` (text output). The console script is ``jray.cli:main``;
``jray.scripts`` re-exports it (``python -m jray.scripts``), as does
``python -m jray.cli``.

Exit codes: 0 success, 1 failure (no cluster, a daemon that did not start),
2 bad usage, as argparse does.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from jray.cli import autoscale, bench, cluster, debug, job, logs, state
from jray.cli.command import CliError, Command, err

COMMANDS: tuple[Command, ...] = (
    Command(
        "start",
        "start a head node, or a node that joins a cluster",
        cluster.configure_start,
        cluster.start,
    ),
    Command(
        "stop", "stop the cluster recorded in the address file", cluster.configure_stop, cluster.stop
    ),
    Command(
        "status",
        "show the nodes, resources and object stores of a cluster",
        cluster.configure_status,
        cluster.status,
    ),
    Command(
        "up",
        "start or update an autoscaling cluster from a cluster config (head, autoscaler, min_workers nodes)",
        autoscale.configure_up,
        autoscale.up,
    ),
    Command(
        "down",
        "stop an autoscaling cluster: its autoscaler, every node it launched, its head",
        autoscale.configure_down,
        autoscale.down,
    ),
    Command(
        "list",
        "list the tasks, actors, objects, nodes, workers or jobs of a cluster",
        state.configure_list,
        state.list_,
    ),
    Command(
        "summary",
        "summarize the tasks of a cluster by function and state",
        state.configure_summary,
        state.summary,
    ),
    Command(
        "memory",
        "objects in the cluster's stores (size, owner, where, pins) and store totals",
        state.configure_memory,
        state.memory,
    ),
    Command(
        "stack",
        "the stack of every worker on this machine, with the task it runs (Ray's `ray stack`)",
        state.configure_stack,
        state.stack,
    ),
    Command(
        "profile",
        "a CPU profile of a task or actor's worker for N seconds (hottest frames, a flame graph SVG)",
        state.configure_profile,
        state.profile,
    ),
    Command(
        "logs",
        "the log files of a node, or the log of a worker, task or actor, tailed or followed (Ray's `ray logs`)",
        logs.configure,
        logs.run,
    ),
    Command(
        "debug",
        "attach pdb to a task paused at breakpoint() anywhere in the cluster (Ray's `ray debug`)",
        debug.configure,
        debug.run,
    ),
    Command(
        "metrics",
        "ray.util.metrics values of every node (table, json or Prometheus text)",
        state.configure_metrics,
        state.metrics,
    ),
    Command(
        "job",
        "submit, follow, stop and list jobs (programs run on the cluster as drivers)",
        job.configure,
        job.run,
    ),
    Command(
        "microbenchmark",
        "run jray's microbenchmark (the jray half of bench/compare.py)",
        bench.configure,
        bench.microbenchmark,
    ),
)


def build_parser() -> argparse.ArgumentParser:
    """The ``jray`` parser: one subparser per entry of ``COMMANDS``."""
    from jray import __version__

    parser = argparse.ArgumentParser(
        prog="jray", description="Start, inspect and stop jray clusters."
    )
    parser.add_argument("--version", action="version", version=f"jray {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for cmd in COMMANDS:
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        cmd.configure(p)
        p.set_defaults(_run=cmd.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``jray ARGV``; the exit code (argparse exits 2 itself on bad usage)."""
    ns = build_parser().parse_args(argv)
    try:
        return int(ns._run(ns))
    except CliError as e:
        err(str(e))
        return 1
    except KeyboardInterrupt:
        return 130


__all__ = ["COMMANDS", "CliError", "Command", "build_parser", "main"]
