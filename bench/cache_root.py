"""Where dreambench keeps things between runs: the dataset, weights, the embedding cache, class priors."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """$DREAMBENCH_CACHE, else $XDG_CACHE_HOME/dreambench, else ~/.cache/dreambench."""
    env = os.environ.get("DREAMBENCH_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "dreambench"
