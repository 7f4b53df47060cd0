"""Figures: swap-grid geometry and content, t-SNE colours, and the report that embeds them."""
import json
import re
import shutil

import matplotlib.colors
import numpy as np
import pandas as pd
import pytest
import torch

from bench.cli import main
from bench.evaluations import swap_grid_cells, tsne_fit as tsne
from bench import drawing
from bench.evaluations.swap_grid import SWAP_GRID_FIGURE
from bench.evaluations.tsne import TSNE_FIGURE, TSNE_FILE
from bench.report.page import write_report
from bench.run.build import build
from bench.spec.config import resolve
from bench.store import results
from methods import METHODS

TILE = 28 + swap_grid_cells.SWAP_PADDING


@pytest.fixture(scope="module")
def trained(small_mnist):
    method, feed = build(resolve("ccvae", "mnist", "smoke", 0), small_mnist, torch.device("cpu"))
    for _ in range(3):
        method.train_step(feed)
    return method


def tile(grid, row, column):
    y, x = row * TILE + swap_grid_cells.SWAP_PADDING, column * TILE + swap_grid_cells.SWAP_PADDING
    return grid[0, y:y + 28, x:x + 28]


def test_header_images_follow_the_fixed_rule(mnist):
    s_index, z_index = swap_grid_cells.swap_header_indices(mnist.test_labels, 10)
    labels = mnist.test_labels
    assert labels[s_index].tolist() == list(range(10)) == labels[z_index].tolist()
    for c in range(10):
        members = torch.nonzero(labels == c).flatten().tolist()
        assert (s_index[c], z_index[c]) == (members[0], members[1])


def test_swap_grid_geometry_and_cells(trained, mnist):
    s_index, z_index = swap_grid_cells.swap_header_indices(mnist.test_labels, 10)
    s_images, z_images = mnist.test_images[s_index], mnist.test_images[z_index]
    cells = swap_grid_cells.swap_cells(trained, z_images, s_images)
    grid = swap_grid_cells.swap_grid_image(cells, z_images, s_images)
    assert grid.shape == (3, 11 * TILE + swap_grid_cells.SWAP_PADDING, 11 * TILE + swap_grid_cells.SWAP_PADDING)
    assert torch.all(tile(grid, 0, 0) == 0)  # the blank corner
    for j in range(10):
        assert torch.allclose(tile(grid, 0, j + 1), s_images[j, 0])
        assert torch.allclose(tile(grid, j + 1, 0), z_images[j, 0])
    with torch.no_grad():
        for i, j in [(0, 0), (2, 7), (9, 4), (5, 5)]:
            direct = trained.decode(trained.encode(z_images[i:i + 1]).z_mean,
                                    trained.encode(s_images[j:j + 1]).s)[0, 0]
            assert torch.allclose(tile(grid, i + 1, j + 1), direct, atol=1e-5), (i, j)
            other = trained.decode(trained.encode(z_images[j:j + 1]).z_mean,
                                   trained.encode(s_images[i:i + 1]).s)[0, 0]
            if i != j:
                assert not torch.allclose(tile(grid, i + 1, j + 1), other, atol=1e-5)
    separator_row = grid[:, 28 + swap_grid_cells.SWAP_PADDING:28 + 2 * swap_grid_cells.SWAP_PADDING, :]
    separator_column = grid[:, :, 28 + swap_grid_cells.SWAP_PADDING:28 + 2 * swap_grid_cells.SWAP_PADDING]
    assert torch.all(separator_row == swap_grid_cells.SWAP_SEPARATOR)
    assert torch.all(separator_column == swap_grid_cells.SWAP_SEPARATOR)


def test_tsne_figure_has_one_colour_per_digit():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 500)
    panels = [drawing.Panel("a", rng.normal(size=(500, 2)), labels),
              drawing.Panel("b", rng.normal(size=(500, 2)), labels)]
    figure = drawing.embedding_figure([panels], "test")
    legend_colours = [matplotlib.colors.to_hex(h.get_color()) for h in figure.legends[0].legend_handles]
    assert len(legend_colours) == 10 == len(set(legend_colours))
    for ax in figure.axes[:2]:
        colours = [matplotlib.colors.to_hex(c) for c in ax.collections[0].get_facecolors()]
        by_label = {}
        for label, colour in zip(labels, colours):
            by_label.setdefault(label, set()).add(colour)
        assert all(len(c) == 1 for c in by_label.values())  # one colour per digit
        assert {k: c.pop() for k, c in by_label.items()} == {k: legend_colours[k] for k in range(10)}


