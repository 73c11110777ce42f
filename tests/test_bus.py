"""The bus's sans-I/O part (messages, sequences, channels), the key inverse, and bad input."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from servers import REDIS_PORT, REDIS_URL, require_module, require_server

import writethrough as wt
from writethrough._backend import Encoding
from writethrough.bus.base import (
    FLUSH,
    HEARTBEAT,
    KEYS,
    TRANSACTIONAL,
    Message,
    SequenceTracker,
    Verdict,
    check_channel,
    decode_message,
    default_channel,
    encode_message,
    fits,
)
from writethrough.codecs import get_codec
from writethrough.stores.base import run_batch_store
from writethrough.stores.sqlite import SQLiteStore

keys_st = st.recursive(
    st.one_of(st.text(), st.binary(), st.integers()),
    lambda inner: st.tuples(inner, inner) | st.tuples(inner),
    max_leaves=6,
)


def _bus_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("writethrough-bus")]


# ------------------------------------------------------------ key inverse


@pytest.mark.parametrize(
    "key", ["", "k", "é€😀", b"", b"\x00\xff", 0, -5, 10**40, (), ("a", 1, b"b"), (("x",), 2)]
)
def test_cache_key_inverts_store_key_for_every_key_type(tmp_path: Path, key: object) -> None:
    store = SQLiteStore(str(tmp_path / "k.db"))
    try:
        enc = Encoding(store, get_codec(None), None, None)
        skey = enc.store_key(key)  # type: ignore[arg-type]
        back = enc.cache_key(skey)
        assert back == key and type(back) is type(key)
    finally:
        store.close()


@given(keys_st)
def test_cache_key_round_trip_property(key: object) -> None:
    enc = Encoding(type("S", (), {"wants_bytes": True})(), get_codec(None), None, None)
    try:
        skey = enc.store_key(key)  # type: ignore[arg-type]
    except wt.CodecError:  # lone surrogates are refused as keys
        return
    assert enc.cache_key(skey) == key


def test_cache_key_refuses_foreign_bytes() -> None:
    enc = Encoding(type("S", (), {"wants_bytes": True})(), get_codec(None), None, None)
    with pytest.raises(wt.CodecError):
        enc.cache_key(b"?nope")


def test_int_and_bool_keys_share_an_entry() -> None:
    enc = Encoding(type("S", (), {"wants_bytes": True})(), get_codec(None), None, None)
    assert enc.cache_key(enc.store_key(True)) == 1


# ------------------------------------------------------------ messages


@given(
    st.sampled_from([KEYS, HEARTBEAT, FLUSH, TRANSACTIONAL]),
    st.integers(0, 2**62),
    st.integers(0, 2**62),
    st.lists(st.binary(max_size=40), max_size=20),
)
def test_message_round_trip(kind: str, first: int, last: int, keys: list[bytes]) -> None:
    message = Message("0123456789abcdef", first, last, kind, tuple(keys))
    wire = encode_message(message)
    wire.decode("ascii")  # text: it fits a PostgreSQL NOTIFY payload
    decoded = decode_message(wire)
    if keys == [b""]:
        # a lone empty key encodes as nothing; the cache never has one (keys are tagged)
        assert decoded == Message("0123456789abcdef", first, last, kind, ())
    else:
        assert decoded == message


@pytest.mark.parametrize(
    "payload",
    [b"", b"hello", b"W1 x 1 2 Z", b"W1 x a b K", b"W1 x 1 2 K zz", b"\xff\xfe", "W2 a 1 1 H"],
)
def test_foreign_payloads_are_ignored(payload: bytes | str) -> None:
    assert decode_message(payload) is None


def test_fits_respects_the_payload_limit() -> None:
    assert fits([b"a" * 100], 8000)
    assert not fits([b"a" * 4000], 8000)


# ------------------------------------------------------------ sequences


def _msg(origin: str, first: int, last: int, kind: str = KEYS) -> Message:
    return Message(origin, first, last, kind, (b"sk",) if kind == KEYS else ())


def test_tracker_in_order_drops_and_gaps_flush() -> None:
    t = SequenceTracker("me")
    assert t.observe(_msg("a", 5, 5), 0.0) == Verdict.DROP  # first seen: baseline
    assert t.observe(_msg("a", 6, 8), 0.0) == Verdict.DROP  # a coalesced range
    assert t.observe(_msg("a", 10, 10), 0.0) == Verdict.FLUSH  # 9 was lost
    assert t.observe(_msg("a", 10, 10), 0.0) == Verdict.IGNORE  # duplicate
    assert t.observe(_msg("a", 11, 11), 0.0) == Verdict.DROP


def test_tracker_heartbeat_reveals_a_lost_last_message() -> None:
    t = SequenceTracker("me")
    assert t.observe(_msg("a", 3, 3, HEARTBEAT), 0.0) == Verdict.IGNORE
    assert t.observe(_msg("a", 3, 3, HEARTBEAT), 0.1) == Verdict.IGNORE
    assert t.observe(_msg("a", 4, 4, HEARTBEAT), 0.2) == Verdict.FLUSH  # 4 never arrived
    assert t.observe(_msg("a", 5, 5), 0.3) == Verdict.DROP


def test_tracker_own_messages_probe_liveness_and_are_ignored() -> None:
    t = SequenceTracker("me")
    assert t.observe(_msg("me", 1, 1), 7.0) == Verdict.IGNORE
    assert t.own_seen_at == 7.0


def test_tracker_flush_message_and_transactional() -> None:
    t = SequenceTracker("me")
    assert t.observe(_msg("a", 1, 1, FLUSH), 0.0) == Verdict.FLUSH
    assert t.observe(Message("sql", 0, 0, TRANSACTIONAL, (b"x",)), 0.0) == Verdict.DROP
    assert t.observe(Message("sql", 0, 0, TRANSACTIONAL), 0.0) == Verdict.FLUSH
    assert t.observe(Message("sql", 0, 0, TRANSACTIONAL, (b"x",)), 0.0) == Verdict.DROP


def test_tracker_silent_origin_flushes_once() -> None:
    t = SequenceTracker("me")
    t.observe(_msg("a", 1, 1), 0.0)
    assert not t.silent_origins(0.2, 0.3)
    assert t.silent_origins(0.5, 0.3)
    assert not t.silent_origins(0.9, 0.3)  # forgotten: its next message sets a new baseline


def test_sort_out_a_batch_of_payloads() -> None:
    t = SequenceTracker("0123456789abcdef")
    own = encode_message(Message("0123456789abcdef", 1, 1, KEYS, (b"sx",)))
    a1 = encode_message(Message("aaaaaaaaaaaaaaaa", 1, 1, KEYS, (b"sk",)))
    a2 = encode_message(Message("aaaaaaaaaaaaaaaa", 2, 3, KEYS, (b"sj", b"sk")))
    assert t.sort_out([own, a1, b"junk", a2], 5.0) == (False, [b"sk", b"sj", b"sk"], 2)
    assert t.own_seen_at == 5.0
    a5 = encode_message(Message("aaaaaaaaaaaaaaaa", 5, 5, KEYS, (b"sz",)))  # 4 was lost
    assert t.sort_out([a5], 6.0) == (True, [], 1)


# ------------------------------------------------------------ channels


def test_default_channel_is_per_store_identity() -> None:
    a = default_channel("sqlite:/x.db#t")
    assert a == default_channel("sqlite:/x.db#t")
    assert a != default_channel("sqlite:/x.db#u")
    assert check_channel(a) == a


@pytest.mark.parametrize("bad", ["", "a b", "a..b", ".a", "a.", "x" * 64, "é", 5, None, "a*"])
def test_bad_channels_are_refused(bad: object) -> None:
    with pytest.raises(wt.ConfigError):
        check_channel(bad)


# ------------------------------------------------------------ bad input: ConfigError, no thread


def test_unknown_bus_scheme(tmp_path: Path) -> None:
    with pytest.raises(wt.ConfigError, match="unknown bus scheme"):
        wt.open(f"sqlite:///{tmp_path}/a.db", bus="amqp://localhost")
    assert not (tmp_path / "a.db").exists()  # refused before the store was opened
    assert not _bus_threads()


def test_bus_on_a_memory_store_is_refused() -> None:
    require_module("redis")
    with pytest.raises(wt.ConfigError, match="this process only"):
        wt.open("memory://", bus=REDIS_URL)
    assert not _bus_threads()


@pytest.mark.parametrize(
    ("scheme", "module"),
    [("redis", "redis"), ("postgresql", "psycopg"), ("nats", "nats")],
)
def test_bus_that_cannot_connect(tmp_path: Path, scheme: str, module: str) -> None:
    require_module(module)
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(wt.ConfigError, match="cannot connect"):
        wt.open(f"sqlite:///{tmp_path}/a.db", bus=f"{scheme}://127.0.0.1:{port}/x")
    assert not _bus_threads()  # nothing half-started, not even nats-py's event loop


def test_bad_channel_and_heartbeat(tmp_path: Path) -> None:
    with pytest.raises(wt.ConfigError, match="channel"):
        wt.open(f"sqlite:///{tmp_path}/a.db", bus=REDIS_URL, channel="no spaces allowed")
    with pytest.raises(wt.ConfigError, match="bus_heartbeat"):
        wt.open(f"sqlite:///{tmp_path}/a.db", bus=REDIS_URL, bus_heartbeat=0)
    with pytest.raises(wt.ConfigError, match="needs bus"):
        wt.open(f"sqlite:///{tmp_path}/a.db", channel="x")
    assert not _bus_threads()


def test_bus_in_the_url_query_and_close_stops_threads(tmp_path: Path) -> None:
    require_server("Redis", REDIS_PORT)
    require_module("redis")
    from urllib.parse import quote

    cache = wt.open(f"sqlite:///{tmp_path}/a.db?bus={quote(REDIS_URL, safe='')}&channel=t.q1")
    try:
        assert cache.bus is not None and cache.bus.transport.channel == "t.q1"
        assert len(_bus_threads()) == 2
        cache.put("k", 1)
    finally:
        cache.close()
    assert not _bus_threads()
    assert cache.stats().bus_published == 1


def test_a_forked_child_serves_from_the_store(tmp_path: Path) -> None:
    """The child has no bus threads: it must not keep (or install) anything it cannot hear about."""
    require_server("Redis", REDIS_PORT)
    require_module("redis")
    import os
    import warnings

    cache = wt.open(f"sqlite:///{tmp_path}/f.db", bus=REDIS_URL)
    try:
        cache.put("k", 1)
        assert cache.get("k") == 1 and len(cache) == 1
        read, write = os.pipe()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads running
            pid = os.fork()
        if pid == 0:  # the child
            ok = len(cache) == 0 and cache.get("k") == 1 and len(cache) == 0
            os.write(write, b"1" if ok else b"0")
            os._exit(0)
        os.close(write)
        assert os.read(read, 1) == b"1"
        os.waitpid(pid, 0)
        assert len(cache) == 1  # the parent keeps caching
    finally:
        cache.close()


class _RefusingStore(SQLiteStore):
    """A real SQLite store that refuses one key (to make a batch fail part-way)."""

    def store(self, key: bytes, value: bytes) -> None:
        if key == b"sbad":
            raise wt.StoreWriteError("refused on purpose")
        super().store(key, value)

    def store_many(self, items: Any) -> None:
        run_batch_store(self, items)


def test_a_partly_failed_batch_publishes_only_what_succeeded(tmp_path: Path) -> None:
    require_server("Redis", REDIS_PORT)
    require_module("redis")
    path = str(tmp_path / "p.db")
    reader = wt.WriteThroughCache(SQLiteStore(path), bus=REDIS_URL, channel="t.partial")
    writer = wt.WriteThroughCache(_RefusingStore(path), bus=REDIS_URL, channel="t.partial")
    try:
        reader.put_many({"good": 1, "bad": 1})
        deadline = time.monotonic() + 5
        while writer.stats().bus_received < 1 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert reader.get("good") == 1 and reader.get("bad") == 1 and len(reader) == 2
        with pytest.raises(wt.BatchError) as caught:
            writer.put_many({"good": 2, "bad": 2})
        assert caught.value.succeeded == ["good"]
        deadline = time.monotonic() + 5
        while reader.stats().bus_received < 1 and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.2)  # anything else would have arrived too
        assert writer.stats().bus_published == 1  # one message, for the batch
        assert reader.stats().bus_received == 1
        assert "good" not in reader._core.data and reader.get("good") == 2
        assert "bad" in reader._core.data and reader.get("bad") == 1  # the store kept 1
        with pytest.raises(wt.StoreWriteError):
            writer.put("bad", 3)  # a failed write publishes nothing
        time.sleep(0.2)
        assert writer.stats().bus_published == 1 and reader.stats().bus_received == 1
    finally:
        writer.close()
        reader.close()


class _SlowReadStore(SQLiteStore):
    """A real SQLite store whose reads linger after reading (a load racing a message)."""

    delay = 0.0

    def load(self, key: bytes) -> bytes | None:
        value = super().load(key)
        time.sleep(self.delay)
        return value


def test_a_load_racing_a_message_never_installs_the_older_value(tmp_path: Path) -> None:
    """B's load reads v1, A's write of v2 is announced while that load is still in
    flight: the load returns v1 to its own caller but B must not keep it (rule 5's
    generation, bumped by the message)."""
    require_server("Redis", REDIS_PORT)
    require_module("redis")
    path = str(tmp_path / "race.db")
    slow = _SlowReadStore(path)
    a = wt.WriteThroughCache(SQLiteStore(path), bus=REDIS_URL, channel="t.race")
    b = wt.WriteThroughCache(slow, bus=REDIS_URL, channel="t.race")
    try:
        a.put("k", 1)
        time.sleep(0.2)  # A's message has reached B (nothing held there yet)
        slow.delay = 0.5
        got: list[Any] = []
        loader = threading.Thread(target=lambda: got.append(b.get("k")))
        loader.start()
        time.sleep(0.1)  # B's load has read 1 and lingers
        received = b.stats().bus_received
        a.put("k", 2)
        deadline = time.monotonic() + 5
        while b.stats().bus_received == received and time.monotonic() < deadline:
            time.sleep(0.005)
        assert b.stats().bus_received > received  # the message arrived mid-load
        loader.join()
        assert got == [1]  # the load returns what it read to its own caller...
        slow.delay = 0.0
        assert "k" not in b._core.data  # ...but did not keep it
        assert b.get("k") == 2
    finally:
        a.close()
        b.close()
