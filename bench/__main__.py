import sys

from bench.cpu_kernels import use_avx2_kernels
from bench.heap import keep_freed_memory
from bench.lifetime import stop_with_parent_if_asked

stop_with_parent_if_asked()  # a --jobs child or SLURM job's run: it ends when its parent dies
use_avx2_kernels()  # before bench.cli imports torch
keep_freed_memory()  # large CPU tensors reuse freed memory instead of new pages

from bench.cli import main  # noqa: E402

sys.exit(main())
