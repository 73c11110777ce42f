"""Backing stores. Server stores are imported on demand by ``wt.open``, never here."""

from .base import BytesStore, Store
from .memory import MemoryStore

__all__ = ["BytesStore", "MemoryStore", "Store"]
