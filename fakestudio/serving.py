"""Listening sockets and uvicorn for fakestudio's HTTP servers (`registry serve`, `web`).

Why this module exists: a server that hands uvicorn a socket made by `socket.create_server`
answered every request on a kept-alive connection in ~44 ms on loopback (measured: p50 44.0 ms
with httpx.Client and with http.client, for a 10-byte JSON response). uvicorn writes a response
in two sends (headers, then body); with Nagle's algorithm on, the second waits for the ACK of
the first, and the client delays that ACK (40 ms on Linux). asyncio turns Nagle off on every
accepted connection (TCP_NODELAY), but only for sockets whose `proto` is IPPROTO_TCP, and
`socket.create_server` makes sockets with proto 0, which accepted connections inherit. So the
socket here is made with the protocol spelled out (and TCP_NODELAY set on the listener too,
which Linux copies to accepted connections): the same request then takes ~0.5 ms.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


def listen(host: str, port: int, backlog: int = 512) -> socket.socket:
    """A listening TCP socket on host:port (port 0: a free one) whose accepted connections
    send without Nagle's delay. Raises OSError when the address cannot be bound."""
    infos = socket.getaddrinfo(
        host or None,
        port,
        type=socket.SOCK_STREAM,
        proto=socket.IPPROTO_TCP,
        flags=socket.AI_PASSIVE,
    )
    last: OSError | None = None
    for family, kind, proto, _name, addr in infos:
        sock = socket.socket(family, kind, proto or socket.IPPROTO_TCP)
        try:
            if hasattr(socket, "SO_REUSEADDR"):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPV6_V6ONLY"):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind(addr)
            sock.listen(backlog)
            return sock
        except OSError as e:
            sock.close()
            last = e
    raise last or OSError(f"no address for {host!r}")


def bound_port(sock: socket.socket) -> int:
    return sock.getsockname()[1]


def uvicorn_server(app: Any, on_exit: Callable[[], None] | None = None, **config: Any):
    """A quiet uvicorn.Server for ``app`` (no access log, no Server header), ready to
    `.run(sockets=[listen(...)])`, in this thread or another. ``on_exit`` is called first when
    the server is asked to stop (Ctrl-C, SIGTERM): long-lived responses (event streams) end
    there, instead of holding the shutdown until its timeout."""
    import uvicorn

    opts: dict[str, Any] = {"log_level": "warning", "access_log": False, "server_header": False}
    opts.update(config)

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):
            if on_exit is not None:
                on_exit()
            super().handle_exit(sig, frame)

    server = Server(uvicorn.Config(app, **opts))
    server.on_exit = on_exit
    return server


@contextmanager
def running(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 0,
    on_exit: Callable[[], None] | None = None,
    **config: Any,
) -> Iterator[str]:
    """Serve ``app`` in a background thread for the duration of the block; yields its base URL.
    For tests, benchmarks and embedding; the commands run the server in the foreground."""
    sock = listen(host, port)
    server = uvicorn_server(app, on_exit=on_exit or getattr(app, "close_streams", None), **config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            sock.close()
            raise RuntimeError("the server did not start")
        time.sleep(0.01)
    try:
        shown = f"[{host}]" if ":" in host else host
        yield f"http://{shown}:{bound_port(sock)}"
    finally:
        if server.on_exit is not None:
            server.on_exit()
        server.should_exit = True
        thread.join(10)
        sock.close()
