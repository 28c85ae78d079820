"""Every error a jray user can see, under one base class (Ray's names).

::

    RayError
    ├── RayTaskError                  a task raised; also an instance of the cause
    ├── RayActorError                 an actor cannot run the call
    │   ├── ActorDiedError            the actor is dead (killed, crashed, exited)
    │   ├── ActorUnavailableError     the actor is restarting or unreachable
    │   ├── ActorUnschedulableError
    │   └── ActorPlacementGroupRemoved  the actor's placement group was removed
    ├── GetTimeoutError               ``get`` ran past its timeout (also TimeoutError)
    ├── TaskCancelledError            the task was cancelled
    ├── WorkerCrashedError            the worker died while running the task
    ├── NodeDiedError
    ├── TaskUnschedulableError
    ├── TaskPlacementGroupRemoved     the task's placement group was removed
    ├── ObjectStoreFullError          the store cannot hold the object
    ├── OutOfMemoryError
    ├── ObjectLostError               no copy of the object is left
    │   ├── OwnerDiedError            the object's owner is gone
    │   ├── ObjectFetchTimedOutError
    │   ├── ObjectFreedError
    │   ├── ObjectReconstructionFailedError   a lost object could not be rebuilt from its lineage
    │   │   ├── ObjectReconstructionFailedMaxAttemptsExceededError
    │   │   └── ObjectReconstructionFailedLineageEvictedError
    │   └── ReferenceCountingAssertionError
    ├── RuntimeEnvSetupError
    ├── PendingCallsLimitExceeded
    ├── RemoteCellError               a ``%%remote`` notebook cell raised on the cluster
    ├── UnserializableException       stands in for a task's exception that cannot be rebuilt here
    ├── DashboardUnavailableError     a page of the Jupyter server extension asked for where none serves it
    └── RaySystemError                an internal failure (a bug or a dead daemon)
        └── GcsUnavailableError       the head's GCS does not answer
            └── ClusterLostError      the driver's cluster was stopped: its work is gone

Remote exceptions carry the remote traceback text and render it in IPython
through ``_render_traceback_`` (as ipyparallel's RemoteError does).
"""

from __future__ import annotations

from typing import Any


class RayError(Exception):
    """Base of every jray error."""


