"""`bench evaluate-model` on what users have (issue 44, items 1-3): every batch checked (decoded
images in the images' range, codes finite however the evaluations transform them, codes read by
name, dropout off), an evaluation that fails recorded as a run's failure; a state_dict or a
pickled model recognised and answered with the factory that loads it, torch.export programs;
factory arguments, and a run identity that covers the weights the factory returned."""
import collections
import dataclasses
import json
import warnings

import pytest
import torch

from bench.external_model import (RANGE_SHARE, RANGE_TOLERANCE, UnusableModel, _checked_codes,
                                  check_model, load, locate, weights_sha256)
from bench.store import results
from tests.test_evaluate_model import evaluate_model, fake_tsne, numbers, only_run


@pytest.fixture(autouse=True)
def quick_tsne(monkeypatch):
    monkeypatch.setattr("bench.evaluations.tsne.tsne_embedding", fake_tsne)


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def no_runs(results_dir) -> bool:
    runs = results.runs_dir(results_dir)
    return not runs.exists() or not any(runs.iterdir())


# --- 1. decoded images in the images' range ---------------------------------------------------

PCA = '''
import torch
from datasets import DATASETS


class Linear:
    """PCA of the smoke preset's train images: s its first 8 components, z the next 8, decoded
    to their Gaussian mean without a sigmoid (which overshoots [0, 1] a little). ``output``: the
    range its decoder was trained for: "unit" [0, 1], "tanh" [-1, 1], "bytes" [0, 255], "logits"."""

    def __init__(self, output):
        images = DATASETS["mnist"](None, torch.device("cpu")).head(640, 320).train_images.flatten(1)
        self.mean = images.mean(0)
        self.components = torch.linalg.svd(images - self.mean, full_matrices=False)[2][:16]
        self.output = output

    def encode(self, images):
        code = (images.flatten(1) - self.mean) @ self.components.T
        return code[:, :8], code[:, 8:]

    def decode(self, z, s):
        x = (torch.cat([s, z], 1) @ self.components + self.mean).view(-1, 1, 28, 28)
        if self.output == "tanh":
            return torch.tanh(3 * (2 * x - 1))
        if self.output == "bytes":
            return 255 * x
        if self.output == "logits":
            return torch.logit(x.clamp(0.001, 0.999))
        return x


def model(output="unit"):
    return Linear(output)
'''


@pytest.mark.parametrize("output, seen", [("tanh", "[-1.00, 1.00]"), ("bytes", "[-"),
                                          ("logits", "[-6.91, 6.91]")])
def test_a_decoder_for_other_images_than_the_datas_is_refused(output, seen, tmp_path, capsys):
    """A model trained on [-1, 1] (tanh), on [0, 255] or giving logits: its decoded images are
    refused on the first batch (before, swap accuracy fell to chance and leakage looked better)."""
    (tmp_path / "pca.py").write_text(PCA)
    assert evaluate_model(f"{tmp_path / 'pca.py'}:model", "pca", tmp_path / "res",
                          "--model-arg", f"output={output}") == 2
    err = one_line(capsys)
    assert f"decode gave values in {seen}" in err and "images are in [0, 1]" in err
    assert f"more than {RANGE_TOLERANCE} outside [0, 1]" in err
    assert no_runs(tmp_path / "res")


def test_a_gaussian_mean_without_a_sigmoid_passes_every_evaluation_that_decodes(tmp_path, capsys):
    """The stated tolerance lets an unbounded Gaussian mean through (this one overshoots [0, 1]),
    on every batch the evaluations decode."""
    (tmp_path / "pca.py").write_text(PCA)
    assert evaluate_model(f"{tmp_path / 'pca.py'}:model", "pca", tmp_path / "res",
                          "--evaluations", "z_usage,swap,swap_grid") == 0
    run_dir = only_run(tmp_path / "res", "pca")
    assert (run_dir / "swap.csv").is_file() and (run_dir / "z_usage.csv").is_file()
    external = json.loads((run_dir / results.CONFIG_FILE).read_text())["external"]
    assert external["model_args"] == {} and len(external["weights_sha256"]) == 64


def test_the_tolerance_is_what_the_docs_say():
    from tests.conftest import REPO
    text = " ".join((REPO / "README.md").read_text().split())
    assert f"more than {RANGE_TOLERANCE} outside [0, 1]" in text
    assert f"{100 * RANGE_SHARE:.0f} %" in text


# --- 1. codes read by name; dropout off ---------------------------------------------------------

