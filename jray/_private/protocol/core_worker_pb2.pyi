from jray._private.protocol import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PushTaskRequest(_message.Message):
    __slots__ = ("spec",)
    SPEC_FIELD_NUMBER: _ClassVar[int]
    spec: _common_pb2.TaskSpec
    def __init__(self, spec: _Optional[_Union[_common_pb2.TaskSpec, _Mapping]] = ...) -> None: ...

class PushTaskBatchRequest(_message.Message):
    __slots__ = ("specs",)
    SPECS_FIELD_NUMBER: _ClassVar[int]
    specs: _containers.RepeatedCompositeFieldContainer[_common_pb2.TaskSpec]
    def __init__(self, specs: _Optional[_Iterable[_Union[_common_pb2.TaskSpec, _Mapping]]] = ...) -> None: ...

class PushTaskReply(_message.Message):
    __slots__ = ("returns", "is_application_error", "worker_exiting", "system_error", "num_streamed", "retryable", "borrowed_ids", "task_id", "run_seconds", "not_run", "started_at", "worker_id", "node_id", "pid", "blocked")
    RETURNS_FIELD_NUMBER: _ClassVar[int]
    IS_APPLICATION_ERROR_FIELD_NUMBER: _ClassVar[int]
    WORKER_EXITING_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_ERROR_FIELD_NUMBER: _ClassVar[int]
    NUM_STREAMED_FIELD_NUMBER: _ClassVar[int]
    RETRYABLE_FIELD_NUMBER: _ClassVar[int]
    BORROWED_IDS_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    NOT_RUN_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_FIELD_NUMBER: _ClassVar[int]
    returns: _containers.RepeatedCompositeFieldContainer[_common_pb2.ReturnObject]
    is_application_error: bool
    worker_exiting: bool
    system_error: str
    num_streamed: int
    retryable: bool
    borrowed_ids: _containers.RepeatedScalarFieldContainer[bytes]
    task_id: bytes
    run_seconds: float
    not_run: bool
    started_at: float
    worker_id: bytes
    node_id: bytes
    pid: int
    blocked: bool
    def __init__(self, returns: _Optional[_Iterable[_Union[_common_pb2.ReturnObject, _Mapping]]] = ..., is_application_error: _Optional[bool] = ..., worker_exiting: _Optional[bool] = ..., system_error: _Optional[str] = ..., num_streamed: _Optional[int] = ..., retryable: _Optional[bool] = ..., borrowed_ids: _Optional[_Iterable[bytes]] = ..., task_id: _Optional[bytes] = ..., run_seconds: _Optional[float] = ..., not_run: _Optional[bool] = ..., started_at: _Optional[float] = ..., worker_id: _Optional[bytes] = ..., node_id: _Optional[bytes] = ..., pid: _Optional[int] = ..., blocked: _Optional[bool] = ...) -> None: ...

class GetObjectStatusRequest(_message.Message):
    __slots__ = ("object_id", "timeout", "lost_node_id")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    LOST_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    object_id: bytes
    timeout: float
    lost_node_id: bytes
    def __init__(self, object_id: _Optional[bytes] = ..., timeout: _Optional[float] = ..., lost_node_id: _Optional[bytes] = ...) -> None: ...

class GetObjectStatusReply(_message.Message):
    __slots__ = ("status", "object", "raylet_ip", "raylet_port")
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        READY: _ClassVar[GetObjectStatusReply.Status]
        PENDING: _ClassVar[GetObjectStatusReply.Status]
        FREED: _ClassVar[GetObjectStatusReply.Status]
        NOT_FOUND: _ClassVar[GetObjectStatusReply.Status]
    READY: GetObjectStatusReply.Status
    PENDING: GetObjectStatusReply.Status
    FREED: GetObjectStatusReply.Status
    NOT_FOUND: GetObjectStatusReply.Status
    STATUS_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    RAYLET_IP_FIELD_NUMBER: _ClassVar[int]
    RAYLET_PORT_FIELD_NUMBER: _ClassVar[int]
    status: GetObjectStatusReply.Status
    object: _common_pb2.ReturnObject
    raylet_ip: str
    raylet_port: int
    def __init__(self, status: _Optional[_Union[GetObjectStatusReply.Status, str]] = ..., object: _Optional[_Union[_common_pb2.ReturnObject, _Mapping]] = ..., raylet_ip: _Optional[str] = ..., raylet_port: _Optional[int] = ...) -> None: ...