class RayTaskError(RayError):
    """Raised when a task or actor method raised an exception.

    ``get`` raises an instance that is also an instance of the user's own
    exception class (see :meth:`as_instanceof_cause`), so ``except
    ValueError`` keeps working across the cluster.
    """

    # Set by the worker that ran the task: its id and where its frames can be
    # debugged post-mortem (``jray.util.rpdb.post_mortem``, ``%jray debug``).
    task_id: str = ""
    debug_address: str = ""

    def __init__(
        self,
        function_name: str = "",
        traceback_str: str = "",
        cause: BaseException | None = None,
        proctitle: str = "",
        pid: int = 0,
        ip: str = "",
        actor_repr: str | None = None,
    ) -> None:
        self.function_name = function_name
        self.traceback_str = traceback_str
        self.cause = cause
        self.proctitle = proctitle
        self.pid = pid
        self.ip = ip
        self.actor_repr = actor_repr
        super().__init__(self._message())

    def _message(self) -> str:
        where = f"{self.function_name}()" if self.function_name else "a task"
        cause = self.cause
        if isinstance(cause, UnserializableException):
            name = cause.type_name.rpartition(".")[2] or "Error"
        else:
            name = type(cause).__name__ if cause is not None else "Error"
        head = f"{name} in {where}"
        loc = f" (pid={self.pid}, ip={self.ip})" if self.pid else ""
        actor = f"\n  actor: {self.actor_repr}" if self.actor_repr else ""
        note = ""
        if isinstance(cause, UnserializableException):
            note = (f"\n(the {cause.type_name or 'exception'} raised there could not be rebuilt here: "
                    "jray.exceptions.UnserializableException stands in for it)")
        return f"{head}{loc}{actor}\n{self.traceback_str.rstrip()}{note}"

    def __str__(self) -> str:
        return self._message()

    def __reduce__(self) -> Any:
        # The cause travels as its own pickle, with its type name and text:
        # an exception that cannot be rebuilt on the other side (a class not
        # importable there, an __init__ that does not match its args) then
        # becomes an UnserializableException stand-in instead of failing the
        # whole error (and losing the message and remote traceback with it).
        return (
            _rebuild_task_error,
            (self.function_name, self.traceback_str, _dump_cause(self.cause), self.proctitle, self.pid, self.ip,
             self.actor_repr, _type_name(self.cause), _cause_text(self.cause), self.task_id, self.debug_address),
        )

    def as_instanceof_cause(self) -> RayTaskError:
        """Return an error that is both a RayTaskError and the cause's type."""
        cause = self.cause
        if cause is None or isinstance(cause, RayTaskError):
            return self
        cause_cls = type(cause)
        if issubclass(RayTaskError, cause_cls):
            return self
        try:
            cls = _dual_classes.get(cause_cls)
            if cls is None:
                cls = type(
                    f"RayTaskError({cause_cls.__name__})",
                    (RayTaskError, cause_cls),
                    {"__init__": _dual_init, "__reduce__": RayTaskError.__reduce__, "__str__": RayTaskError.__str__},
                )
                _dual_classes[cause_cls] = cls
            err = cls.__new__(cls)  # type: ignore[call-overload]
            _dual_init(err, self.function_name, self.traceback_str, cause, self.proctitle, self.pid, self.ip, self.actor_repr)
            err.task_id, err.debug_address = self.task_id, self.debug_address
            return err
        except TypeError:  # a cause class that cannot be subclassed (final / layout conflict)
            return self

    def _render_traceback_(self) -> list[str]:
        # IPython shows this instead of the local (useless) traceback, with
        # frames of code defined in this kernel's cells named as IPython names
        # them ("Cell In[5], line 3", not the kernel's cache file).
        return _name_cells(str(self)).splitlines()


def _name_cells(text: str) -> str:
    try:
        from IPython import get_ipython

        names = getattr(getattr(get_ipython(), "compile", None), "_filename_map", None)
    except Exception:  # noqa: BLE001 - no IPython: nothing to rename
        return text
    if not names:
        return text
    import re

    def cell(m: re.Match[str]) -> str:
        n = names.get(m.group(1))
        return m.group(0) if n is None else f"Cell In[{n}], line {m.group(2)}"

    return re.sub(r'File "([^"]+)", line (\d+)', cell, text)


_dual_classes: dict[type, type] = {}


def _dual_init(self: Any, function_name: str, traceback_str: str, cause: BaseException | None,
               proctitle: str = "", pid: int = 0, ip: str = "", actor_repr: str | None = None) -> None:
    RayTaskError.__init__(self, function_name, traceback_str, cause, proctitle, pid, ip, actor_repr)
    if cause is not None:
        # Keep the cause's attributes (e.g. errno, custom fields) reachable.
        try:
            self.__dict__.update({k: v for k, v in vars(cause).items() if k not in self.__dict__})
        except TypeError:
            pass
        self.args = (str(self),)


def _type_name(e: BaseException | None) -> str:
    return "" if e is None else f"{type(e).__module__}.{type(e).__qualname__}"


def _cause_text(e: BaseException | None) -> str:
    if e is None:
        return ""
    try:
        return str(e)
    except Exception:  # noqa: BLE001 - a broken __str__ must not lose the error
        return repr(e.args)


def _dump_cause(cause: BaseException | None) -> bytes | None:
    if cause is None:
        return None
    import cloudpickle

    try:
        return cloudpickle.dumps(cause)  # type: ignore[no-any-return]
    except Exception:  # noqa: BLE001 - not picklable: the type name and text still travel
        return None


