"""The Redis protocol (RESP2 and the RESP3 types a command's reply can hold) for the hot
path's line: commands packed into one buffer and replies read straight off the socket.

redis-py's general packer and parser cost more CPU than the round trip itself: measured
here, about 70 µs to pack and 60 to read a request's calls (an admission script with nine
keys, a 1.7 KB journal entry), against about 10 for the socket. The commands of the line
are few and plain (names, keys, numbers, bytes), and so are their replies.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Sequence
from typing import Any

import redis
from redis._parsers.base import BaseParser

__all__ = ["Packed", "Replies", "arguments", "pack", "pack_args"]

CRLF = b"\r\n"
_PARSER: Any = BaseParser  # its error classes, as the client raises them (NOSCRIPT, BUSY, ...)
Command = Sequence[Any]


def _bytes(arg: Any) -> bytes:
    """As redis-py encodes an argument: bytes as they are, text in UTF-8, numbers written out."""
    if isinstance(arg, bytes):
        return arg
    if isinstance(arg, str):
        return arg.encode()
    if isinstance(arg, bool):  # redis-py refuses these: never guess
        raise redis.DataError(f"cannot send {arg!r} to Redis")
    if isinstance(arg, int):
        return b"%d" % arg
    if isinstance(arg, float):
        return repr(arg).encode()
    raise redis.DataError(f"cannot send {type(arg).__name__} {arg!r} to Redis")


class Packed(bytes):
    """Arguments packed once (:attr:`arity` of them) and sent as they are: the runs of a
    hot command that stay the same from one request to the next (keys, limits)."""

    arity: int

    def __new__(cls, args: Sequence[Any]) -> Packed:
        packed = super().__new__(cls, pack_args(args))
        packed.arity = len(args)
        return packed


def arguments(args: Iterable[Any]) -> int:
    """How many arguments ``args`` are, each :class:`Packed` run counted by what it holds."""
    return sum(arg.arity if type(arg) is Packed else 1 for arg in args)


def pack_args(args: Sequence[Any]) -> bytes:
    """``args`` as RESP bulk strings, one after another."""
    return pack([args]).partition(b"\r\n")[2]  # without the array's head


def pack(commands: Iterable[Command]) -> bytes:
    """``commands`` as one buffer of RESP arrays of bulk strings."""
    out: list[bytes] = []
    for command in commands:
        head = len(out)
        out.append(b"")
        size = 0
        for arg in command:
            kind = type(arg)  # the hot path's arguments are these: no isinstance chain for them
            if kind is Packed:
                out.append(arg)
                size += arg.arity
                continue
            if kind is bytes:
                data = arg
            elif kind is str:
                data = arg.encode()
            else:
                data = b"%d" % arg if kind is int else _bytes(arg)
            out.append(b"$%d\r\n%b\r\n" % (len(data), data))
            size += 1
        out[head] = b"*%d\r\n" % size
    return b"".join(out)


class Replies:
    """Reads replies off one connected socket, keeping what it read past the last one."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.at = 0

    def read(self) -> Any:
        """One reply; an error reply is returned (as redis-py's exception), not raised."""
        return self._value()

    def _fill(self) -> None:
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            raise redis.TimeoutError("Timeout reading from the store") from None
        except OSError as exc:
            raise redis.ConnectionError(f"Error reading from the store: {exc}") from None
        if not chunk:
            raise redis.ConnectionError("Connection closed by server.")
        self.buffer = self.buffer[self.at :] + chunk
        self.at = 0

    def _line(self) -> bytes:
        while True:
            end = self.buffer.find(CRLF, self.at)
            if end >= 0:
                line = self.buffer[self.at : end]
                self.at = end + 2
                return line
            self._fill()

    def _exactly(self, size: int) -> bytes:
        while len(self.buffer) - self.at < size + 2:
            self._fill()
        data = self.buffer[self.at : self.at + size]
        self.at += size + 2
        return data

    def _element(self) -> Any:
        """An array's element: a bulk string already read whole is sliced straight off the
        buffer (most of what the hot path reads), anything else read as a reply."""
        buffer, at = self.buffer, self.at
        end = buffer.find(CRLF, at)
        if end > at and buffer[at] == 36:  # b"$"
            size = int(buffer[at + 1 : end])
            start = end + 2
            if size >= 0 and start + size + 2 <= len(buffer):
                self.at = start + size + 2
                return buffer[start : start + size]
        return self._value()

    def _value(self) -> Any:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"$":
            size = int(rest)
            return None if size < 0 else self._exactly(size)
        if kind == b":":
            return int(rest)
        if kind == b"*":
            size = int(rest)
            return None if size < 0 else [self._element() for _ in range(size)]
        if kind == b"+":
            return rest
        if kind == b"-":
            return _PARSER.parse_error(rest.decode("utf-8", "replace"))
        if kind == b"_":
            return None
        if kind == b",":
            return float(rest)
        if kind == b"#":
            return rest == b"t"
        raise redis.ConnectionError(f"unexpected reply from the store: {line[:40]!r}")
