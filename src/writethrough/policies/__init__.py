"""Eviction policies by name; ``make_policy`` resolves ``policy=`` for a cache."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import ConfigError
from .adaptive import AdaptivePolicy
from .base import BasePolicy, Policy
from .fifo import FIFOPolicy
from .lru import LRUPolicy
from .s3fifo import S3FIFOPolicy
from .sieve import SievePolicy
from .tinylfu import TinyLFUPolicy

__all__ = [
    "DEFAULT_POLICY",
    "POLICIES",
    "AdaptivePolicy",
    "BasePolicy",
    "FIFOPolicy",
    "LRUPolicy",
    "Policy",
    "S3FIFOPolicy",
    "SievePolicy",
    "TinyLFUPolicy",
    "make_policy",
]

#: Name -> factory. Later policies register here.
POLICIES: dict[str, Callable[[], Policy]] = {
    "fifo": FIFOPolicy,
    "lru": LRUPolicy,
    "sieve": SievePolicy,
    "s3fifo": S3FIFOPolicy,
    "tinylfu": TinyLFUPolicy,
    "adaptive": AdaptivePolicy,
}

#: The measured best (benchmarks/RESULTS.md, "Eviction policies against OPT").
DEFAULT_POLICY = "adaptive"


def make_policy(policy: str | Policy | None) -> Policy:
    """A fresh policy for a name, or the given object (``None``: the default)."""
    if policy is None:
        policy = DEFAULT_POLICY
    if isinstance(policy, str):
        try:
            return POLICIES[policy.lower()]()
        except KeyError:
            raise ConfigError(
                f"unknown policy {policy!r}; choose one of {', '.join(sorted(POLICIES))}"
            ) from None
    if isinstance(policy, Policy):
        return policy
    raise ConfigError(f"policy must be a name or a Policy object, got {policy!r}")
