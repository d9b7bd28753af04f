"""`python -m dev.stack.waitfor HOST:PORT... -- COMMAND...`: wait until every address
accepts TCP connections, then exec COMMAND in place (so the process manager sees its pid)."""

from __future__ import annotations

import os
import sys
import time

from dev.stack.system import port_open

TIMEOUT_SECONDS = 120.0


def main(argv: list[str]) -> int:
    if "--" not in argv:
        print("usage: waitfor HOST:PORT... -- COMMAND...", file=sys.stderr)
        return 2
    split = argv.index("--")
    addresses, command = argv[:split], argv[split + 1 :]
    deadline = time.monotonic() + TIMEOUT_SECONDS
    for address in addresses:
        host, _, port = address.rpartition(":")
        while not port_open(host, int(port)):
            if time.monotonic() > deadline:
                print(f"waitfor: {address} did not open within {TIMEOUT_SECONDS:.0f}s", file=sys.stderr)
                return 1
            time.sleep(0.25)
    print(f"waitfor: {' '.join(addresses)} up; starting {command[0]}", file=sys.stderr, flush=True)
    os.execvp(command[0], command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
