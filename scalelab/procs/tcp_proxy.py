"""A TCP relay the harness can partition: the local backend's stand-in for a network cut.

The local pods of a Deployment reach the broker through one ``TcpProxy``. ``cut()`` ends
every relayed connection (the broker sees its clients go and requeues what they held
unacked; the clients see their connection drop) and stops accepting new ones (connect()
waits in the backlog until the client's own timeout, as against a firewall that drops
SYNs). That is what a partition looks like on a cluster whose NetworkPolicy enforcement
judges the first packet of a connection (kind's kindnet): ``scalelab.backends.cluster.
faults`` applies the policy and closes the agents' broker connections, so both backends
cut the same way. ``restore()`` accepts again; the clients reconnect on their own.

One thread with ``selectors``; no third-party server (toxiproxy is not packaged for
Debian, and this needs only cut and restore).
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading

LOG = logging.getLogger(__name__)

_CHUNK = 65536


class TcpProxy:
    """Relays ``listen_host:port`` (a free port unless given) to ``upstream``."""

    def __init__(self, *, upstream: tuple[str, int], listen_host: str = "127.0.0.1",
                 port: int = 0, name: str = "proxy") -> None:
        self.upstream = upstream
        self.name = name
        self._server = socket.create_server((listen_host, port), backlog=128)
        self._server.setblocking(False)
        self.host, self.port = self._server.getsockname()[:2]
        self._sel = selectors.DefaultSelector()
        self._peers: dict[socket.socket, socket.socket] = {}
        self._cut = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(target=self._loop, name=f"tcp-proxy-{name}",
                                        daemon=True)
        self.connections_total = 0
        self._armed_cut = False
        self._cut_done = threading.Event()
        self._last_cut = 0

    def start(self) -> TcpProxy:
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._sel.register(self._server, selectors.EVENT_READ, "accept")
        self._thread.start()
        return self

    @property
    def is_cut(self) -> bool:
        return self._cut.is_set()

    @property
    def connections(self) -> int:
        """Client connections currently relayed."""
        with self._lock:
            return len(self._peers) // 2

    def cut(self, *, timeout: float = 5.0) -> int:
        """End every relayed connection and stop accepting; the number of connections ended.

        The relay thread does the closing (it owns the sockets); this waits for it.
        """
        if self._cut.is_set():
            return 0
        self._cut_done.clear()
        self._cut.set()
        self._wake()
        if not self._cut_done.wait(timeout) and self._thread.is_alive():
            raise TimeoutError(f"{self.name}: the relay did not cut within {timeout:g}s")
        return self._last_cut

    def restore(self) -> None:
        self._cut.clear()
        self._wake()

    def close(self) -> None:
        """Stop the relay and close every socket (the clients see their connections end)."""
        self._stop.set()
        self._wake()
        if self._thread.is_alive():
            self._thread.join(5.0)
        with self._lock:
            socks = list(self._peers)
            self._peers.clear()
        for s in [*socks, self._server, self._wake_r, self._wake_w]:
            with contextlib.suppress(OSError):
                s.close()
        self._sel.close()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the loop ----------------------------------------------------------------------
    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._arm()
            for key, _ in self._sel.select(timeout=1.0):
                if key.data == "wake":
                    with contextlib.suppress(OSError):
                        self._wake_r.recv(4096)
                elif key.data == "accept":
                    self._accept()
                else:
                    self._relay(key.fileobj)  # type: ignore[arg-type]

    def _arm(self) -> None:
        """Watch the listening socket and the connections only while not cut."""
        cut = self._cut.is_set()
        if cut == self._armed_cut:
            return
        self._armed_cut = cut
        if cut:
            with self._lock:
                pairs = {frozenset((a, b)) for a, b in self._peers.items()}
            for a, b in pairs:
                self._drop(a, b)
            self._last_cut = len(pairs)
            self._cut_done.set()
        events = 0 if cut else selectors.EVENT_READ
        with self._lock:
            socks = [self._server, *self._peers]
        for s in socks:
            data = "accept" if s is self._server else "relay"
            with contextlib.suppress(KeyError, ValueError, OSError):
                if events:
                    try:
                        self._sel.modify(s, events, data)
                    except KeyError:
                        self._sel.register(s, events, data)
                else:
                    self._sel.unregister(s)

    def _accept(self) -> None:
        try:
            client, _ = self._server.accept()
        except (BlockingIOError, OSError):
            return
        try:
            upstream = socket.create_connection(self.upstream, timeout=5.0)
        except OSError as err:
            # the broker restarting: the client retries on its own
            LOG.info("%s: upstream %s:%s refused: %s", self.name, *self.upstream, err)
            client.close()
            return
        for s in (client, upstream):
            s.setblocking(True)
            s.settimeout(5.0)
        with self._lock:
            self._peers[client] = upstream
            self._peers[upstream] = client
            self.connections_total += 1
        self._sel.register(client, selectors.EVENT_READ, "relay")
        self._sel.register(upstream, selectors.EVENT_READ, "relay")

    def _relay(self, sock: socket.socket) -> None:
        with self._lock:
            other = self._peers.get(sock)
        if other is None:
            return
        try:
            data = sock.recv(_CHUNK)
            if data:
                other.sendall(data)
                return
        except OSError:
            pass
        self._drop(sock, other)

    def _drop(self, a: socket.socket, b: socket.socket) -> None:
        with self._lock:
            self._peers.pop(a, None)
            self._peers.pop(b, None)
        for s in (a, b):
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._sel.unregister(s)
            with contextlib.suppress(OSError):
                s.close()
