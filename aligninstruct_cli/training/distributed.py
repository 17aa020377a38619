"""The workers' process group: join the one the deepspeed launcher set up (or a one-process group for
`--launcher none`), and the few collectives the loop needs."""

from __future__ import annotations

import os
from contextlib import contextmanager


class Dist:
    """This process's place in the group: rank, world size, local rank and device."""

    def __init__(self, rank: int, world: int, local_rank: int, device):
        self.rank, self.world, self.local_rank, self.device = rank, world, local_rank, device

    def barrier(self) -> None:
        import torch.distributed as td

        td.barrier()

    def sum(self, values) -> list[float]:
        """Element-wise sum over ranks of a list of numbers or a tensor on this rank's device."""
        import torch
        import torch.distributed as td

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
    import socket

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


def init_distributed() -> Dist:
    """Join the process group the launcher set up (or a one-process group for `--launcher none`)."""
    import deepspeed
    import torch
    from deepspeed.accelerator import get_accelerator

    accel = get_accelerator()
    if accel.device_name() == "cpu":
        # gloo only: DeepSpeed would otherwise JIT-compile its shared-memory collectives (~40 s) on CPU.
        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    deepspeed.init_distributed(dist_backend=accel.communication_backend_name(), verbose=False)
    import torch.distributed as td

    rank, world = td.get_rank(), td.get_world_size()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if accel.device_name() == "cuda":
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device(accel.device_name() if accel.device_name() != "cpu" else "cpu")
    return Dist(rank, world, local_rank, device)