class CancelTaskRequest(_message.Message):
    __slots__ = ("task_id", "force", "recursive", "requeue")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    RECURSIVE_FIELD_NUMBER: _ClassVar[int]
    REQUEUE_FIELD_NUMBER: _ClassVar[int]
    task_id: bytes
    force: bool
    recursive: bool
    requeue: bool
    def __init__(self, task_id: _Optional[bytes] = ..., force: _Optional[bool] = ..., recursive: _Optional[bool] = ..., requeue: _Optional[bool] = ...) -> None: ...

class CancelTaskReply(_message.Message):
    __slots__ = ("attempted",)
    ATTEMPTED_FIELD_NUMBER: _ClassVar[int]
    attempted: bool
    def __init__(self, attempted: _Optional[bool] = ...) -> None: ...

class ExitRequest(_message.Message):
    __slots__ = ("force", "reason", "if_idle")
    FORCE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    IF_IDLE_FIELD_NUMBER: _ClassVar[int]
    force: bool
    reason: str
    if_idle: bool
    def __init__(self, force: _Optional[bool] = ..., reason: _Optional[str] = ..., if_idle: _Optional[bool] = ...) -> None: ...

class ExitReply(_message.Message):
    __slots__ = ("refused",)
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    refused: bool
    def __init__(self, refused: _Optional[bool] = ...) -> None: ...

class LogBatch(_message.Message):
    __slots__ = ("pid", "ip", "job_id", "lines")
    PID_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    pid: int
    ip: str
    job_id: bytes
    lines: _containers.RepeatedCompositeFieldContainer[LogLine]
    def __init__(self, pid: _Optional[int] = ..., ip: _Optional[str] = ..., job_id: _Optional[bytes] = ..., lines: _Optional[_Iterable[_Union[LogLine, _Mapping]]] = ...) -> None: ...

class LogLine(_message.Message):
    __slots__ = ("prefix", "text", "is_err", "root_task_id", "task_id")
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    IS_ERR_FIELD_NUMBER: _ClassVar[int]
    ROOT_TASK_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    prefix: str
    text: str
    is_err: bool
    root_task_id: bytes
    task_id: bytes
    def __init__(self, prefix: _Optional[str] = ..., text: _Optional[str] = ..., is_err: _Optional[bool] = ..., root_task_id: _Optional[bytes] = ..., task_id: _Optional[bytes] = ...) -> None: ...

class PublishLogsReply(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GeneratorItem(_message.Message):
    __slots__ = ("task_id", "index", "item", "done", "attempt")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    task_id: bytes
    index: int
    item: _common_pb2.ReturnObject
    done: bool
    attempt: int
    def __init__(self, task_id: _Optional[bytes] = ..., index: _Optional[int] = ..., item: _Optional[_Union[_common_pb2.ReturnObject, _Mapping]] = ..., done: _Optional[bool] = ..., attempt: _Optional[int] = ...) -> None: ...

class GeneratorItemReply(_message.Message):
    __slots__ = ("stop",)
    STOP_FIELD_NUMBER: _ClassVar[int]
    stop: bool
    def __init__(self, stop: _Optional[bool] = ...) -> None: ...

class BorrowRequest(_message.Message):
    __slots__ = ("object_ids", "borrower_id", "add", "borrower")
    OBJECT_IDS_FIELD_NUMBER: _ClassVar[int]
    BORROWER_ID_FIELD_NUMBER: _ClassVar[int]
    ADD_FIELD_NUMBER: _ClassVar[int]
    BORROWER_FIELD_NUMBER: _ClassVar[int]
    object_ids: _containers.RepeatedScalarFieldContainer[bytes]
    borrower_id: bytes
    add: bool
    borrower: _common_pb2.Address
    def __init__(self, object_ids: _Optional[_Iterable[bytes]] = ..., borrower_id: _Optional[bytes] = ..., add: _Optional[bool] = ..., borrower: _Optional[_Union[_common_pb2.Address, _Mapping]] = ...) -> None: ...

class BorrowReply(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
