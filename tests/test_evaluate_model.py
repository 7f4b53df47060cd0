"""`bench evaluate-model`: a model of the user's own, evaluated beside the suite's methods through
the public protocol (bench/external_model.py): a wrapped suite method gives its run's numbers bit for
bit, a TorchScript export the numbers of its Python original, known codes their known leakage;
bad models are one line, exit 2 and no run folder."""
import hashlib
import importlib.util
import json
import shutil
import warnings

import pandas as pd
import pytest
import torch

from bench.cli import main
from bench.evaluations import by_default
from bench.evaluations.swap_grid import SWAP_GRID_FIGURE
from bench.evaluations.tsne import TSNE_FILE
from bench.report.document import to_markdown
from bench.report.page import build
from bench.store import results
from bench.store.records import load_runs

SMOKE = ["--dataset", "mnist", "--preset", "smoke", "--device", "cpu"]


def fake_tsne(points, seed, n_jobs=None):
    """A stand-in for openTSNE (seconds per embedding on a 2-core CPU): the first two columns.
    The figures' inputs, not openTSNE, are what these tests compare."""
    return points[:, :2].astype("float64")


@pytest.fixture(autouse=True)
def quick_tsne(monkeypatch):
    monkeypatch.setattr("bench.evaluations.tsne.tsne_embedding", fake_tsne)


def evaluate_model(model, name, results_dir, *extra):
    return main(["evaluate-model", str(model), "--name", name, *SMOKE,
                 "--results", str(results_dir), *extra])


def only_run(results_dir, prefix):
    (run_dir,) = [p for p in results.runs_dir(results_dir).iterdir() if p.name.startswith(prefix)]
    return run_dir


def numbers(path):
    """A run table's own columns (those after the run columns): what two runs must share."""
    table = pd.read_csv(path)
    return table[[c for c in table.columns if c not in results.RUN_COLUMNS]]


WRAPPER = '''
"""A suite run's trained method as an external model, through the public protocol only."""
from bench.run.trained_method import load_method


class Wrapped:
    def __init__(self, method):
        self.method = method

    def encode(self, images):
        code = self.method.encode(images)
        return code.s, code.z_mean, code.z_logvar

    def decode(self, z, s):
        return self.method.decode(z, s)


def model():
    return Wrapped(load_method({run_dir!r}, "cpu"))
'''


