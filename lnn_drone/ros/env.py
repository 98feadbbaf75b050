"""The process environment ROS 2 needs on the pip path, and per-run DDS isolation.

The PyPI ROS 2 wheels re-exec Python with the right ``LD_LIBRARY_PATH`` themselves, but
``ament_index_python`` (package share lookups, message definitions for recording) needs
``AMENT_PREFIX_PATH``; on the pip path the ament index lives under ``sys.prefix/share``.
Every run that opens DDS claims its own ``ROS_DOMAIN_ID`` with a lock file so that parallel
runs (tests, demos, benchmarks) never see each other's topics. rclpy-free.
"""
from __future__ import annotations

import fcntl
import os
import sys
import tempfile
from pathlib import Path

DOMAIN_RANGE = range(1, 101)  # 0 is the default a real robot uses; ids up to 101 are portable
_LOCK_DIR = Path(tempfile.gettempdir()) / "lnn_drone_ros_domains"


def ament_prefixes() -> list[str]:
    """Prefixes holding an ament index this interpreter can use (the venv's on the pip path)."""
    out = []
    for prefix in (sys.prefix, sys.base_prefix):
        if (Path(prefix) / "share" / "ament_index").is_dir() and prefix not in out:
            out.append(prefix)
    return out


def ros_environment(base: dict | None = None, domain_id: int | None = None, localhost: bool = True) -> dict:
    """A copy of ``base`` (default ``os.environ``) ready for ROS 2 child processes."""
    env = dict(os.environ if base is None else base)
    existing = [p for p in env.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    env["AMENT_PREFIX_PATH"] = os.pathsep.join(existing + [p for p in ament_prefixes() if p not in existing])
    if domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(int(domain_id))
    if localhost:
        env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env.setdefault("RCUTILS_COLORIZED_OUTPUT", "0")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def prepare_process_environment() -> None:
    """Make this process ROS-ready before rclpy is used (idempotent)."""
    os.environ.update({k: v for k, v in ros_environment().items() if k == "AMENT_PREFIX_PATH"})


class DomainLease:
    """An exclusively held ROS_DOMAIN_ID (a flock'ed file); released on ``close`` or exit."""

    def __init__(self, start: int | None = None):
        _LOCK_DIR.mkdir(parents=True, exist_ok=True)
        ids = list(DOMAIN_RANGE)
        offset = (os.getpid() if start is None else start) % len(ids)
        for i in ids[offset:] + ids[:offset]:
            fd = os.open(_LOCK_DIR / f"{i}.lock", os.O_CREAT | os.O_RDWR, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            self.domain_id, self._fd = i, fd
            return
        raise RuntimeError(f"no free ROS_DOMAIN_ID in {DOMAIN_RANGE} (all locked under {_LOCK_DIR})")

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "DomainLease":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
