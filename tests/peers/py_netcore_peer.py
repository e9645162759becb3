#!/usr/bin/env python3
"""A real Python Netcore 0.1.3 endpoint (`pip install netcore==0.1.3`) over TCP, for
the interop tests (tests/py_interop.rs). Run with the venv of scripts/py-venv.sh.

    python py_netcore_peer.py client HOST PORT
        Connects and calls: `echo` with a dict body, `echo` with 1 MiB of bytes,
        `size` with 1 MiB, `echo` with 16 MiB, `size` with 0 bytes (a head alone),
        then 50 `echo` calls at once. Prints one line per check;
        exits 0 when every answer came back intact within its timeout, 1 otherwise.

    python py_netcore_peer.py client-small HOST PORT
        Connects and calls: `echo` with a dict body, `size` with 1000 bytes, `size`
        with 0 bytes, then 5 `echo` calls at once. Prints and exits as `client`.

    python py_netcore_peer.py server HOST PORT
        Listens, prints "listening PORT", serves every connection with an Endpoint
        of its own: `echo` answers the body unchanged (route `echo`), `size` answers
        {"size": N}. Runs until killed.

Pipe threads cannot be stopped: the process ends with os._exit.
"""

import hashlib
import json
import os
import socket
import sys
import threading

from netcore import Endpoint, Pipe, Response, request

TIMEOUT = 120.0


def pipe_over(sock):
    """A Pipe on a connected socket: reads exactly n bytes, as Pipe needs."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def recv(n):
        buf = bytearray()
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("end of stream")
            buf += chunk
        return bytes(buf)

    return Pipe(recv, sock.sendall)


def call_all(endpoint, calls):
    """Sends every (route, body) at once; returns the answers' bodies in order, or
    None for a call that got no answer within TIMEOUT."""
    answers = [None] * len(calls)
    done = threading.Event()
    left = [len(calls)]
    lock = threading.Lock()

    def on_answer(i):
        def handler(response):
            with lock:
                answers[i] = bytes(response.meta)
                left[0] -= 1
                if left[0] == 0:
                    done.set()
        return handler

    for i, (route, body) in enumerate(calls):
        endpoint.send(route, body, callback=on_answer(i))
    done.wait(TIMEOUT)
    return answers


def client(host, port):
    sock = socket.create_connection((host, port))
    endpoint = Endpoint(pipe_over(sock))
    endpoint.start(block=False)
    ok = True

    def check(name, good):
        nonlocal ok
        ok = ok and good
        print(f"{name}: {'ok' if good else 'FAILED'}", flush=True)

    [answer] = call_all(endpoint, [("echo", {"x": 1})])
    check("echo dict", answer == b'{"x": 1}')

    big = bytes(i * 7 % 251 for i in range(1 << 20))
    [answer] = call_all(endpoint, [("echo", big)])
    check("echo 1 MiB", answer is not None and hashlib.sha256(answer).digest() == hashlib.sha256(big).digest())

    [answer] = call_all(endpoint, [("size", big)])
    check("size 1 MiB", answer is not None and json.loads(answer) == {"size": 1 << 20})

    huge = bytes(i * 13 % 253 for i in range(16 << 20))
    [answer] = call_all(endpoint, [("echo", huge)])
    check("echo 16 MiB", answer is not None and hashlib.sha256(answer).digest() == hashlib.sha256(huge).digest())

    # Python sends a 0-byte body as a head alone; a Python receiver never completes it.
    [answer] = call_all(endpoint, [("size", b"")])
    check("size 0 bytes", answer is not None and json.loads(answer) == {"size": 0})

    bodies = [f"call {i}".encode() * (i + 1) for i in range(50)]
    answers = call_all(endpoint, [("echo", b) for b in bodies])
    check("50 concurrent echo", answers == bodies)

    print("py client: " + ("ok" if ok else "FAILED"), flush=True)
    os._exit(0 if ok else 1)


def client_small(host, port):
    sock = socket.create_connection((host, port))
    endpoint = Endpoint(pipe_over(sock))
    endpoint.start(block=False)
    ok = True

    def check(name, good):
        nonlocal ok
        ok = ok and good
        print(f"{name}: {'ok' if good else 'FAILED'}", flush=True)

    [answer] = call_all(endpoint, [("echo", {"x": 1})])
    check("echo dict", answer == b'{"x": 1}')
    [answer] = call_all(endpoint, [("size", b"s" * 1000)])
    check("size 1000 bytes", answer is not None and json.loads(answer) == {"size": 1000})
    [answer] = call_all(endpoint, [("size", b"")])
    check("size 0 bytes", answer is not None and json.loads(answer) == {"size": 0})
    bodies = [f"call {i}".encode() * (i + 1) for i in range(5)]
    answers = call_all(endpoint, [("echo", b) for b in bodies])
    check("5 concurrent echo", answers == bodies)

    print("py client: " + ("ok" if ok else "FAILED"), flush=True)
    os._exit(0 if ok else 1)


def server(host, port):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(8)
    print(f"listening {listener.getsockname()[1]}", flush=True)
    while True:
        sock, _ = listener.accept()
        serve_one(sock)


def serve_one(sock):
    endpoint = Endpoint(pipe_over(sock))

    @endpoint.request("echo")
    def echo():
        return Response("echo", request.meta)

    @endpoint.request("size")
    def size():
        return Response("size", {"size": len(request.meta)})

    endpoint.start(block=False)


if __name__ == "__main__":
    role, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    try:
        {"client": client, "client-small": client_small, "server": server}[role](host, port)
    except Exception as error:  # any failure ends the process, threads or not
        print(f"py {role} error: {error!r}", file=sys.stderr, flush=True)
        os._exit(1)
