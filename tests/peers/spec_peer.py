#!/usr/bin/env python3
"""An independent netcore peer, written from ARCHITECTURE.md's "Wire format" section
alone (stream framing over TCP, version 1, no reliable mode). Python 3 standard
library only.

    python3 spec_peer.py HOST PORT

Against an endpoint serving `echo` (answers the body), `digest` (answers the body's
length and CRC-32 as `"<len> <crc hex>"`) and `note` (one-way messages), it runs the handshake, a
one-frame request, a request to an unknown route, a one-way message, a PING, a
5 MiB request that needs the server's CREDIT to finish, a 5 MiB answer, and a clean
GOAWAY. Prints one line per step; exits 0 when every step got what the spec
promises, 1 otherwise.
"""

import hashlib
import os
import socket
import sys
import zlib

# Frame kinds (type byte = kind << 4 | flags).
HELLO, OPEN, DATA, END, CANCEL, ACK, PING, PONG, CREDIT, GOAWAY = range(10)
FIN = 0x01
# OPEN meta bits.
KIND_ONE_WAY, KIND_REQUEST, KIND_RESPONSE, KIND_ERROR = range(4)
PRIORITY_NORMAL = 2
HAS_TOTAL, HAS_HEADERS, HAS_ROUTE = 0x10, 0x20, 0x40
# Error codes.
NOT_FOUND = 4
NO_ERROR = 0


class PeerError(Exception):
    pass


def put_varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class Reader:
    """Reads the fields of one frame."""

    def __init__(self, data):
        self.data = data
        self.pos = 0

    def u8(self):
        if self.pos >= len(self.data):
            raise PeerError("frame truncated")
        self.pos += 1
        return self.data[self.pos - 1]

    def varint(self):
        value, shift, count = 0, 0, 0
        while True:
            byte = self.u8()
            count += 1
            if count > 10:
                raise PeerError("varint over 10 bytes")
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                if byte == 0 and count > 1:
                    raise PeerError("varint not minimal")
                return value

    def take(self, n):
        if self.pos + n > len(self.data):
            raise PeerError("frame truncated")
        self.pos += n
        return self.data[self.pos - n:self.pos]

    def rest(self):
        out = self.data[self.pos:]
        self.pos = len(self.data)
        return out


