"""Waiting for a process to end the moment it does, whoever its parent is.

A pidfd (Linux 5.3+) becomes readable when its process terminates, for any process, not only
the harness's children: the supervisor learns of an exit from the kernel instead of its next
poll. Where pidfds are not available the supervisor's 50 ms poll remains the watch.
"""

import os

from gevent.socket import wait_read

from harness.procs import ProcessId


def open_exit_fd(ident: ProcessId) -> int | None:
    """A pidfd for exactly this process (PID and start time), or None if it cannot be had."""
    try:
        fd = os.pidfd_open(ident.pid)
    except (AttributeError, OSError):
        return None
    if ident.alive() is None:  # exited, or the PID was reused before the pidfd was opened
        os.close(fd)
        return None
    return fd


def wait_exit(fd: int) -> None:
    """Block this greenlet until the process of `fd` has terminated; closes `fd`."""
    try:
        wait_read(fd)
    finally:
        os.close(fd)
