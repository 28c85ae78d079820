from jray._private.protocol import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RegisterWorkerRequest(_message.Message):
    __slots__ = ("worker_id", "pid", "port", "is_driver", "direct_port")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    IS_DRIVER_FIELD_NUMBER: _ClassVar[int]
    DIRECT_PORT_FIELD_NUMBER: _ClassVar[int]
    worker_id: bytes
    pid: int
    port: int
    is_driver: bool
    direct_port: int
    def __init__(self, worker_id: _Optional[bytes] = ..., pid: _Optional[int] = ..., port: _Optional[int] = ..., is_driver: _Optional[bool] = ..., direct_port: _Optional[int] = ...) -> None: ...

class RegisterWorkerReply(_message.Message):
    __slots__ = ("node_id", "store_path", "store_capacity", "direct_port")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    STORE_PATH_FIELD_NUMBER: _ClassVar[int]
    STORE_CAPACITY_FIELD_NUMBER: _ClassVar[int]
    DIRECT_PORT_FIELD_NUMBER: _ClassVar[int]
    node_id: bytes
    store_path: str
    store_capacity: int
    direct_port: int
    def __init__(self, node_id: _Optional[bytes] = ..., store_path: _Optional[str] = ..., store_capacity: _Optional[int] = ..., direct_port: _Optional[int] = ...) -> None: ...

class WorkerLeaseRequest(_message.Message):
    __slots__ = ("resources", "scheduling", "actor_id", "grant_or_reject", "owner_worker_id", "runtime_env", "name", "task_id", "job_id", "attempt", "preferred_node_id", "owner", "root_task_id")
    class ResourcesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    SCHEDULING_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    GRANT_OR_REJECT_FIELD_NUMBER: _ClassVar[int]
    OWNER_WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_ENV_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    PREFERRED_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    ROOT_TASK_ID_FIELD_NUMBER: _ClassVar[int]
    resources: _containers.ScalarMap[str, float]
    scheduling: _common_pb2.SchedulingStrategy
    actor_id: bytes
    grant_or_reject: bool
    owner_worker_id: bytes
    runtime_env: str
    name: str
    task_id: bytes
    job_id: bytes
    attempt: int
    preferred_node_id: bytes
    owner: _common_pb2.Address
    root_task_id: bytes
    def __init__(self, resources: _Optional[_Mapping[str, float]] = ..., scheduling: _Optional[_Union[_common_pb2.SchedulingStrategy, _Mapping]] = ..., actor_id: _Optional[bytes] = ..., grant_or_reject: _Optional[bool] = ..., owner_worker_id: _Optional[bytes] = ..., runtime_env: _Optional[str] = ..., name: _Optional[str] = ..., task_id: _Optional[bytes] = ..., job_id: _Optional[bytes] = ..., attempt: _Optional[int] = ..., preferred_node_id: _Optional[bytes] = ..., owner: _Optional[_Union[_common_pb2.Address, _Mapping]] = ..., root_task_id: _Optional[bytes] = ...) -> None: ...

class WorkerLeaseReply(_message.Message):
    __slots__ = ("granted", "worker", "lease_id", "gpu_ids", "spillback", "retry_at_ip", "retry_at_port", "retry_at_node_id", "rejected", "error", "assigned", "runtime_env_error")
    class AssignedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    GRANTED_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    GPU_IDS_FIELD_NUMBER: _ClassVar[int]
    SPILLBACK_FIELD_NUMBER: _ClassVar[int]
    RETRY_AT_IP_FIELD_NUMBER: _ClassVar[int]
    RETRY_AT_PORT_FIELD_NUMBER: _ClassVar[int]
    RETRY_AT_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ASSIGNED_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_ENV_ERROR_FIELD_NUMBER: _ClassVar[int]
    granted: bool
    worker: _common_pb2.Address
    lease_id: bytes
    gpu_ids: _containers.RepeatedScalarFieldContainer[int]
    spillback: bool
    retry_at_ip: str
    retry_at_port: int
    retry_at_node_id: bytes
    rejected: bool
    error: str
    assigned: _containers.ScalarMap[str, float]
    runtime_env_error: str
    def __init__(self, granted: _Optional[bool] = ..., worker: _Optional[_Union[_common_pb2.Address, _Mapping]] = ..., lease_id: _Optional[bytes] = ..., gpu_ids: _Optional[_Iterable[int]] = ..., spillback: _Optional[bool] = ..., retry_at_ip: _Optional[str] = ..., retry_at_port: _Optional[int] = ..., retry_at_node_id: _Optional[bytes] = ..., rejected: _Optional[bool] = ..., error: _Optional[str] = ..., assigned: _Optional[_Mapping[str, float]] = ..., runtime_env_error: _Optional[str] = ...) -> None: ...

