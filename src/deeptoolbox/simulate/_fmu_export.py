"""export_fmu(): a network as an FMI 2.0 or 3.0 co-simulation FMU (generated C code, an FMI
wrapper, modelDescription.xml, a Linux x86-64 binary compiled with gcc, and the sources)."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import uuid
import zipfile
from pathlib import Path
from xml.sax.saxutils import quoteattr

from torch import nn

from deeptoolbox._atomic import atomic_path
from deeptoolbox._version import __version__
from deeptoolbox.deploy import generate_c
from deeptoolbox.deploy._cbuild import compile_sources
from deeptoolbox.errors import ModelExportError, OptionError
from deeptoolbox.network import Network
from deeptoolbox.simulate import _fmi3_wrapper
from deeptoolbox.simulate._fmi2_wrapper import wrapper_source

__all__ = ["export_fmu"]

_HEADERS = {
    "2.0": ("fmi2Functions.h", "fmi2FunctionTypes.h", "fmi2TypesPlatform.h"),
    "3.0": ("fmi3Functions.h", "fmi3FunctionTypes.h", "fmi3PlatformTypes.h"),
}
_PLATFORM = {"2.0": "linux64", "3.0": "x86_64-linux"}  # binaries/<platform>/<id>.so


def _fmi_headers(version: str) -> Path:
    import fmpy  # the FMI headers (BSD-2, Modelica Association) ship with fmpy

    folder = Path(fmpy.__file__).parent / "c-code"
    if not all((folder / h).is_file() for h in _HEADERS[version]):
        raise ModelExportError(f"export_fmu: the FMI {version} headers are missing from "
                               f"{folder}; reinstall fmpy (pip install fmpy).")  # fmt: skip
    return folder


def _identifier(path: Path, name: str | None) -> str:
    text = name or re.sub(r"[^A-Za-z0-9_]", "_", path.stem)
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", text):
        text = f"fmu_{text}"
    return text


def _ports(manifest: dict, stateful: bool) -> tuple[list[dict], list[dict]]:
    source = manifest["step"] if stateful else manifest
    return source["inputs"], source["outputs"]


def _variables(ports: list[dict], offset: int, causality: str) -> tuple[list[str], list[str]]:
    lines, names = [], []
    for port in ports:
        for i in range(port["size"]):
            name = f"{port['layer']}[{i + 1}]"
            reference = offset + len(names)
            start = '<Real start="0.0"/>' if causality == "input" else "<Real/>"
            initial = "" if causality == "input" else ' initial="calculated"'
            lines.append(
                f'    <ScalarVariable name={quoteattr(name)} valueReference="{reference}" '
                f'causality="{causality}" variability="continuous"{initial}>{start}'
                "</ScalarVariable>"
            )
            names.append(name)
    return lines, names


def model_description(identifier: str, guid: str, inputs, outputs, step: float, network: str,
                      stateful: bool) -> str:  # fmt: skip
    """The FMU's modelDescription.xml: one Real variable per input and output channel."""
    in_lines, in_names = _variables(inputs, 0, "input")
    out_lines, out_names = _variables(outputs, len(in_names), "output")
    dependencies = " ".join(str(i + 1) for i in range(len(in_names)))
    kinds = ' dependenciesKind="' + " ".join(["dependent"] * len(in_names)) + '"'
    unknowns = "\n".join(
        f'      <Unknown index="{len(in_names) + i + 1}" dependencies="{dependencies}"'
        f"{kinds if in_names else ''}/>" for i in range(len(out_names))
    )  # fmt: skip
    kind = "stateful (LSTM/GRU state carried from step to step)" if stateful else "stateless"
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<fmiModelDescription fmiVersion="2.0" modelName={quoteattr(network)} guid="{guid}"
  description={quoteattr(f"network '{network}', {kind}, exported by deeptoolbox")}
  generationTool="deeptoolbox {__version__}" variableNamingConvention="structured"
  numberOfEventIndicators="0">
  <CoSimulation modelIdentifier="{identifier}" canHandleVariableCommunicationStepSize="true"
    canNotUseMemoryManagementFunctions="true">
    <SourceFiles>
{chr(10).join(f'      <File name="{file}"/>' for file in source_files(identifier, "2.0"))}
    </SourceFiles>
  </CoSimulation>
  <DefaultExperiment startTime="0.0" stepSize="{step!r}"/>
  <ModelVariables>
{chr(10).join(in_lines + out_lines)}
  </ModelVariables>
  <ModelStructure>
    <Outputs>
{unknowns}
    </Outputs>
    <InitialUnknowns>
{unknowns}
    </InitialUnknowns>
  </ModelStructure>
