"""A userspace delay line: ``tc netem`` (delay, loss) for kernels without ``sch_netem``.

Run inside a host's network namespace (``ip netns exec NS python -I delay_line.py ...``)
by :meth:`jray._private.virtual_hosts.Host.netem` where the kernel has no
netem. It opens a TUN device; the harness then routes the host's subnet
through that device (the host's own address stays on its veth, so what
arrives comes in untouched). Every IPv4 packet the host sends to the subnet
is read from the TUN, held for the delay (or dropped with the loss
probability), then written as an Ethernet frame straight onto the veth
(an ``AF_PACKET`` socket, so the kernel's routing does not send it back
into the TUN), addressed to the MAC of the packet's destination from the
table given on the command line.

Only the host's outgoing direction passes through it: a round trip with
this host grows by the whole delay. (netem is set on both ends of the
link with half the delay each: the same round trip.)

Standard input takes commands, a line each: ``set DELAY_MS LOSS_PCT``
changes the emulation for packets read after it, ``mac IP MAC`` adds a
destination (a host added later); its end (the harness gone) ends the
line. Only the standard library: it runs with ``python -I``.

    delay_line.py --tun NAME --dev DEV --src-mac MAC --delay-ms D --loss-pct P --mac IP=MAC ...
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import heapq
import itertools
import os
import random
import select
import socket
import struct
import subprocess
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
ETH_P_IP = 0x0800
BATCH = 256  # packets read from the TUN per wake-up at most


def mac_bytes(mac: str) -> bytes:
    parts = mac.split(":")
    if len(parts) != 6:
        raise ValueError(f"not a MAC address: {mac!r}")
    return bytes(int(p, 16) for p in parts)


def open_tun(name: str) -> int:
    """A TUN device ``name`` (IP packets, no extra header), up; its fd."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


class DelayLine:
    def __init__(self, tun_fd: int, out: socket.socket, src_mac: bytes, macs: dict[bytes, bytes],
                 delay_ms: float, loss_pct: float) -> None:
        self.tun_fd, self.out, self.src_mac, self.macs = tun_fd, out, src_mac, macs
        self.set(delay_ms, loss_pct)
        self.queue: list[tuple[float, int, bytes]] = []  # (due, seq, frame): a heap
        self.seq = itertools.count()
        self.sent = self.dropped = self.unroutable = 0

    def set(self, delay_ms: float, loss_pct: float) -> None:
        if delay_ms < 0 or not 0 <= loss_pct <= 100:
            raise ValueError(f"delay must be >= 0 ms and loss within 0..100 %, not {delay_ms}, {loss_pct}")
        self.delay_s, self.loss = delay_ms / 1000.0, loss_pct / 100.0

    def command(self, words: list[str]) -> None:
        if len(words) == 3 and words[0] == "set":
            self.set(float(words[1]), float(words[2]))
        elif len(words) == 3 and words[0] == "mac":
            self.macs[socket.inet_aton(words[1])] = mac_bytes(words[2])
        elif words:
            raise ValueError(f"unknown delay line command: {' '.join(words)!r}")

    def read_packets(self) -> None:
        now = time.monotonic()
        for _ in range(BATCH):
            try:
                pkt = os.read(self.tun_fd, 65536)
            except BlockingIOError:
                return
            if len(pkt) < 20 or pkt[0] >> 4 != 4:
                continue  # not IPv4 (the route sends only IPv4 here)
            dst = self.macs.get(pkt[16:20])
            if dst is None:
                self.unroutable += 1
                continue
            if self.loss and random.random() < self.loss:
                self.dropped += 1
                continue
            frame = dst + self.src_mac + struct.pack("!H", ETH_P_IP) + pkt
            heapq.heappush(self.queue, (now + self.delay_s, next(self.seq), frame))

    def send_due(self) -> None:
        now = time.monotonic()
        while self.queue and self.queue[0][0] <= now:
            _, _, frame = heapq.heappop(self.queue)
            try:
                self.out.send(frame)
                self.sent += 1
            except OSError as e:  # the link is down (a partition): the packet is lost, as on a wire
                if e.errno not in (errno.ENETDOWN, errno.ENOBUFS, errno.ENXIO, errno.EAGAIN):
                    raise
                self.dropped += 1

    def run(self, control: int) -> None:
        poller = select.poll()
        poller.register(self.tun_fd, select.POLLIN)
        poller.register(control, select.POLLIN)
        pending = b""
        while True:
            timeout_ms = None
            if self.queue:
                timeout_ms = max(0.0, (self.queue[0][0] - time.monotonic()) * 1000.0)
            for fd, _ in poller.poll(timeout_ms):
                if fd == self.tun_fd:
                    self.read_packets()
                else:
                    data = os.read(control, 4096)
                    if not data:
                        return
                    pending += data
                    while b"\n" in pending:
                        line, pending = pending.split(b"\n", 1)
                        self.command(line.decode().split())
            self.send_due()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tun", required=True)
    p.add_argument("--dev", required=True, help="the host's interface the frames go out on")
    p.add_argument("--src-mac", required=True, help="that interface's MAC")
    p.add_argument("--delay-ms", type=float, default=0.0)
    p.add_argument("--loss-pct", type=float, default=0.0)
    p.add_argument("--mtu", type=int, default=1500)
    p.add_argument("--mac", action="append", default=[], metavar="IP=MAC",
                   help="where a destination address is on the link (repeat for each)")
    args = p.parse_args(argv)
    macs = {}
    for item in args.mac:
        ip, _, mac = item.partition("=")
        macs[socket.inet_aton(ip)] = mac_bytes(mac)
    tun = open_tun(args.tun)
    subprocess.run(["ip", "link", "set", "dev", args.tun, "mtu", str(args.mtu), "up"], check=True)
    out = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
    out.bind((args.dev, 0))
    out.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    line = DelayLine(tun, out, mac_bytes(args.src_mac), macs, args.delay_ms, args.loss_pct)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    line.run(sys.stdin.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
