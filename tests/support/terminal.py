"""Run the CLI on a real terminal (a PTY) and react to what it prints, as a person would."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import termios
import time
import unicodedata
from collections.abc import Callable, Mapping, Sequence

# called with everything printed so far; returns what to type, or None
React = Callable[[bytes], bytes | None]

# CSI sequences (colours, styles, cursor) and OSC ones (titles, links)
ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
# SGR parameters that set a colour: 30-37, 90-97 (foreground), 40-47, 100-107, 38;5;N / 38;2
COLOUR = re.compile(r"\x1b\[(?:[0-9;]*;)?(?:3[0-8]|4[0-8]|9[0-7]|10[0-7])(?:;[0-9;]*)?m")


def run_on_terminal(
    argv: Sequence[str],
    env: Mapping[str, str],
    react: React,
    timeout: float = 30.0,
    columns: int | None = None,
    rows: int = 24,
) -> tuple[int, bytes]:
    """``argv`` on a new terminal (``columns`` wide, when given); returns its exit code and
    every byte it wrote to the terminal."""
    pid, fd = pty.fork()
    if pid == 0:  # the child runs the CLI on the terminal
        if columns is not None:
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
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


def screen_lines(output: bytes) -> list[str]:
    """What the terminal shows, line by line, escapes left out."""
    text = ESCAPE.sub("", output.decode(errors="replace"))
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def cells(line: str) -> int:
    """How many terminal cells ``line`` takes (East Asian wide characters take two)."""
    width = 0
    for char in line:
        if unicodedata.combining(char):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width
