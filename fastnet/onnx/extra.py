"""The optional ``onnx`` package, imported on first use (``import fastnet`` never loads it)."""

from __future__ import annotations

from typing import Any

from fastnet.errors import MissingExtra


def _require_onnx() -> Any:
    """The ``onnx`` package, or MissingExtra saying how to install it."""
    try:
        import onnx
    except ImportError:
        raise MissingExtra("this command needs onnx: pip install 'fastnet[onnx]'") from None
    return onnx
