"""The t-SNE of a run's z codes (openTSNE), and a program computing one in its own process.

This module imports neither torch nor the rest of the suite, so that a worker process started
for one embedding (bench/evaluations/tsne_pool.py) is ready in about a second:

    python -m bench.evaluations.tsne_fit POINTS.npy EMBEDDING.npy SEED THREADS

reads the points (n x d, float32), writes their 2-D embedding and exits 0.
"""
from __future__ import annotations

import os
import signal
import sys

import numpy as np

from bench import progress
from bench.lifetime import stop_with_parent

# openTSNE's defaults; recorded beside every embedding with the gradient method it used.
TSNE_PARAMETERS = {"perplexity": 30, "n_iter": 500, "early_exaggeration_iter": 250,
                   "initialization": "pca", "metric": "euclidean"}
# From this many points the gradients are FFT-accelerated, below it Barnes-Hut (openTSNE's own
# "auto" rule). The FFT's interpolation grid costs about 10 s per embedding on a 2-core CPU
# whatever the number of points; Barnes-Hut takes under a second for 300 points, 4 s for 1,000.
FFT_FROM_POINTS = 10_000


def parameters_for(points: int) -> dict:
    """The t-SNE's parameters for an embedding of ``points`` points, gradient method included."""
    return {**TSNE_PARAMETERS,
            "negative_gradient_method": "fft" if points >= FFT_FROM_POINTS else "bh"}

TSNE_REPORT_EVERY = 50  # iterations between progress updates (observing does not change the result)


def tsne_embedding(points: np.ndarray, seed: int, n_jobs: int | None = None) -> np.ndarray:
    """2-D t-SNE of ``points`` (n x d), seeded. The result depends on ``n_jobs`` (default:
    torch's number of threads), so it is recorded with it."""
    import openTSNE
    if n_jobs is None:
        import torch
        n_jobs = torch.get_num_threads()
    iterations = TSNE_PARAMETERS["early_exaggeration_iter"] + TSNE_PARAMETERS["n_iter"]
    with progress.counter(f"t-SNE of {len(points)} points", iterations // TSNE_REPORT_EVERY) as bar:
        def observe(iteration, error, embedding) -> bool:
            bar.update()
            return False  # True would stop the optimisation

        embedding = openTSNE.TSNE(**parameters_for(len(points)), random_state=seed, n_jobs=n_jobs,
                                  callbacks=None if bar.disable else observe,
                                  callbacks_every_iters=TSNE_REPORT_EVERY).fit(
            np.ascontiguousarray(points, dtype=np.float32))
    return np.asarray(embedding)


def main(argv: list[str]) -> int:
    points_file, embedding_file, seed, threads = argv
    stop_with_parent()  # a parent killed outright leaves no worker behind
    # Ctrl-C reaches the whole process group: the parent decides, and ends its workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    progress.hide()
    points = np.load(points_file, allow_pickle=False)
    os.unlink(points_file)  # nothing is left behind, even if the parent is killed meanwhile
    embedding = tsne_embedding(points, int(seed), n_jobs=int(threads))
    partial = f"{embedding_file}.partial.npy"  # np.save adds .npy to a name without it
    np.save(partial, embedding, allow_pickle=False)
    os.replace(partial, embedding_file)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
