"""One set of CPU kernels on every x86-64 machine with AVX2, so that a seed trains to the same bits.

torch's own kernels, oneDNN (convolutions), MKL (matrix products) and OpenBLAS (numpy and
scikit-learn) each choose their code by the instructions the CPU offers, and AVX2 and AVX-512 code
sum in different orders. Training magnifies the last bit: two CI machines that both call
themselves "AMD EPYC" trained szabo's ci preset, seed 0, to s test accuracies of 78.3 and 75.5.
``python -m bench`` therefore asks all four for their AVX2 code before torch loads (it was no
slower on the AVX-512 machine it was measured on; docs/usage.md). A variable the user has set is
left as it is, and a CPU without AVX2 keeps its own kernels. This module imports nothing heavy:
it must run before torch does.
"""
from __future__ import annotations

import os
import platform
from collections.abc import MutableMapping

AVX2_KERNELS = {
    "ATEN_CPU_CAPABILITY": "avx2",    # torch's vectorised kernels
    "ONEDNN_MAX_CPU_ISA": "AVX2",     # oneDNN: convolutions, normalisation
    "MKL_CBWR": "AVX2",               # MKL's reproducible mode: matrix products
    "OPENBLAS_CORETYPE": "Haswell",   # numpy and scipy's OpenBLAS: the probes
}


def has_avx2(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this is an x86-64 CPU whose flags (Linux) include avx2."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        with open(cpuinfo) as lines:
            return any(line.startswith("flags") and "avx2" in line.split() for line in lines)
    except OSError:
        return False


def use_avx2_kernels(environ: MutableMapping[str, str] = os.environ, avx2: bool | None = None) -> None:
    """Ask for the AVX2 kernels (AVX2_KERNELS) where the CPU has AVX2, keeping any variable the
    user set. Must run before torch is imported to reach torch's own kernels."""
    if not (has_avx2() if avx2 is None else avx2):
        return
    for name, value in AVX2_KERNELS.items():
        environ.setdefault(name, value)
