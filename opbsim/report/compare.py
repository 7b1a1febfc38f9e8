"""Device comparison: one model served on several devices, with what the plots need.

For every device of ``CompareSettings.devices`` (a cluster laid out by ``parallel`` of
it, running its policy), ``compare`` runs:
- the headline serving run (``batch``, ``lin``/``lout``, closed loop, ``requests_per_slot x batch``
  requests): the same simulation as ``opbsim simulate`` with the same options (``simulate_args``
  gives that command line), so the numbers are equal;
- the same scenario at every batch of ``batches`` (throughput vs batch), sharing the stage memo;
- the energy per token of the headline run split by component (emulator/energy.py);
- one MoE (or dense) decoder layer of a decode-only stage and of a mixed stage (``batch - 1``
  decoding requests and one prompt chunk), timed on the engine: each op's Op/B, unit and attained
  FLOP/s (the roofline) and the timelines of co-processing (compare_layer.py).

A device that cannot run the model (it does not fit, the policy does not suit it, the compiler
cannot lower a layer) is kept in the result with its reason (``DeviceRun.error``); so is a batch
of the throughput curve that fails. Nothing is dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from opbsim.compiler.policies import default_policy, policy_names
from opbsim.emulator.cluster import Cluster
from opbsim.emulator.serving import DEFAULT_PREFILL_CHUNK_TOKENS, ServingConfig, ServingResult, simulate
from opbsim.emulator.stage_timer import DEFAULT_STEPS_PER_OCTAVE, Bucketing, StageTimer
from opbsim.errors import InputError
from opbsim.hardware import DeviceSpec, get_device
from opbsim.hardware.params import changed_device
from opbsim.report.compare_layer import LayerTimeline, OpPoint, decode_layer, mixed_layer
from opbsim.workloads import FixedLengths, GaussianLengths, ModelConfig, closed_loop, load_model
from opbsim.workloads.parallel import Parallelism

__all__ = ["DeviceEntry", "CompareSettings", "Point", "DeviceRun", "Comparison", "compare",
           "steps_of", "simulate_args", "RunPlan", "resolve"]


@dataclass(frozen=True, slots=True)
class DeviceEntry:
    """One run of a comparison: a device preset and the policy it runs ("": the one ``-p`` gives
    the device, else its default policy). Written ``DEVICE`` or ``DEVICE:POLICY`` on the command line."""

    device: str
    policy: str = ""

    @classmethod
    def parse(cls, text: str) -> DeviceEntry:
        device, sep, policy = text.strip().partition(":")
        if not device or (sep and (not policy or ":" in policy)):
            raise InputError(f"--devices {text.strip()!r}: expected DEVICE or DEVICE:POLICY, e.g. duplex:duplex-no-pe")
        return cls(device, policy)

    def __str__(self) -> str:
        return f"{self.device}:{self.policy}" if self.policy else self.device


@dataclass(frozen=True, slots=True, kw_only=True)
class CompareSettings:
    """What to compare: one run per entry of ``devices`` (a ``DeviceEntry``, or its text
    ``DEVICE[:POLICY]``); one device may appear under several policies. ``policies`` gives the
    policy of each entry of that device name without its own (``-p DEVICE=POLICY``); ``hw``
    (hardware/params.py) changes every device. ``batches``: the throughput curve (``batch`` is
    always on it)."""

    model: str
    devices: tuple[DeviceEntry, ...]
    policies: tuple[tuple[str, str], ...] = ()
    hw: tuple[tuple[str, float], ...] = ()
    parallel: Parallelism = field(default_factory=Parallelism)
    node_devices: int = 0  # devices per physical node; 0: each device's own
    batch: int = 64
    batches: tuple[int, ...] = (8, 16, 32, 64, 128)
    lin: int = 1024
    lout: int = 1024
    lin_std: float = 0.0
    lout_std: float = 0.0
    requests_per_slot: int = 1
    prefill_chunk: int = DEFAULT_PREFILL_CHUNK_TOKENS
    buckets: int = DEFAULT_STEPS_PER_OCTAVE
    seed: int = 0
    preemption: str = "none"  # ServingConfig.preemption
    cuda_graphs: bool = True  # ServingConfig.cuda_graphs
    dtype: str | None = None  # load_model's: weight storage, None: the config's
    kv_dtype: str | None = None  # load_model's: KV-cache storage

    def __post_init__(self) -> None:
        entries = tuple(e if isinstance(e, DeviceEntry) else DeviceEntry.parse(e) for e in self.devices)
        object.__setattr__(self, "devices", entries)
        if not entries:
            raise InputError("--devices: name at least one device")
        if len(set(entries)) != len(entries):
            raise InputError(f"--devices: a device is listed twice ({', '.join(map(str, entries))})")
        if not isinstance(self.parallel, Parallelism):
            raise InputError(f"parallel must be a Parallelism, got {type(self.parallel).__name__}")
        for name in ("batch", "lin", "lout", "requests_per_slot"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name} must be a positive integer, got {value!r}")
        ServingConfig(batch=self.batch, preemption=self.preemption, cuda_graphs=self.cuda_graphs)  # checks them
        if any(b < 1 for b in self.batches):
            raise InputError(f"batches must be positive integers, got {self.batches!r}")
        names = {e.device for e in entries}
        for device, policy in self.policies:
            if device not in names:
                raise InputError(f"--policy {device}=...: {device} is not among --devices")
            if all(e.policy for e in entries if e.device == device):
                raise InputError(f"--policy {device}={policy}: every {device} entry of --devices names its own "
                                 f"policy")

    @property
    def devices_per_node(self) -> int:
        """Devices per node for display (all of them when no node size is given)."""
        n = self.parallel.devices
        return min(self.node_devices, n) if self.node_devices else n

    @property
    def nodes(self) -> int:
        return -(-self.parallel.devices // self.devices_per_node)

    @property
    def curve_batches(self) -> tuple[int, ...]:
        return tuple(sorted({*self.batches, self.batch}))

    def policy_of(self, entry: DeviceEntry, device: DeviceSpec) -> str:
        """The policy ``entry`` runs on ``device`` (its preset)."""
        return entry.policy or dict(self.policies).get(entry.device) or default_policy(device)

    def requests(self, batch: int) -> int:
        return self.requests_per_slot * batch

    def serving(self, batch: int) -> ServingConfig:
        """The serving options of a run at ``batch``."""
        return ServingConfig(batch=batch, prefill_chunk_tokens=self.prefill_chunk, preemption=self.preemption,
                             cuda_graphs=self.cuda_graphs)


def simulate_args(s: CompareSettings, device: str, policy: str) -> list[str]:
    """The ``opbsim simulate`` arguments that give the headline run of ``device``."""
    p = s.parallel
    layout = [f"--{n}" for n in ("tp", "dp", "ep", "etp", "pp")]
    args = [s.model, "-d", device.split("[")[0] if s.hw else device, "-p", policy]
    args += [x for k, v in s.hw for x in ("--hw", f"{k}={v:g}")]
    args += ["--tp", str(p.tp)]  # always: without a layout flag simulate chooses its own
    args += [x for flag, v in zip(layout[1:], (p.dp, p.ep, p.etp, p.pp)) if v > 1 for x in (flag, str(v))]
    args += ["--node-size", str(s.node_devices)] if s.node_devices else []
    args += ["--batch", str(s.batch), "--lin", str(s.lin), "--lout", str(s.lout), "--requests",
            str(s.requests(s.batch)), "--seed", str(s.seed), "--prefill-chunk", str(s.prefill_chunk),
            "--buckets", str(s.buckets)]
    if s.lin_std or s.lout_std:
        args += ["--lin-std", str(s.lin_std), "--lout-std", str(s.lout_std)]
    args += ["--preemption", s.preemption] if s.preemption != "none" else []
    args += [] if s.cuda_graphs else ["--eager"]
    args += ["--dtype", s.dtype] if s.dtype else []
    args += ["--kv-dtype", s.kv_dtype] if s.kv_dtype else []
    return args


@dataclass(frozen=True, slots=True)
class Point:
    """One batch of the throughput curve: tokens/s and the batch that ran (capacity may cap it),
    or the error that stopped it."""

    batch: int
    tokens_per_s: float | None
    max_batch: int | None
    error: str = ""


@dataclass(frozen=True, slots=True)
class DeviceRun:
    """Everything measured for one run; ``error`` is set (and ``result`` None) when it could
    not run the headline configuration. ``label`` names the run in tables, JSON and plots: the
    device, or ``"device (policy)"`` where the comparison has the device under several policies."""

    label: str
    device: str
    policy: str
    spec: DeviceSpec
    result: ServingResult | None
    error: str
    curve: tuple[Point, ...]
    energy_mJ_by_component: tuple[tuple[str, float], ...] = ()
    roofline: tuple[OpPoint, ...] = ()
    timelines: tuple[LayerTimeline, ...] = ()  # the decode-only layer, then the mixed layer

    @property
    def roofline_stage(self) -> str:
        """What the roofline points come from: the decode-only layer (or why it is missing)."""
        return next((t.stage for t in self.timelines if t.kind == "decode"), self.error)

    @property
    def ok(self) -> bool:
        return self.result is not None

    @property
    def slug(self) -> str:
        """``label`` for a file name: ``duplex``, ``duplex_duplex-no-pe``."""
        return self.label.replace(" (", "_").replace(")", "").replace(" ", "_")


@dataclass(frozen=True, slots=True)
class Comparison:
    settings: CompareSettings
    model: ModelConfig
    runs: tuple[DeviceRun, ...]


STEPS_PER_DEVICE_EXTRA = 2  # the decode-only layer (roofline, timeline) and the mixed layer (timeline)


def steps_of(s: CompareSettings) -> int:
    """How many progress steps ``compare`` reports: one per serving run plus two per device."""
    return len(s.devices) * (len(s.curve_batches) + STEPS_PER_DEVICE_EXTRA)


@dataclass(frozen=True, slots=True)
class RunPlan:
    """One run ``compare`` will make: its label (``DeviceRun.label``), device preset and policy."""

    label: str
    spec: DeviceSpec
    policy: str


def resolve(s: CompareSettings) -> tuple[ModelConfig, list[RunPlan]]:
    """The model and the runs ``s`` names (label, device preset, policy); InputError for an
    unknown model, device or policy name, or two entries that come to the same run, before
    anything runs."""
    model = load_model(s.model, dtype=s.dtype, kv_dtype=s.kv_dtype)
    plans: list[tuple[str, DeviceSpec, str]] = []  # (device, preset, policy)
    for e in s.devices:
        spec = changed_device(get_device(e.device), dict(s.hw))
        policy = s.policy_of(e, spec)
        if policy not in policy_names():
            where = f"--devices {e}" if e.policy else f"--policy {e.device}={policy}"
            raise InputError(f"{where}: unknown policy {policy!r} (known: {', '.join(policy_names())})")
        if any((d, p) == (e.device, policy) for d, _, p in plans):
            raise InputError(f"--devices: {e.device} runs policy {policy} twice ({', '.join(map(str, s.devices))})")
        plans.append((e.device, spec, policy))
    several = {d for d, _, _ in plans if sum(x == d for x, _, _ in plans) > 1}
    return model, [RunPlan(f"{spec.name} ({p})" if d in several else spec.name, spec, p) for d, spec, p in plans]


def compare(s: CompareSettings, *, on_step: Callable[[str], None] | None = None) -> Comparison:
    """Run the comparison (see the module docstring). ``on_step(label)`` is called after each of
    ``steps_of(s)`` steps. Unknown names raise InputError before anything runs (``resolve``)."""
    step = on_step or (lambda label: None)
    model, planned = resolve(s)
    runs = tuple(_device_run(s, model, p, step) for p in planned)
    return Comparison(s, model, runs)


def _scenario(s: CompareSettings, batch: int):
    lengths = FixedLengths(s.lin, s.lout) if s.lin_std == 0 and s.lout_std == 0 else \
        GaussianLengths(float(s.lin), float(s.lin_std), float(s.lout), float(s.lout_std))
    return closed_loop(batch, lengths, num_requests=s.requests(batch), seed=s.seed)


def _device_run(s: CompareSettings, model: ModelConfig, plan: RunPlan, step: Callable[[str], None]) -> DeviceRun:
    spec, policy, label = plan.spec, plan.policy, plan.label
    n_steps = len(s.curve_batches) + STEPS_PER_DEVICE_EXTRA
    try:
        cluster = Cluster(device=spec, policy=policy, parallel=s.parallel, node_devices=s.node_devices)
        timer = StageTimer(model, cluster, bucketing=Bucketing(s.buckets))
        result = simulate(model, cluster, _scenario(s, s.batch), s.serving(s.batch), timer=timer)
    except InputError as e:
        for _ in range(n_steps):
            step(f"{label}: cannot run")
        return DeviceRun(label, spec.name, policy, spec, None, str(e),
                         tuple(Point(b, None, None, str(e)) for b in s.curve_batches))
    step(f"{label} batch {s.batch}")
    curve = []
    for b in s.curve_batches:
        if b == s.batch:
            curve.append(Point(b, result.tokens_per_s, result.max_batch))
            continue
        try:
            r = simulate(model, cluster, _scenario(s, b), s.serving(b), timer=timer)
            curve.append(Point(b, r.tokens_per_s, r.max_batch))
        except InputError as e:
            curve.append(Point(b, None, None, str(e)))
        step(f"{label} batch {b}")
    ctx = s.lin + s.lout // 2
    try:
        roofline, decode = decode_layer(s.batch, ctx, model, cluster)
    except InputError as e:
        roofline, decode = (), LayerTimeline("decode", f"decode-only layer not compiled: {e}", None, {})
    step(f"{label} decode-only layer")
    chunk = min(s.lin, s.prefill_chunk) if s.prefill_chunk else s.lin
    try:
        mixed = mixed_layer(s.batch, ctx, chunk, model, cluster)
    except InputError as e:
        mixed = LayerTimeline("mixed", f"mixed layer not compiled: {e}", None, {})
    step(f"{label} mixed layer")
    return DeviceRun(label, spec.name, policy, spec, result, "", tuple(curve), result.energy_breakdown_mJ_per_token,
                     roofline, (decode, mixed))
