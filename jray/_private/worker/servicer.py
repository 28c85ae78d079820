"""The CoreWorker's gRPC service: a thin layer that hands each call to the
CoreWorker (tasks pushed by owners, borrowers asking owners about objects,
logs for the driver, streaming-generator items, cancel and exit)."""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, Any

import grpc

from jray._private import debug_wake, output_wire
from jray._private.protocol import core_worker_pb2 as wpb
from jray._private.protocol import core_worker_pb2_grpc as wgrpc

if TYPE_CHECKING:
    from jray._private.worker.core_worker import CoreWorker


class CoreWorkerServicer(wgrpc.CoreWorkerServiceServicer):
    """Thin gRPC layer over the CoreWorker."""

    def __init__(self, w: CoreWorker) -> None:
        self.w = w

    async def PushTaskBatch(self, request: wpb.PushTaskBatchRequest, context: Any) -> Any:
        if self.w.executor is None:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "this process does not execute tasks (a driver)")
        async for reply in self.w.executor.push_batch(request.specs):
            yield reply

    async def PushTask(self, request: wpb.PushTaskRequest, context: Any) -> wpb.PushTaskReply:
        if self.w.executor is None:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "this process does not execute tasks (a driver)")
        return await self.w.executor.push_task(request.spec)  # type: ignore[no-any-return]

    async def GetObjectStatus(self, request: wpb.GetObjectStatusRequest, context: Any) -> wpb.GetObjectStatusReply:
        w = self.w
        oid = request.object_id
        table = w.table
        if table.rebuild is not None and (
                (request.lost_node_id and oid in w.objects)  # the asker found the copy we named gone
                or (oid not in w.objects and oid not in table.pending_owned and table.can_rebuild(oid))):
            if oid not in w.objects:
                w.refs.add_owned(oid)  # freed since: an argument of a task being rebuilt elsewhere
            table.rebuild(oid, request.lost_node_id if request.lost_node_id != b"?" else b"")
        if oid not in w.objects:
            if oid not in w.table.pending_owned:
                return wpb.GetObjectStatusReply(status=wpb.GetObjectStatusReply.FREED)
            try:
                await asyncio.wait_for(w.wait_local_ready(oid), request.timeout or None)
            except asyncio.TimeoutError:
                return wpb.GetObjectStatusReply(status=wpb.GetObjectStatusReply.PENDING)
        ret = w.objects.get(oid)
        if ret is None:
            return wpb.GetObjectStatusReply(status=wpb.GetObjectStatusReply.FREED)
        return wpb.GetObjectStatusReply(status=wpb.GetObjectStatusReply.READY, object=ret)

    async def UpdateBorrowers(self, request: wpb.BorrowRequest, context: Any) -> wpb.BorrowReply:
        if request.add and request.borrower.port:
            self.w.note_borrower(request.borrower_id, request.borrower)
        for oid in request.object_ids:
            if request.add:
                self.w.refs.add_borrower(oid, request.borrower_id)
            else:
                self.w.refs.remove_borrower(oid, request.borrower_id)
        return wpb.BorrowReply()

    async def PublishLogs(self, request: wpb.LogBatch, context: Any) -> wpb.PublishLogsReply:
        for line in request.lines:  # a task paused at a breakpoint: a waiting get opens the debugger
            if line.text.startswith(output_wire.MARK):
                msg = output_wire.decode(line.text)
                if msg is not None and msg.get("kind") == "debugger":
                    debug_wake.notify(msg)
        if not self.w.log_to_driver:  # init(log_to_driver=False): silent, in a notebook too
            return wpb.PublishLogsReply()
        sink = self.w.log_sink
        if sink is not None:
            sink(request)
        else:
            _print_logs(request)
        return wpb.PublishLogsReply()

    async def ReportGeneratorItem(self, request: wpb.GeneratorItem, context: Any) -> wpb.GeneratorItemReply:
        self.w.on_generator_item(request)
        return wpb.GeneratorItemReply()

    async def CancelTask(self, request: wpb.CancelTaskRequest, context: Any) -> wpb.CancelTaskReply:
        if self.w.executor is None:
            return wpb.CancelTaskReply(attempted=False)
        if request.requeue:
            return wpb.CancelTaskReply(attempted=self.w.executor.requeue(request.task_id))
        return wpb.CancelTaskReply(attempted=self.w.executor.cancel(request.task_id, request.force))

    async def Exit(self, request: wpb.ExitRequest, context: Any) -> wpb.ExitReply:
        if request.if_idle and self.w.owns_objects():
            return wpb.ExitReply(refused=True)  # its objects would die with it
        if self.w.executor is not None:
            self.w.loop.call_later(0.05, self.w.executor.exit_now, request.reason)
        return wpb.ExitReply()


def _print_logs(batch: wpb.LogBatch) -> None:
    for line in batch.lines:
        msg = output_wire.decode(line.text)
        if msg is not None:  # a rich message: a terminal shows a finished progress line's text only
            if msg.get("kind") == "progress" and msg.get("closed") and msg.get("text"):
                sys.stderr.write(f"({line.prefix}) {msg['text']}\n" if line.prefix else f"{msg['text']}\n")
            continue
        stream = sys.stderr if line.is_err else sys.stdout
        stream.write(f"({line.prefix} pid={batch.pid}) {line.text}\n")
    sys.stdout.flush()
