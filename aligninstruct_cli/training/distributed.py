"""The workers' process group: join the one the deepspeed launcher set up (or a one-process group for
`--launcher none`), and the few collectives the loop needs."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import sys
import threading
import time
from contextlib import contextmanager
from typing import Callable

LAUNCHING_PID_ENV = "AIT_TRAIN_PID"  # set by launch.run_launcher: the `ait train` process the ranks serve
WATCH_INTERVAL_S = 0.5


class Dist:
    """This process's place in the group: rank, world size, local rank and device."""

    def __init__(self, rank: int, world: int, local_rank: int, device):
        self.rank, self.world, self.local_rank, self.device = rank, world, local_rank, device

    def barrier(self) -> None:
        import torch.distributed as td  # lazy: torch

        td.barrier()

    def sum(self, values) -> list[float]:
        """Element-wise sum over ranks of a list of numbers or a tensor on this rank's device."""
        import torch  # lazy: torch
        import torch.distributed as td  # lazy: torch

        t = values if isinstance(values, torch.Tensor) else torch.tensor(values, dtype=torch.float64,
                                                                         device=self.device)
        td.all_reduce(t)
        return t.tolist()


@contextmanager
def single_process_env():
    """For `--launcher none`: the environment of a one-rank group on a free port (DeepSpeed reads it during
    the whole run), restored afterwards. A no-op under a launcher."""
    if "RANK" in os.environ:
        yield
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    values = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
              "MASTER_PORT": str(port)}
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def set_parent_death_signal(signum: int) -> bool:
    """prctl(PR_SET_PDEATHSIG): the kernel sends `signum` to this process when its parent dies. Linux only;
    False elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(1, signum, 0, 0, 0) == 0  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return False


def process_alive(pid: int, *, group: bool = False) -> bool:
    """Whether process `pid` (with `group`, process group `pid`) still exists."""
    try:
        (os.killpg if group else os.kill)(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_then_kill(pgid: int, grace_s: float, *, proc=None, after_kill_s: float = 10.0, poll_s: float = 0.1,
                   on_kill: Callable[[], None] | None = None) -> None:
    """The one way a process group that was asked to stop is ended: wait up to `grace_s` seconds for it (and for
    `proc`, its leader, when given) to exit, then SIGKILL what is left (`on_kill` says so first), reap `proc`,
    and wait up to `after_kill_s` more for the group to be gone."""
    deadline = time.monotonic() + grace_s
    while ((proc is not None and proc.poll() is None) or process_alive(pgid, group=True)) and \
            time.monotonic() < deadline:
        time.sleep(poll_s)
    if process_alive(pgid, group=True):
        if on_kill is not None:
            on_kill()
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass
    if proc is not None:
        proc.wait()
    while process_alive(pgid, group=True) and time.monotonic() < deadline + after_kill_s:
        time.sleep(poll_s)


def end_process_group(pgid: int, grace_s: float = 20.0) -> None:
    """SIGTERM a process group (and SIGCONT it: a stopped group gets the TERM only once continued), then
    `wait_then_kill`. Nothing to do when the group is gone already."""
    try:
        os.killpg(pgid, signal.SIGTERM)
        os.killpg(pgid, signal.SIGCONT)
    except OSError:
        return
    wait_then_kill(pgid, grace_s)


def watch_launching_process(pid: int | None = None, *, interval_s: float = WATCH_INTERVAL_S,
                            what: str = "ait train worker") -> bool:
    """In a rank started by the deepspeed launcher: exit (code 143) as soon as the `ait train` process that
    launched the run is gone, so that no orphan keeps training (and writing checkpoints) after it was killed,
    even by SIGKILL. Also asks the kernel for SIGTERM when this rank's own parent (DeepSpeed's per-node
    launcher) dies (Linux). Returns whether a watch started (not under `--launcher none`)."""
    pid = pid or int(os.environ.get(LAUNCHING_PID_ENV) or 0)
    if not pid or pid == os.getpid():
        return False
    if sys.platform.startswith("linux"):
        set_parent_death_signal(signal.SIGTERM)

    def watch() -> None:
        while process_alive(pid):
            time.sleep(interval_s)
        sys.stderr.write(f"{what} {os.getpid()}: the launching process {pid} is gone; stopping\n")
        os._exit(128 + signal.SIGTERM)

    threading.Thread(target=watch, name="ait-launcher-watch", daemon=True).start()
    return True


def init_distributed() -> Dist:
    """Join the process group the launcher set up (or a one-process group for `--launcher none`); a rank of
    the deepspeed launcher watches the `ait train` process (`watch_launching_process`)."""
    watch_launching_process()
    import deepspeed  # lazy: deepspeed
    import torch  # lazy: torch
    from deepspeed.accelerator import get_accelerator  # lazy: deepspeed

    accel = get_accelerator()
    if accel.device_name() == "cpu":
        # gloo only: DeepSpeed would otherwise JIT-compile its shared-memory collectives (~40 s) on CPU.
        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    deepspeed.init_distributed(dist_backend=accel.communication_backend_name(), verbose=False)
    import torch.distributed as td  # lazy: torch

    rank, world = td.get_rank(), td.get_world_size()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if accel.device_name() == "cuda":
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device(accel.device_name() if accel.device_name() != "cpu" else "cpu")
    return Dist(rank, world, local_rank, device)
