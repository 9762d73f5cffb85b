"""Prepared-data cache: parsed arrays of slow-to-parse files, keyed by the file's content.

Lives in the user's cache folder (``$MASKSEM_CACHE_DIR``, else ``$XDG_CACHE_HOME/masksem``,
else ``~/.cache/masksem``), never beside the data, which may be read-only. An entry is named by
the sha256 of the source file and the parser's format tag, so an edited file or a changed
parser is parsed afresh; a damaged entry is parsed afresh and rewritten.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from skeleton.card import sha256_of

CACHE_ENV = "MASKSEM_CACHE_DIR"
log = logging.getLogger("training.data")


def cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "masksem"


def cached_array(
    path: Path, format_tag: str, parse: Callable[[], NDArray[np.float32]]
) -> NDArray[np.float32]:
    """``parse()`` of ``path``, read from the cache when this content was parsed before."""
    entry = cache_dir() / format_tag / f"{sha256_of(path)}.npy"
    if entry.is_file():
        try:
            out: NDArray[np.float32] = np.load(entry, allow_pickle=False)
            return out
        except (OSError, ValueError) as err:
            log.warning("cache entry %s for %s is damaged (%s): parsing again", entry, path, err)
    array = parse()
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        # written under a temporary name, then renamed: a reader never sees half a file
        with tempfile.NamedTemporaryFile(dir=entry.parent, suffix=".tmp", delete=False) as fh:
            np.save(fh, array, allow_pickle=False)
        os.replace(fh.name, entry)
    except OSError as err:
        log.warning("cannot write the cache entry %s (%s): the next read parses again", entry, err)
    return array
