"""Run the CLI on a real terminal (a PTY) and react to what it prints, as a person would."""

from __future__ import annotations

import os
import pty
import select
import time
from collections.abc import Callable, Mapping, Sequence

# called with everything printed so far; returns what to type, or None
React = Callable[[bytes], bytes | None]


def run_on_terminal(
    argv: Sequence[str], env: Mapping[str, str], react: React, timeout: float = 30.0
) -> tuple[int, bytes]:
    pid, fd = pty.fork()
    if pid == 0:  # the child runs the CLI on the terminal
        os.execvpe(argv[0], list(argv), dict(env))
    output = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 1024)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        typed = react(output)
        if typed:
            os.write(fd, typed)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), output
