"""Real-time scheduling for the nodes of the control loop (``realtime_priority`` parameter).

Why: on a loaded onboard computer the tail of the IMU-to-command latency is set by how soon the
kernel runs the node after its sample arrives, not by the work it does. SCHED_FIFO lets the
loop's threads (the executor and the DDS receive threads) preempt ordinary processes, as
ros2_control and PX4 do. It needs CAP_SYS_NICE or an ``rtprio`` limit
(``/etc/security/limits.conf``); without it the node says so once and runs normally.
"""
from __future__ import annotations

import os


def apply_realtime_priority(priority: int) -> str:
    """Put every thread of this process under SCHED_FIFO at ``priority`` (1-98; 0 = leave the
    normal scheduler). Returns what was done, for the node's log."""
    if priority <= 0:
        return ""
    if not hasattr(os, "sched_setscheduler"):
        return f"realtime_priority {priority} ignored: no SCHED_FIFO on this platform"
    param = os.sched_param(priority)
    threads = [int(t) for t in os.listdir("/proc/self/task")] if os.path.isdir("/proc/self/task") else [0]
    done = 0
    for tid in threads:
        try:
            os.sched_setscheduler(tid, os.SCHED_FIFO, param)
            done += 1
        except ProcessLookupError:  # a thread that ended meanwhile
            continue
        except PermissionError:
            return (f"realtime_priority {priority} not permitted (needs CAP_SYS_NICE or an rtprio limit in "
                    "/etc/security/limits.conf): running with normal scheduling")
    return f"SCHED_FIFO priority {priority} on {done} threads"


def schedule_node(node, priority: int) -> None:
    """:func:`apply_realtime_priority`, reported on the node's log (a warning when refused)."""
    message = apply_realtime_priority(priority)
    if message:
        log = node.get_logger()
        (log.info if message.startswith("SCHED_FIFO") else log.warning)(message)
