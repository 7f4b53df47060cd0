"""The seeds of a run's random streams, each derived from the run's seed and the stream's name."""
from __future__ import annotations

import hashlib


def derive_seed(seed: int, stream: str) -> int:
    """Independent seeds for the run's random streams (network init, pairs, batches, probes)."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{stream}".encode()).digest()[:8], "little") >> 1
