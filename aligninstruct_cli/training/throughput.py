"""How fast training runs: model FLOPs per token, the device's peak, and the meter behind the loss,
tokens/s, real-token fraction and MFU of every metrics.jsonl line. `benchmarks/train_throughput.py`
counts with the same functions."""

from __future__ import annotations

import math
import os
import time
from typing import Any

from aligninstruct_cli.models import base_model_of

PEAK_ENV = "AIT_PEAK_TFLOPS"  # peak TFLOP/s per device for the MFU estimate (overrides the table)

# Dense bf16/fp16 tensor peak per GPU, TFLOP/s (vendor figures), matched against the device name.
GPU_PEAK_TFLOPS = (("H200", 989.0), ("H100 PCIe", 756.0), ("H100", 989.0), ("GH200", 989.0), ("A100", 312.0),
                   ("L40S", 362.0), ("L40", 181.0), ("L4", 121.0), ("A10", 125.0), ("A6000", 155.0),
                   ("V100", 125.0), ("4090", 165.0), ("MI300", 1307.0), ("MI250", 362.0))


def compute_params(model) -> int:
    """Parameters that do matrix work per token: all unique ones minus the input embeddings, plus the
    output head when it is tied to them (so it is not counted twice nor missed)."""
    lm = base_model_of(model)

    def numel(p) -> int:
        return int(getattr(p, "ds_numel", 0) or p.numel())

    total = sum(numel(p) for p in lm.parameters())
    emb_in = lm.get_input_embeddings().weight
    head = lm.get_output_embeddings()
    n = total - numel(emb_in)
    if head is not None and head.weight is emb_in:
        n += numel(emb_in)
    return n


def flops_per_token(n_compute_params: int, config, mean_len: float) -> float:
    """Model FLOPs per trained token, the usual 6·N + 12·layers·hidden·length (PaLM appendix B), counted
    the same for every pipeline (a LoRA run does less real work; MFU is relative to the full model)."""
    layers = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", 0)
    return 6.0 * n_compute_params + 12.0 * layers * config.hidden_size * mean_len


_CPU_PEAK: dict[int, float] = {}


def device_peak_flops(device) -> float | None:
    """Peak FLOP/s of one device: AIT_PEAK_TFLOPS, else the GPU table, else (CPU) a measured fp32 matmul."""
    import torch  # lazy: torch

    if os.environ.get(PEAK_ENV):
        return float(os.environ[PEAK_ENV]) * 1e12
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return next((tf * 1e12 for key, tf in GPU_PEAK_TFLOPS if key in name), None)
    threads = torch.get_num_threads()
    if threads not in _CPU_PEAK:  # best of several 1024³ fp32 matmuls (~2 GFLOP each) with this thread count
        a = torch.randn(1024, 1024, generator=torch.Generator().manual_seed(0))  # leaves the global RNG alone
        best = math.inf
        for _ in range(8):
            t = time.perf_counter()
            a @ a
            best = min(best, time.perf_counter() - t)
        _CPU_PEAK[threads] = 2 * 1024 ** 3 / best
    return _CPU_PEAK[threads]


class Meter:
    """Loss, tokens and time since the last metrics line. The loss stays on the device and the ranks are summed
    only when a line is written: a per-step sync would make the CPU wait for the GPU every step instead of
    queueing the next one."""

    def __init__(self):
        self.restart()

    def restart(self) -> None:
        self.loss = 0.0
        self.targets = self.real = self.padded = 0
        self.t0 = time.perf_counter()

    def add(self, loss_sum, targets: int, real: int, padded: int) -> None:
        """`loss_sum` (a tensor) and `real`/`padded` are this rank's; `targets` counts the global batch."""
        self.loss = self.loss + loss_sum
        self.targets += targets
        self.real += real
        self.padded += padded

    def record(self, dist, flops_per_token: float, peak_total: float | None) -> dict[str, Any]:
        """The figures since the last line, summed over the ranks of `dist` (a `distributed.Dist`): every
        rank calls it at the same step."""
        import torch  # lazy: torch

        local = torch.zeros(3, dtype=torch.float64, device=dist.device)
        local[0], local[1], local[2] = self.loss, self.real, self.padded
        loss, real, padded = dist.sum(local)
        tps = real / max(time.perf_counter() - self.t0, 1e-9)
        return {"loss": loss / max(self.targets, 1), "tokens_per_s": tps,
                "real_token_fraction": real / max(padded, 1),
                "mfu": tps * flops_per_token / peak_total if peak_total else None}
