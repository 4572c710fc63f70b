"""One call shape per family (issue 12): signatures of importers, exporters, explainers, attacks,
bounds and verification, and the deprecated names that keep working for one release."""

import inspect
import warnings

import pytest
import torch

from deeptoolbox import Network, explain, interop, robustness
from deeptoolbox import layers as L
from deeptoolbox._deprecation import renamed_arguments
from deeptoolbox.errors import ModelImportError, OptionError

KEYWORD = inspect.Parameter.KEYWORD_ONLY
POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)

IMPORTERS = [interop.import_onnx, interop.import_keras, interop.import_pytorch]
EXPORTERS = [interop.export_onnx, interop.export_keras, interop.export_pytorch]
EXPLAINERS = [
    explain.gradcam,
    explain.occlusion_sensitivity,
    explain.image_lime,
    explain.lime,
    explain.gradient_attribution,
]
OLD_NAMES = {"label", "time_limit", "sample_inputs", "mask_value", "samples", "iterations"}


def _parameters(function):
    return inspect.signature(function).parameters


def _positional(function) -> list[str]:
    return [n for n, p in _parameters(function).items() if p.kind in POSITIONAL]


def _keyword(function, name: str):
    parameter = _parameters(function).get(name)
    assert parameter is not None, f"{function.__name__} has no `{name}`"
    assert parameter.kind is KEYWORD, f"{function.__name__}: `{name}` must be keyword-only"
    return parameter.default


def _every_public_function(module, prefix: str) -> list:
    return [getattr(module, n) for n in module.__all__ if n.startswith(prefix)]


def test_every_public_importer_and_exporter_is_in_the_contract():
    assert set(_every_public_function(interop, "import_")) == set(IMPORTERS)
    assert set(_every_public_function(interop, "export_")) == set(EXPORTERS)


@pytest.mark.parametrize("importer", IMPORTERS, ids=lambda f: f.__name__)
def test_importers_take_one_source_then_the_shared_keywords(importer):
    assert len(_positional(importer)) == 1
    assert _keyword(importer, "example_inputs") is None
    assert _keyword(importer, "name") is None
    assert _keyword(importer, "unsupported") in ("error", "placeholder", "operator")


@pytest.mark.parametrize("exporter", EXPORTERS, ids=lambda f: f.__name__)
def test_exporters_take_net_and_path_then_the_shared_keywords(exporter):
    assert _positional(exporter) == ["net", "path"]
    assert _keyword(exporter, "example_inputs") is None
    assert _keyword(exporter, "verify") is True
    assert _keyword(exporter, "tolerance") == 1e-4


def test_from_torch_shares_the_importers_keyword_names():
    assert _positional(interop.from_torch) == ["module", "example_inputs"]  # required there
    assert _keyword(interop.from_torch, "name") is None
    assert _keyword(interop.from_torch, "unsupported") == "operator"


@pytest.mark.parametrize("explainer", EXPLAINERS, ids=lambda f: f.__name__)
def test_explainers_share_one_call_shape(explainer):
    assert _positional(explainer) == ["net", "x", "target"]
    assert _parameters(explainer)["target"].default is None
    assert isinstance(_keyword(explainer, "batch_size"), int)
    _keyword(explainer, "seed")
    names = set(_parameters(explainer))
    assert not names & {"mask_value", "samples", "iterations", "features"}


def test_explainers_return_their_map_as_one_tensor_type():
    net, x = _image_net(), torch.rand(2, 1, 6, 6)
    features = Network([L.FeatureInput(3), L.Dense(2)])
    maps = {
        explain.gradcam: explain.gradcam(net, x, layer="conv"),
        explain.occlusion_sensitivity: explain.occlusion_sensitivity(net, x, mask_size=2),
        explain.image_lime: explain.image_lime(
            net, x, num_features=4, num_samples=20, segmentation="grid"
        ),  # fmt: skip
        explain.lime: explain.lime(features, torch.ones(2, 3), num_samples=20),
        explain.gradient_attribution: explain.gradient_attribution(net, x),
    }
    assert set(maps) == set(EXPLAINERS)
    for explainer, result in maps.items():
        assert isinstance(result, torch.Tensor), explainer.__name__
        assert len(result) == 2 and not result.requires_grad, explainer.__name__


def test_explainers_are_every_public_function_but_the_plots_and_deep_dream():
    functions = {
        getattr(explain, n) for n in explain.__all__ if inspect.isfunction(getattr(explain, n))
    }
    outside = {explain.deep_dream, explain.overlay, explain.plot_explanations,
               explain.explain_digits_figure}  # fmt: skip
    assert functions - outside == set(EXPLAINERS)
    assert "steps" in _parameters(explain.deep_dream)


