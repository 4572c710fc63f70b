"""FMU export and import: the exported FMU passes fmpy's validation, simulates in fmpy with
the network's outputs, a stateful (LSTM) FMU reproduces the step-by-step outputs, and
FMUBlock runs it inside a Diagram."""

import shutil
import zipfile

import numpy as np
import pytest
import torch
from fmpy import read_model_description, simulate_fmu
from fmpy.validation import validate_fmu, validate_model_description

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.errors import ModelExportError, ModelImportError, OptionError, SimulationError
from deeptoolbox.simulate import (
    Diagram,
    FMUBlock,
    FromData,
    Gain,
    StatefulNetworkBlock,
    export_fmu,
    simulate,
)

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None and shutil.which("cc") is None,
                                reason="needs a C compiler")  # fmt: skip
DT = 0.1


def _fmpy_run(path, x):
    variables = read_model_description(str(path)).modelVariables
    inputs = [v.name for v in variables if v.causality == "input"]
    outputs = [v.name for v in variables if v.causality == "output"]
    times = np.arange(len(x)) * DT
    signal = np.array([(t, *row) for t, row in zip(times, x, strict=True)],
                      dtype=[("time", float)] + [(n, float) for n in inputs])  # fmt: skip
    result = simulate_fmu(str(path), stop_time=times[-1], step_size=DT, output_interval=DT,
                          input=signal, output=outputs)  # fmt: skip
    return np.stack([result[n] for n in outputs], axis=1)


PLATFORMS = {"2.0": "linux64", "3.0": "x86_64-linux"}


@pytest.mark.parametrize("version", ["2.0", "3.0"])
def test_exported_fmu_validates_and_simulates_as_the_network(tmp_path, version):
    torch.manual_seed(0)
    net = Network([L.FeatureInput(3, name="sensors"), L.Dense(8), L.Tanh(),
                   L.Dense(2, name="estimate")], name="estimator")  # fmt: skip
    path = export_fmu(net, tmp_path / "estimator.fmu", fmi_version=version)
    assert validate_fmu(str(path)) == []
    description = read_model_description(str(path))
    assert description.fmiVersion == version
    assert validate_model_description(description, validate_variable_names=True,
                                      validate_model_structure=True) == []  # fmt: skip
    names = ["sensors[1]", "sensors[2]", "sensors[3]", "estimate[1]", "estimate[2]"]
    assert [v.name for v in description.modelVariables] == (
        names if version == "2.0" else ["time", *names]
    )  # FMI 3.0 declares its time
    files = set(zipfile.ZipFile(path).namelist())
    n = version[0]
    assert {f"binaries/{PLATFORMS[version]}/estimator.so", "sources/estimator.c",
            f"sources/estimator_fmi{n}.c", f"sources/fmi{n}Functions.h"} <= files  # fmt: skip
    x = np.random.default_rng(0).normal(size=(12, 3))
    expected = net(torch.tensor(x, dtype=torch.float32)).detach().numpy()
    y = _fmpy_run(path, x)  # fmpy samples after each step, before the next input
    np.testing.assert_allclose(y[0], expected[0], atol=1e-5)
    np.testing.assert_allclose(y[1:], expected[:-1], atol=1e-5)


@pytest.mark.skipif(shutil.which("cmake") is None, reason="fmpy.build needs cmake")
@pytest.mark.parametrize("version", ["2.0", "3.0"])
def test_the_fmu_lists_its_sources_so_fmpy_rebuilds_its_binary(tmp_path, version):
    torch.manual_seed(1)
    net = Network([L.FeatureInput(2, name="u"), L.Dense(4), L.ReLU(), L.Dense(1, name="y")])
    path = export_fmu(net, tmp_path / "net.fmu", fmi_version=version)
    (configuration,) = read_model_description(str(path)).buildConfigurations
    assert configuration.modelIdentifier == "net"
    assert configuration.sourceFileSets[0].sourceFiles == [f"net_fmi{version[0]}.c",
                                                           "net_weights.c"]  # fmt: skip
    unzipped = tmp_path / "unzipped"
    zipfile.ZipFile(path).extractall(unzipped)
    shutil.rmtree(unzipped / "binaries")
    from fmpy.build import build_platform_binary

    (tmp_path / "build").mkdir()
    build_platform_binary(unzipped, build_dir=tmp_path / "build")
    assert (unzipped / "binaries" / PLATFORMS[version] / "net.so").is_file()
    rebuilt = shutil.make_archive(str(tmp_path / "rebuilt"), "zip", unzipped)
    x = np.random.default_rng(1).normal(size=(5, 2))
    expected = net(torch.tensor(x, dtype=torch.float32)).detach().numpy()
    np.testing.assert_allclose(_fmpy_run(rebuilt, x)[1:], expected[:-1], atol=1e-5)


