"""Common entry point of the node executables: environment, init, spin, clean shutdown, and a
clear one-line message plus a non-zero exit status when a node cannot start."""
from __future__ import annotations

import sys
from typing import Callable

from .env import prepare_process_environment

EXIT_START_FAILURE = 2


def make_executor():
    """The SingleThreadedExecutor; ``LNN_DRONE_EXECUTOR=events`` tries rclpy's experimental C++
    EventsExecutor (in Kilted's wheels it delivered no callbacks to the policy node in our
    real-time benchmark, so it is opt-in only)."""
    import os

    from rclpy.executors import SingleThreadedExecutor

    if os.environ.get("LNN_DRONE_EXECUTOR", "single") == "events":
        try:
            from rclpy.experimental import EventsExecutor

            return EventsExecutor()
        except ImportError:
            pass
    return SingleThreadedExecutor()


def quiet_garbage_collector() -> None:
    """Keep Python's cyclic GC out of the control loop's tail latency: everything allocated
    while starting up (modules, the model, rclpy) moves to the permanent generation, and young
    collections run less often. The loop itself allocates few cycles, so memory stays flat."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)


def stopped_by_shutdown(name: str, exc: Exception) -> bool:
    """Whether ``exc`` is only how a shutdown showed up (then say so on stderr).

    When SIGINT shuts the context down in the middle of a take or a publish, rclpy raises e.g.
    "context not valid", "Unable to convert call argument" or RCLError "publisher's context is
    invalid" instead of ExternalShutdownException. The node was asked to stop, and it stopped."""
    import rclpy

    if rclpy.ok():
        return False
    print(f"{name}: stopped during shutdown ({type(exc).__name__}: {exc})", file=sys.stderr, flush=True)
    return True


def run_node(name: str, factory: Callable, args=None, spin: Callable | None = None) -> int:
    prepare_process_environment()
    import rclpy
    from rclpy.executors import ExternalShutdownException

    from ..config import ConfigError

    rclpy.init(args=args)
    node = None
    try:
        try:
            node = factory()
        except (ConfigError, ValueError, OSError, RuntimeError) as exc:
            print(f"{name}: cannot start: {exc}", file=sys.stderr, flush=True)
            return EXIT_START_FAILURE
        except Exception as exc:  # model file errors and the like: never a bare traceback
            print(f"{name}: cannot start: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            return EXIT_START_FAILURE
        quiet_garbage_collector()
        if spin is not None:
            return int(spin(node) or 0)
        executor = make_executor()
        executor.add_node(node)
        executor.spin()
        return 0
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    except Exception as exc:
        if stopped_by_shutdown(name, exc):
            return 0
        raise
    finally:
        if node is not None:
            close = getattr(node, "close", None)
            if callable(close):
                close()
            try:
                node.destroy_node()
            except Exception:
                pass
        if rclpy.ok():
            rclpy.try_shutdown()
