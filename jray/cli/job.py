"""``jray job``: submit, follow, stop and list jobs (Ray's ``ray job``).

    jray job submit [--address A] [--submission-id ID] [--working-dir DIR] [--runtime-env-json JSON]
                    [--entrypoint-num-cpus N] [--entrypoint-num-gpus N] [--entrypoint-resources JSON]
                    [--metadata-json JSON] [--no-wait] -- CMD...
    jray job status ID | logs ID [--follow] | stop ID [--no-wait] | delete ID | list

Without ``--no-wait``, submit follows the job's logs and exits 0 only if
it SUCCEEDED (1 otherwise). The cluster is found as ``jray.init`` finds it
(``--address``: the jobs API ``http://HOST:PORT`` or the GCS ``HOST:PORT``);
everything goes through ``jray.job_submission.JobSubmissionClient``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from jray.cli.command import CliError
from jray.cli.tables import format_table


def _json_arg(what: str) -> Any:
    def parse(text: str) -> Any:
        try:
            v = json.loads(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(f"{what} is not valid JSON: {e}") from None
        if not isinstance(v, dict):
            raise argparse.ArgumentTypeError(f"{what} must be a JSON object")
        return v

    return parse


def configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="job_command", metavar="SUBCOMMAND", required=True)

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        q = sub.add_parser(name, help=help_, description=help_)
        q.add_argument("--address", default=None,
                       help="the jobs API (http://HOST:PORT) or the cluster's GCS (HOST:PORT); default: "
                            "JRAY_ADDRESS, else the address file")
        return q

    s = add("submit", "submit a job: run CMD on the cluster as a driver")
    s.add_argument("--submission-id", "--job-id", dest="submission_id", default=None)
    s.add_argument("--working-dir", default=None, help="a local directory (uploaded) or a package URI")
    s.add_argument("--runtime-env-json", type=_json_arg("--runtime-env-json"), default=None)
    s.add_argument("--metadata-json", type=_json_arg("--metadata-json"), default=None)
    s.add_argument("--entrypoint-num-cpus", type=float, default=None)
    s.add_argument("--entrypoint-num-gpus", type=float, default=None)
    s.add_argument("--entrypoint-memory", type=int, default=None)
    s.add_argument("--entrypoint-resources", type=_json_arg("--entrypoint-resources"), default=None)
    s.add_argument("--no-wait", action="store_true", help="return once submitted, without following its logs")
    s.add_argument("entrypoint", nargs=argparse.REMAINDER, help="-- CMD ARGS...: the command to run")
    q = add("status", "show a job's status")
    q.add_argument("submission_id")
    q = add("logs", "print a job's logs")
    q.add_argument("submission_id")
    q.add_argument("-f", "--follow", action="store_true", help="follow the logs until the job ends")
    q = add("stop", "stop a job (its driver, tasks and actors)")
    q.add_argument("submission_id")
    q.add_argument("--no-wait", action="store_true", help="do not wait for the job to end")
    q = add("delete", "delete an ended job's record and logs")
    q.add_argument("submission_id")
    q = add("list", "list the submitted jobs")
    q.add_argument("--format", choices=("table", "json"), default="table")


def _client(ns: argparse.Namespace) -> Any:
    from jray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(ns.address)
    except (ConnectionError, PermissionError, RuntimeError) as e:
        raise CliError(str(e)) from None


def run(ns: argparse.Namespace) -> int:
    try:
        return int(_COMMANDS[ns.job_command](ns))
    except (ConnectionError, PermissionError, RuntimeError, ValueError, TypeError) as e:
        raise CliError(str(e)) from None


def _follow(client: Any, sid: str) -> None:
    for text in client.follow_logs(sid):
        sys.stdout.write(text)
        sys.stdout.flush()


def submit(ns: argparse.Namespace) -> int:
    cmd = list(ns.entrypoint)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        raise CliError("no entrypoint: jray job submit [OPTIONS] -- CMD ARGS...")
    import shlex

    entrypoint = cmd[0] if len(cmd) == 1 else shlex.join(cmd)
    env = dict(ns.runtime_env_json or {})
    if ns.working_dir:
        env["working_dir"] = ns.working_dir
    client = _client(ns)
    sid = client.submit_job(entrypoint=entrypoint, submission_id=ns.submission_id, runtime_env=env or None,
                            metadata=ns.metadata_json, entrypoint_num_cpus=ns.entrypoint_num_cpus,
                            entrypoint_num_gpus=ns.entrypoint_num_gpus, entrypoint_memory=ns.entrypoint_memory,
                            entrypoint_resources=ns.entrypoint_resources)
    print(f"Job '{sid}' submitted successfully", file=sys.stderr, flush=True)
    if ns.no_wait:
        print(f"Query the logs of the job:\n    jray job logs {sid}\nQuery the status of the job:\n"
              f"    jray job status {sid}\nRequest the job to be stopped:\n    jray job stop {sid}", file=sys.stderr)
        return 0
    try:
        _follow(client, sid)
    except KeyboardInterrupt:
        print(f"\nStopped following the logs; the job goes on (jray job stop {sid} stops it).", file=sys.stderr)
        return 130
    info = client.get_job_info(sid)
    print(f"Job '{sid}' {info.status.value.lower()}" + (f": {info.message.splitlines()[0]}" if info.message and
                                                        info.status.value != "SUCCEEDED" else ""), file=sys.stderr)
    return 0 if info.status.value == "SUCCEEDED" else 1


def status(ns: argparse.Namespace) -> int:
    info = _client(ns).get_job_info(ns.submission_id)
    print(f"Status for job '{ns.submission_id}': {info.status.value}")
    if info.message:
        print(f"Status message: {info.message}")
    return 0


def logs(ns: argparse.Namespace) -> int:
    client = _client(ns)
    if ns.follow:
        try:
            _follow(client, ns.submission_id)
        except KeyboardInterrupt:
            return 130
    else:
        sys.stdout.write(client.get_job_logs(ns.submission_id))
    return 0


def stop(ns: argparse.Namespace) -> int:
    client = _client(ns)
    stopped = client.stop_job(ns.submission_id)
    if not stopped:
        st = client.get_job_status(ns.submission_id)
        print(f"Job '{ns.submission_id}' was not running (it is {st.value}).")
        return 0
    if not ns.no_wait:
        deadline = time.monotonic() + 30
        while not client.get_job_status(ns.submission_id).is_terminal() and time.monotonic() < deadline:
            time.sleep(0.2)
    print(f"Job '{ns.submission_id}' stopped ({client.get_job_status(ns.submission_id).value}).")
    return 0


def delete(ns: argparse.Namespace) -> int:
    _client(ns).delete_job(ns.submission_id)
    print(f"Job '{ns.submission_id}' deleted.")
    return 0


def list_(ns: argparse.Namespace) -> int:
    jobs = _client(ns).list_jobs()
    if ns.format == "json":
        print(json.dumps([j.dict() for j in jobs], indent=1))
        return 0
    rows = [{"submission_id": j.submission_id, "job_id": j.job_id, "status": j.status.value,
             "entrypoint": j.entrypoint if len(j.entrypoint) <= 60 else j.entrypoint[:57] + "...",
             "start_time": _fmt_ms(j.start_time), "end_time": _fmt_ms(j.end_time),
             "message": (j.message or "").splitlines()[0][:60] if j.message else ""} for j in jobs]
    print(format_table(rows) if rows else "No jobs.")
    return 0


def _fmt_ms(ms: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000)) if ms else ""


_COMMANDS = {"submit": submit, "status": status, "logs": logs, "stop": stop, "delete": delete, "list": list_}
