from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NORMAL_TASK: _ClassVar[TaskType]
    ACTOR_CREATION_TASK: _ClassVar[TaskType]
    ACTOR_TASK: _ClassVar[TaskType]
NORMAL_TASK: TaskType
ACTOR_CREATION_TASK: TaskType
ACTOR_TASK: TaskType

class Address(_message.Message):
    __slots__ = ("ip", "port", "worker_id", "node_id", "direct_port")
    IP_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    DIRECT_PORT_FIELD_NUMBER: _ClassVar[int]
    ip: str
    port: int
    worker_id: bytes
    node_id: bytes
    direct_port: int
    def __init__(self, ip: _Optional[str] = ..., port: _Optional[int] = ..., worker_id: _Optional[bytes] = ..., node_id: _Optional[bytes] = ..., direct_port: _Optional[int] = ...) -> None: ...

class ObjectRefInfo(_message.Message):
    __slots__ = ("object_id", "owner")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    object_id: bytes
    owner: Address
    def __init__(self, object_id: _Optional[bytes] = ..., owner: _Optional[_Union[Address, _Mapping]] = ...) -> None: ...

class FunctionDescriptor(_message.Message):
    __slots__ = ("key", "module", "qualname", "pickled")
    KEY_FIELD_NUMBER: _ClassVar[int]
    MODULE_FIELD_NUMBER: _ClassVar[int]
    QUALNAME_FIELD_NUMBER: _ClassVar[int]
    PICKLED_FIELD_NUMBER: _ClassVar[int]
    key: str
    module: str
    qualname: str
    pickled: bytes
    def __init__(self, key: _Optional[str] = ..., module: _Optional[str] = ..., qualname: _Optional[str] = ..., pickled: _Optional[bytes] = ...) -> None: ...

class TaskArg(_message.Message):
    __slots__ = ("name", "data", "ref", "nested_refs", "star", "location")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    REF_FIELD_NUMBER: _ClassVar[int]
    NESTED_REFS_FIELD_NUMBER: _ClassVar[int]
    STAR_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    name: str
    data: bytes
    ref: ObjectRefInfo
    nested_refs: _containers.RepeatedCompositeFieldContainer[ObjectRefInfo]
    star: bool
    location: ReturnObject
    def __init__(self, name: _Optional[str] = ..., data: _Optional[bytes] = ..., ref: _Optional[_Union[ObjectRefInfo, _Mapping]] = ..., nested_refs: _Optional[_Iterable[_Union[ObjectRefInfo, _Mapping]]] = ..., star: _Optional[bool] = ..., location: _Optional[_Union[ReturnObject, _Mapping]] = ...) -> None: ...

class SchedulingStrategy(_message.Message):
    __slots__ = ("kind", "node_id", "soft", "placement_group_id", "bundle_index", "capture_child_tasks")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        DEFAULT: _ClassVar[SchedulingStrategy.Kind]
        SPREAD: _ClassVar[SchedulingStrategy.Kind]
        NODE_AFFINITY: _ClassVar[SchedulingStrategy.Kind]
        PLACEMENT_GROUP: _ClassVar[SchedulingStrategy.Kind]
    DEFAULT: SchedulingStrategy.Kind
    SPREAD: SchedulingStrategy.Kind
    NODE_AFFINITY: SchedulingStrategy.Kind
    PLACEMENT_GROUP: SchedulingStrategy.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    SOFT_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_INDEX_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_CHILD_TASKS_FIELD_NUMBER: _ClassVar[int]
    kind: SchedulingStrategy.Kind
    node_id: bytes
    soft: bool
    placement_group_id: bytes
    bundle_index: int
    capture_child_tasks: bool
    def __init__(self, kind: _Optional[_Union[SchedulingStrategy.Kind, str]] = ..., node_id: _Optional[bytes] = ..., soft: _Optional[bool] = ..., placement_group_id: _Optional[bytes] = ..., bundle_index: _Optional[int] = ..., capture_child_tasks: _Optional[bool] = ...) -> None: ...

class Bundle(_message.Message):
    __slots__ = ("placement_group_id", "index", "resources", "node_id")
    class ResourcesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    PLACEMENT_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    placement_group_id: bytes
    index: int
    resources: _containers.ScalarMap[str, float]
    node_id: bytes
    def __init__(self, placement_group_id: _Optional[bytes] = ..., index: _Optional[int] = ..., resources: _Optional[_Mapping[str, float]] = ..., node_id: _Optional[bytes] = ...) -> None: ...

class ActorCreationSpec(_message.Message):
    __slots__ = ("actor_id", "max_restarts", "max_task_retries", "max_concurrency", "is_async", "name", "namespace", "detached", "concurrency_groups", "class_name", "method_meta")
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_RESTARTS_FIELD_NUMBER: _ClassVar[int]
    MAX_TASK_RETRIES_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    IS_ASYNC_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    DETACHED_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_GROUPS_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    METHOD_META_FIELD_NUMBER: _ClassVar[int]
    actor_id: bytes
    max_restarts: int
    max_task_retries: int
    max_concurrency: int
    is_async: bool
    name: str
    namespace: str
    detached: bool
    concurrency_groups: bytes
    class_name: str
    method_meta: bytes
    def __init__(self, actor_id: _Optional[bytes] = ..., max_restarts: _Optional[int] = ..., max_task_retries: _Optional[int] = ..., max_concurrency: _Optional[int] = ..., is_async: _Optional[bool] = ..., name: _Optional[str] = ..., namespace: _Optional[str] = ..., detached: _Optional[bool] = ..., concurrency_groups: _Optional[bytes] = ..., class_name: _Optional[str] = ..., method_meta: _Optional[bytes] = ...) -> None: ...

