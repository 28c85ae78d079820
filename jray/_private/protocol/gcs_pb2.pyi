from jray._private.protocol import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ActorState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEPENDENCIES_UNREADY: _ClassVar[ActorState]
    PENDING_CREATION: _ClassVar[ActorState]
    ALIVE: _ClassVar[ActorState]
    RESTARTING: _ClassVar[ActorState]
    DEAD: _ClassVar[ActorState]

class PlacementGroupState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PG_PENDING: _ClassVar[PlacementGroupState]
    PG_CREATED: _ClassVar[PlacementGroupState]
    PG_REMOVED: _ClassVar[PlacementGroupState]
    PG_RESCHEDULING: _ClassVar[PlacementGroupState]
DEPENDENCIES_UNREADY: ActorState
PENDING_CREATION: ActorState
ALIVE: ActorState
RESTARTING: ActorState
DEAD: ActorState
PG_PENDING: PlacementGroupState
PG_CREATED: PlacementGroupState
PG_REMOVED: PlacementGroupState
PG_RESCHEDULING: PlacementGroupState

class NodeInfo(_message.Message):
    __slots__ = ("node_id", "ip", "raylet_port", "resources_total", "resources_available", "alive", "is_head", "store_path", "object_store_memory", "store_used", "num_workers", "labels", "start_time", "pid", "spilled_bytes", "pending_leases", "num_idle_workers", "num_leased_workers", "num_objects", "metrics_export_port", "resource_load", "idle_duration_ms", "cpu_percent", "memory_used", "memory_total", "bulk_port")
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
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    RAYLET_PORT_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    ALIVE_FIELD_NUMBER: _ClassVar[int]
    IS_HEAD_FIELD_NUMBER: _ClassVar[int]
    STORE_PATH_FIELD_NUMBER: _ClassVar[int]
    OBJECT_STORE_MEMORY_FIELD_NUMBER: _ClassVar[int]
    STORE_USED_FIELD_NUMBER: _ClassVar[int]
    NUM_WORKERS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    SPILLED_BYTES_FIELD_NUMBER: _ClassVar[int]
    PENDING_LEASES_FIELD_NUMBER: _ClassVar[int]
    NUM_IDLE_WORKERS_FIELD_NUMBER: _ClassVar[int]
    NUM_LEASED_WORKERS_FIELD_NUMBER: _ClassVar[int]
    NUM_OBJECTS_FIELD_NUMBER: _ClassVar[int]
    METRICS_EXPORT_PORT_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_LOAD_FIELD_NUMBER: _ClassVar[int]
    IDLE_DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    CPU_PERCENT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_USED_FIELD_NUMBER: _ClassVar[int]
    MEMORY_TOTAL_FIELD_NUMBER: _ClassVar[int]
    BULK_PORT_FIELD_NUMBER: _ClassVar[int]
    node_id: bytes
    ip: str
    raylet_port: int
    resources_total: _containers.ScalarMap[str, float]
    resources_available: _containers.ScalarMap[str, float]
    alive: bool
    is_head: bool
    store_path: str
    object_store_memory: int
    store_used: int
    num_workers: int
    labels: _containers.ScalarMap[str, str]
    start_time: float
    pid: int
    spilled_bytes: int
    pending_leases: int
    num_idle_workers: int
    num_leased_workers: int
    num_objects: int
    metrics_export_port: int
    resource_load: _containers.RepeatedCompositeFieldContainer[_common_pb2.ResourceDemand]
    idle_duration_ms: int
    cpu_percent: float
    memory_used: int
    memory_total: int
    bulk_port: int
    def __init__(self, node_id: _Optional[bytes] = ..., ip: _Optional[str] = ..., raylet_port: _Optional[int] = ..., resources_total: _Optional[_Mapping[str, float]] = ..., resources_available: _Optional[_Mapping[str, float]] = ..., alive: _Optional[bool] = ..., is_head: _Optional[bool] = ..., store_path: _Optional[str] = ..., object_store_memory: _Optional[int] = ..., store_used: _Optional[int] = ..., num_workers: _Optional[int] = ..., labels: _Optional[_Mapping[str, str]] = ..., start_time: _Optional[float] = ..., pid: _Optional[int] = ..., spilled_bytes: _Optional[int] = ..., pending_leases: _Optional[int] = ..., num_idle_workers: _Optional[int] = ..., num_leased_workers: _Optional[int] = ..., num_objects: _Optional[int] = ..., metrics_export_port: _Optional[int] = ..., resource_load: _Optional[_Iterable[_Union[_common_pb2.ResourceDemand, _Mapping]]] = ..., idle_duration_ms: _Optional[int] = ..., cpu_percent: _Optional[float] = ..., memory_used: _Optional[int] = ..., memory_total: _Optional[int] = ..., bulk_port: _Optional[int] = ...) -> None: ...