def test_codes_are_read_by_their_names_in_any_order():
    s, z, logvar = torch.zeros(4, 3), torch.ones(4, 2), torch.full((4, 2), -1.0)
    Swapped = collections.namedtuple("Swapped", "z_mean z_logvar s")

    @dataclasses.dataclass
    class Codes:
        z_mean: torch.Tensor
        s: torch.Tensor
        z_logvar: torch.Tensor | None = None

    from methods import Encoding
    for output in (Swapped(z, logvar, s), Codes(z, s, logvar), {"z_logvar": logvar, "s": s, "z_mean": z},
                   (s, z, logvar), Encoding(s, z, logvar)):
        code = _checked_codes("m", output, 4, None)
        assert code.s.shape == (4, 3) and code.z_mean.equal(z) and code.z_logvar.equal(logvar)
    deterministic = _checked_codes("m", Codes(z, s), 4, None)
    assert deterministic.z_logvar is None and deterministic.s.equal(s)
    assert _checked_codes("m", Encoding(s, z, None), 4, None).z_logvar is None


@pytest.mark.parametrize("output", [
    collections.namedtuple("Codes", "mu logvar style")(1, 2, 3),
    collections.namedtuple("Codes", "s z_mean logvar")(1, 2, 3),
    {"s": 1, "z": 2}])
def test_codes_under_other_names_are_one_line(output):
    with pytest.raises(UnusableModel, match="its codes are read by name: s, z_mean and "
                                            "optionally z_logvar"):
        _checked_codes("m", output, 4, None)


DROPOUT = '''
import torch
from torch import nn


class Inner:
    def __init__(self):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, 8), nn.Dropout(0.5))


class Wrapper:
    """A plain object whose network (held two attributes down, in train mode) has dropout."""

    def __init__(self):
        self.parts = {"inner": Inner()}

    def encode(self, images):
        h = self.parts["inner"].net(images)
        return h[:, :4], h[:, 4:]


def model():
    return Wrapper()
'''


def test_the_modules_a_plain_object_holds_are_put_in_eval_mode(tmp_path):
    (tmp_path / "dropout.py").write_text(DROPOUT)
    model = load(locate(f"{tmp_path / 'dropout.py'}:model"), torch.device("cpu"))
    net = model.parts["inner"].net
    assert not net.training and not net[2].training
    images = torch.rand(16, 1, 28, 28)
    method = check_model(model, "m", images, torch.device("cpu"))
    assert method.encode(images).s.equal(method.encode(images).s)  # dropout off: deterministic


# --- 1. an evaluation that fails ---------------------------------------------------------------

def test_an_evaluation_that_raises_fails_the_run_in_one_line_with_error_log(tmp_path, capsys,
                                                                           monkeypatch):
    """The t-SNE raising (what a NaN sample made of it before): one line, exit 1, the run's folder
    kept as a failed run with error.log; the next attempt starts afresh and completes."""
    from tests.test_evaluate_model import ENCODER
    (tmp_path / "enc.py").write_text(ENCODER)

    def broken(points, seed, n_jobs=None):
        raise ValueError("Input contains NaN")

    monkeypatch.setattr("bench.evaluations.tsne.tsne_embedding", broken)
    command = (f"{tmp_path / 'enc.py'}:model", "enc", tmp_path / "res", "--evaluations", "probes,tsne")
    assert evaluate_model(*command) == 1
    err = one_line(capsys)
    run_dir = only_run(tmp_path / "res", "enc")
    assert f"failed {run_dir.name}: enc: tsne failed: ValueError: Input contains NaN " \
           f"(traceback in {run_dir / results.ERROR_FILE})" in err
    assert "Traceback" in (run_dir / results.ERROR_FILE).read_text()
    assert results.read_status(run_dir)["state"] == results.FAILED
    assert (run_dir / results.METRICS_FILE).is_file()  # the probes before it
    monkeypatch.setattr("bench.evaluations.tsne.tsne_embedding", fake_tsne)
    assert evaluate_model(*command) == 0
    assert results.is_complete(run_dir) and not (run_dir / results.ERROR_FILE).exists()


# --- 2. the files users have -------------------------------------------------------------------

YOUR_CODE = '''
import torch
from torch import nn


class YourModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Linear(784, 8)
        self.decoder = nn.Linear(8, 784)

    def encode(self, images):
        h = self.encoder(images.flatten(1))
        return h[:, :4], h[:, 4:]

    def decode(self, z, s):
        return torch.sigmoid(self.decoder(torch.cat([z, s], 1))).view(-1, 1, 28, 28)

    def __setstate__(self, state):  # unpickled: leaves a mark
        open(__file__ + ".unpickled", "w").close()
        super().__setstate__(state)
'''