@pytest.fixture(scope="module")
def both(tmp_path_factory, smoke_results):
    """A results folder with a smoke run of ccvae (the session's, copied), recomputed by `bench
    evaluate --force`, and that run's method wrapped as an external model and evaluated by
    `bench evaluate-model`."""
    folder = tmp_path_factory.mktemp("both") / "results"
    shutil.copytree(smoke_results, folder, symlinks=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("bench.evaluations.tsne.tsne_embedding", fake_tsne)
        suite = only_run(folder, "ccvae")
        factory = folder.parent / "wrapper.py"
        factory.write_text(WRAPPER.format(run_dir=str(suite)))
        assert evaluate_model(f"{factory}:model", "wrapped", folder) == 0
        assert main(["evaluate", "--results", str(folder), "--device", "cpu", "--force"]) == 0
    return suite, only_run(folder, "wrapped"), factory


def test_a_wrapped_suite_method_gives_the_numbers_of_its_own_run_bit_for_bit(both):
    suite, external, _ = both
    files = [e.file for e in by_default() if (suite / e.file).is_file()]
    assert {"metrics.csv", "z_usage.csv", "swap.csv"} <= set(files)
    for name in [*files, TSNE_FILE]:
        assert numbers(external / name).equals(numbers(suite / name)), name
    config = json.loads((external / results.CONFIG_FILE).read_text())
    assert config["external"]["decoder"] is True and config["external"]["kind"] == "python file"
    assert config["variational_z"] is True and config["method_config"] == {"z_dim": 16, "s_dim": 16}
    assert (external / SWAP_GRID_FIGURE).is_file()
    assert not (external / results.CHECKPOINT_FILE).exists()


def test_the_same_command_finds_its_folder_up_to_date(both, capsys):
    _, external, factory = both
    assert evaluate_model(f"{factory}:model", "wrapped", external.parent.parent) == 0
    assert f"up to date {external.name}" in capsys.readouterr().out


def test_report_status_check_and_evaluate_read_the_external_run(both, capsys):
    suite, external, _ = both
    folder = suite.parent.parent
    text = to_markdown(build(folder), folder)
    assert "| ccvae | 16 / 16 | 1 |" in text
    assert "| wrapped (external) | 16 / 16 | 1 |" in text and "(no paper row)" in text
    assert "Training curves: wrapped" not in text and "Training curves: ccvae" in text
    assert main(["status", "--results", str(folder)]) == 0
    assert "2 complete" in capsys.readouterr().out
    assert main(["check", "--results", str(folder), "--baseline", str(folder / "b.csv"),
                 "--update-baseline"]) == 0
    out = capsys.readouterr().out
    assert f"1 run(s) of external models not checked (no baseline for a model outside the " \
           f"suite): {external.name}" in out
    assert "wrapped" not in (folder / "b.csv").read_text()



def test_bench_evaluate_skips_the_external_run_without_importing_it(both, capsys):
    suite, external, factory = both
    code = factory.read_text()
    factory.write_text("raise SystemExit('imported by bench evaluate')\n")
    try:
        assert main(["evaluate", "--results", str(suite.parent.parent), "--device", "cpu"]) == 0
    finally:
        factory.write_text(code)
    out = capsys.readouterr().out
    assert f"skip {external.name}: an external model's run; rerun python -m bench evaluate-model" in out
    assert "1 up to date, 1 external (skipped) of 2 complete run(s)" in out


ENCODER = '''
import torch
from torch import nn


class Encoder(nn.Module):
    """A small encoder without a decoder: s and z from one linear map of the image."""

    def __init__(self):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.linear = nn.Linear(784, 12)

    def forward(self, images):
        codes = torch.tanh(self.linear(images.flatten(1)))
        return codes[:, :4], codes[:, 4:]

    def encode(self, images):  # the protocol's; a traced module keeps forward alone
        return self.forward(images)


def model():
    return Encoder()
'''


def test_a_torchscript_export_gives_the_numbers_of_its_python_original(tmp_path, capsys):
    factory = tmp_path / "encoder.py"
    factory.write_text(ENCODER)
    spec = importlib.util.spec_from_file_location("encoder_for_tracing", factory)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with warnings.catch_warnings():  # torch.jit is deprecated, yet users have such files
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(module.model().eval(), torch.rand(2, 1, 28, 28))
    traced.save(str(tmp_path / "encoder.pt"))
    assert evaluate_model(f"{factory}:model", "python", tmp_path / "res") == 0
    out = capsys.readouterr().out
    assert "python has no decode method: skipped z_usage, swap, swap_grid (they decode)" in out
    assert evaluate_model(tmp_path / "encoder.pt", "scripted", tmp_path / "res") == 0
    python, scripted = only_run(tmp_path / "res", "python"), only_run(tmp_path / "res", "scripted")
    for name in (results.METRICS_FILE, TSNE_FILE):
        assert numbers(python / name).equals(numbers(scripted / name)), name
    assert not (scripted / "swap.csv").exists() and not (scripted / "z_usage.csv").exists()
    assert not (scripted / SWAP_GRID_FIGURE).exists()
    external = json.loads((scripted / results.CONFIG_FILE).read_text())["external"]
    assert external["kind"] == "torchscript" and external["decoder"] is False
    assert external["skipped_without_decoder"] == ["z_usage", "swap", "swap_grid"]
    text = to_markdown(build(tmp_path / "res"), tmp_path / "res")
    assert "python has no decoder: z_usage, swap, swap_grid skipped (they decode)" in text
    assert "no swap grid (the model has no decoder)" in text


KNOWN_CODES = '''
import torch
from datasets import DATASETS


class Known:
    """Codes looked up by image: the one-hot label of the image (found among the smoke preset's
    images) in one code, seeded noise in the other."""

    def __init__(self, label_in):
        data = DATASETS["mnist"](None, torch.device("cpu")).head(640, 320)
        self.images = torch.cat([data.train_images, data.test_images]).flatten(1)
        self.labels = torch.cat([data.train_labels, data.test_labels])
        self.label_in = label_in
        self.noise = torch.Generator().manual_seed(1)

    def encode(self, images):
        found = torch.cdist(images.flatten(1), self.images).argmin(1)
        label = torch.nn.functional.one_hot(self.labels[found], 10).float()
        noise = torch.randn(len(images), 10, generator=self.noise)
        return (noise, label) if self.label_in == "z" else (label, noise)


def label_in_z():
    return Known("z")


def noise_in_z():
    return Known("s")
'''


def test_known_codes_leak_what_they_hold(tmp_path):
    factory = tmp_path / "known.py"
    factory.write_text(KNOWN_CODES)
    budget = ["--evaluations", "probes", "--set", "probe_epochs=20", "--set", "probe_lr=0.001"]
    test_accuracy = {}
    for name in ("label_in_z", "noise_in_z"):
        assert evaluate_model(f"{factory}:{name}", name, tmp_path / "res", *budget) == 0
        metrics = pd.read_csv(only_run(tmp_path / "res", name) / results.METRICS_FILE)
        test_accuracy[name] = dict(zip(metrics[metrics.split == "test"].probe,
                                       metrics[metrics.split == "test"].accuracy))
    assert test_accuracy["label_in_z"]["z_mean"] >= 99 and test_accuracy["label_in_z"]["s"] <= 25
    assert test_accuracy["noise_in_z"]["z_mean"] <= 25 and test_accuracy["noise_in_z"]["s"] >= 99


GOOD = '''
import torch


class Model:
    def encode(self, images):
        n = len(images)
        return torch.ones(n, 3), torch.ones(n, 2) * images.flatten(1)[:, :2]

    def decode(self, z, s):
        return torch.zeros(len(z), 1, 28, 28)
'''

BAD_MODELS = {
    "missing file": ("nowhere.py:model", None, "no file nowhere.py"),
    "missing TorchScript file": ("nowhere.pt", None, "no file nowhere.pt"),
    "no factory": ("{file}:model", "x = 1", "has no function model"),
    "an import that raises": ("{file}:model", "import not_a_module_anywhere",
                              "importing {file} raised ModuleNotFoundError"),
    "a factory that raises": ("{file}:model", "def model():\n    raise RuntimeError('no weights')",
                              "the factory model() raised RuntimeError: no weights"),
    "no encode": ("{file}:model", "def model():\n    return object()",
                  "model() returned an object of type 'object' without an encode method"),
    "one code": ("{file}:model", GOOD + "    def encode(self, images):\n"
                 "        return torch.ones(len(images), 3)\n",
                 "encode must return (s, z_mean) or (s, z_mean, z_logvar), got a torch.float32 "
                 "tensor of shape (8, 3)"),
    "batch size mismatch": ("{file}:model", GOOD + "    def encode(self, images):\n"
                            "        return torch.ones(7, 3), torch.ones(len(images), 2)\n",
                            "encode's s must have shape (8, d) for 8 images, got (7, 3)"),
    "codes not 2-D": ("{file}:model", GOOD + "    def encode(self, images):\n"
                      "        return torch.ones(len(images), 3), torch.ones(len(images), 2, 2)\n",
                      "encode's z_mean must have shape (8, d) for 8 images, got (8, 2, 2)"),
    "integer codes": ("{file}:model", GOOD + "    def encode(self, images):\n"
                      "        return torch.ones(len(images), 3, dtype=torch.long), "
                      "torch.ones(len(images), 2)\n",
                      "encode's s must be a floating tensor (N, d), got a torch.int64 tensor"),
    "NaN codes": ("{file}:model", GOOD + "    def encode(self, images):\n"
                  "        return torch.ones(len(images), 3), torch.full((len(images), 2), "
                  "float('nan'))\n", "encode's z_mean holds NaN or infinite values"),
    "NaN after the first batch": ("{file}:model", GOOD + "    def encode(self, images):\n"
                                  "        value = float('nan') if len(images) > 8 else 1.0\n"
                                  "        return torch.ones(len(images), 3), "
                                  "torch.full((len(images), 2), value)\n",
                                  "encode's z_mean holds NaN or infinite values"),
    "a decoder of the wrong size": ("{file}:model", GOOD + "    def decode(self, z, s):\n"
                                    "        return torch.zeros(len(z), 1, 14, 14)\n",
                                    "decode must return images of shape (8, 1, 28, 28), got "
                                    "(8, 1, 14, 14)"),
    # issue 44: every batch checked as the evaluations use it
    "a decoder in [-1, 1]": ("{file}:model", GOOD + "    def decode(self, z, s):\n"
                             "        return torch.linspace(-1, 1, 784).repeat(len(z), 1)"
                             ".view(-1, 1, 28, 28)\n",
                             "decode gave values in [-1.00, 1.00], 38 % of them more than 0.25 "
                             "outside [0, 1]; images are in [0, 1]"),
    "a decoder in [0, 255] after the first batch": (
        "{file}:model", GOOD + "    def decode(self, z, s):\n"
        "        return torch.full((len(z), 1, 28, 28), 255.0 if len(z) > 8 else 1.0)\n",
        "decode gave values in [255.00, 255.00], 100 % of them more than 0.25 outside [0, 1]"),
    "a log-variance that overflows after the first batch": (
        "{file}:model", GOOD + "    def encode(self, images):\n"
        "        n = len(images)\n"
        "        return torch.ones(n, 3), images.flatten(1)[:, :2], torch.full((n, 2), 200.0 if n > 8 "
        "else 1.0)\n",
        "encode's z_logvar (up to 200) makes a sample of z, z_mean + exp(0.5 * z_logvar) * eps, "
        "reach inf"),
    "codes too large to square": ("{file}:model", GOOD + "    def encode(self, images):\n"
                                  "        return torch.ones(len(images), 3) * 1e20, "
                                  "torch.ones(len(images), 2)\n",
                                  "encode's s reaches 1e+20 in magnitude; the evaluations square "
                                  "codes"),
    "codes under other names": ("{file}:model", GOOD + "    def encode(self, images):\n"
                                "        import collections\n"
                                "        Codes = collections.namedtuple('Codes', 'mu logvar style')\n"
                                "        n = len(images)\n"
                                "        return Codes(torch.ones(n, 2), torch.ones(n, 2), "
                                "torch.ones(n, 3))\n",
                                "encode returned a namedtuple Codes with fields (mu, logvar, "
                                "style); its codes are read by name"),
    "a Python file without its factory": ("{file}", "x = 1", "a Python file needs its factory"),
}


@pytest.mark.parametrize("case", BAD_MODELS, ids=list(BAD_MODELS))
def test_a_bad_model_is_one_line_exit_2_and_no_run_folder(case, tmp_path, capsys, monkeypatch):
    spec, code, message = BAD_MODELS[case]
    monkeypatch.chdir(tmp_path)
    file = tmp_path / "model.py"
    if code is not None:
        file.write_text(code + ("\n\ndef model():\n    return Model()\n" if "class Model" in code
                                else ""))
    assert evaluate_model(spec.format(file=file), "bad", tmp_path / "res") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message.format(file=file) in err, err
    runs = results.runs_dir(tmp_path / "res")
    assert not runs.exists() or not any(runs.iterdir())


@pytest.mark.parametrize("name, message", [
    ("has space", "--name 'has space': expected 1 to 32 letters"),
    (".hidden", "--name '.hidden': expected"), ("x" * 33, "expected 1 to 32 letters"),
    ("ccvae", "--name ccvae: a suite method's name"),
    ("CCVAE", "--name CCVAE: a suite method's name (ccvae; names are compared without case)")])
def test_a_bad_name_is_one_line_exit_2(name, message, tmp_path, capsys):
    assert evaluate_model("nowhere.py:model", name, tmp_path / "res") == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "res").exists()


