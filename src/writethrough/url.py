"""``wt.open(url)``: one string names the store and the cache's options.

A registry maps each URL scheme to a store factory, imported only when that
scheme is opened, so ``import writethrough`` never imports a database driver.
Store modules add their schemes with ``register_scheme`` (built-in ones are
listed in ``_BUILTIN`` by import path).
"""

from __future__ import annotations

import contextlib
import importlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from .cache import WriteThroughCache, check_options
from .errors import ConfigError

if TYPE_CHECKING:
    from .aio import AsyncWriteThroughCache

__all__ = ["URL", "open", "open_async", "open_store", "parse_url", "register_scheme"]

StoreFactory = Callable[["URL", dict[str, Any]], Any]

#: scheme -> "module:function", imported on first use.
_BUILTIN: dict[str, str] = {
    "memory": "writethrough.stores.memory:from_url",
    "sqlite": "writethrough.stores.sqlite:from_url",
    "file": "writethrough.stores.files:from_url",
    "redis": "writethrough.stores.redis:from_url",
    "rediss": "writethrough.stores.redis:from_url",
    "unix": "writethrough.stores.redis:from_url",
    "postgresql": "writethrough.stores.postgres:from_url",
    "postgres": "writethrough.stores.postgres:from_url",
    "mysql": "writethrough.stores.mysql:from_url",
    "mariadb": "writethrough.stores.mysql:from_url",
}
_REGISTRY: dict[str, StoreFactory] = {}


def register_scheme(scheme: str, factory: StoreFactory | str) -> None:
    """Make ``wt.open`` understand ``scheme://``; ``factory`` may be "module:function"."""
    if not re.fullmatch(r"[a-z][a-z0-9+.-]*", scheme):
        raise ConfigError(f"invalid URL scheme {scheme!r}")
    if isinstance(factory, str):
        _BUILTIN[scheme] = factory
        _REGISTRY.pop(scheme, None)
    else:
        _REGISTRY[scheme] = factory


def _factory(scheme: str) -> StoreFactory:
    found = _REGISTRY.get(scheme)
    if found is not None:
        return found
    target = _BUILTIN.get(scheme)
    if target is None:
        known = ", ".join(sorted({*_BUILTIN, *_REGISTRY}))
        raise ConfigError(f"unknown URL scheme {scheme!r}; known schemes: {known}")
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    factory: StoreFactory = getattr(module, attr)
    _REGISTRY[scheme] = factory
    return factory


@dataclass(frozen=True)
class URL:
    """A parsed store URL; ``str()`` hides the password."""

    scheme: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    host: str | None = None
    port: int | None = None
    path: str = ""
    query: dict[str, str] = field(default_factory=dict)
    raw: str = field(default="", repr=False)

    def render(self, hide_password: bool = True) -> str:
        """The URL without its query, password masked unless asked."""
        auth = ""
        if self.username is not None:
            auth = self.username
            if self.password is not None:
                auth += ":" + ("***" if hide_password else self.password)
            auth += "@"
        host = self.host or ""
        if self.port is not None:
            host += f":{self.port}"
        return f"{self.scheme}://{auth}{host}{self.path}"

    def __str__(self) -> str:
        return self.render()


def parse_url(url: str) -> URL:
    """Parse ``url``; ``ConfigError`` names what is wrong."""
    if not isinstance(url, str) or not url:
        raise ConfigError(f"a store URL is a non-empty string, got {url!r}")
    if "://" not in url:
        raise ConfigError(
            f"malformed store URL {url!r}: expected scheme://..., e.g. sqlite:///app.db"
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"malformed store URL {_mask(url)!r}: {exc}") from None
    if not parts.scheme:
        raise ConfigError(f"malformed store URL {_mask(url)!r}: no scheme")
    query: dict[str, str] = {}
    try:
        pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError as exc:
        raise ConfigError(f"malformed query in store URL {_mask(url)!r}: {exc}") from None
    for name, value in pairs:
        if name in query:
            raise ConfigError(f"option {name!r} appears twice in the URL query")
        query[name] = value
    return URL(
        scheme=parts.scheme.lower(),
        username=unquote(parts.username) if parts.username is not None else None,
        password=unquote(parts.password) if parts.password is not None else None,
        host=parts.hostname,
        port=port,
        path=unquote(parts.path),
        query=query,
        raw=url,
    )


def _mask(url: str) -> str:
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