</fmiModelDescription>
"""


def source_files(identifier: str, fmi_version: str) -> list[str]:
    """The C files to compile into the FMU's binary (the wrapper includes the network's
    code), as ``sources/`` holds them: listed in the model description (FMI 2.0) or in
    ``sources/buildDescription.xml`` (FMI 3.0), so that tools (fmpy.build) can rebuild it."""
    return [f"{identifier}_fmi{fmi_version[0]}.c", f"{identifier}_weights.c"]


def build_description3(identifier: str) -> str:
    """The FMI 3.0 ``sources/buildDescription.xml``: one C99 source file set."""
    files = "\n".join(f'      <SourceFile name="{file}"/>'
                      for file in source_files(identifier, "3.0"))  # fmt: skip
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<fmiBuildDescription fmiVersion="3.0">
  <BuildConfiguration modelIdentifier="{identifier}">
    <SourceFileSet language="C99">
{files}
    </SourceFileSet>
  </BuildConfiguration>
</fmiBuildDescription>
"""


def _variables3(ports: list[dict], offset: int, causality: str) -> list[str]:
    lines = []
    for port in ports:
        for i in range(port["size"]):
            name = quoteattr(f"{port['layer']}[{i + 1}]")
            extra = ' start="0.0"' if causality == "input" else ' initial="calculated"'
            lines.append(f'    <Float64 name={name} valueReference="{offset + len(lines)}" '
                         f'causality="{causality}" variability="continuous"{extra}/>')  # fmt: skip
    return lines


def model_description3(identifier: str, token: str, inputs, outputs, step: float, network: str,
                       stateful: bool) -> str:  # fmt: skip
    """The FMI 3.0 modelDescription.xml: one Float64 per input and output channel (value
    references 0, 1, ... in that order) and the independent variable ``time`` after them."""
    in_lines = _variables3(inputs, 0, "input")
    out_lines = _variables3(outputs, len(in_lines), "output")
    time = len(in_lines) + len(out_lines)
    dependencies = " ".join(str(i) for i in range(len(in_lines)))
    kinds = ' dependenciesKind="' + " ".join(["dependent"] * len(in_lines)) + '"'
    listed = f' dependencies="{dependencies}"{kinds}' if in_lines else ' dependencies=""'
    structure = "\n".join(
        f'    <{element} valueReference="{len(in_lines) + i}"{listed}/>'
        for element in ("Output", "InitialUnknown") for i in range(len(out_lines))
    )  # fmt: skip
    kind = "stateful (LSTM/GRU state carried from step to step)" if stateful else "stateless"
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<fmiModelDescription fmiVersion="3.0" modelName={quoteattr(network)}
  instantiationToken="{token}"
  description={quoteattr(f"network '{network}', {kind}, exported by deeptoolbox")}
  generationTool="deeptoolbox {__version__}" variableNamingConvention="structured">
  <CoSimulation modelIdentifier="{identifier}" canHandleVariableCommunicationStepSize="true"
    providesIntermediateUpdate="false" canReturnEarlyAfterIntermediateUpdate="false"
    hasEventMode="false"/>
  <DefaultExperiment startTime="0.0" stepSize="{step!r}"/>
  <ModelVariables>
    <Float64 name="time" valueReference="{time}" causality="independent" variability="continuous"/>
{chr(10).join(in_lines + out_lines)}
  </ModelVariables>
  <ModelStructure>
{structure}
  </ModelStructure>