class RegisterNodeRequest(_message.Message):
    __slots__ = ("node",)
    NODE_FIELD_NUMBER: _ClassVar[int]
    node: NodeInfo
    def __init__(self, node: _Optional[_Union[NodeInfo, _Mapping]] = ...) -> None: ...

class RegisterNodeReply(_message.Message):
    __slots__ = ("cluster_id",)
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    cluster_id: bytes
    def __init__(self, cluster_id: _Optional[bytes] = ...) -> None: ...

class UnregisterNodeRequest(_message.Message):
    __slots__ = ("node_id",)
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: bytes
    def __init__(self, node_id: _Optional[bytes] = ...) -> None: ...

class UnregisterNodeReply(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("node", "dead_workers_after", "node_id")
    NODE_FIELD_NUMBER: _ClassVar[int]
    DEAD_WORKERS_AFTER_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    node: NodeInfo
    dead_workers_after: int
    node_id: bytes
    def __init__(self, node: _Optional[_Union[NodeInfo, _Mapping]] = ..., dead_workers_after: _Optional[int] = ..., node_id: _Optional[bytes] = ...) -> None: ...

class HeartbeatReply(_message.Message):
    __slots__ = ("reregister",)
    REREGISTER_FIELD_NUMBER: _ClassVar[int]
    reregister: bool
    def __init__(self, reregister: _Optional[bool] = ...) -> None: ...

class ClusterViewUpdate(_message.Message):
    __slots__ = ("nodes", "full", "dead_workers", "dead_workers_seq", "reregister")
    NODES_FIELD_NUMBER: _ClassVar[int]
    FULL_FIELD_NUMBER: _ClassVar[int]
    DEAD_WORKERS_FIELD_NUMBER: _ClassVar[int]
    DEAD_WORKERS_SEQ_FIELD_NUMBER: _ClassVar[int]
    REREGISTER_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[NodeInfo]
    full: bool
    dead_workers: _containers.RepeatedScalarFieldContainer[bytes]
    dead_workers_seq: int
    reregister: bool
    def __init__(self, nodes: _Optional[_Iterable[_Union[NodeInfo, _Mapping]]] = ..., full: _Optional[bool] = ..., dead_workers: _Optional[_Iterable[bytes]] = ..., dead_workers_seq: _Optional[int] = ..., reregister: _Optional[bool] = ...) -> None: ...

class GetAllNodeInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetAllNodeInfoReply(_message.Message):
    __slots__ = ("nodes",)
    NODES_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[NodeInfo]
    def __init__(self, nodes: _Optional[_Iterable[_Union[NodeInfo, _Mapping]]] = ...) -> None: ...

class KVPutRequest(_message.Message):
    __slots__ = ("ns", "key", "value", "overwrite")
    NS_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    ns: str
    key: bytes
    value: bytes
    overwrite: bool
    def __init__(self, ns: _Optional[str] = ..., key: _Optional[bytes] = ..., value: _Optional[bytes] = ..., overwrite: _Optional[bool] = ...) -> None: ...

class KVPutReply(_message.Message):
    __slots__ = ("added",)
    ADDED_FIELD_NUMBER: _ClassVar[int]
    added: bool
    def __init__(self, added: _Optional[bool] = ...) -> None: ...

class KVGetRequest(_message.Message):
    __slots__ = ("ns", "key")
    NS_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    ns: str
    key: bytes
    def __init__(self, ns: _Optional[str] = ..., key: _Optional[bytes] = ...) -> None: ...

class KVGetReply(_message.Message):
    __slots__ = ("found", "value")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    found: bool
    value: bytes
    def __init__(self, found: _Optional[bool] = ..., value: _Optional[bytes] = ...) -> None: ...

class KVDelRequest(_message.Message):
    __slots__ = ("ns", "key", "prefix")
    NS_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    ns: str
    key: bytes
    prefix: bool
    def __init__(self, ns: _Optional[str] = ..., key: _Optional[bytes] = ..., prefix: _Optional[bool] = ...) -> None: ...

class KVDelReply(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    def __init__(self, deleted: _Optional[int] = ...) -> None: ...

class KVKeysRequest(_message.Message):
    __slots__ = ("ns", "prefix")
    NS_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    ns: str
    prefix: bytes
    def __init__(self, ns: _Optional[str] = ..., prefix: _Optional[bytes] = ...) -> None: ...

class KVKeysReply(_message.Message):
    __slots__ = ("keys",)
    KEYS_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, keys: _Optional[_Iterable[bytes]] = ...) -> None: ...

class JobInfo(_message.Message):
    __slots__ = ("job_id", "driver", "namespace", "is_dead", "start_time", "end_time", "driver_pid", "entrypoint", "death_cause", "driver_host")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    DRIVER_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    IS_DEAD_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    DRIVER_PID_FIELD_NUMBER: _ClassVar[int]
    ENTRYPOINT_FIELD_NUMBER: _ClassVar[int]
    DEATH_CAUSE_FIELD_NUMBER: _ClassVar[int]
    DRIVER_HOST_FIELD_NUMBER: _ClassVar[int]
    job_id: bytes
    driver: _common_pb2.Address
    namespace: str
    is_dead: bool
    start_time: float
    end_time: float
    driver_pid: int
    entrypoint: str
    death_cause: str
    driver_host: str
    def __init__(self, job_id: _Optional[bytes] = ..., driver: _Optional[_Union[_common_pb2.Address, _Mapping]] = ..., namespace: _Optional[str] = ..., is_dead: _Optional[bool] = ..., start_time: _Optional[float] = ..., end_time: _Optional[float] = ..., driver_pid: _Optional[int] = ..., entrypoint: _Optional[str] = ..., death_cause: _Optional[str] = ..., driver_host: _Optional[str] = ...) -> None: ...

class AddJobRequest(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: JobInfo
    def __init__(self, job: _Optional[_Union[JobInfo, _Mapping]] = ...) -> None: ...

class AddJobReply(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: bytes
    def __init__(self, job_id: _Optional[bytes] = ...) -> None: ...

class MarkJobFinishedRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: bytes
    def __init__(self, job_id: _Optional[bytes] = ...) -> None: ...

class MarkJobFinishedReply(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WatchDriverRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: bytes
    def __init__(self, job_id: _Optional[bytes] = ...) -> None: ...

class WatchDriverReply(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WatchNodesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class NodeEvent(_message.Message):
    __slots__ = ("node_id", "ip", "alive", "reason", "raylet_port")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    ALIVE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RAYLET_PORT_FIELD_NUMBER: _ClassVar[int]
    node_id: bytes
    ip: str
    alive: bool
    reason: str
    raylet_port: int
    def __init__(self, node_id: _Optional[bytes] = ..., ip: _Optional[str] = ..., alive: _Optional[bool] = ..., reason: _Optional[str] = ..., raylet_port: _Optional[int] = ...) -> None: ...

class DriverHeartbeatRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: bytes
    def __init__(self, job_id: _Optional[bytes] = ...) -> None: ...

class DriverHeartbeatReply(_message.Message):
    __slots__ = ("job_dead",)
    JOB_DEAD_FIELD_NUMBER: _ClassVar[int]
    job_dead: bool
    def __init__(self, job_dead: _Optional[bool] = ...) -> None: ...

class GetAllJobInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetAllJobInfoReply(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[JobInfo]
    def __init__(self, jobs: _Optional[_Iterable[_Union[JobInfo, _Mapping]]] = ...) -> None: ...

class ActorInfo(_message.Message):
    __slots__ = ("actor_id", "job_id", "state", "address", "name", "namespace", "class_name", "num_restarts", "max_restarts", "death_cause", "version", "detached", "pid", "node_id", "creation_failed", "creation_error", "max_task_retries", "is_async", "method_meta", "resources")
    class ResourcesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    NUM_RESTARTS_FIELD_NUMBER: _ClassVar[int]
    MAX_RESTARTS_FIELD_NUMBER: _ClassVar[int]
    DEATH_CAUSE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DETACHED_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    CREATION_FAILED_FIELD_NUMBER: _ClassVar[int]
    CREATION_ERROR_FIELD_NUMBER: _ClassVar[int]
    MAX_TASK_RETRIES_FIELD_NUMBER: _ClassVar[int]
    IS_ASYNC_FIELD_NUMBER: _ClassVar[int]
    METHOD_META_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    actor_id: bytes
    job_id: bytes
    state: ActorState
    address: _common_pb2.Address
    name: str
    namespace: str
    class_name: str
    num_restarts: int
    max_restarts: int
    death_cause: str
    version: int
    detached: bool
    pid: int
    node_id: bytes
    creation_failed: bool
    creation_error: bytes
    max_task_retries: int
    is_async: bool
    method_meta: bytes
    resources: _containers.ScalarMap[str, float]
    def __init__(self, actor_id: _Optional[bytes] = ..., job_id: _Optional[bytes] = ..., state: _Optional[_Union[ActorState, str]] = ..., address: _Optional[_Union[_common_pb2.Address, _Mapping]] = ..., name: _Optional[str] = ..., namespace: _Optional[str] = ..., class_name: _Optional[str] = ..., num_restarts: _Optional[int] = ..., max_restarts: _Optional[int] = ..., death_cause: _Optional[str] = ..., version: _Optional[int] = ..., detached: _Optional[bool] = ..., pid: _Optional[int] = ..., node_id: _Optional[bytes] = ..., creation_failed: _Optional[bool] = ..., creation_error: _Optional[bytes] = ..., max_task_retries: _Optional[int] = ..., is_async: _Optional[bool] = ..., method_meta: _Optional[bytes] = ..., resources: _Optional[_Mapping[str, float]] = ...) -> None: ...

class RegisterActorRequest(_message.Message):
    __slots__ = ("spec", "get_if_exists")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    GET_IF_EXISTS_FIELD_NUMBER: _ClassVar[int]
    spec: _common_pb2.TaskSpec
    get_if_exists: bool
    def __init__(self, spec: _Optional[_Union[_common_pb2.TaskSpec, _Mapping]] = ..., get_if_exists: _Optional[bool] = ...) -> None: ...

class RegisterActorReply(_message.Message):
    __slots__ = ("ok", "error", "existing")
    OK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    EXISTING_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    error: str
    existing: ActorInfo
    def __init__(self, ok: _Optional[bool] = ..., error: _Optional[str] = ..., existing: _Optional[_Union[ActorInfo, _Mapping]] = ...) -> None: ...

class GetActorInfoRequest(_message.Message):
    __slots__ = ("actor_id", "after_version", "timeout")
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_VERSION_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    actor_id: bytes
    after_version: int
    timeout: float
    def __init__(self, actor_id: _Optional[bytes] = ..., after_version: _Optional[int] = ..., timeout: _Optional[float] = ...) -> None: ...

class GetActorInfoReply(_message.Message):
    __slots__ = ("found", "actor")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    found: bool
    actor: ActorInfo
    def __init__(self, found: _Optional[bool] = ..., actor: _Optional[_Union[ActorInfo, _Mapping]] = ...) -> None: ...

class GetNamedActorRequest(_message.Message):
    __slots__ = ("name", "namespace")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    name: str
    namespace: str
    def __init__(self, name: _Optional[str] = ..., namespace: _Optional[str] = ...) -> None: ...

class GetNamedActorReply(_message.Message):
    __slots__ = ("found", "actor", "creation_spec")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    CREATION_SPEC_FIELD_NUMBER: _ClassVar[int]
    found: bool
    actor: ActorInfo
    creation_spec: bytes
    def __init__(self, found: _Optional[bool] = ..., actor: _Optional[_Union[ActorInfo, _Mapping]] = ..., creation_spec: _Optional[bytes] = ...) -> None: ...

class ListActorsRequest(_message.Message):
    __slots__ = ("all_namespaces", "namespace", "named_only")
    ALL_NAMESPACES_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAMED_ONLY_FIELD_NUMBER: _ClassVar[int]
    all_namespaces: bool
    namespace: str
    named_only: bool
    def __init__(self, all_namespaces: _Optional[bool] = ..., namespace: _Optional[str] = ..., named_only: _Optional[bool] = ...) -> None: ...

class ListActorsReply(_message.Message):
    __slots__ = ("actors",)
    ACTORS_FIELD_NUMBER: _ClassVar[int]
    actors: _containers.RepeatedCompositeFieldContainer[ActorInfo]
    def __init__(self, actors: _Optional[_Iterable[_Union[ActorInfo, _Mapping]]] = ...) -> None: ...

class KillActorRequest(_message.Message):
    __slots__ = ("actor_id", "force", "no_restart")
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    NO_RESTART_FIELD_NUMBER: _ClassVar[int]
    actor_id: bytes
    force: bool
    no_restart: bool
    def __init__(self, actor_id: _Optional[bytes] = ..., force: _Optional[bool] = ..., no_restart: _Optional[bool] = ...) -> None: ...

class KillActorReply(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReportWorkerFailureRequest(_message.Message):
    __slots__ = ("worker_id", "node_id", "actor_id", "reason", "intentional", "is_driver")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    INTENTIONAL_FIELD_NUMBER: _ClassVar[int]
    IS_DRIVER_FIELD_NUMBER: _ClassVar[int]
    worker_id: bytes
    node_id: bytes
    actor_id: bytes
    reason: str
    intentional: bool
    is_driver: bool
    def __init__(self, worker_id: _Optional[bytes] = ..., node_id: _Optional[bytes] = ..., actor_id: _Optional[bytes] = ..., reason: _Optional[str] = ..., intentional: _Optional[bool] = ..., is_driver: _Optional[bool] = ...) -> None: ...

class ReportWorkerFailureReply(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TaskEvent(_message.Message):
    __slots__ = ("task_id", "job_id", "name", "state", "time", "worker_id", "node_id", "actor_id", "attempt", "error", "resources", "type", "pid", "state_times", "func_name", "parent_task_id", "reconstruction")
    class ResourcesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class StateTimesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    STATE_TIMES_FIELD_NUMBER: _ClassVar[int]
    FUNC_NAME_FIELD_NUMBER: _ClassVar[int]
    PARENT_TASK_ID_FIELD_NUMBER: _ClassVar[int]
    RECONSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    task_id: bytes
    job_id: bytes
    name: str
    state: str
    time: float
    worker_id: bytes
    node_id: bytes
    actor_id: bytes
    attempt: int
    error: str
    resources: _containers.ScalarMap[str, float]
    type: str
    pid: int
    state_times: _containers.ScalarMap[str, float]
    func_name: str
    parent_task_id: bytes
    reconstruction: bool
    def __init__(self, task_id: _Optional[bytes] = ..., job_id: _Optional[bytes] = ..., name: _Optional[str] = ..., state: _Optional[str] = ..., time: _Optional[float] = ..., worker_id: _Optional[bytes] = ..., node_id: _Optional[bytes] = ..., actor_id: _Optional[bytes] = ..., attempt: _Optional[int] = ..., error: _Optional[str] = ..., resources: _Optional[_Mapping[str, float]] = ..., type: _Optional[str] = ..., pid: _Optional[int] = ..., state_times: _Optional[_Mapping[str, float]] = ..., func_name: _Optional[str] = ..., parent_task_id: _Optional[bytes] = ..., reconstruction: _Optional[bool] = ...) -> None: ...

class AddTaskEventsRequest(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[TaskEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[TaskEvent, _Mapping]]] = ...) -> None: ...

class AddTaskEventsReply(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetTaskEventsRequest(_message.Message):
    __slots__ = ("job_id", "limit", "since", "counts_only")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    COUNTS_ONLY_FIELD_NUMBER: _ClassVar[int]
    job_id: bytes
    limit: int
    since: int
    counts_only: bool
    def __init__(self, job_id: _Optional[bytes] = ..., limit: _Optional[int] = ..., since: _Optional[int] = ..., counts_only: _Optional[bool] = ...) -> None: ...

class GetTaskEventsReply(_message.Message):
    __slots__ = ("events", "dropped", "total", "seq", "state_counts")
    class StateCountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    STATE_COUNTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[TaskEvent]
    dropped: int
    total: int
    seq: int
    state_counts: _containers.ScalarMap[str, int]
    def __init__(self, events: _Optional[_Iterable[_Union[TaskEvent, _Mapping]]] = ..., dropped: _Optional[int] = ..., total: _Optional[int] = ..., seq: _Optional[int] = ..., state_counts: _Optional[_Mapping[str, int]] = ...) -> None: ...

class PlacementGroupInfo(_message.Message):
    __slots__ = ("placement_group_id", "name", "namespace", "strategy", "state", "bundles", "creator_job_id", "detached", "version", "create_time")
    PLACEMENT_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    BUNDLES_FIELD_NUMBER: _ClassVar[int]
    CREATOR_JOB_ID_FIELD_NUMBER: _ClassVar[int]
    DETACHED_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    placement_group_id: bytes
    name: str
    namespace: str
    strategy: str
    state: PlacementGroupState
    bundles: _containers.RepeatedCompositeFieldContainer[_common_pb2.Bundle]
    creator_job_id: bytes
    detached: bool
    version: int
    create_time: float
    def __init__(self, placement_group_id: _Optional[bytes] = ..., name: _Optional[str] = ..., namespace: _Optional[str] = ..., strategy: _Optional[str] = ..., state: _Optional[_Union[PlacementGroupState, str]] = ..., bundles: _Optional[_Iterable[_Union[_common_pb2.Bundle, _Mapping]]] = ..., creator_job_id: _Optional[bytes] = ..., detached: _Optional[bool] = ..., version: _Optional[int] = ..., create_time: _Optional[float] = ...) -> None: ...

class CreatePlacementGroupRequest(_message.Message):
    __slots__ = ("group",)
    GROUP_FIELD_NUMBER: _ClassVar[int]
    group: PlacementGroupInfo
    def __init__(self, group: _Optional[_Union[PlacementGroupInfo, _Mapping]] = ...) -> None: ...

class CreatePlacementGroupReply(_message.Message):
    __slots__ = ("ok", "error")
    OK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    error: str
    def __init__(self, ok: _Optional[bool] = ..., error: _Optional[str] = ...) -> None: ...

class RemovePlacementGroupRequest(_message.Message):
    __slots__ = ("placement_group_id",)
    PLACEMENT_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    placement_group_id: bytes
    def __init__(self, placement_group_id: _Optional[bytes] = ...) -> None: ...

class RemovePlacementGroupReply(_message.Message):
    __slots__ = ("found",)
    FOUND_FIELD_NUMBER: _ClassVar[int]
    found: bool
    def __init__(self, found: _Optional[bool] = ...) -> None: ...

class GetPlacementGroupRequest(_message.Message):
    __slots__ = ("placement_group_id", "name", "namespace", "wait_ready", "timeout")
    PLACEMENT_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    WAIT_READY_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    placement_group_id: bytes
    name: str
    namespace: str
    wait_ready: bool
    timeout: float
    def __init__(self, placement_group_id: _Optional[bytes] = ..., name: _Optional[str] = ..., namespace: _Optional[str] = ..., wait_ready: _Optional[bool] = ..., timeout: _Optional[float] = ...) -> None: ...

class GetPlacementGroupReply(_message.Message):
    __slots__ = ("found", "group")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    found: bool
    group: PlacementGroupInfo
    def __init__(self, found: _Optional[bool] = ..., group: _Optional[_Union[PlacementGroupInfo, _Mapping]] = ...) -> None: ...

class ListPlacementGroupsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListPlacementGroupsReply(_message.Message):
    __slots__ = ("groups",)
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    groups: _containers.RepeatedCompositeFieldContainer[PlacementGroupInfo]
    def __init__(self, groups: _Optional[_Iterable[_Union[PlacementGroupInfo, _Mapping]]] = ...) -> None: ...

class GangResourceRequest(_message.Message):
    __slots__ = ("placement_group_id", "name", "strategy", "bundles", "state")
    PLACEMENT_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    BUNDLES_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    placement_group_id: bytes
    name: str
    strategy: str
    bundles: _containers.RepeatedCompositeFieldContainer[_common_pb2.ResourceMap]
    state: PlacementGroupState
    def __init__(self, placement_group_id: _Optional[bytes] = ..., name: _Optional[str] = ..., strategy: _Optional[str] = ..., bundles: _Optional[_Iterable[_Union[_common_pb2.ResourceMap, _Mapping]]] = ..., state: _Optional[_Union[PlacementGroupState, str]] = ...) -> None: ...

class GetClusterResourceStateRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetClusterResourceStateReply(_message.Message):
    __slots__ = ("nodes", "resource_load", "pending_placement_groups", "pending_actors")
    NODES_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_LOAD_FIELD_NUMBER: _ClassVar[int]
    PENDING_PLACEMENT_GROUPS_FIELD_NUMBER: _ClassVar[int]
    PENDING_ACTORS_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[NodeInfo]
    resource_load: _containers.RepeatedCompositeFieldContainer[_common_pb2.ResourceDemand]
    pending_placement_groups: _containers.RepeatedCompositeFieldContainer[GangResourceRequest]
    pending_actors: _containers.RepeatedCompositeFieldContainer[_common_pb2.ResourceDemand]
    def __init__(self, nodes: _Optional[_Iterable[_Union[NodeInfo, _Mapping]]] = ..., resource_load: _Optional[_Iterable[_Union[_common_pb2.ResourceDemand, _Mapping]]] = ..., pending_placement_groups: _Optional[_Iterable[_Union[GangResourceRequest, _Mapping]]] = ..., pending_actors: _Optional[_Iterable[_Union[_common_pb2.ResourceDemand, _Mapping]]] = ...) -> None: ...

class CheckAliveRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CheckAliveReply(_message.Message):
    __slots__ = ("cluster_id", "uptime", "version")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    UPTIME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    cluster_id: bytes
    uptime: float
    version: str
    def __init__(self, cluster_id: _Optional[bytes] = ..., uptime: _Optional[float] = ..., version: _Optional[str] = ...) -> None: ...

class PackageExistsRequest(_message.Message):
    __slots__ = ("uri",)
    URI_FIELD_NUMBER: _ClassVar[int]
    uri: str
    def __init__(self, uri: _Optional[str] = ...) -> None: ...

class PackageExistsReply(_message.Message):
    __slots__ = ("exists", "size")
    EXISTS_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    exists: bool
    size: int
    def __init__(self, exists: _Optional[bool] = ..., size: _Optional[int] = ...) -> None: ...

class PackageChunk(_message.Message):
    __slots__ = ("uri", "data", "total")
    URI_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    uri: str
    data: bytes
    total: int
    def __init__(self, uri: _Optional[str] = ..., data: _Optional[bytes] = ..., total: _Optional[int] = ...) -> None: ...

class UploadPackageReply(_message.Message):
    __slots__ = ("ok", "error")
    OK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    error: str
    def __init__(self, ok: _Optional[bool] = ..., error: _Optional[str] = ...) -> None: ...

class DownloadPackageRequest(_message.Message):
    __slots__ = ("uri",)
    URI_FIELD_NUMBER: _ClassVar[int]
    uri: str
    def __init__(self, uri: _Optional[str] = ...) -> None: ...
