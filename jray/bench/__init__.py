"""The benchmark suite: the same workloads on Ray and on jray, and the report.

All benchmark code lives here, in the installed package, because ``jray
microbenchmark`` (``jray/cli/bench.py``, Ray has ``ray microbenchmark``)
runs the workloads in-process and must find them without a checkout:

- ``workloads.py``: the workloads, the metrics and ``run_all``;
- ``clusters.py``: the workloads that start a cluster of their own with the
  runtime's CLI (``runtime_env``, ``client``), loaded by ``workloads.py``;
- ``coldstart.py``: import, ``init``, first task and idle memory of a
  runtime, run as a script in a fresh interpreter;
- ``report.py``: ratios jray/Ray, targets, the Markdown report;
- ``runner.py``: the side-by-side run, each runtime in a child process
  (``bench/run.py``, ``bench/compare.py``);
- ``network.py``: between machines on one box (``bench/network.py``, root
  only): transfers, the raw link, the receiving node's memory and remote
  tasks on two virtual hosts; run with jray's interpreter (its ``run``
  imports jray's ``virtual_hosts``), each runtime started with its CLI.

The repository's ``bench/`` holds what is not code: the README, the latest
results, the script that builds Ray's virtualenv, and two thin entry scripts
(``python bench/run.py``, ``python bench/compare.py``) that load
``runner.py`` from here. The side-by-side run needs a checkout anyway
(``.venv-ray/``, ``bench/out/``), so its commands stay where the README and
the results are.

None of these modules imports jray, or anything but the standard library at
module level, and this ``__init__`` imports nothing: the Ray child runs
``runner.py`` by file path inside a virtualenv that has Ray and numpy but no
jray, and the siblings are loaded by file path there too.
"""