def test_the_tsne_gradient_method_follows_the_number_of_points():
    """Barnes-Hut below 10,000 points, FFT from there: every MNIST test image (the paper and
    quick presets) keeps the FFT; the ci and smoke presets' few points skip its fixed cost."""
    assert tsne.parameters_for(9_999)["negative_gradient_method"] == "bh"
    assert tsne.parameters_for(10_000)["negative_gradient_method"] == "fft"
    assert tsne.parameters_for(200)["perplexity"] == 30


def test_tsne_is_seeded():
    points = np.random.default_rng(1).normal(size=(150, 8))
    first, again = tsne.tsne_embedding(points, 3), tsne.tsne_embedding(points, 3)
    assert first.shape == (150, 2) and np.array_equal(first, again)


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory):
    directory = tmp_path_factory.mktemp("figures") / "results"
    assert main(["run", "--methods", "all", "--dataset", "mnist", "--preset", "smoke",
                 "--results", str(directory)]) == 0
    return directory


def test_every_run_has_its_figures_and_their_parameters(smoke_results):
    for run_dir in results.runs_dir(smoke_results).iterdir():
        for name in (TSNE_FIGURE, SWAP_GRID_FIGURE, results.CURVES_FIGURE):
            assert (run_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", (run_dir, name)
        record = json.loads((run_dir / results.FIGURES_FILE).read_text())
        assert record["tsne"]["points"] == 200 and record["tsne"]["parameters"]["perplexity"] == 30
        assert record["tsne"]["parameters"]["negative_gradient_method"] == "bh"
        variational = json.loads((run_dir / "config.json").read_text())["variational_z"]
        assert record["tsne"]["codes"] == (["z_sample", "z_mean"] if variational else ["z"])
        # both are evaluations: their tables, and their entries in evaluation.json
        evaluated = json.loads((run_dir / results.EVALUATION_FILE).read_text())
        assert evaluated["tsne"] == {**record["tsne"], "version": 1}
        assert evaluated["swap_grid"]["version"] == 1
        header = pd.read_csv(run_dir / "swap_grid.csv")
        assert header.s_image.tolist() == record["swap_grid"]["s_images"]
        assert header.z_image.tolist() == record["swap_grid"]["z_images"]
        assert header.label.tolist() == list(range(10)) == header.position.tolist()
        assert len(pd.read_csv(run_dir / TSNE_FILE)) == 200 * len(record["tsne"]["codes"])


def test_report_embeds_every_figure_and_names_runs_without_them(smoke_results, tmp_path):
    directory = tmp_path / "results"
    shutil.copytree(smoke_results, directory)
    runs = sorted(p.name for p in results.runs_dir(directory).iterdir())
    without_grid = results.runs_dir(directory) / runs[0]
    (without_grid / SWAP_GRID_FIGURE).unlink()
    failed = results.runs_dir(directory) / "szabo-mnist-failed"
    failed.mkdir()
    (failed / "status.json").write_text(json.dumps({"state": "failed", "reason": "loss is nan"}))

    markdown, page = write_report(directory)
    text, html = markdown.read_text(), page.read_text()
    for run in runs:
        assert run in text and run in html
    # a swap grid per run less the removed one, a curve per run, 1 t-SNE comparison of the methods
    assert len(runs) == len(METHODS)
    assert html.count('src="data:image/png;base64,') == (len(runs) - 1) + len(runs) + 1
    assert not re.search(r'src="(?!data:)', html)  # nothing to fetch: it opens offline
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
        assert (directory / link).is_file(), link
    assert f"no swap grid figure in {without_grid}" in text
    assert "| szabo-mnist-failed | failed | loss is nan |" in text
    assert "What the paper shows: szabo: ten clean clusters" in text
