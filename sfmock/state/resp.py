"""The Redis protocol (RESP2 and RESP3) for the hot path's line: commands packed into one
buffer and replies read straight off the socket.

redis-py's general packer and parser cost more CPU than the round trip itself: measured
here, about 70 µs to pack and 60 to read a request's calls (an admission script with nine
keys, a 1.7 KB journal entry), against about 10 for the socket. The commands of the line
are few and plain (names, keys, numbers, bytes); their replies are read by hiredis.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Sequence
from typing import Any

import hiredis
import redis
from redis._parsers.base import BaseParser

__all__ = ["MORE", "Packed", "Replies", "arguments", "pack", "pack_args", "reader"]

MORE = object()  # hiredis: no whole reply in what it was fed yet
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
    count = 0
    for arg in args:  # a loop: on Python 3.11 a generator is a frame more
        count += arg.arity if type(arg) is Packed else 1
    return count


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


def reader() -> hiredis.Reader:
    """hiredis's parser, replies made as redis-py makes them; :data:`MORE` until one is whole."""
    return hiredis.Reader(
        protocolError=redis.ConnectionError,  # out of step with the server: the connection is dropped
        replyError=_PARSER.parse_error,  # an error reply as redis-py makes it (NOSCRIPT, LOADING, ...)
        notEnoughData=MORE,
    )


class Replies:
    """Reads replies off one connected socket by hiredis's parser (redis-py's own, in C: a
    tenth of the CPU of a parser in Python), keeping what it read past the last one."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buffer = bytearray(65536)  # read into, and fed from: no 64 KiB bytes made a read
        self._reader = reader()

    def read(self) -> Any:
        """One reply; an error reply is returned (as redis-py's exception), not raised."""
        reply = self._reader.gets()
        while reply is MORE:
            self._fill()
            reply = self._reader.gets()
        return reply

    def _fill(self) -> None:
        try:
            size = self.sock.recv_into(self._buffer)
        except (TimeoutError, BlockingIOError):  # the socket's timeout, or the kernel's (EAGAIN)
            raise redis.TimeoutError("Timeout reading from the store") from None
        except OSError as exc:
            raise redis.ConnectionError(f"Error reading from the store: {exc}") from None
        if not size:
            raise redis.ConnectionError("Connection closed by server.")
        self._reader.feed(self._buffer, 0, size)  # type: ignore[arg-type]  # any buffer: its stub says bytes