class ReturnWorkerRequest(_message.Message):
    __slots__ = ("lease_id", "disconnect")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    DISCONNECT_FIELD_NUMBER: _ClassVar[int]
    lease_id: bytes
    disconnect: bool
    def __init__(self, lease_id: _Optional[bytes] = ..., disconnect: _Optional[bool] = ...) -> None: ...

class ReturnWorkerReply(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WorkerBlockedRequest(_message.Message):
    __slots__ = ("worker_id", "blocked", "seq")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    worker_id: bytes
    blocked: bool
    seq: int
    def __init__(self, worker_id: _Optional[bytes] = ..., blocked: _Optional[bool] = ..., seq: _Optional[int] = ...) -> None: ...

class WorkerBlockedReply(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PrepareRuntimeEnvRequest(_message.Message):
    __slots__ = ("runtime_env",)
    RUNTIME_ENV_FIELD_NUMBER: _ClassVar[int]
    runtime_env: str
    def __init__(self, runtime_env: _Optional[str] = ...) -> None: ...

class PrepareRuntimeEnvReply(_message.Message):
    __slots__ = ("started",)
    STARTED_FIELD_NUMBER: _ClassVar[int]
    started: bool
    def __init__(self, started: _Optional[bool] = ...) -> None: ...

class KillWorkerRequest(_message.Message):
    __slots__ = ("worker_id", "force", "reason")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    worker_id: bytes
    force: bool
    reason: str
    def __init__(self, worker_id: _Optional[bytes] = ..., force: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class KillWorkerReply(_message.Message):
    __slots__ = ("found",)
    FOUND_FIELD_NUMBER: _ClassVar[int]
    found: bool
    def __init__(self, found: _Optional[bool] = ...) -> None: ...

class CreateObjectRequest(_message.Message):
    __slots__ = ("object_id", "size", "owner", "primary")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_FIELD_NUMBER: _ClassVar[int]
    object_id: bytes
    size: int
    owner: _common_pb2.Address
    primary: bool
    def __init__(self, object_id: _Optional[bytes] = ..., size: _Optional[int] = ..., owner: _Optional[_Union[_common_pb2.Address, _Mapping]] = ..., primary: _Optional[bool] = ...) -> None: ...

class CreateObjectReply(_message.Message):
    __slots__ = ("ok", "offset", "error", "exists", "full", "spill_path")
    OK_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    EXISTS_FIELD_NUMBER: _ClassVar[int]
    FULL_FIELD_NUMBER: _ClassVar[int]
    SPILL_PATH_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    offset: int
    error: str
    exists: bool
    full: bool
    spill_path: str
    def __init__(self, ok: _Optional[bool] = ..., offset: _Optional[int] = ..., error: _Optional[str] = ..., exists: _Optional[bool] = ..., full: _Optional[bool] = ..., spill_path: _Optional[str] = ...) -> None: ...

class SealObjectRequest(_message.Message):
    __slots__ = ("object_id",)
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    object_id: bytes
    def __init__(self, object_id: _Optional[bytes] = ...) -> None: ...

class SealObjectReply(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AbortObjectRequest(_message.Message):
    __slots__ = ("object_id",)
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    object_id: bytes
    def __init__(self, object_id: _Optional[bytes] = ...) -> None: ...

class AbortObjectReply(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetObjectRequest(_message.Message):
    __slots__ = ("object_id", "client_id", "from_ip", "from_port", "from_node_id", "timeout")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_IP_FIELD_NUMBER: _ClassVar[int]
    FROM_PORT_FIELD_NUMBER: _ClassVar[int]
    FROM_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    object_id: bytes
    client_id: bytes
    from_ip: str
    from_port: int
    from_node_id: bytes
    timeout: float
    def __init__(self, object_id: _Optional[bytes] = ..., client_id: _Optional[bytes] = ..., from_ip: _Optional[str] = ..., from_port: _Optional[int] = ..., from_node_id: _Optional[bytes] = ..., timeout: _Optional[float] = ...) -> None: ...

class GetObjectReply(_message.Message):
    __slots__ = ("found", "offset", "size", "error", "spill_path", "full")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    SPILL_PATH_FIELD_NUMBER: _ClassVar[int]
    FULL_FIELD_NUMBER: _ClassVar[int]
    found: bool
    offset: int
    size: int
    error: str
    spill_path: str
    full: bool
    def __init__(self, found: _Optional[bool] = ..., offset: _Optional[int] = ..., size: _Optional[int] = ..., error: _Optional[str] = ..., spill_path: _Optional[str] = ..., full: _Optional[bool] = ...) -> None: ...

class ReleaseObjectsRequest(_message.Message):
    __slots__ = ("object_ids", "client_id")
    OBJECT_IDS_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    object_ids: _containers.RepeatedScalarFieldContainer[bytes]
    client_id: bytes
    def __init__(self, object_ids: _Optional[_Iterable[bytes]] = ..., client_id: _Optional[bytes] = ...) -> None: ...

class ReleaseObjectsReply(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class FreeObjectsRequest(_message.Message):
    __slots__ = ("object_ids", "broadcast")
    OBJECT_IDS_FIELD_NUMBER: _ClassVar[int]
    BROADCAST_FIELD_NUMBER: _ClassVar[int]
    object_ids: _containers.RepeatedScalarFieldContainer[bytes]
    broadcast: bool
    def __init__(self, object_ids: _Optional[_Iterable[bytes]] = ..., broadcast: _Optional[bool] = ...) -> None: ...

class FreeObjectsReply(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReadObjectRequest(_message.Message):
    __slots__ = ("object_id", "chunk_size")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    object_id: bytes
    chunk_size: int
    def __init__(self, object_id: _Optional[bytes] = ..., chunk_size: _Optional[int] = ...) -> None: ...

class WriteObjectChunk(_message.Message):
    __slots__ = ("object_id", "owner", "total_size", "offset", "data")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    object_id: bytes
    owner: _common_pb2.Address
    total_size: int
    offset: int
    data: bytes
    def __init__(self, object_id: _Optional[bytes] = ..., owner: _Optional[_Union[_common_pb2.Address, _Mapping]] = ..., total_size: _Optional[int] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class WriteObjectReply(_message.Message):
    __slots__ = ("ok", "error", "exists")
    OK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    EXISTS_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    error: str
    exists: bool
    def __init__(self, ok: _Optional[bool] = ..., error: _Optional[str] = ..., exists: _Optional[bool] = ...) -> None: ...

class TunnelFrame(_message.Message):
    __slots__ = ("kind", "conn_id", "data", "client_id", "port")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        HELLO: _ClassVar[TunnelFrame.Kind]
        READY: _ClassVar[TunnelFrame.Kind]
        OPEN: _ClassVar[TunnelFrame.Kind]
        DATA: _ClassVar[TunnelFrame.Kind]
        CLOSE: _ClassVar[TunnelFrame.Kind]
    HELLO: TunnelFrame.Kind
    READY: TunnelFrame.Kind
    OPEN: TunnelFrame.Kind
    DATA: TunnelFrame.Kind
    CLOSE: TunnelFrame.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    CONN_ID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    kind: TunnelFrame.Kind
    conn_id: int
    data: bytes
    client_id: bytes
    port: int
    def __init__(self, kind: _Optional[_Union[TunnelFrame.Kind, str]] = ..., conn_id: _Optional[int] = ..., data: _Optional[bytes] = ..., client_id: _Optional[bytes] = ..., port: _Optional[int] = ...) -> None: ...

class ObjectChunk(_message.Message):
    __slots__ = ("total_size", "offset", "data", "found")
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    FOUND_FIELD_NUMBER: _ClassVar[int]
    total_size: int
    offset: int
    data: bytes
    found: bool
    def __init__(self, total_size: _Optional[int] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ..., found: _Optional[bool] = ...) -> None: ...

class StoreObjectInfo(_message.Message):
    __slots__ = ("object_id", "size", "sealed", "primary", "pins", "spilled", "owner")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SEALED_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_FIELD_NUMBER: _ClassVar[int]
    PINS_FIELD_NUMBER: _ClassVar[int]
    SPILLED_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    object_id: bytes
    size: int
    sealed: bool
    primary: bool
    pins: int
    spilled: bool
    owner: _common_pb2.Address
    def __init__(self, object_id: _Optional[bytes] = ..., size: _Optional[int] = ..., sealed: _Optional[bool] = ..., primary: _Optional[bool] = ..., pins: _Optional[int] = ..., spilled: _Optional[bool] = ..., owner: _Optional[_Union[_common_pb2.Address, _Mapping]] = ...) -> None: ...

class GetNodeStatsRequest(_message.Message):
    __slots__ = ("include_objects", "include_metrics")
    INCLUDE_OBJECTS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_METRICS_FIELD_NUMBER: _ClassVar[int]
    include_objects: bool
    include_metrics: bool
    def __init__(self, include_objects: _Optional[bool] = ..., include_metrics: _Optional[bool] = ...) -> None: ...

class GetNodeStatsReply(_message.Message):
    __slots__ = ("node_id", "store_capacity", "store_used", "num_objects", "objects", "num_workers", "num_idle_workers", "resources_total", "resources_available", "spilled_bytes", "worker_pids", "num_pulls", "runtime_envs", "metrics", "cpu_percent", "memory_used", "memory_total", "workers", "num_bulk_pulls", "num_bulk_fallbacks", "num_bulk_sent", "num_bulk_refused")
    class ResourcesTotalEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class ResourcesAvailableEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    STORE_CAPACITY_FIELD_NUMBER: _ClassVar[int]
    STORE_USED_FIELD_NUMBER: _ClassVar[int]
    NUM_OBJECTS_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    NUM_WORKERS_FIELD_NUMBER: _ClassVar[int]
    NUM_IDLE_WORKERS_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    SPILLED_BYTES_FIELD_NUMBER: _ClassVar[int]
    WORKER_PIDS_FIELD_NUMBER: _ClassVar[int]
    NUM_PULLS_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_ENVS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    CPU_PERCENT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_USED_FIELD_NUMBER: _ClassVar[int]
    MEMORY_TOTAL_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    NUM_BULK_PULLS_FIELD_NUMBER: _ClassVar[int]
    NUM_BULK_FALLBACKS_FIELD_NUMBER: _ClassVar[int]
    NUM_BULK_SENT_FIELD_NUMBER: _ClassVar[int]
    NUM_BULK_REFUSED_FIELD_NUMBER: _ClassVar[int]
    node_id: bytes
    store_capacity: int
    store_used: int
    num_objects: int
    objects: _containers.RepeatedCompositeFieldContainer[StoreObjectInfo]
    num_workers: int
    num_idle_workers: int
    resources_total: _containers.ScalarMap[str, float]
    resources_available: _containers.ScalarMap[str, float]
    spilled_bytes: int
    worker_pids: _containers.RepeatedScalarFieldContainer[int]
    num_pulls: int
    runtime_envs: _containers.RepeatedCompositeFieldContainer[RuntimeEnvState]
    metrics: _containers.RepeatedCompositeFieldContainer[MetricPoint]
    cpu_percent: float
    memory_used: int
    memory_total: int
    workers: _containers.RepeatedCompositeFieldContainer[WorkerStats]
    num_bulk_pulls: int
    num_bulk_fallbacks: int
    num_bulk_sent: int
    num_bulk_refused: int
    def __init__(self, node_id: _Optional[bytes] = ..., store_capacity: _Optional[int] = ..., store_used: _Optional[int] = ..., num_objects: _Optional[int] = ..., objects: _Optional[_Iterable[_Union[StoreObjectInfo, _Mapping]]] = ..., num_workers: _Optional[int] = ..., num_idle_workers: _Optional[int] = ..., resources_total: _Optional[_Mapping[str, float]] = ..., resources_available: _Optional[_Mapping[str, float]] = ..., spilled_bytes: _Optional[int] = ..., worker_pids: _Optional[_Iterable[int]] = ..., num_pulls: _Optional[int] = ..., runtime_envs: _Optional[_Iterable[_Union[RuntimeEnvState, _Mapping]]] = ..., metrics: _Optional[_Iterable[_Union[MetricPoint, _Mapping]]] = ..., cpu_percent: _Optional[float] = ..., memory_used: _Optional[int] = ..., memory_total: _Optional[int] = ..., workers: _Optional[_Iterable[_Union[WorkerStats, _Mapping]]] = ..., num_bulk_pulls: _Optional[int] = ..., num_bulk_fallbacks: _Optional[int] = ..., num_bulk_sent: _Optional[int] = ..., num_bulk_refused: _Optional[int] = ...) -> None: ...

class WorkerStats(_message.Message):
    __slots__ = ("pid", "worker_id", "state", "actor_id", "rss_bytes", "cpu_percent", "log_file", "start_time", "runtime_env_key")
    PID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    CPU_PERCENT_FIELD_NUMBER: _ClassVar[int]
    LOG_FILE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_ENV_KEY_FIELD_NUMBER: _ClassVar[int]
    pid: int
    worker_id: bytes
    state: str
    actor_id: bytes
    rss_bytes: int
    cpu_percent: float
    log_file: str
    start_time: float
    runtime_env_key: str
    def __init__(self, pid: _Optional[int] = ..., worker_id: _Optional[bytes] = ..., state: _Optional[str] = ..., actor_id: _Optional[bytes] = ..., rss_bytes: _Optional[int] = ..., cpu_percent: _Optional[float] = ..., log_file: _Optional[str] = ..., start_time: _Optional[float] = ..., runtime_env_key: _Optional[str] = ...) -> None: ...

class ListLogsRequest(_message.Message):
    __slots__ = ("glob_filter",)
    GLOB_FILTER_FIELD_NUMBER: _ClassVar[int]
    glob_filter: str
    def __init__(self, glob_filter: _Optional[str] = ...) -> None: ...

class LogFileInfo(_message.Message):
    __slots__ = ("filename", "size", "mtime", "pid", "worker_id", "worker_alive")
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    MTIME_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ALIVE_FIELD_NUMBER: _ClassVar[int]
    filename: str
    size: int
    mtime: float
    pid: int
    worker_id: bytes
    worker_alive: bool
    def __init__(self, filename: _Optional[str] = ..., size: _Optional[int] = ..., mtime: _Optional[float] = ..., pid: _Optional[int] = ..., worker_id: _Optional[bytes] = ..., worker_alive: _Optional[bool] = ...) -> None: ...

class ListLogsReply(_message.Message):
    __slots__ = ("files", "log_dir")
    FILES_FIELD_NUMBER: _ClassVar[int]
    LOG_DIR_FIELD_NUMBER: _ClassVar[int]
    files: _containers.RepeatedCompositeFieldContainer[LogFileInfo]
    log_dir: str
    def __init__(self, files: _Optional[_Iterable[_Union[LogFileInfo, _Mapping]]] = ..., log_dir: _Optional[str] = ...) -> None: ...

class GetLogRequest(_message.Message):
    __slots__ = ("filename", "pid", "worker_id", "tail", "offset", "max_bytes")
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    TAIL_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    MAX_BYTES_FIELD_NUMBER: _ClassVar[int]
    filename: str
    pid: int
    worker_id: bytes
    tail: int
    offset: int
    max_bytes: int
    def __init__(self, filename: _Optional[str] = ..., pid: _Optional[int] = ..., worker_id: _Optional[bytes] = ..., tail: _Optional[int] = ..., offset: _Optional[int] = ..., max_bytes: _Optional[int] = ...) -> None: ...

class GetLogReply(_message.Message):
    __slots__ = ("data", "offset", "size", "filename", "pid", "worker_id", "worker_alive", "error", "not_found")
    DATA_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ALIVE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    NOT_FOUND_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    offset: int
    size: int
    filename: str
    pid: int
    worker_id: bytes
    worker_alive: bool
    error: str
    not_found: bool
    def __init__(self, data: _Optional[bytes] = ..., offset: _Optional[int] = ..., size: _Optional[int] = ..., filename: _Optional[str] = ..., pid: _Optional[int] = ..., worker_id: _Optional[bytes] = ..., worker_alive: _Optional[bool] = ..., error: _Optional[str] = ..., not_found: _Optional[bool] = ...) -> None: ...

class MetricPoint(_message.Message):
    __slots__ = ("name", "kind", "description", "tags", "value", "boundaries", "bucket_counts", "count", "time")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    BOUNDARIES_FIELD_NUMBER: _ClassVar[int]
    BUCKET_COUNTS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    description: str
    tags: _containers.ScalarMap[str, str]
    value: float
    boundaries: _containers.RepeatedScalarFieldContainer[float]
    bucket_counts: _containers.RepeatedScalarFieldContainer[int]
    count: int
    time: float
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., description: _Optional[str] = ..., tags: _Optional[_Mapping[str, str]] = ..., value: _Optional[float] = ..., boundaries: _Optional[_Iterable[float]] = ..., bucket_counts: _Optional[_Iterable[int]] = ..., count: _Optional[int] = ..., time: _Optional[float] = ...) -> None: ...

class ReportMetricsRequest(_message.Message):
    __slots__ = ("worker_id", "points")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    worker_id: bytes
    points: _containers.RepeatedCompositeFieldContainer[MetricPoint]
    def __init__(self, worker_id: _Optional[bytes] = ..., points: _Optional[_Iterable[_Union[MetricPoint, _Mapping]]] = ...) -> None: ...

class ReportMetricsReply(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RuntimeEnvState(_message.Message):
    __slots__ = ("key", "runtime_env", "status", "size_bytes", "num_workers", "error", "created_at", "setup_seconds", "log_path")
    KEY_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_ENV_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    NUM_WORKERS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    SETUP_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LOG_PATH_FIELD_NUMBER: _ClassVar[int]
    key: str
    runtime_env: str
    status: str
    size_bytes: int
    num_workers: int
    error: str
    created_at: float
    setup_seconds: float
    log_path: str
    def __init__(self, key: _Optional[str] = ..., runtime_env: _Optional[str] = ..., status: _Optional[str] = ..., size_bytes: _Optional[int] = ..., num_workers: _Optional[int] = ..., error: _Optional[str] = ..., created_at: _Optional[float] = ..., setup_seconds: _Optional[float] = ..., log_path: _Optional[str] = ...) -> None: ...

class PrepareBundlesRequest(_message.Message):
    __slots__ = ("bundles",)
    BUNDLES_FIELD_NUMBER: _ClassVar[int]
    bundles: _containers.RepeatedCompositeFieldContainer[_common_pb2.Bundle]
    def __init__(self, bundles: _Optional[_Iterable[_Union[_common_pb2.Bundle, _Mapping]]] = ...) -> None: ...

class PrepareBundlesReply(_message.Message):
    __slots__ = ("ok", "error")
    OK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    error: str
    def __init__(self, ok: _Optional[bool] = ..., error: _Optional[str] = ...) -> None: ...

class CommitBundlesRequest(_message.Message):
    __slots__ = ("placement_group_id", "indexes")
    PLACEMENT_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    INDEXES_FIELD_NUMBER: _ClassVar[int]
    placement_group_id: bytes
    indexes: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, placement_group_id: _Optional[bytes] = ..., indexes: _Optional[_Iterable[int]] = ...) -> None: ...

class CommitBundlesReply(_message.Message):
    __slots__ = ("ok",)
    OK_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    def __init__(self, ok: _Optional[bool] = ...) -> None: ...

class CancelBundlesRequest(_message.Message):
    __slots__ = ("placement_group_id", "indexes", "reason")
    PLACEMENT_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    INDEXES_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    placement_group_id: bytes
    indexes: _containers.RepeatedScalarFieldContainer[int]
    reason: str
    def __init__(self, placement_group_id: _Optional[bytes] = ..., indexes: _Optional[_Iterable[int]] = ..., reason: _Optional[str] = ...) -> None: ...

class CancelBundlesReply(_message.Message):
    __slots__ = ("cancelled",)
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    cancelled: int
    def __init__(self, cancelled: _Optional[int] = ...) -> None: ...

class ShutdownRayletRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ShutdownRayletReply(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReportWorkerBacklogRequest(_message.Message):
    __slots__ = ("worker_id", "backlog")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    BACKLOG_FIELD_NUMBER: _ClassVar[int]
    worker_id: bytes
    backlog: _containers.RepeatedCompositeFieldContainer[_common_pb2.ResourceDemand]
    def __init__(self, worker_id: _Optional[bytes] = ..., backlog: _Optional[_Iterable[_Union[_common_pb2.ResourceDemand, _Mapping]]] = ...) -> None: ...

class ReportWorkerBacklogReply(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WaitWorkerReadyRequest(_message.Message):
    __slots__ = ("timeout_s",)
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    timeout_s: float
    def __init__(self, timeout_s: _Optional[float] = ...) -> None: ...

class WaitWorkerReadyReply(_message.Message):
    __slots__ = ("ready",)
    READY_FIELD_NUMBER: _ClassVar[int]
    ready: bool
    def __init__(self, ready: _Optional[bool] = ...) -> None: ...