class TaskSpec(_message.Message):
    __slots__ = ("task_id", "job_id", "parent_task_id", "name", "type", "function", "args", "num_returns", "streaming", "resources", "max_retries", "retry_exceptions", "retry_exception_allowlist", "attempt", "caller", "driver", "scheduling", "runtime_env", "actor_creation", "actor_id", "method_name", "sequence_no", "caller_id", "concurrency_group", "root_task_id", "gpu_ids", "namespace", "dynamic_returns", "reconstruction")
    class ResourcesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_TASK_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    NUM_RETURNS_FIELD_NUMBER: _ClassVar[int]
    STREAMING_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    RETRY_EXCEPTIONS_FIELD_NUMBER: _ClassVar[int]
    RETRY_EXCEPTION_ALLOWLIST_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    DRIVER_FIELD_NUMBER: _ClassVar[int]
    SCHEDULING_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_ENV_FIELD_NUMBER: _ClassVar[int]
    ACTOR_CREATION_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    METHOD_NAME_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_NO_FIELD_NUMBER: _ClassVar[int]
    CALLER_ID_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_GROUP_FIELD_NUMBER: _ClassVar[int]
    ROOT_TASK_ID_FIELD_NUMBER: _ClassVar[int]
    GPU_IDS_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    DYNAMIC_RETURNS_FIELD_NUMBER: _ClassVar[int]
    RECONSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    task_id: bytes
    job_id: bytes
    parent_task_id: bytes
    name: str
    type: TaskType
    function: FunctionDescriptor
    args: _containers.RepeatedCompositeFieldContainer[TaskArg]
    num_returns: int
    streaming: bool
    resources: _containers.ScalarMap[str, float]
    max_retries: int
    retry_exceptions: bool
    retry_exception_allowlist: bytes
    attempt: int
    caller: Address
    driver: Address
    scheduling: SchedulingStrategy
    runtime_env: str
    actor_creation: ActorCreationSpec
    actor_id: bytes
    method_name: str
    sequence_no: int
    caller_id: bytes
    concurrency_group: str
    root_task_id: bytes
    gpu_ids: _containers.RepeatedScalarFieldContainer[int]
    namespace: str
    dynamic_returns: bool
    reconstruction: bool
    def __init__(self, task_id: _Optional[bytes] = ..., job_id: _Optional[bytes] = ..., parent_task_id: _Optional[bytes] = ..., name: _Optional[str] = ..., type: _Optional[_Union[TaskType, str]] = ..., function: _Optional[_Union[FunctionDescriptor, _Mapping]] = ..., args: _Optional[_Iterable[_Union[TaskArg, _Mapping]]] = ..., num_returns: _Optional[int] = ..., streaming: _Optional[bool] = ..., resources: _Optional[_Mapping[str, float]] = ..., max_retries: _Optional[int] = ..., retry_exceptions: _Optional[bool] = ..., retry_exception_allowlist: _Optional[bytes] = ..., attempt: _Optional[int] = ..., caller: _Optional[_Union[Address, _Mapping]] = ..., driver: _Optional[_Union[Address, _Mapping]] = ..., scheduling: _Optional[_Union[SchedulingStrategy, _Mapping]] = ..., runtime_env: _Optional[str] = ..., actor_creation: _Optional[_Union[ActorCreationSpec, _Mapping]] = ..., actor_id: _Optional[bytes] = ..., method_name: _Optional[str] = ..., sequence_no: _Optional[int] = ..., caller_id: _Optional[bytes] = ..., concurrency_group: _Optional[str] = ..., root_task_id: _Optional[bytes] = ..., gpu_ids: _Optional[_Iterable[int]] = ..., namespace: _Optional[str] = ..., dynamic_returns: _Optional[bool] = ..., reconstruction: _Optional[bool] = ...) -> None: ...

class ReturnObject(_message.Message):
    __slots__ = ("object_id", "data", "in_store", "node_id", "size", "nested_refs", "is_error")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    IN_STORE_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    NESTED_REFS_FIELD_NUMBER: _ClassVar[int]
    IS_ERROR_FIELD_NUMBER: _ClassVar[int]
    object_id: bytes
    data: bytes
    in_store: bool
    node_id: bytes
    size: int
    nested_refs: _containers.RepeatedCompositeFieldContainer[ObjectRefInfo]
    is_error: bool
    def __init__(self, object_id: _Optional[bytes] = ..., data: _Optional[bytes] = ..., in_store: _Optional[bool] = ..., node_id: _Optional[bytes] = ..., size: _Optional[int] = ..., nested_refs: _Optional[_Iterable[_Union[ObjectRefInfo, _Mapping]]] = ..., is_error: _Optional[bool] = ...) -> None: ...

class ResourceMap(_message.Message):
    __slots__ = ("values",)
    class ValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.ScalarMap[str, float]
    def __init__(self, values: _Optional[_Mapping[str, float]] = ...) -> None: ...

class ResourceDemand(_message.Message):
    __slots__ = ("shape", "num_ready_requests_queued", "num_infeasible_requests_queued", "backlog_size")
    class ShapeEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    NUM_READY_REQUESTS_QUEUED_FIELD_NUMBER: _ClassVar[int]
    NUM_INFEASIBLE_REQUESTS_QUEUED_FIELD_NUMBER: _ClassVar[int]
    BACKLOG_SIZE_FIELD_NUMBER: _ClassVar[int]
    shape: _containers.ScalarMap[str, float]
    num_ready_requests_queued: int
    num_infeasible_requests_queued: int
    backlog_size: int
    def __init__(self, shape: _Optional[_Mapping[str, float]] = ..., num_ready_requests_queued: _Optional[int] = ..., num_infeasible_requests_queued: _Optional[int] = ..., backlog_size: _Optional[int] = ...) -> None: ...
