"""Model FLOPs utilisation: achieved training FLOP/s over the device's dense bf16 peak.

The FLOP count is :meth:`codekiln.model.GPT.flops_per_token` (6N + 12·L·C·T, the PaLM / nanoGPT
convention). Peaks are datasheet figures for dense bf16 tensor-core math; an unknown GPU or a
CPU gets no MFU (``None``) rather than a made-up number.
"""

from __future__ import annotations

from typing import Any

__all__ = ["GPU_PEAK_FLOPS", "estimate_mfu", "peak_flops"]

#: Dense bf16 peaks by a substring of ``torch.cuda.get_device_name()`` (first match wins).
GPU_PEAK_FLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 989e12),
    ("H100 PCIe", 756e12),
    ("H100", 989e12),
    ("H800", 989e12),
    ("GH200", 989e12),
    ("B200", 2250e12),
    ("A100", 312e12),
    ("A800", 312e12),
    ("L40S", 362e12),
    ("A10G", 125e12),
    ("RTX 4090", 165e12),
    ("RTX 3090", 71e12),
    ("V100", 125e12),  # fp16
    ("T4", 65e12),  # fp16
)


def peak_flops(device: Any) -> float | None:
    """The bf16 peak FLOP/s of a CUDA ``device``, or None (CPU, unknown GPU)."""
    import torch

    device = torch.device(device)
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, flops in GPU_PEAK_FLOPS:
        if key in name:
            return flops
    return None


def estimate_mfu(flops_per_token: float, tokens_per_s: float, peak: float | None) -> float | None:
    """``flops_per_token * tokens_per_s / peak`` (per device), or None without a peak.

    >>> round(estimate_mfu(6e8, 1e5, 989e12), 4)
    0.0607
    """
    if peak is None or peak <= 0:
        return None
    return flops_per_token * tokens_per_s / peak
