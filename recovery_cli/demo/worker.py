"""The lab's background worker: does nothing but stay alive, with a pidfile.

Usage: python -m recovery_cli.demo.worker PIDFILE"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

from recovery_cli.demo.web_service import write_pidfile


def main() -> None:
    write_pidfile(Path(sys.argv[1]))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        time.sleep(60)


if __name__ == "__main__":
    main()
