"""FMUBlock: an FMI 2.0 / 3.0 co-simulation FMU as a (non-differentiable) discrete block."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from deeptoolbox.errors import ModelImportError, SimulationError
from deeptoolbox.simulate._block import Block, check_number

__all__ = ["FMUBlock"]


class _NoGradient(torch.autograd.Function):
    """Passes the FMU's outputs through; asking for their gradient is an error."""

    @staticmethod
    def forward(ctx, value, name, *inputs):
        ctx.name = name
        return value.clone()

    @staticmethod
    def backward(ctx, *grads):
        raise SimulationError(
            f"FMUBlock '{ctx.name}' is not differentiable: an FMU is compiled code without "
            "gradients. Keep it out of the path from the cost to the trained blocks (train "
            "against a torch model of the plant, e.g. an ODEBlock), or detach its inputs."
        )


def _read(path: Path):
    from fmpy import read_model_description

    try:
        description = read_model_description(str(path))
    except Exception as err:  # fmpy raises plain Exceptions for broken archives / XML
        raise ModelImportError(f"FMUBlock: '{path}' is not a readable FMU: {err}") from err
    if description.fmiVersion not in ("2.0", "3.0") or description.coSimulation is None:
        kinds = [k for k in ("modelExchange", "coSimulation") if getattr(description, k, None)]
        raise ModelImportError(
            f"FMUBlock: '{path}' must be an FMI 2.0 or 3.0 co-simulation FMU. Received: FMI "
            f"{description.fmiVersion}, {' and '.join(kinds) or 'no interface'}. Hint: export "
            "it for co-simulation from its tool."
        )
    return description


def _real(variable) -> bool:
    return variable.type in ("Real", "Float64", "Float32")


class FMUBlock(Block):
    """Runs a co-simulation FMU (FMI 2.0 or 3.0) through fmpy as a block: one input port
    per FMU input and one output port per output, named as in the FMU (scalar Real
    variables; one channel each). Sampled every ``sample_time`` (default: every simulation
    step): inputs set, outputs read, then ``doStep`` over the sample time. One FMU
    instance per simulated case. Not differentiable: the outputs carry no gradient, and
    asking for one raises ``SimulationError``.

    ``feedthrough`` None: from the FMU's model structure (outputs that depend on inputs).

    Example:
        >>> import tempfile
        >>> from deeptoolbox import Network, layers as L
        >>> from deeptoolbox.simulate import export_fmu
        >>> net = Network([L.FeatureInput(1, name="x"), L.Dense(1, name="y")])
        >>> block = FMUBlock(export_fmu(net, tempfile.mkdtemp() + "/net.fmu"))
        >>> block.input_ports, block.output_ports
        (('x[1]',), ('y[1]',))
    """

    kind = "discrete"
    differentiable = False

    def __init__(self, path: str | os.PathLike, *, sample_time: float | None = None,
                 feedthrough: bool | None = None) -> None:  # fmt: skip
        super().__init__()
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelImportError(f"FMUBlock: no file at '{self.path}'.")
        self.description = _read(self.path)
        variables = self.description.modelVariables
        self._inputs = [v for v in variables if v.causality == "input" and _real(v)]
        self._outputs = [v for v in variables if v.causality == "output" and _real(v)]
        self.input_ports = tuple(v.name for v in self._inputs)
        self.output_ports = tuple(v.name for v in self._outputs)
        self.sample_time = check_number("FMUBlock", "sample_time", sample_time, positive=True,
                                        allow_none=True)  # fmt: skip
        self.feedthrough = self._feedthrough() if feedthrough is None else bool(feedthrough)

    def _feedthrough(self) -> bool:
        outputs = self.description.outputs or []
        if not self._inputs:
            return False
        return not outputs or any(o.dependencies is None or o.dependencies for o in outputs)

    def start(self, context):
        from fmpy import extract
        from fmpy.fmi2 import FMU2Slave
        from fmpy.fmi3 import FMU3Slave

        kind = FMU2Slave if self.description.fmiVersion == "2.0" else FMU3Slave
        identifier = self.description.coSimulation.modelIdentifier
        instances = []
        for case in range(context.batch):  # own folder each: a library's statics per case
            folder = extract(str(self.path), tempfile.mkdtemp(prefix="deeptoolbox-fmu-"))
            fmu = kind(guid=self.description.guid, unzipDirectory=folder,
                       modelIdentifier=identifier, instanceName=f"case{case}")  # fmt: skip
            fmu.instantiate()
            if self.description.fmiVersion == "2.0":
                fmu.setupExperiment(startTime=0.0)
                fmu.enterInitializationMode()
            else:
                fmu.enterInitializationMode(startTime=0.0)
            fmu.exitInitializationMode()
            instances.append((fmu, folder))
        return {"instances": instances, "context": context}

    def finish(self, state) -> None:
        for fmu, folder in state["instances"]:
            try:
                fmu.terminate()
                fmu.freeInstance()
            finally:
                shutil.rmtree(folder, ignore_errors=True)

    def _set(self, fmu, u: dict[str, torch.Tensor], case: int) -> None:
        if not self._inputs:
            return
        refs = [v.valueReference for v in self._inputs]
        values = [float(u[v.name][case, 0].detach()) for v in self._inputs]
        (fmu.setReal if self.description.fmiVersion == "2.0" else fmu.setFloat64)(refs, values)

    def _get(self, fmu) -> list[float]:
        refs = [v.valueReference for v in self._outputs]
        return list((fmu.getReal if self.description.fmiVersion == "2.0" else fmu.getFloat64)(refs))

    def output(self, t, state, u):
        context, rows = state["context"], []
        for case, (fmu, _) in enumerate(state["instances"]):
            if u is not None:
                self._set(fmu, u, case)
            rows.append(self._get(fmu))
        values = context.tensor(np.asarray(rows, dtype=np.float64).reshape(context.batch, -1))
        inputs = [] if u is None else [x for x in u.values() if x.requires_grad]
        name = self.path.name
        return {port: _NoGradient.apply(values[:, i : i + 1], name, *inputs)
                for i, port in enumerate(self.output_ports)}  # fmt: skip

    def update(self, t, state, u, y):
        context = state["context"]
        step = self.sample_time or context.dt
        for case, (fmu, _) in enumerate(state["instances"]):
            if not self.feedthrough:
                self._set(fmu, u, case)
            try:
                fmu.doStep(currentCommunicationPoint=t, communicationStepSize=step)
            except Exception as err:  # fmpy's FMICallException
                raise SimulationError(f"FMUBlock '{self.path.name}': doStep at t={t:g} failed "
                                      f"for case {case}: {err}") from err  # fmt: skip
        return state
