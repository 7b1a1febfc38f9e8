"""Byte units, defined once: binary (KiB ... TiB) for memory sizes and addresses, decimal (GB, TB) for
what vendors state in decimal units (a datasheet's "64 GB", a link's "GB/s")."""

from __future__ import annotations

__all__ = ["KiB", "MiB", "GiB", "TiB", "GB", "TB"]

KiB = 2**10
MiB = 2**20
GiB = 2**30
TiB = 2**40
GB = 10**9
TB = 10**12
