"""Model configurations, layer graphs and serving scenarios: what runs, with exact shapes."""

from opbsim.workloads.estimates import Estimates
from opbsim.workloads.graph import LayerGraph, ModelGraph, build_layer, build_model
from opbsim.workloads.hf_config import load_hf_config, parse_hf_config
from opbsim.workloads.lookup import load_model
from opbsim.workloads.models import MLA, ConfigError, FFNAct, ModelConfig, Norm, ParamCounts, QKNorm, RopeScaling
from opbsim.workloads.ops import Op, OpClass, OpKind, Role, TensorSpec, dependencies
from opbsim.workloads.presets import PRESETS, get_preset
from opbsim.workloads.routing import (
    BalancedRouting,
    Routing,
    UniformRouting,
    ZipfRouting,
    expected_fraction_touched,
    expert_counts,
)
from opbsim.workloads.routing_skew import SkewRouting
from opbsim.workloads.routing_trace import TraceRouting, write_trace
from opbsim.workloads.scenarios import (
    CsvLengths,
    FixedLengths,
    GaussianLengths,
    Loop,
    Request,
    Scenario,
    closed_loop,
    open_loop,
)
from opbsim.workloads.stage import PrefillChunk, Stage

__all__ = [
    "ModelConfig", "MLA", "FFNAct", "Norm", "QKNorm", "RopeScaling", "ParamCounts", "ConfigError",
    "PRESETS", "get_preset", "load_hf_config", "parse_hf_config", "load_model",
    "Stage", "PrefillChunk", "Estimates", "Op", "OpKind", "OpClass", "Role", "TensorSpec", "dependencies",
    "LayerGraph", "ModelGraph", "build_layer", "build_model",
    "Routing", "BalancedRouting", "UniformRouting", "ZipfRouting", "SkewRouting", "TraceRouting", "expert_counts",
    "expected_fraction_touched", "write_trace",
    "Request", "Loop", "Scenario", "FixedLengths", "GaussianLengths", "CsvLengths", "closed_loop", "open_loop",
]

