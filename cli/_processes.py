"""Which process a recorded pid names: a pid alone is not enough to signal it later.

``imi devnet`` records the pids of the validators and demo services it starts
(``DIR/pids.json``, ``DIR/demo.json``) and signals them on ``down``. After those processes
end — a reboot, a ``kill -9`` — the kernel may hand their pids to unrelated processes;
signalling a recorded pid would then stop someone else's program, and ``up`` would take it
for a running validator. So each pid is recorded with the process's identity: the boot it
was started in (``/proc/sys/kernel/random/boot_id``) and its start time in clock ticks
after boot (``/proc/<pid>/stat``, field 22). A recorded pid whose process now has another
identity is treated as gone. Where ``/proc`` is not there (not Linux) the identity is
``None`` and the pid alone is used, as before.
"""

from __future__ import annotations

import functools
from pathlib import Path

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
_STARTTIME_FIELD = 22  # of /proc/<pid>/stat (1-based), counted after the ")" of the command name


@functools.cache
def _boot_id() -> str | None:
    """This boot's id, read once (it cannot change while this process runs)."""
    try:
        return _BOOT_ID.read_text().strip()
    except OSError:
        return None


def process_identity(pid: int) -> str | None:
    """``"<boot id>/<start time in ticks>"`` of the running process ``pid``; None if it
    cannot be read (the process is gone, or there is no ``/proc``)."""
    boot = _boot_id()
    if boot is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return f"{boot}/{int(fields[_STARTTIME_FIELD - 3])}"
    except (OSError, IndexError, ValueError):
        return None


def is_recorded_process(pid: int, identity: str | None) -> bool:
    """Whether ``pid`` may still be the process recorded with ``identity``: False only when
    a process with that pid runs now under another identity (the pid was reused)."""
    if identity is None:
        return True
    now = process_identity(pid)
    return now is None or now == identity
