"""bench/heap.py: freed tensor memory is kept for reuse, not mapped and zeroed again."""
import ctypes
import json
import os
import subprocess
import sys
import textwrap

import pytest

from bench.heap import keep_freed_memory
from bench.metrics.batches import CPU_BATCH, inference_batch
from tests.conftest import REPO

# Eight 10 MB tensors (the size of a batch's feature maps) made and freed at once in a fresh
# process, with glibc's default thresholds or with keep_freed_memory's, read through glibc's own
# account (mallinfo2): bytes it served by mapping while they lived, and bytes it kept free in its
# heap once they were freed. Page-fault counts would say the same less directly: they depend on the
# kernel's huge pages and on glibc's adaptive threshold, and differed by a factor of 9 between
# machines.
HEAP_ACCOUNT = textwrap.dedent("""
    import ctypes, json, sys, torch
    from bench.heap import keep_freed_memory
    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
            "fordblks", "keepcost")]
    mallinfo2 = ctypes.CDLL(None).mallinfo2
    mallinfo2.restype = MallInfo2
    if sys.argv[1] == "keep":
        assert keep_freed_memory()
    before = mallinfo2()
    blocks = [torch.ones(2_500_000) for _ in range(8)]
    during = mallinfo2()
    del blocks
    after = mallinfo2()
    print(json.dumps({"mapped": during.hblkhd - before.hblkhd,
                      "kept_free": after.fordblks - before.fordblks}))
""")
TENSORS = 8 * 2_500_000 * 4


def heap_account(mode: str) -> dict:
    environment = {name: value for name, value in os.environ.items() if not name.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", HEAP_ACCOUNT, mode], cwd=REPO, capture_output=True,
                         text=True, timeout=120, env=environment)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def glibc_accounts_its_heap() -> bool:
    return keep_freed_memory() and hasattr(ctypes.CDLL(None), "mallinfo2")  # glibc 2.33 and later


@pytest.mark.skipif(not glibc_accounts_its_heap(), reason="needs glibc 2.33 or later: its malloc's "
                    "thresholds and its account of the heap (mallinfo2)")
def test_freed_tensors_stay_in_the_heap_for_reuse():
    kept, default = heap_account("keep"), heap_account("default")
    # glibc's default maps each block above 128 KiB and unmaps it on free: nothing is kept
    assert default["mapped"] >= TENSORS and default["kept_free"] < TENSORS / 8, default
    # with keep_freed_memory the blocks come from the heap and stay there, free, once released
    assert kept["mapped"] < TENSORS / 8 and kept["kept_free"] >= TENSORS, kept


def test_a_cpu_evaluation_batch_stays_under_the_reuse_limit():
    assert inference_batch("cpu") == CPU_BATCH
    # the largest feature maps of a batch of 64 x 64 images: 64 channels at 32 x 32, float32
    assert CPU_BATCH * 64 * 32 * 32 * 4 < 32 * 2**20
    assert inference_batch("cuda") > CPU_BATCH and inference_batch("mps") > CPU_BATCH
