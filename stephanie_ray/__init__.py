"""stephanie-ray: turn conversations with AI assistants into training signal, on Ray."""

from __future__ import annotations

__version__ = "0.1.0"