def _rebuild_task_error(function_name: str, traceback_str: str, cause: Any, proctitle: str = "", pid: int = 0,
                        ip: str = "", actor_repr: str | None = None, cause_type: str = "",
                        cause_text: str = "", task_id: str = "", debug_address: str = "") -> RayTaskError:
    if isinstance(cause, bytes):
        import cloudpickle

        try:
            cause = cloudpickle.loads(cause)
        except Exception:  # noqa: BLE001 - see RayTaskError.__reduce__
            cause = UnserializableException(cause_type, cause_text, traceback_str)
    elif cause is None and cause_type:
        cause = UnserializableException(cause_type, cause_text, traceback_str)
    if not isinstance(cause, BaseException):
        cause = None
    err = RayTaskError(function_name, traceback_str, cause, proctitle, pid, ip, actor_repr)
    err.task_id, err.debug_address = task_id, debug_address
    return err.as_instanceof_cause()


class UnserializableException(RayError):
    """Stands in for the exception a task raised when it cannot be rebuilt
    where it is caught (its class is not importable there, or its
    ``__init__`` does not accept its own ``args``). It keeps the original
    type's name (``type_name``), message and remote traceback; ``get``
    raises it as the cause of a ``RayTaskError``."""

    def __init__(self, type_name: str = "", message: str = "", traceback_str: str = "") -> None:
        self.type_name = type_name
        self.message = message
        self.original_stack_trace = traceback_str
        super().__init__(type_name, message, traceback_str)

    def __str__(self) -> str:
        name = self.type_name.rpartition(".")[2] or "an exception"
        return (f"{name}: {self.message} (the task's {self.type_name or 'exception'} could not be "
                "deserialized here; this stands in for it)")


class RayActorError(RayError):
    """Raised when an actor cannot run a call (it died or never started)."""

    def __init__(self, message: str = "The actor died unexpectedly.", actor_id: str | None = None) -> None:
        self.actor_id = actor_id
        self.error_msg = message
        super().__init__(message)

    def __reduce__(self) -> Any:
        return (type(self), (self.error_msg, self.actor_id))


class ActorDiedError(RayActorError):
    """Raised when calling an actor that is dead (killed, crashed or exited)."""


class ActorUnavailableError(RayActorError):
    """Raised when the actor is temporarily unreachable (e.g. restarting)."""


class ActorUnschedulableError(RayActorError):
    """Raised when no node can ever host the actor."""


class ActorPlacementGroupRemoved(RayActorError):
    """Raised when the placement group an actor was placed in was removed."""


class GetTimeoutError(RayError, TimeoutError):
    """Raised when ``get`` or ``wait`` ran past its timeout."""


class TaskCancelledError(RayError):
    """Raised when getting the result of a cancelled task."""

    def __init__(self, task_id: Any = None, message: str | None = None) -> None:
        self.task_id = task_id
        super().__init__(message or f"Task {task_id} was cancelled.")

    def __reduce__(self) -> Any:
        return (type(self), (self.task_id, str(self)))


class WorkerCrashedError(RayError):
    """Raised when the worker running a task died and no retries are left."""

    def __init__(self, message: str = "The worker died unexpectedly while executing this task.") -> None:
        super().__init__(message)


class NodeDiedError(RayError):
    """Raised when the node running a task died."""


class TaskUnschedulableError(RayError):
    """Raised when a task can never be scheduled."""


class TaskPlacementGroupRemoved(RayError):
    """Raised when the placement group a task (or ``ready()``) waited for was removed."""


class ObjectStoreFullError(RayError):
    """Raised when the object store cannot hold an object, even after spilling."""


class OutOfMemoryError(RayError):
    """Raised when a task was killed because the node ran out of memory."""


class ObjectLostError(RayError):
    """Raised when every copy of an object is lost."""

    def __init__(self, object_ref_hex: str = "", message: str | None = None) -> None:
        self.object_ref_hex = object_ref_hex
        super().__init__(message or f"Object {object_ref_hex} is lost: no copy of it is left.")

    def __reduce__(self) -> Any:
        return (type(self), (self.object_ref_hex, str(self)))


class OwnerDiedError(ObjectLostError):
    """Raised when the process that owns an object (created it) has died."""


class ObjectFetchTimedOutError(ObjectLostError):
    """Raised when an object could not be fetched from another node in time."""