@pytest.mark.parametrize("version", ["2.0", "3.0"])
def test_stateful_lstm_fmu_reproduces_step_by_step_outputs_and_runs_as_a_block(tmp_path, version):
    torch.manual_seed(1)
    net = Network([L.SequenceInput(2, name="u"), L.LSTM(5), L.Dense(1, name="y")])
    path = export_fmu(net, tmp_path / "lstm.fmu", step_size=DT, fmi_version=version)
    assert validate_fmu(str(path)) == []
    x = np.random.default_rng(1).normal(size=(15, 2)).astype(np.float32)
    sequence = net(torch.tensor(x)[None]).detach().numpy()[0]  # the whole-sequence forward
    y = _fmpy_run(path, x)
    np.testing.assert_allclose(y[0], sequence[0], atol=1e-5)
    np.testing.assert_allclose(y[1:], sequence[:-1], atol=1e-5)
    # FMUBlock (one port per channel): its outputs equal the StatefulNetworkBlock's
    source = FromData(np.arange(15) * DT, x, interpolation="zoh")
    d = Diagram().add("x", source).add("fmu", FMUBlock(path)).add("net", StatefulNetworkBlock(net))
    d.add("split0", Gain([[1.0, 0.0]], matrix=True)).add("split1", Gain([[0.0, 1.0]], matrix=True))
    d.connect("x", "split0").connect("x", "split1")
    d.connect("split0", "fmu/u[1]").connect("split1", "fmu/u[2]").connect("x", "net")
    out = simulate(d, 1.4, dt=DT, batch=2)
    torch.testing.assert_close(out["fmu/y[1]"], out["net/out"], atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(out["fmu/y[1]"][1].numpy(), sequence, atol=1e-5)


def test_fmu_block_refuses_gradients_and_non_co_simulation_fmus(tmp_path):
    net = Network([L.FeatureInput(1, name="x"), L.Dense(1, name="y")])
    path = export_fmu(net, tmp_path / "net.fmu")
    gain = torch.tensor([2.0], requires_grad=True)
    d = Diagram().add("c", FromData([0.0, 1.0], [[1.0], [2.0]])).add("k", Gain(gain))
    d.add("fmu", FMUBlock(path)).connect("c", "k").connect("k", "fmu")
    out = simulate(d, 0.5, dt=DT)
    with pytest.raises(SimulationError, match="FMUBlock 'net.fmu' is not differentiable"):
        out["fmu/y[1]"].sum().backward()
    bad = tmp_path / "me.fmu"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(bad, "w") as target:
        for item in source.namelist():
            data = source.read(item)
            if item == "modelDescription.xml":
                text = data.decode().replace("CoSimulation", "ModelExchange")
                data = text.replace('canHandleVariableCommunicationStepSize="true"\n    ', "")
                data = data.encode()
            target.writestr(item, data)
    with pytest.raises(ModelImportError, match="must be an FMI 2.0 or 3.0 co-simulation FMU"):
        FMUBlock(bad)


def test_stateful_export_of_a_network_that_cannot_stream_is_refused(tmp_path):
    net = Network([L.SequenceInput(2), L.LSTM(3, bidirectional=True), L.Dense(1)])
    with pytest.raises(ModelExportError, match="stateful=True"):
        export_fmu(net, tmp_path / "bi.fmu", stateful=True)
    assert not (tmp_path / "bi.fmu").exists()


def test_fmi_version_is_checked_and_fmi3_declines_what_it_does_not_do(tmp_path):
    from fmpy import extract
    from fmpy.fmi3 import FMU3Slave

    net = Network([L.FeatureInput(1, name="x"), L.Dense(1, name="y")])
    with pytest.raises(OptionError, match=r"`fmi_version` must be one of \['2.0', '3.0'\]"):
        export_fmu(net, tmp_path / "net.fmu", fmi_version="1.0")
    path = export_fmu(net, tmp_path / "net.fmu", fmi_version="3.0")
    description = read_model_description(str(path))
    fmu = FMU3Slave(
        guid=description.guid,
        unzipDirectory=extract(str(path), tmp_path / "x"),
        modelIdentifier="net",
        instanceName="a",
    )  # fmt: skip (binds every function)
    fmu.instantiate()
    fmu.enterInitializationMode(startTime=0.5)
    fmu.exitInitializationMode()
    fmu.setFloat64([0], [2.0])
    expected = float(net(torch.tensor([[2.0]]))[0, 0].detach())
    assert fmu.getFloat64([1, 2]) == pytest.approx([expected, 0.5], abs=1e-6)  # y, then time
    with pytest.raises(Exception, match=r"fmi3GetInt32 failed with status 3 \(error\)"):
        fmu.getInt32([0])  # an Int32 getter exists (the standard asks) and says no
    with pytest.raises(Exception, match=r"fmi3SetFloat64 failed with status 3"):
        fmu.setFloat64([1], [0.0])  # outputs cannot be set
    fmu.terminate()
    fmu.freeInstance()
