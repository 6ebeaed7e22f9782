"""The listening socket shared by `registry serve` and `web` (fakestudio.serving): responses on a
kept-alive connection go out at once instead of waiting for the client's delayed ACK."""

from __future__ import annotations

import http.client
import socket
import statistics
import time

import httpx
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from fakestudio.serving import listen, running


async def _small(request):
    return JSONResponse({"ok": True})


APP = Starlette(routes=[Route("/small", _small)])


def test_listening_socket_is_tcp_with_nodelay():
    sock = listen("127.0.0.1", 0)
    try:
        # asyncio turns Nagle off on accepted connections only when proto is IPPROTO_TCP
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        with socket.create_connection(sock.getsockname()[:2]) as client:
            conn, _ = sock.accept()
            with conn:
                assert conn.proto == socket.IPPROTO_TCP
                assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            client.close()
    finally:
        sock.close()


def test_listen_refuses_a_busy_port_with_oserror():
    sock = listen("127.0.0.1", 0)
    try:
        port = sock.getsockname()[1]
        try:
            listen("127.0.0.1", port).close()
        except OSError:
            pass
        else:  # SO_REUSEADDR never allows two listeners on one port
            raise AssertionError("a second listener bound a busy port")
    finally:
        sock.close()


def _p50(fn, n=40) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def test_kept_alive_requests_do_not_wait_for_delayed_acks():
    """Before the fix every request on a kept-alive connection took ~44 ms (Nagle + the client's
    40 ms delayed ACK). The bound here is loose (a loaded machine); bench/registry_load.py
    measures the real figure (~0.5-0.8 ms)."""
    with running(APP) as url:
        with httpx.Client(base_url=url) as client:
            assert client.get("/small").json() == {"ok": True}
            assert _p50(lambda: client.get("/small")) < 0.02
        port = int(url.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

        def one():
            conn.request("GET", "/small")
            r = conn.getresponse()
            assert r.status == 200 and r.read() == b'{"ok":true}'

        assert _p50(one) < 0.02
        conn.close()