@pytest.fixture
def your_code(tmp_path, monkeypatch):
    """A user's project: your_code.py with YourModel, importable, and the folder as working dir."""
    (tmp_path / "your_code.py").write_text(YOUR_CODE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    import importlib
    import sys
    sys.modules.pop("your_code", None)
    module = importlib.import_module("your_code")
    yield module
    sys.modules.pop("your_code", None)


def printed_factory(out: str) -> str:
    """The factory the refusal printed, as the user would save it (its indented lines)."""
    return "\n".join(line[4:] for line in out.splitlines() if line.startswith("    ") or not line)


@pytest.mark.parametrize("saved, what", [
    ("state_dict", "a state_dict (4 tensors: encoder.weight, encoder.bias, decoder.weight, ...)"),
    ("checkpoint", "a checkpoint (keys epoch, model, optimizer) whose 'model' is a state_dict"),
    ("pickled", "a torch.save file of pickled Python objects (of class your_code.YourModel, "
                "as torch.save(model) writes)")])
def test_a_file_of_weights_is_told_with_the_factory_that_loads_it(saved, what, your_code, tmp_path,
                                                                  capsys):
    torch.manual_seed(0)
    model = your_code.YourModel()
    content = {"state_dict": model.state_dict(), "pickled": model,
               "checkpoint": {"epoch": 3, "model": model.state_dict(),
                              "optimizer": torch.optim.SGD(model.parameters(), lr=0.1).state_dict()}}
    torch.save(content[saved], tmp_path / "weights.pt")
    assert evaluate_model("weights.pt", "mine", tmp_path / "res") == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and f"model 'weights.pt': {what}" in captured.err
    assert "write the factory printed above" in captured.err
    assert not (tmp_path / "your_code.py.unpickled").exists()  # looked at, never unpickled
    assert no_runs(tmp_path / "res")
    assert ("then run the same command with my_model.py:load --model-arg checkpoint=weights.pt in "
            "place of weights.pt") in captured.out
    (tmp_path / "my_model.py").write_text(printed_factory(captured.out))
    assert evaluate_model("my_model.py:load", "mine", tmp_path / "res", "--model-arg",
                          "checkpoint=weights.pt", "--evaluations", "probes") == 0
    external = json.loads((only_run(tmp_path / "res", "mine") / results.CONFIG_FILE).read_text())
    assert external["external"]["weights_sha256"] == weights_sha256(model)


def test_a_file_torch_cannot_read_is_one_line(tmp_path, capsys):
    (tmp_path / "model.pt").write_bytes(b"not a model")
    assert evaluate_model(tmp_path / "model.pt", "x", tmp_path / "res") == 2
    assert "not a TorchScript, torch.export (.pt2) or torch.save file" in one_line(capsys)


EXPORTABLE = '''
import torch
from torch import nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.encoder = nn.Linear(784, 12)
            self.decoder = nn.Linear(8, 784)
            self.dropout = nn.Dropout(0.5)

    def encode(self, images):
        h = torch.tanh(self.dropout(self.encoder(images.flatten(1))))
        return h[:, :4], h[:, 4:8], h[:, 8:] - 2

    def decode(self, z, s):
        return torch.sigmoid(self.decoder(torch.cat([z, s], 1))).view(-1, 1, 28, 28)


class Encode(nn.Module):
    """What torch.export exports is a forward: the model's encode."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, images):
        return self.model.encode(images)


class Decode(Encode):
    def forward(self, z, s):
        return self.model.decode(z, s)


def model():
    return Model()
'''


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """EXPORTABLE's model, its file, and its encode and decode exported as the docs say (and
    the encoder exported wrongly: with a fixed batch, in training mode), in one folder."""
    import importlib.util
    folder = tmp_path_factory.mktemp("exported")
    file = folder / "exportable.py"
    file.write_text(EXPORTABLE)
    spec = importlib.util.spec_from_file_location("exportable_for_export", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.model().eval()
    batch = torch.export.Dim("batch")
    images, codes = torch.rand(4, 1, 28, 28), (torch.rand(4, 4), torch.rand(4, 4))
    torch.export.save(torch.export.export(module.Encode(model), (images,),
                                          dynamic_shapes={"images": {0: batch}}),
                      folder / "encoder.pt2")
    torch.export.save(torch.export.export(module.Decode(model), codes,
                                          dynamic_shapes={"z": {0: batch}, "s": {0: batch}}),
                      folder / "decoder.pt2")
    torch.export.save(torch.export.export(module.Encode(model), (images,)), folder / "fixed.pt2")
    torch.export.save(torch.export.export(module.Encode(model.train()), (images,),
                                          dynamic_shapes={"images": {0: batch}}),
                      folder / "training.pt2")
    return file


def test_a_torch_export_program_gives_the_numbers_of_its_python_original(exported, tmp_path,
                                                                         monkeypatch):
    from bench import drawing
    titles = []
    plot = drawing.plot_embeddings
    monkeypatch.setattr(drawing, "plot_embeddings",
                        lambda rows, path, title, *a, **k: titles.append(title) or plot(rows, path, title, *a, **k))
    both = ["--evaluations", "probes,z_usage,tsne"]
    folder = exported.parent
    assert evaluate_model(f"{exported}:model", "python", tmp_path / "res", *both) == 0
    assert evaluate_model(folder / "encoder.pt2", "exported", tmp_path / "res", "--decoder",
                          str(folder / "decoder.pt2"), *both) == 0
    python, program = only_run(tmp_path / "res", "python"), only_run(tmp_path / "res", "exported")
    for name in (results.METRICS_FILE, "z_usage.csv", "tsne.csv"):
        assert numbers(python / name).equals(numbers(program / name)), name
    external = json.loads((program / results.CONFIG_FILE).read_text())["external"]
    assert external["kind"] == "torch.export" and external["decoder"] is True
    assert external["decoder_source"] == str(folder / "decoder.pt2")
    assert len(external["decoder_sha256"]) == 64 and external["weights_sha256"] is None
    assert titles == ["t-SNE of z on 200 test images: python (external), z/s 4/4, seed 0, smoke preset",
                      "t-SNE of z on 200 test images: exported (external), z/s 4/4, seed 0, smoke preset"]
    assert evaluate_model(folder / "encoder.pt2", "encoder_only", tmp_path / "res",
                          "--evaluations", "probes") == 0
    assert numbers(python / results.METRICS_FILE).equals(
        numbers(only_run(tmp_path / "res", "encoder_only") / results.METRICS_FILE))


@pytest.mark.parametrize("model, extra, message", [
    ("fixed.pt2", [], "exported with a fixed batch of 4 (images); export it with "
                      "dynamic_shapes={'images': {0: torch.export.Dim('batch')}}"),
    ("training.pt2", [], "exported in training mode (dropout or batch norm as in training)"),
    ("decoder.pt2", [], "the exported program takes 2 input(s) (z, s); an encoder takes one"),
    ("encoder.pt2", ["--decoder", "encoder.pt2"], "takes 1 input(s) (images); a decoder takes two"),
    ("encoder.pt2", ["--decoder", "exportable.py"], "--decoder 'exportable.py': not a torch.export"),
    ("encoder.pt2", ["--model-arg", "a=1"], "--model-arg: only a factory (file.py:factory) takes"),
    ("exportable.py:model", ["--decoder", "decoder.pt2"], "--decoder: only beside a torch.export"),
    ("exportable.py", [], "a Python file needs its factory: exportable.py:FACTORY")])
def test_a_torch_export_program_that_cannot_be_used_is_one_line(model, extra, message, exported,
                                                                tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(exported.parent)
    assert evaluate_model(model, "bad", tmp_path / "res", *extra) == 2
    assert message in one_line(capsys)
    assert no_runs(tmp_path / "res")


def test_torchscript_keeps_working_without_torchs_deprecation_warnings(tmp_path, capsys):
    from tests.test_evaluate_model import ENCODER
    import importlib.util
    (tmp_path / "enc.py").write_text(ENCODER)
    spec = importlib.util.spec_from_file_location("enc_for_scripting", tmp_path / "enc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.script(module.model().eval()).save(str(tmp_path / "enc.pt"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert evaluate_model(tmp_path / "enc.pt", "scripted", tmp_path / "res",
                              "--evaluations", "probes") == 0
    assert not [w for w in caught if issubclass(w.category, FutureWarning)], caught[0].message
    assert "Warning" not in capsys.readouterr().err


# --- 3. factory arguments; the identity covers the weights -------------------------------------

FROM_CHECKPOINT = '''
import torch
from torch import nn

SEEN = {}


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(784, 8)

    def encode(self, images):
        h = self.linear(images.flatten(1))
        return h[:, :4], h[:, 4:]


def load(checkpoint, width="8"):
    SEEN.update(checkpoint=checkpoint, width=width)
    model = Model()
    model.load_state_dict(torch.load(checkpoint, weights_only=True))
    return model
'''


def save_weights(path, seed):
    torch.manual_seed(seed)
    torch.save({f"linear.{k}": v for k, v in torch.nn.Linear(784, 8).state_dict().items()}, path)
    return path


def test_factory_arguments_are_passed_as_strings_and_recorded(tmp_path):
    (tmp_path / "factory.py").write_text(FROM_CHECKPOINT)
    source = locate(f"{tmp_path / 'factory.py'}:load",
                    args={"checkpoint": str(save_weights(tmp_path / "w.pt", 0)), "width": "8"})
    model = load(source, torch.device("cpu"))
    import sys
    (seen,) = [m.SEEN for name, m in list(sys.modules.items()) if name.startswith("bench_external_")
               and getattr(m, "SEEN", None)]
    assert seen == {"checkpoint": str(tmp_path / "w.pt"), "width": "8"}
    assert weights_sha256(model) == weights_sha256(load(source, torch.device("cpu")))


@pytest.mark.parametrize("args, message", [
    (["--model-arg", "checkpoint"], "--model-arg expects KEY=VALUE with KEY a Python name, got 'checkpoint'"),
    (["--model-arg", "a-b=1"], "--model-arg expects KEY=VALUE"),
    (["--model-arg", "width=1", "--model-arg", "width=2"], "--model-arg width given twice"),
    (["--model-arg", "checkpoint=w.pt", "--model-arg", "depth=3"],
     "the factory load(checkpoint='w.pt', depth='3') raised TypeError")])
def test_bad_factory_arguments_are_one_line(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "factory.py").write_text(FROM_CHECKPOINT)
    save_weights(tmp_path / "w.pt", 0)
    assert evaluate_model("factory.py:load", "m", tmp_path / "res", *args) == 2
    assert message in one_line(capsys)


def test_retrained_weights_are_another_model_refused_under_the_same_name_unless_replaced(
        tmp_path, capsys, monkeypatch):
    """The same command after retraining does not answer "up to date" with the old numbers: the
    name holds another model, refused in one line; --replace evaluates the new one in its place."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "factory.py").write_text(FROM_CHECKPOINT)
    command = ["factory.py:load", "mine", tmp_path / "res", "--model-arg", "checkpoint=w.pt",
               "--evaluations", "probes"]
    save_weights(tmp_path / "w.pt", 0)
    assert evaluate_model(*command) == 0
    first = only_run(tmp_path / "res", "mine")
    before = json.loads((first / results.CONFIG_FILE).read_text())["external"]
    assert before["model_args"] == {"checkpoint": "w.pt"}
    assert evaluate_model(*command) == 0
    assert f"up to date {first.name}" in capsys.readouterr().out
    save_weights(tmp_path / "w.pt", 1)  # retrained
    assert evaluate_model(*command) == 2
    assert (f"--name mine: {first} holds mine on mnist from another model (other weights, file or "
            "--model-arg); give another --name, or --replace") in one_line(capsys)
    assert [p.name for p in results.runs_dir(tmp_path / "res").iterdir()] == [first.name]
    assert evaluate_model(*command, "--replace") == 0
    assert f"replaced {first.name}" in capsys.readouterr().out
    second = only_run(tmp_path / "res", "mine")
    after = json.loads((second / results.CONFIG_FILE).read_text())["external"]
    assert second != first and after["weights_sha256"] != before["weights_sha256"]
    assert after["sha256"] == before["sha256"]  # the same factory file
    assert evaluate_model(*command[:2], tmp_path / "res", "--model-arg", "checkpoint=w.pt",
                          "--evaluations", "probes", "--seed", "1") == 0  # seeds of one model
    assert len(list(results.runs_dir(tmp_path / "res").iterdir())) == 2


def test_the_weights_hash_is_of_the_tensors_by_name_on_the_cpu():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))

    class Holder:
        def __init__(self, net):
            self.net = net

    first = weights_sha256(net)
    assert first == weights_sha256(net) and len(first) == 64
    assert weights_sha256(Holder(net)) != first  # the paths are named: model.net.0.weight
    assert weights_sha256(Holder(net)) == weights_sha256(Holder(net))
    with torch.no_grad():
        net[1].running_mean += 1  # a buffer counts
    assert weights_sha256(net) != first
    assert weights_sha256(object()) is None