</fmiModelDescription>
"""


def _generate(net: Network, folder: Path, identifier: str, stateful: bool | None):
    sequence = any(len(getattr(net.layer(n), "shape", ())) == 2 for n in net.input_names)
    report = generate_c(net, folder, name=identifier, sequence_length=1 if sequence else None,
                        verbose=False)  # fmt: skip
    if stateful is None:
        stateful = report.streaming
    if stateful and not report.streaming:
        raise ModelExportError(
            f"export_fmu: stateful=True needs a network C generation can run one step at a "
            f"time; '{net.name}' cannot: {report.streaming_note}. Use stateful=False (each step an "
            "independent length-1 sequence)."
        )
    manifest = json.loads((folder / "codegen.json").read_text(encoding="utf-8"))
    code = (folder / f"{identifier}.c").read_text(encoding="utf-8")
    if stateful and f"static float {identifier}_arena_f32[" not in code:
        raise ModelExportError(f"export_fmu: the generated code of '{net.name}' has no float "
                               "arena to keep the recurrent state in.")  # fmt: skip
    return stateful, manifest


def export_fmu(
    net: nn.Module,
    path: str | os.PathLike,
    *,
    stateful: bool | None = None,
    name: str | None = None,
    step_size: float = 0.01,
    compiler: str | None = None,
    fmi_version: str = "2.0",
) -> Path:
    """Write ``net`` as an FMI 2.0 (or, with ``fmi_version="3.0"``, FMI 3.0) co-simulation
    FMU (MATLAB: a Simulink model with the network, exported with ``exportToFMU``).

    The FMU holds the network as C code (``deploy.generate_c``, float32), an FMI wrapper,
    ``modelDescription.xml`` with one Real variable per input and output channel (named
    ``layer[i]``; Float64 in FMI 3.0, after the independent variable ``time``),
    ``binaries/linux64/<id>.so`` (FMI 3.0: ``binaries/x86_64-linux/``) compiled with gcc,
    and ``sources/`` to build
    it for other platforms (listed as the standard asks: ``SourceFiles`` in FMI 2.0,
    ``sources/buildDescription.xml`` in FMI 3.0, so ``fmpy.build.build_platform_binary``
    rebuilds it). Outputs are the network's outputs for the inputs just set (direct
    feedthrough). A stateful FMU (``stateful=None``: whenever the network has LSTM/GRU layers
    that can run one step at a time) carries the recurrent state: each ``fmi2DoStep`` /
    ``fmi3DoStep`` consumes the inputs of its start time and moves the state on; ``fmi2Reset``
    / ``fmi3Reset`` zeroes it.
    One instance per loaded library (the C code has one static arena).

    Raises:
        CodegenError: layers C generation does not support.
        ModelExportError: ``stateful=True`` for a network that cannot run step by step.
        OptionError: an ``fmi_version`` other than "2.0" or "3.0".
        CompilerError: no C compiler, or compilation failed.

    Example:
        >>> import tempfile, zipfile
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(2), L.Dense(3), L.Tanh(), L.Dense(1)])
        >>> fmu = export_fmu(net, tempfile.mkdtemp() + "/net.fmu")
        >>> sorted(n for n in zipfile.ZipFile(fmu).namelist() if not n.startswith("sources"))
        ['binaries/linux64/net.so', 'modelDescription.xml']
    """
    if not isinstance(net, Network):
        raise OptionError(f"export_fmu: `net` must be a deeptoolbox Network (bring a torch "
                          f"module in with from_torch). Received: {type(net).__name__}.")  # fmt: skip
    if not (isinstance(step_size, int | float) and step_size > 0):
        raise OptionError(f"export_fmu: `step_size` must be > 0. Received: {step_size!r}.")
    if fmi_version not in _HEADERS:
        raise OptionError(f"export_fmu: `fmi_version` must be one of {sorted(_HEADERS)}. "
                          f"Received: {fmi_version!r}.")  # fmt: skip
    path = Path(path)
    identifier = _identifier(path, name)
    guid = "{" + str(uuid.uuid4()) + "}"
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "fmu"
        sources = root / "sources"
        net.eval()
        stateful, manifest = _generate(net, Path(scratch) / "code", identifier, stateful)
        sources.mkdir(parents=True)
        for file in (f"{identifier}.c", f"{identifier}.h", f"{identifier}_weights.c"):
            shutil.copy(Path(scratch) / "code" / file, sources / file)
        headers = _fmi_headers(fmi_version)
        for header in _HEADERS[fmi_version]:
            shutil.copy(headers / header, sources / header)
        inputs, outputs = _ports(manifest, stateful)
        sizes = ([p["size"] for p in inputs], [p["size"] for p in outputs])
        if fmi_version == "2.0":
            wrapper = wrapper_source(identifier, guid, __version__, *sizes, stateful)
            describe = model_description
        else:
            wrapper = _fmi3_wrapper.wrapper_source(identifier, guid, __version__, *sizes,
                                                   stateful, headers / "fmi3FunctionTypes.h")  # fmt: skip
            describe = model_description3
        suffix = fmi_version[0]
        (sources / f"{identifier}_fmi{suffix}.c").write_text(wrapper, encoding="utf-8")
        binary = root / "binaries" / _PLATFORM[fmi_version] / f"{identifier}.so"
        binary.parent.mkdir(parents=True)
        if fmi_version == "3.0":
            (sources / "buildDescription.xml").write_text(build_description3(identifier),
                                                          encoding="utf-8")  # fmt: skip
        compile_sources([sources / file for file in source_files(identifier, fmi_version)],
                        binary, compiler=compiler,
                        flags=("-std=c99", "-O2", "-Wall", f"-I{sources}"))  # fmt: skip
        (root / "modelDescription.xml").write_text(
            describe(identifier, guid, inputs, outputs, float(step_size),
                     getattr(net, "name", "network"), stateful), encoding="utf-8",
        )  # fmt: skip
        with (
            atomic_path(path, suffix=".fmu") as temporary,
            zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive,
        ):
            for file in sorted(root.rglob("*")):
                if file.is_file():
                    archive.write(file, file.relative_to(root).as_posix())
    return path
