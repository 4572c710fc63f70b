"""The Network (a named graph of layers), its analysis, files, code generation and drawing.

Example:
    >>> from deeptoolbox.network import Network, analyze
    >>> from deeptoolbox import layers as L
    >>> analyze(Network([L.FeatureInput(3), L.Dense(2)])).ok
    True
"""

from deeptoolbox.network._analyze import Analysis as Analysis
from deeptoolbox.network._analyze import LayerReport as LayerReport
from deeptoolbox.network._analyze import analysis_checks as analysis_checks
from deeptoolbox.network._analyze import analyze as analyze
from deeptoolbox.network._analyze import register_analysis_check as register_analysis_check
from deeptoolbox.network._analyze import unregister_analysis_check as unregister_analysis_check
from deeptoolbox.network._builders import resnet_network as resnet_network
from deeptoolbox.network._codegen import to_python as to_python
from deeptoolbox.network._graph import Connection as Connection
from deeptoolbox.network._io import load as load
from deeptoolbox.network._io import save as save
from deeptoolbox.network._layer_dict import LayerDict as LayerDict
from deeptoolbox.network._lookup import find_module as find_module
from deeptoolbox.network._nested import NetworkLayer as NetworkLayer
from deeptoolbox.network._network import Network as Network
from deeptoolbox.network._plot import plot_network as plot_network
from deeptoolbox.network._resolution import Issue as Issue
from deeptoolbox.network._serialize import architecture as architecture
from deeptoolbox.network._serialize import from_architecture as from_architecture
from deeptoolbox.network._serialize import layer_from_record as layer_from_record
from deeptoolbox.network._serialize import layer_record as layer_record
from deeptoolbox.network._shapes import input_ports as input_ports
from deeptoolbox.network._shapes import probe_output_size as probe_output_size
from deeptoolbox.network._shapes import resolve_layer as resolve_layer

__all__ = [
    "Network",
    "Connection",
    "Issue",
    "Analysis",
    "LayerReport",
    "analyze",
    "register_analysis_check",
    "unregister_analysis_check",
    "analysis_checks",
    "save",
    "load",
    "to_python",
    "plot_network",
    "resnet_network",
    "LayerDict",
    "find_module",
    "NetworkLayer",
    "architecture",
    "from_architecture",
    "layer_record",
    "layer_from_record",
    "input_ports",
    "resolve_layer",
    "probe_output_size",
]
