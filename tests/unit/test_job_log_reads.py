"""``jray.jupyter.jobs.read_log`` (what ``GET jray/api/jobs/<id>/logs``
answers) over a fake client whose reads stop at a limit, as the jobs API's
do at 1 MiB: it reads on until caught up, keeps only the last ``max_chars``
and says what it left out."""

from __future__ import annotations

from typing import Any

from jray.jupyter import jobs


class FakeClient:
    def __init__(self, log: str, limit: int, ended: bool = True) -> None:
        self.log, self.limit, self.ended = log.encode(), limit, ended
        self.reads: list[int] = []

    def get_job_logs_from(self, sid: str, offset: int = 0, wait: float = 0.0) -> dict[str, Any]:
        self.reads.append(offset)
        data = self.log[offset:offset + self.limit]
        nxt = offset + len(data)
        return {"logs": data.decode(), "offset": nxt, "terminal": self.ended and nxt >= len(self.log),
                "status": "SUCCEEDED" if self.ended else "RUNNING"}


LOG = "".join(f"line {i:06d}\n" for i in range(100_000))  # 1.2 MB


def test_reads_on_past_the_api_limit_and_keeps_the_end():
    c = FakeClient(LOG, limit=300 * 1024)
    r = jobs.read_log(c, "j", 0, max_chars=50_000)
    assert r["logs"] == LOG[-50_000:] and r["truncated"] and r["terminal"]
    assert r["offset"] == len(LOG) and c.reads == [0, 307200, 614400, 921600]  # 3 full reads, then the rest
    assert jobs.read_log(c, "j", r["offset"]) == {"logs": "", "offset": len(LOG), "terminal": True,
                                                  "status": "SUCCEEDED", "truncated": False}


def test_short_reads_are_one_call_and_whole():
    c = FakeClient(LOG[:5000], limit=1 << 20, ended=False)
    r = jobs.read_log(c, "j", 1000)
    assert r == {"logs": LOG[1000:5000], "offset": 5000, "terminal": False, "status": "RUNNING", "truncated": False}
    assert c.reads == [1000]


def test_bounded_number_of_reads():
    c = FakeClient(LOG, limit=jobs.LOG_CATCH_UP_BYTES, ended=False)
    jobs.read_log(c, "j", 0, max_chars=100)
    assert len(c.reads) <= jobs.LOG_CATCH_UP_READS