class Peer:
    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port), timeout=20)
        self.rx = bytearray()
        self.nonce = int.from_bytes(os.urandom(8), "little") or 1
        # What we grant: windows large enough for the 5 MiB answer, given back
        # as we consume (rule 3).
        self.our_stream_window = 8 * 1024 * 1024
        self.our_link_window = 16 * 1024 * 1024
        self.max_frame_len = 131072
        self.parity = None
        self.next_id = None
        self.link_credit = 0
        self.stream_credit = {}
        self.peer_stream_window = None
        self.peer_max_frame_len = None
        self.pongs = []
        self.canceled = {}
        self.inbound = {}  # stream -> (open meta dict, bytearray)
        self.answers = {}  # stream -> (kind, code, body)
        self.goaway = None

    # ---- framing -------------------------------------------------------------
    def send_frame(self, frame):
        if self.peer_max_frame_len is not None and len(frame) > self.peer_max_frame_len:
            raise PeerError("frame above the peer's max_frame_len")
        self.sock.sendall(put_varint(len(frame)) + frame)

    def read_frame(self):
        """The next frame's bytes (blocking); None at end of stream."""
        while True:
            r = Reader(bytes(self.rx[:10]))
            try:
                length = r.varint()
            except PeerError:
                length = None
            if length is not None and len(self.rx) >= r.pos + length:
                frame = bytes(self.rx[r.pos:r.pos + length])
                del self.rx[:r.pos + length]
                if length == 0:
                    raise PeerError("empty frame")
                return frame
            chunk = self.sock.recv(256 * 1024)
            if not chunk:
                return None
            self.rx += chunk

    # ---- frames --------------------------------------------------------------
    def hello(self):
        params = b""
        for tag, value in [
            (1, self.nonce),
            (2, self.max_frame_len),
            (3, self.our_stream_window),
            (4, self.our_link_window),
            (5, 0),
        ]:
            v = put_varint(value)
            params += put_varint(tag) + put_varint(len(v)) + v
        self.send_frame(bytes([HELLO << 4]) + b"NC" + put_varint(1) + params)
        frame = self.read_frame()
        if frame is None or frame[0] >> 4 != HELLO:
            raise PeerError("the server's first frame is not a HELLO")
        r = Reader(frame[1:])
        if r.take(2) != b"NC":
            raise PeerError("bad magic")
        version = r.varint()
        if version != 1:
            raise PeerError("server speaks version %d" % version)
        # Absent parameters take their defaults (HELLO table).
        values = {1: 0, 2: 131072, 3: 4 * 1024 * 1024, 4: 16 * 1024 * 1024, 5: 0}
        while r.pos < len(r.data):
            tag = r.varint()
            value = Reader(r.take(r.varint()))
            if tag in values:
                values[tag] = value.varint()
        self.peer_max_frame_len = values[2]
        self.peer_stream_window = values[3]
        self.link_credit = values[4]
        if values[1] == self.nonce:
            raise PeerError("equal nonces")
        self.parity = 1 if self.nonce > values[1] else 0
        self.next_id = 1 if self.parity == 1 else 2
        return values

    def open_stream(self):
        stream = self.next_id
        self.next_id += 2
        self.stream_credit[stream] = self.peer_stream_window
        return stream

    def open_frame(self, stream, kind, route, payload, fin, total=None):
        meta = kind | PRIORITY_NORMAL << 2
        head = b""
        if route:
            meta |= HAS_ROUTE
            r = route.encode()
            head += put_varint(len(r)) + r
        if total is not None:
            meta |= HAS_TOTAL
            head += put_varint(total)
        flags = FIN if fin else 0
        return bytes([OPEN << 4 | flags]) + put_varint(stream) + bytes([meta]) + head + payload

    def spend(self, stream, n):
        self.link_credit -= n
        self.stream_credit[stream] -= n

    def handle(self, frame):
        """Acts on one frame from the server (everything but HELLO)."""
        kind, flags = frame[0] >> 4, frame[0] & 0x0F
        if flags & 0x08:
            raise PeerError("sequenced frame without the reliable mode")
        r = Reader(frame[1:])
        if kind == PING:
            self.send_frame(bytes([PONG << 4]) + put_varint(r.varint()))
        elif kind == PONG:
            self.pongs.append(r.varint())
        elif kind == CREDIT:
            stream, n = r.varint(), r.varint()
            if stream == 0:
                self.link_credit += n
            elif stream in self.stream_credit:
                self.stream_credit[stream] += n
        elif kind == CANCEL:
            stream, code = r.varint(), r.varint()
            self.canceled[stream] = code
        elif kind == GOAWAY:
            last, code = r.varint(), r.varint()
            self.goaway = (last, code, r.rest().decode("utf-8", "replace"))
        elif kind == ACK:
            pass  # no reliable mode: ignored (rule 7)
        elif kind == OPEN:
            stream = r.varint()
            meta = r.u8()
            msg_kind = meta & 0x03
            if meta & HAS_ROUTE:
                r.take(r.varint())
            code = r.varint() if msg_kind == KIND_ERROR else None
            if meta & HAS_TOTAL:
                r.varint()
            if meta & HAS_HEADERS:
                for _ in range(r.varint()):
                    r.take(r.varint())
                    r.take(r.varint())
            body = bytearray(r.rest())
            self.inbound[stream] = (msg_kind, code, body)
            self.consumed(len(body))
            if flags & FIN:
                self.finish(stream)
        elif kind == DATA:
            stream = r.varint()
            payload = r.rest()
            self.inbound[stream][2].extend(payload)
            self.consumed(len(payload))
            if flags & FIN:
                self.finish(stream)
        elif kind == END:
            self.finish(r.varint())
        else:
            raise PeerError("unexpected frame kind %d" % kind)

    def consumed(self, n):
        # We keep whole bodies; granting the link window back per frame is enough
        # (our stream window covers a whole answer).
        if n:
            self.send_frame(bytes([CREDIT << 4]) + put_varint(0) + put_varint(n))

    def finish(self, stream):
        self.answers[stream] = self.inbound.pop(stream)

    def pump_until(self, done):
        while not done():
            frame = self.read_frame()
            if frame is None:
                raise PeerError("the server closed the connection")
            self.handle(frame)
            if self.goaway is not None and self.goaway[1] != NO_ERROR:
                raise PeerError("GOAWAY %r" % (self.goaway,))

    # ---- messages ------------------------------------------------------------
    def send_message(self, kind, route, body, chunk=16 * 1024):
        """Sends a message, as many frames as credit and the chunk size need."""
        stream = self.open_stream()
        first = body[:chunk]
        # OPEN carries the first chunk; wait for credit for it first.
        self.pump_until(lambda: self.link_credit >= len(first) and self.stream_credit[stream] >= len(first))
        fin = len(body) <= chunk
        total = None if fin else len(body)
        self.send_frame(self.open_frame(stream, kind, route, first, fin, total))
        self.spend(stream, len(first))
        sent = len(first)
        waits = 0
        while sent < len(body):
            n = min(chunk, len(body) - sent)
            if self.link_credit < n or self.stream_credit[stream] < n:
                waits += 1
                self.pump_until(lambda: self.link_credit >= n and self.stream_credit[stream] >= n)
            last = sent + n == len(body)
            self.send_frame(bytes([DATA << 4 | (FIN if last else 0)]) + put_varint(stream) + body[sent:sent + n])
            self.spend(stream, n)
            sent += n
        return stream, waits

    def call(self, route, body):
        stream, waits = self.send_message(KIND_REQUEST, route, body)
        self.pump_until(lambda: stream in self.answers)
        return self.answers.pop(stream), waits


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    peer = Peer(host, port)
    server = peer.hello()
    print("handshake: server stream window %d, link window %d, max_frame_len %d"
          % (server[3], server[4], server[2]))

    (kind, code, body), _ = peer.call("echo", b"hello from python")
    if kind != KIND_RESPONSE or bytes(body) != b"hello from python":
        raise PeerError("echo answered %r %r %r" % (kind, code, bytes(body)))
    print("request: echo answered")

    (kind, code, body), _ = peer.call("no/such/route", b"")
    if kind != KIND_ERROR or code != NOT_FOUND:
        raise PeerError("unknown route answered %r %r" % (kind, code))
    print("unknown route: error response NotFound (%s)" % bytes(body).decode("utf-8", "replace"))

    peer.send_message(KIND_ONE_WAY, "note", b"one-way from python")
    print("one-way: sent")

    peer.send_frame(bytes([PING << 4]) + put_varint(4242))
    peer.pump_until(lambda: 4242 in peer.pongs)
    print("ping: PONG 4242")

    big = hashlib.sha256(b"seed").digest() * (5 * 1024 * 1024 // 32)
    (kind, code, body), waits = peer.call("digest", big)
    expected = "%d %08x" % (len(big), zlib.crc32(big))
    if kind != KIND_RESPONSE or bytes(body).decode() != expected:
        raise PeerError("digest answered %r %r %r" % (kind, code, bytes(body)[:80]))
    if waits == 0:
        raise PeerError("5 MiB crossed a %d-byte stream window without waiting for CREDIT"
                        % peer.peer_stream_window)
    print("multi-frame request: %d bytes, waited for CREDIT %d times, digest matches" % (len(big), waits))

    (kind, code, body), _ = peer.call("echo", big)
    if kind != KIND_RESPONSE or bytes(body) != big:
        raise PeerError("the 5 MiB echo came back different (%d bytes)" % len(body))
    print("multi-frame answer: %d bytes back" % len(body))

    # A clean goodbye: GOAWAY(NoError), then close.
    peer.send_frame(bytes([GOAWAY << 4]) + put_varint(0) + put_varint(NO_ERROR) + b"bye")
    peer.sock.shutdown(socket.SHUT_WR)
    while peer.read_frame() is not None:
        pass
    print("goaway: sent, server closed")
    print("spec peer: ok")


if __name__ == "__main__":
    try:
        main()
    except (PeerError, OSError) as error:
        print("spec peer failed: %s" % error)
        sys.exit(1)