def test_load_runs_marks_the_external_run(both):
    suite, external, factory = both
    records = {r.run_id: r for r in load_runs(suite.parent.parent)}
    assert records[suite.name].external is None
    source = records[external.name].external
    assert source.source == f"{factory}:model" and len(source.sha256) == 64
    assert source.decoder and source.skipped_without_decoder == ()


def test_a_model_named_by_its_module(tmp_path, monkeypatch):
    (tmp_path / "my_models").mkdir()
    (tmp_path / "my_models" / "__init__.py").write_text("")
    (tmp_path / "my_models" / "encoder.py").write_text(ENCODER)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert evaluate_model("my_models.encoder:model", "module", tmp_path / "res",
                          "--evaluations", "probes") == 0
    external = json.loads((only_run(tmp_path / "res", "module") / results.CONFIG_FILE).read_text())
    assert external["external"]["kind"] == "python module"
    assert external["external"]["sha256"] == hashlib.sha256(ENCODER.encode()).hexdigest()


def test_a_changed_model_file_is_another_model_refused_under_its_name_unless_replaced(
        tmp_path, capsys):
    """One name is one model: an edited factory file is another model, refused in one line (the
    report showed two identical-looking rows); --replace evaluates it in the old run's place."""
    factory = tmp_path / "encoder.py"
    factory.write_text(ENCODER)
    assert evaluate_model(f"{factory}:model", "enc", tmp_path / "res", "--evaluations", "probes") == 0
    old = only_run(tmp_path / "res", "enc")
    factory.write_text(ENCODER + "\n# retrained\n")
    assert evaluate_model(f"{factory}:model", "enc", tmp_path / "res", "--evaluations", "probes") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--name enc: {old} holds enc on mnist from another model" in err
    assert evaluate_model(f"{factory}:model", "enc", tmp_path / "res", "--evaluations", "probes",
                          "--replace") == 0
    assert only_run(tmp_path / "res", "enc") != old and not old.exists()


