"""How many images one forward pass of an evaluation takes, by the device it runs on.

On a CPU the batch is kept small enough that its largest feature maps (64 channels at half the
resolution of a 64 x 64 image: 26 MB for 100 images) stay under glibc malloc's 32 MiB limit for
reusing freed memory (bench/heap.py); a batch of 1000 is served fresh from the kernel each time,
zeroed page by page. Measured on a 2-core CPU: a Shapes smoke run's evaluation (z usage, swap)
took 46 s at 1000 and 35 s at 100 (the same numbers, byte for byte). A GPU is faster the larger
the batch."""
from __future__ import annotations

import torch

CPU_BATCH = 100
ACCELERATOR_BATCH = 1000


def inference_batch(device: torch.device | str) -> int:
    return CPU_BATCH if torch.device(device).type == "cpu" else ACCELERATOR_BATCH
