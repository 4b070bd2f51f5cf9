"""gunicorn's processes as the kernel sees them (/proc), and killing them the hard way."""

import os
import resource
import signal
from pathlib import Path


def worker_pids(master_pid):
    """The pids of gunicorn's workers: the children of its master process."""
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    return [int(pid) for pid in children]


def proc_status(pid, field):
    """A numeric field of /proc/<pid>/status (VmRSS is in kB, Threads a count)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise KeyError(field)


def allow_open_files(needed):
    """Raise this process's soft limit of open files to the hard one if `needed` would not fit; False
    if even the hard limit is too low. Call it before starting services: their workers inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return True
    if hard != resource.RLIM_INFINITY and hard < needed:
        return False
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed if hard == resource.RLIM_INFINITY else hard, hard))
    return True


def kill_instance(service):
    """SIGKILL gunicorn's workers and master at once: nothing gets to clean up."""
    for pid in [*worker_pids(service.proc.pid), service.proc.pid]:
        os.kill(pid, signal.SIGKILL)
    service.proc.wait(10)


def executing_instance(db, run_id, *services):
    """The service whose worker process holds the run's lease."""
    owner = db.execute("SELECT lease_owner FROM runs WHERE id = %s", (run_id,)).fetchone()["lease_owner"]
    pid = int(owner.split(":")[1])
    return next(s for s in services if pid in worker_pids(s.proc.pid))
