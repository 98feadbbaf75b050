"""Import PyBullet without its banner.

pybullet prints "pybullet build time: ..." with C ``printf`` when imported; the text sits in
C's stdout buffer and lands at exit, corrupting machine-readable output (``--json``). We import
it with file descriptor 1 pointed at /dev/null and flush C's buffer before restoring it.
"""
from __future__ import annotations

import ctypes
import os
import sys


def _import_quietly():
    try:
        libc = ctypes.CDLL(None)
    except OSError:  # pragma: no cover - non-glibc platforms: accept the banner
        import pybullet

        return pybullet
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        import pybullet

        libc.fflush(None)
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)
    return pybullet


pb = _import_quietly()
