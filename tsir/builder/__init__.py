"""The builder: `from tsir import T`."""

from . import lang

__all__ = ["lang"]
