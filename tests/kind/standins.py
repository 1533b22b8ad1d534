"""Stand-ins for what listens on a local port when the cluster backends run for real.

STAND-IN, NOT A CLUSTER: ``ForwardStandIn`` takes the place of a ``kubectl port-forward``
process (and of kind's host port mapping to the API's NodePort). It is a real TCP server
on the local port the backend chose, so the backends' real probes (TCP connect, HTTP GET,
the AMQP header) run against real sockets. It answers every connection with a short
HTTP 200, which is also "a reply" for the AMQP probe. ``stall()`` makes it behave like a
forward stalled as in kubernetes/kubernetes#78446: connections are still accepted, the
process still runs, but nothing comes back.
"""

from __future__ import annotations

import socket
import threading

RESPONSE = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


class ForwardStandIn:
    """A real listener on ``127.0.0.1:port`` answering HTTP 200 until stalled or stopped."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.stopped = False
        self.stalled = threading.Event()
        self.answered = 0
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True,
                                        name=f"forward-stand-in-{port}")
        self._thread.start()

    def _serve(self) -> None:
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            if self.stalled.is_set():
                self._held.append(conn)   # accepted, never answered
                continue
            try:
                conn.settimeout(1.0)
                self._read_request(conn)
                conn.sendall(RESPONSE)
                self.answered += 1
                conn.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            finally:
                conn.close()

    @staticmethod
    def _read_request(conn: socket.socket) -> None:
        """Read an HTTP request head or the 8-byte AMQP header (closing with unread bytes
        would reset the connection)."""
        data = b""
        while b"\r\n\r\n" not in data and not (data.startswith(b"AMQP") and len(data) >= 8):
            try:
                chunk = conn.recv(4096)
            except TimeoutError:
                return
            if not chunk:
                return
            data += chunk

    def stall(self) -> None:
        """Keep accepting, stop answering (the process still runs)."""
        self.stalled.set()

    # kube.Process
    def running(self) -> bool:
        return not self.stopped

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        self._thread.join(timeout=5)
        self.sock.close()
        for conn in self._held:
            conn.close()