def test_attacks_bounds_and_verification_say_target_and_timeout():
    assert _positional(robustness.find_adversarial) == ["net", "x", "target", "epsilon"]
    assert _positional(robustness.verify_robustness) == ["net", "x", "target", "epsilon"]
    assert _keyword(robustness.verify_robustness, "timeout") == 10.0
    assert _keyword(robustness.estimate_output_bounds, "timeout") is None
    assert "timeout" in _parameters(robustness.verify_vnnlib)
    for function in (robustness.find_adversarial, robustness.verify_robustness,
                     robustness.estimate_output_bounds, robustness.verify_vnnlib):  # fmt: skip
        assert not set(_parameters(function)) & OLD_NAMES, function.__name__
    assert _keyword(robustness.estimate_output_bounds, "optimize_slopes") == _keyword(
        robustness.verify_robustness, "optimize_slopes"
    )


# -- deprecated names -------------------------------------------------------------------------


def _warns_naming(new: str):
    return pytest.warns(DeprecationWarning, match=f"use `{new}`|pass {new}=")


def test_the_alias_helper_refuses_both_names_and_too_many_positions():
    @renamed_arguments({"old": "new"}, positional=("new",))
    def f(a, *, new=0):
        return a + new

    with _warns_naming("new"):
        assert f(1, old=2) == 3
    with _warns_naming("new"):
        assert f(1, 2) == 3
    with pytest.raises(OptionError, match="`new` was given twice"), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        f(1, old=2, new=3)
    with pytest.raises(TypeError, match="at most 2 positional"):
        f(1, 2, 3)


def _image_net() -> Network:
    torch.manual_seed(0)
    return Network([L.ImageInput((1, 6, 6)), L.Conv2d(2, 3, padding=1, name="conv"), L.ReLU(),
                    L.GlobalAvgPool(), L.Dense(3)])  # fmt: skip


def test_explainers_old_names_still_work_with_a_warning():
    net, x = _image_net(), torch.rand(2, 1, 6, 6)
    with _warns_naming("baseline"):
        old = explain.occlusion_sensitivity(net, x, mask_size=2, stride=2, mask_value=0.0)
    assert torch.equal(
        old, explain.occlusion_sensitivity(net, x, mask_size=2, stride=2, baseline=0.0)
    )
    with _warns_naming("num_samples"):
        old = explain.gradient_attribution(net, x, method="smoothgrad", samples=3, seed=1)
    new = explain.gradient_attribution(net, x, method="smoothgrad", num_samples=3, seed=1)
    assert torch.equal(old, new)
    with _warns_naming("layer"):
        old = explain.gradcam(net, x, None, "conv")
    assert torch.equal(old, explain.gradcam(net, x, layer="conv"))
    with _warns_naming("steps"):
        old = explain.deep_dream(net, "conv", 0, iterations=2)
    assert torch.equal(old, explain.deep_dream(net, "conv", 0, steps=2))
    features = Network([L.FeatureInput(3), L.Dense(2)])
    with _warns_naming("x"):
        old = explain.lime(features, features=torch.ones(1, 3), num_samples=50)
    assert torch.equal(
        old.weights, explain.lime(features, torch.ones(1, 3), num_samples=50).weights
    )
    with _warns_naming("baseline"):
        old = explain.image_lime(net, x[:1], num_features=4, num_samples=20,
                                 segmentation="grid", mask_value=0.0)  # fmt: skip
    new = explain.image_lime(net, x[:1], num_features=4, num_samples=20, segmentation="grid",
                             baseline=0.0)  # fmt: skip
    assert torch.equal(old.map, new.map)


def test_robustness_old_names_still_work_with_a_warning():
    torch.manual_seed(0)
    net = Network([L.FeatureInput(2), L.Dense(4), L.ReLU(), L.Dense(2)])
    x, y = torch.zeros(3, 2), torch.tensor([0, 1, 0])
    with _warns_naming("target"):
        old = robustness.find_adversarial(net, x, label=y, epsilon=0.1, method="fgsm")
    new = robustness.find_adversarial(net, x, target=y, epsilon=0.1, method="fgsm")
    assert torch.equal(old.inputs, new.inputs)
    with _warns_naming("target"), _warns_naming("timeout"):
        old = robustness.verify_robustness(net, x, label=y, epsilon=0.01, time_limit=5)
    assert old.status == robustness.verify_robustness(net, x, y, 0.01, timeout=5).status
    lo, hi = -torch.ones(1, 2), torch.ones(1, 2)
    with _warns_naming("timeout"), _warns_naming("steps"):
        old = robustness.estimate_output_bounds(net, lo, hi, time_limit=5, iterations=3,
                                                optimize_slopes=True)  # fmt: skip
    new = robustness.estimate_output_bounds(net, lo, hi, timeout=5, steps=3, optimize_slopes=True)
    assert torch.equal(old.lower, new.lower) and torch.equal(old.upper, new.upper)
    with pytest.raises(OptionError, match="`timeout`"):
        robustness.verify_robustness(net, x, y, 0.01, timeout=0)