_SIZE = re.compile(r"(\d+)\s*([kmgt]i?b?|b)?", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


def parse_size(text: str) -> int:
    """``"256MiB"``, ``"64kb"``, ``"1000"`` -> bytes."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise ConfigError(f"not a size: {text!r} (e.g. 268435456, 256MiB, 64kB)")
    unit = (match.group(2) or "").lower()
    base = unit[:1] if unit != "b" else "b"
    factor = _UNITS[base]
    if "i" in unit:
        factor = 1 << {"k": 10, "m": 20, "g": 30, "t": 40}[base]
    return int(match.group(1)) * factor


def _to_bool(name: str, text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"option {name}={text!r} is not a boolean (true/false)")


def _to_int(name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"option {name}={text!r} is not an integer") from None


def _to_float(name: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"option {name}={text!r} is not a number") from None


#: Cache options accepted in a URL query, with their converters.
_CACHE_OPTIONS: dict[str, Callable[[str, str], Any]] = {
    "capacity": _to_int,
    "max_bytes": lambda _n, t: parse_size(t),
    "ttl": _to_float,
    "policy": lambda _n, t: t,
    "codec": lambda _n, t: t,
    "secret": lambda _n, t: t,
    "trusted_pickle": _to_bool,
    "group_commit": _to_bool,
    "group_commit_max_wait": _to_float,
    "group_commit_max_size": _to_int,
    "bus": lambda _n, t: t,  # a URL, percent-encoded in the query (?bus=redis%3A%2F%2Fhost)
    "channel": lambda _n, t: t,
    "bus_heartbeat": _to_float,
}
#: ``open_async`` also takes the worker-thread count of stores without an async driver.
_ASYNC_CACHE_OPTIONS = {**_CACHE_OPTIONS, "threads": _to_int}


def open_store(url: str, **options: Any) -> Any:
    """The store ``url`` names, without a cache: ``open_store("postgresql://db/app?table=t")``.

    Only store options are accepted (in the query or as keywords); an unknown
    one raises ``ConfigError`` and closes the store again.
    """
    parsed = parse_url(url)
    factory = _factory(parsed.scheme)
    merged = dict(parsed.query)
    for name, value in options.items():
        if name in merged and merged[name] != value:
            raise ConfigError(
                f"option {name!r} is given twice with different values: {merged[name]!r} in the "
                f"URL query and {value!r} as a keyword; give it once"
            )
        merged[name] = value
    store = factory(parsed, merged)
    if merged:
        close = getattr(store, "close", None)
        if callable(close):
            close()
        raise ConfigError(
            f"unknown option(s) for {parsed.scheme}:// URLs: {', '.join(sorted(merged))}"
        )
    return store


def open(url: str, **options: Any) -> WriteThroughCache:
    """Open a cache over the store ``url`` names; options as keywords or in the query.

    ``wt.open("sqlite:///app.db?capacity=50000")``. An option given both ways must
    agree. Store options (``table``, ``synchronous``, ...) go to the store; the rest
    to ``WriteThroughCache``. An unknown option or scheme raises ``ConfigError``.
    """
    parsed, factory, store_options, cache_options = _split_options(url, options, _CACHE_OPTIONS)
    store = factory(parsed, store_options)
    with _closed_on_error(store):
        _refuse_leftovers(parsed, store_options)
        return WriteThroughCache(store, **cache_options)


async def open_async(url: str, **options: Any) -> AsyncWriteThroughCache:
    """``open`` for asyncio: ``cache = await wt.open_async("postgresql://localhost/app")``.

    The same URLs and options, plus ``threads`` (worker threads for stores
    without an async driver). The store is opened in a worker thread, so the
    event loop never waits on the connection or the table setup.
    """
    import asyncio

    from .aio import AsyncWriteThroughCache

    parsed, factory, store_options, cache_options = _split_options(
        url, options, _ASYNC_CACHE_OPTIONS
    )
    store = await asyncio.to_thread(factory, parsed, store_options)
    with _closed_on_error(store):
        _refuse_leftovers(parsed, store_options)
        cache = AsyncWriteThroughCache(store, **cache_options)
    try:
        opener = getattr(cache.async_store, "open", None)
        if callable(opener):
            await opener()
    except BaseException:
        await cache.aclose()
        raise
    return cache


def _split_options(
    url: str, options: dict[str, Any], known: dict[str, Callable[[str, str], Any]]
) -> tuple[URL, StoreFactory, dict[str, Any], dict[str, Any]]:
    """Parse ``url``, merge its query with ``options``, and split store from cache options.

    Cache options are checked before the store exists: nothing half-made on bad input.
    """
    parsed = parse_url(url)
    factory = _factory(parsed.scheme)
    merged: dict[str, Any] = {}
    for name, text in parsed.query.items():
        convert = known.get(name)
        merged[name] = convert(name, text) if convert is not None else text
    for name, value in options.items():
        if name in merged and merged[name] != value:
            raise ConfigError(
                f"option {name!r} is given twice with different values: {merged[name]!r} in the "
                f"URL query and {value!r} as a keyword; give it once"
            )
        merged[name] = value
    store_options = {k: v for k, v in merged.items() if k not in known}
    cache_options = {k: v for k, v in merged.items() if k in known}
    check_options(**{k: v for k, v in cache_options.items() if k in _CACHE_OPTIONS})
    return parsed, factory, store_options, cache_options


def _refuse_leftovers(parsed: URL, store_options: dict[str, Any]) -> None:
    """The store factory pops what it knows: anything left is an unknown option."""
    if store_options:
        names = ", ".join(sorted(store_options))
        raise ConfigError(f"unknown option(s) for {parsed.scheme}:// URLs: {names}")


@contextlib.contextmanager
def _closed_on_error(store: Any) -> Iterator[None]:
    try:
        yield
    except BaseException:
        close = getattr(store, "close", None)
        if callable(close):
            close()
        raise
