"""Codecs: how keys and values become bytes for byte stores.

Keys always use one type-tagged encoding (``encode_key``), so ``1``, ``"1"``,
``b"1"`` and ``("1",)`` never collide, and keys Python holds equal (``True``
and ``1``) are one key. Values use a ``Codec``: ``msgpack`` (the default),
``json``, ``bytes``, ``str``, or ``pickle`` only when signed with a secret or
explicitly trusted — a shared store must never be able to run code in a
reader (DESIGN rule 13).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from .errors import CodecError, ConfigError

# msgpack, json, pickle and hmac are imported by the codec that uses them, on
# first use: ``import writethrough`` stays cheap (msgpack alone pulls in datetime).

__all__ = [
    "BytesCodec",
    "Codec",
    "JsonCodec",
    "MsgpackCodec",
    "PickleCodec",
    "StrCodec",
    "decode_key",
    "encode_key",
    "get_codec",
]


@runtime_checkable
class Codec(Protocol):
    """Turns values into bytes and back. ``decode`` raises ``CodecError`` on bad bytes."""

    name: str

    def encode(self, value: Any) -> bytes: ...

    def decode(self, data: bytes) -> Any: ...


# ---------------------------------------------------------------- keys

_STR, _BYTES, _INT, _TUPLE = b"s", b"b", b"i", b"t"
_MAX_DEPTH = 32


def encode_key(key: object) -> bytes:
    """Encode a key: ``str``, ``bytes``, ``int`` or a tuple of them, type-tagged.

    Layout: one tag byte then the payload; a tuple is ``t`` followed by each
    element as a 4-byte big-endian length and its own encoding, so the format
    is injective. ``bool`` is encoded as the ``int`` it equals.
    """
    return _encode_key(key, 0)


def _encode_key(key: object, depth: int) -> bytes:
    if isinstance(key, str):
        try:
            return _STR + key.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise CodecError(f"key {key!r} is not valid UTF-8 (lone surrogate?)") from exc
    if isinstance(key, bytes):
        return _BYTES + bytes(key)
    if isinstance(key, int):  # bool and IntEnum too: they equal their int
        try:
            return _INT + str(int(key)).encode("ascii")
        except ValueError as exc:  # more digits than int->str conversion allows
            raise CodecError(f"int key too large to encode: {exc}") from exc
    if isinstance(key, tuple):
        if depth >= _MAX_DEPTH:
            raise CodecError(f"key nests tuples deeper than {_MAX_DEPTH} levels")
        parts = [_TUPLE]
        for item in key:
            encoded = _encode_key(item, depth + 1)
            parts.append(len(encoded).to_bytes(4, "big"))
            parts.append(encoded)
        return b"".join(parts)
    raise CodecError(
        f"unsupported key type {type(key).__name__}: keys are str, bytes, int or tuples of them"
    )


def decode_key(data: bytes) -> object:
    """Invert ``encode_key``; raise ``CodecError`` on bytes it did not produce."""
    try:
        key, end = _decode_key(memoryview(data), 0, len(data))
    except (ValueError, IndexError, UnicodeDecodeError) as exc:
        raise CodecError(f"corrupt key bytes: {bytes(data[:32])!r}") from exc
    if end != len(data):
        raise CodecError(f"corrupt key bytes: {bytes(data[:32])!r}")
    return key


def _decode_key(data: memoryview, start: int, end: int) -> tuple[object, int]:
    tag = bytes(data[start : start + 1])
    body = data[start + 1 : end]
    if tag == _STR:
        return str(body, "utf-8"), end
    if tag == _BYTES:
        return bytes(body), end
    if tag == _INT:
        text = bytes(body).decode("ascii")
        if not text or text != str(int(text)):
            raise ValueError("non-canonical int key")
        return int(text), end
    if tag == _TUPLE:
        items: list[object] = []
        pos = start + 1
        while pos < end:
            size = int.from_bytes(data[pos : pos + 4], "big")
            if pos + 4 + size > end or size == 0:
                raise ValueError("truncated tuple key")
            item, _ = _decode_key(data, pos + 4, pos + 4 + size)
            items.append(item)
            pos += 4 + size
        return tuple(items), end
    raise ValueError(f"unknown key tag {tag!r}")


# ---------------------------------------------------------------- values


class MsgpackCodec:
    """msgpack: compact, fast, safe. Tuples come back as lists."""

    name = "msgpack"
    #: immutable types decode(encode(v)) gives back equal and of the same type
    exact_types = (bytes, str, int, float, bool, type(None))

    def __init__(self) -> None:
        import msgpack  # type: ignore[import-untyped]

        self._packb = msgpack.Packer(use_bin_type=True, strict_types=False).pack
        self._unpackb = msgpack.unpackb

    def encode(self, value: Any) -> bytes:
        try:
            packed: bytes = self._packb(value)
            return packed
        except (TypeError, ValueError, OverflowError) as exc:
            raise CodecError(
                f"msgpack cannot encode {type(value).__name__}: {exc}; "
                "use codec='pickle' with a secret for arbitrary objects"
            ) from exc

    def decode(self, data: bytes) -> Any:
        try:
            return self._unpackb(data, raw=False, strict_map_key=False)
        except Exception as exc:  # msgpack raises several unrelated types on bad input
            raise CodecError(f"corrupt msgpack value ({len(data)} bytes)") from exc


class JsonCodec:
    """JSON (UTF-8, compact). Tuples come back as lists; bytes are refused."""

    name = "json"
    exact_types = (str, int, bool, type(None))

    def __init__(self) -> None:
        import json

        self._dumps = json.dumps
        self._loads = json.loads

    def encode(self, value: Any) -> bytes:
        try:
            return self._dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise CodecError(f"json cannot encode {type(value).__name__}: {exc}") from exc

    def decode(self, data: bytes) -> Any:
        try:
            return self._loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise CodecError(f"corrupt json value ({len(data)} bytes)") from exc


class BytesCodec:
    """Raw passthrough for ``bytes`` values (media blobs): no copy, no framing."""

    name = "bytes"
    exact_types = (bytes,)

    def encode(self, value: Any) -> bytes:
        if type(value) is bytes:
            return bytes(value)
        if isinstance(value, bytearray | memoryview):
            return bytes(value)
        raise CodecError(f"codec 'bytes' takes bytes values, got {type(value).__name__}")

    def decode(self, data: bytes) -> Any:
        return bytes(data)


class StrCodec:
    """UTF-8 text values."""

    name = "str"
    exact_types = (str,)

    def encode(self, value: Any) -> bytes:
        if not isinstance(value, str):
            raise CodecError(f"codec 'str' takes str values, got {type(value).__name__}")
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise CodecError("value is not valid UTF-8 (lone surrogate?)") from exc

    def decode(self, data: bytes) -> Any:
        try:
            return bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CodecError(f"corrupt str value ({len(data)} bytes)") from exc


class PickleCodec:
    """Pickle, signed with HMAC-SHA256 so bytes from others are refused before unpickling.

    ``PickleCodec(secret=b"...")`` signs and verifies; ``PickleCodec(trusted=True)``
    skips signing and is only for stores no one else can write.
    """

    name = "pickle"
    _TAG = 32

    def __init__(self, secret: bytes | str | None = None, *, trusted: bool = False) -> None:
        if isinstance(secret, str):
            secret = secret.encode("utf-8")
        if not secret and not trusted:
            raise ConfigError(
                "codec 'pickle' needs a secret to sign values (secret=...), or "
                "trusted_pickle=True (PickleCodec(trusted=True)) for a store no other party "
                "can write: unpickling runs code"
            )
        self._secret = secret or None
        import hashlib
        import hmac
        import pickle

        self._pickle = pickle
        self._hmac = hmac
        self._sha256 = hashlib.sha256

    def encode(self, value: Any) -> bytes:
        try:
            body = self._pickle.dumps(value, protocol=self._pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise CodecError(f"pickle cannot encode {type(value).__name__}: {exc}") from exc
        if self._secret is None:
            return body
        return self._hmac.new(self._secret, body, self._sha256).digest() + body

    def decode(self, data: bytes) -> Any:
        body = data
        if self._secret is not None:
            tag, body = data[: self._TAG], data[self._TAG :]
            expected = self._hmac.new(self._secret, body, self._sha256).digest()
            if len(tag) != self._TAG or not self._hmac.compare_digest(tag, expected):
                raise CodecError("pickle value has a bad signature: refused without unpickling")
        try:
            return self._pickle.loads(body)
        except Exception as exc:
            raise CodecError(f"corrupt pickle value ({len(data)} bytes)") from exc


_NAMED: dict[str, type[MsgpackCodec | JsonCodec | BytesCodec | StrCodec]] = {
    "msgpack": MsgpackCodec,
    "json": JsonCodec,
    "bytes": BytesCodec,
    "str": StrCodec,
}


def get_codec(
    codec: str | Codec | None,
    *,
    secret: bytes | str | None = None,
    trusted: bool = False,
) -> Codec:
    """Resolve a codec name or object; ``None`` means msgpack."""
    if codec is None:
        return MsgpackCodec()
    if isinstance(codec, str):
        if codec == "pickle":
            return PickleCodec(secret, trusted=trusted)
        try:
            return _NAMED[codec]()
        except KeyError:
            names = ", ".join([*_NAMED, "pickle"])
            raise ConfigError(f"unknown codec {codec!r}; choose one of {names}") from None
    if isinstance(codec, Codec):
        return codec
    raise ConfigError(f"codec must be a name or an object with encode/decode, got {codec!r}")