def test_interop_old_names_still_work_with_a_warning(tmp_path):
    module = torch.nn.Sequential(torch.nn.Linear(3, 2))
    x = torch.randn(2, 3)
    with _warns_naming("example_inputs"):
        interop.export_onnx(module, tmp_path / "m.onnx", sample_inputs=x)
    assert interop.import_onnx(tmp_path / "m.onnx", example_inputs=x).layer_names
    scripted = torch.jit.script(module)
    scripted.save(str(tmp_path / "m.pt"))
    with _warns_naming("example_inputs"), pytest.warns(UserWarning, match="opaque"):
        net = interop.import_pytorch(tmp_path / "m.pt", torch.zeros(1, 3), trust_code=True)
    torch.testing.assert_close(net(x), module(x))


def test_import_pytorch_warns_when_it_falls_back_and_error_refuses(tmp_path):
    module = torch.nn.Sequential(torch.nn.Linear(3, 2))
    torch.jit.script(module).save(str(tmp_path / "m.pt"))
    with pytest.warns(UserWarning, match=r"import_pytorch: 'm.pt' is kept as opaque layers"):
        net = interop.import_pytorch(tmp_path / "m.pt", example_inputs=torch.zeros(1, 3), name="n",
                                     trust_code=True)  # fmt: skip
    assert net.name == "n"
    with pytest.raises(ModelImportError, match="unsupported='operator'"):
        interop.import_pytorch(tmp_path / "m.pt", example_inputs=torch.zeros(1, 3),
                               unsupported="error", trust_code=True)  # fmt: skip
    with pytest.raises(OptionError, match="`unsupported` must be one of 'error', 'operator'"):
        interop.import_pytorch(tmp_path / "m.pt", unsupported="placeholder")
    with pytest.raises(OptionError, match="`unsupported`"):
        interop.import_keras(tmp_path / "m.keras", unsupported="operator")


# -- exporters verify their files ---------------------------------------------------------------


class _Noisy(torch.nn.Module):
    def forward(self, x):
        return x + torch.rand_like(x)  # a traced file draws other numbers than the module


def test_export_pytorch_verifies_its_file_and_leaves_none_when_it_disagrees(tmp_path):
    from deeptoolbox.interop import ModelExportError

    x = torch.randn(2, 3)
    for format in ("torchscript", "exported-program"):
        path = tmp_path / f"noisy.{format}"
        with pytest.raises(ModelExportError, match="differs from the network"):
            interop.export_pytorch(_Noisy(), path, example_inputs=x, format=format)
        assert not path.exists()
        interop.export_pytorch(_Noisy(), path, example_inputs=x, format=format, verify=False)
        assert path.exists()
    net = Network([L.FeatureInput(3), L.Dense(2)])
    assert interop.export_pytorch(net, tmp_path / "net.pt").exists()  # verified, agrees


def test_export_keras_verifies_by_reading_back_and_with_keras(tmp_path, monkeypatch):
    from deeptoolbox.interop import ModelExportError
    from deeptoolbox.interop.keras import _export as _keras_export
    from deeptoolbox.interop.keras import _import as _keras_import

    torch.manual_seed(0)
    net = Network([L.FeatureInput(3), L.Dense(2)])
    assert interop.export_keras(net, tmp_path / "good.keras").exists()
    other = Network([L.FeatureInput(3), L.Dense(2)])  # other weights
    monkeypatch.setattr(_keras_import, "import_keras", lambda path: other)
    with pytest.raises(ModelExportError, match="differs from the network"):
        interop.export_keras(net, tmp_path / "bad.keras")
    assert not (tmp_path / "bad.keras").exists()
    monkeypatch.undo()

    class FakeKeras:  # Keras "loads" the file but predicts something else
        class saving:  # noqa: N801
            @staticmethod
            def load_model(path):
                class Model:
                    def predict(self, x, verbose=0):
                        return x[:, :2] * 0 + 7

                return Model()

    monkeypatch.setattr(_keras_export, "usable_keras", lambda: FakeKeras)
    with pytest.raises(ModelExportError, match=r"\(Keras\).*differs"):
        interop.export_keras(net, tmp_path / "keras.keras")
    assert not (tmp_path / "keras.keras").exists()
    interop.export_keras(net, tmp_path / "unchecked.keras", verify=False)
    assert (tmp_path / "unchecked.keras").exists()


def test_import_onnx_checks_against_onnxruntime_with_example_inputs(tmp_path, monkeypatch):
    net = Network([L.FeatureInput(3), L.Dense(2, name="fc")])
    path = interop.export_onnx(net, tmp_path / "n.onnx")
    x = torch.randn(4, 3)
    again = interop.import_onnx(path, example_inputs=x, name="again")
    assert again.name == "again"
    from deeptoolbox.interop.onnx import _import as _onnx_import

    real = _onnx_import.restore_folded_batchnorms

    def broken(network, model):
        real(network, model)
        with torch.no_grad():
            network(torch.zeros(1, 3))  # builds the layers
            for parameter in network.parameters():
                parameter.add_(1.0)

    monkeypatch.setattr(_onnx_import, "restore_folded_batchnorms", broken)
    with pytest.raises(ModelImportError, match="does not reproduce onnxruntime"):
        interop.import_onnx(path, example_inputs=x)
    with pytest.raises(OptionError, match="`unsupported`"):
        interop.import_onnx(path, unsupported="operator")
