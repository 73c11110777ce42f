"""Eviction policies by name; ``make_policy`` resolves ``policy=`` for a cache."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import ConfigError
from .base import BasePolicy, Policy
from .fifo import FIFOPolicy
from .lru import LRUPolicy

__all__ = [
    "DEFAULT_POLICY",
    "POLICIES",
    "BasePolicy",
    "FIFOPolicy",
    "LRUPolicy",
    "Policy",
    "make_policy",
]

#: Name -> factory. Later policies register here.
POLICIES: dict[str, Callable[[], Policy]] = {
    "fifo": FIFOPolicy,
    "lru": LRUPolicy,
}

DEFAULT_POLICY = "lru"


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
