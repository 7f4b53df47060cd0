"""python -m bench speed: milliseconds per training iteration of each method at the paper's config."""
from __future__ import annotations

import time

import torch

from bench.config import resolve
from bench.runner import build, iterations_per_epoch
from datasets import ImageSet


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_iterations(method, feed, iterations: int, warmup: int) -> float:
    """Seconds per ``method.train_step`` after ``warmup`` untimed steps."""
    for _ in range(warmup):
        method.train_step(feed)
    synchronise(method.device)
    started = time.perf_counter()
    for _ in range(iterations):
        method.train_step(feed)
    synchronise(method.device)
    return (time.perf_counter() - started) / iterations


def measure_speed(methods: list[str], data: ImageSet, device: torch.device, *, iterations: int,
                  warmup: int) -> list[dict]:
    rows = []
    print(f"device: {device}, torch threads: {torch.get_num_threads()}, "
          f"{iterations} timed iterations after {warmup} warm-up")
    print(f"{'method':<10} {'ms/iter':>8} {'images/s':>9} {'paper training':>15}")
    for name in methods:
        config = resolve(name, data.name, "paper", seed=0)
        method, feed = build(config, data, device)
        seconds = time_iterations(method, feed, iterations, warmup)
        paper_minutes = seconds * iterations_per_epoch(config, data) * config.method_config.epochs / 60
        row = {"method": name, "ms_per_iteration": 1000 * seconds,
               "images_per_second": config.method_config.batch_size / seconds,
               "paper_training_minutes": paper_minutes}
        print(f"{name:<10} {row['ms_per_iteration']:>8.1f} {row['images_per_second']:>9.0f} "
              f"{paper_minutes:>11.0f} min")
        rows.append(row)
    return rows


def measure_tsne(data: ImageSet, device: torch.device, points: int) -> float:
    """Seconds for the t-SNE of the 16-d posterior means of ``points`` test images (an untrained
    cycle-consistent VAE's encoder: the same size and kind of input as a trained one's)."""
    from bench.evaluate import encode_all, tsne_embedding
    method, _ = build(resolve("ccvae", data.name, "paper", seed=0), data, device)
    codes = encode_all(method, data.test_images[:points]).z_mean.cpu().numpy()
    started = time.perf_counter()
    tsne_embedding(codes, seed=0)
    seconds = time.perf_counter() - started
    print(f"t-SNE of {len(codes)} points of dimension {codes.shape[1]} (openTSNE, FFT gradients, "
          f"{torch.get_num_threads()} threads): {seconds:.1f} s")
    return seconds
