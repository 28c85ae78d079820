"""jray's version (``jray.__version__``), a leaf module any layer may import."""

from __future__ import annotations

__version__ = "0.1.0"