class ObjectFreedError(ObjectLostError):
    """Raised when getting an object that was freed explicitly."""


class ObjectReconstructionFailedError(ObjectLostError):
    """Raised when a lost object could not be rebuilt."""


class ObjectReconstructionFailedMaxAttemptsExceededError(ObjectReconstructionFailedError):
    """Raised when a lost object could not be rebuilt: the task that made it
    has no retries left."""


class ObjectReconstructionFailedLineageEvictedError(ObjectReconstructionFailedError):
    """Raised when a lost object could not be rebuilt: the record of the task
    that made it was evicted (the owner keeps a bounded amount of lineage)."""


class ReferenceCountingAssertionError(ObjectLostError):
    """Raised when an object was freed while a reference still existed (a bug)."""


class RuntimeEnvSetupError(RayError):
    """Raised when a task's runtime_env could not be set up."""


class PendingCallsLimitExceeded(RayError):
    """Raised when an actor has too many pending calls."""


class RemoteCellError(RayError):
    """Raised when a ``%%remote`` cell raised on the cluster.

    Carries the remote traceback, cut to the cell's frames and numbered with
    the cell's own lines; IPython shows it instead of the local traceback.
    """

    def __init__(self, ename: str = "", evalue: str = "", traceback_lines: list[str] | None = None) -> None:
        super().__init__(f"{ename}: {evalue}" if ename else evalue)
        self.ename = ename
        self.evalue = evalue
        self.traceback_lines = list(traceback_lines or [])

    def __reduce__(self) -> Any:
        return (RemoteCellError, (self.ename, self.evalue, self.traceback_lines))

    def _render_traceback_(self) -> list[str]:
        return self.traceback_lines or [str(self)]


class RaySystemError(RayError):
    """Raised on an internal failure of jray (a dead daemon, a bug)."""

    def __init__(self, client_exc: Any = "", traceback_str: str | None = None) -> None:
        self.client_exc = client_exc
        self.traceback_str = traceback_str
        super().__init__(f"System error: {client_exc}" + (f"\n{traceback_str}" if traceback_str else ""))


class AuthenticationError(RayError, ConnectionError):
    """The cluster refused this process's token (wrong, missing or stale)."""


class GcsUnavailableError(RaySystemError):
    """Raised when the head's Global Control Service cannot be reached (the
    head is down, restarting, or cut off from this machine)."""

    def __init__(self, address: str = "", detail: str = "") -> None:
        self.address = address
        self.detail = detail
        RayError.__init__(self, str(self))
        self.client_exc = str(self)
        self.traceback_str = None

    def __str__(self) -> str:
        where = f" at {self.address}" if self.address else ""
        why = f" ({self.detail})" if self.detail else ""
        return (f"The cluster's head is unreachable: its GCS{where} does not answer{why}. "
                "Check that the head is running (`jray status`).")


class ClusterLostError(GcsUnavailableError):
    """Raised in a driver whose cluster is gone (stopped, or its node and
    head dead): what it waited on is lost, and ``jray.init()`` connects anew
    (to the cluster ``JRAY_ADDRESS`` or ``JRAY_CLUSTER_FILE`` names now)."""

    def __init__(self, address: str = "", detail: str = "") -> None:
        super().__init__(address, detail)

    def __str__(self) -> str:
        where = f" at {self.address}" if self.address else ""
        why = f" ({self.detail})" if self.detail else ""
        return (f"The jray cluster{where} is gone{why}: the work this driver had running there is lost. "
                "Call jray.init() again to connect to the cluster running now.")


class DashboardUnavailableError(RayError, RuntimeError):
    """Raised when a page served by the Jupyter server extension (the tables
    or logs page shown inline: ``jray.views.tables()``, ``jray.views.logs()``)
    is asked for in a process that no such server started (plain IPython, a
    script, a kernel of a server without jray), or for a cluster other than
    the one that server's pages show."""


class AsyncioActorExit(RayError):
    """Raised inside an async actor by ``exit_actor()``."""


__all__ = [name for name, obj in list(globals().items()) if isinstance(obj, type) and issubclass(obj, BaseException)]