def test_an_external_record_from_someone_else_is_read_as_data_only(tmp_path):
    """config.json's external record is shown, never used; one whose fields are of other types
    is named in one line, its field with it (issue 45)."""
    from bench.errors import UnusableFile
    run_dir = results.runs_dir(tmp_path) / "odd"
    run_dir.mkdir(parents=True)
    external = {"source": "../../x.py:f", "kind": "python", "sha256": "0" * 64, "decoder": False,
                "skipped_without_decoder": ["swap"]}
    config = {"method": "odd", "dataset": "mnist", "preset": "smoke", "seed": 0,
              "method_config": {"z_dim": 3, "s_dim": 2}, "external": external}
    (run_dir / results.CONFIG_FILE).write_text(json.dumps(config))
    (source,) = [r.external for r in load_runs(tmp_path)]
    assert source.decoder is False and source.skipped_without_decoder == ("swap",)
    assert source.source == "../../x.py:f"
    for field, value in (("decoder", "yes"), ("skipped_without_decoder", "swap")):
        (run_dir / results.CONFIG_FILE).write_text(json.dumps(
            {**config, "external": {**external, field: value}}))
        with pytest.raises(UnusableFile, match=f"config.json: external.{field} is"):
            load_runs(tmp_path)


FLAKY = GOOD + '''
    def encode(self, images):
        import os
        value = float("nan") if os.environ.get("BENCH_TEST_BREAK") and len(images) > 8 else 1.0
        return torch.ones(len(images), 3), torch.full((len(images), 2), value) + images.flatten(1)[:, :2]


def model():
    return Model()
'''


def test_a_forced_evaluation_that_fails_keeps_the_complete_run(tmp_path, capsys, monkeypatch):
    """--force recomputes a complete run in place, each file replaced atomically: when the model
    fails part way, the run's folder is still there, complete, with its earlier numbers."""
    file = tmp_path / "flaky.py"
    file.write_text(FLAKY)
    budget = ["--evaluations", "probes"]
    assert evaluate_model(f"{file}:model", "flaky", tmp_path / "res", *budget) == 0
    run_dir = only_run(tmp_path / "res", "flaky")
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    monkeypatch.setenv("BENCH_TEST_BREAK", "1")
    capsys.readouterr()
    assert evaluate_model(f"{file}:model", "flaky", tmp_path / "res", *budget, "--force") == 2
    assert "encode's z_mean holds NaN or infinite values" in capsys.readouterr().err
    assert results.is_complete(run_dir)
    assert (run_dir / results.METRICS_FILE).read_bytes() == before[results.METRICS_FILE]
