"""What a run costs: wall time, hardware, energy (kWh) and CO2-equivalent, measured offline.

Energy comes from a counter where the machine exposes one, and is estimated from rated power otherwise:

- CPU: Linux RAPL (`/sys/class/powercap/intel-rapl:N/energy_uj`, each package and its DRAM zone). It counts the
  whole socket, so every process on it (the run's and any other work) and its idle power. A counter wraps at
  `max_energy_range_uj` (a few hundred kJ, about 20 minutes at 200 W), so a daemon thread reads it every
  RAPL_SAMPLE_SECONDS; nothing else runs during the run.
- GPU: NVML's total-energy counter (Volta or newer) of the GPUs the run trained on, through `nvidia-ml-py`
  when it is installed.
- No counter (most VMs hide RAPL): the CPU time of every training process (user + system, their children
  included: tokenization and dataloader workers) at WATTS_PER_THREAD per busy logical CPU, and memory at
  WATTS_PER_GB of the processes' peak resident memory over the wall time. A GPU without a counter counts at
  its board power limit (NVML) or rated power (RATED_GPU_WATTS) over the wall time: an upper bound.

The constants are codecarbon's (3.3.2): 4 W per thread for a CPU it has no TDP for, 3 W per 8 GB of memory
(its 2.x rule), 475 gCO2eq/kWh as the world average (IEA, Global Energy & CO2 Status Report 2019). codecarbon
itself is not a dependency: it pulls in pandas, pydantic, rich, typer, requests and more, samples in a
background scheduler, and on a 2-vCPU VM without RAPL it would charge the whole host CPU's TDP. No data-centre
overhead (PUE) is added. FINETUNE_ENERGY=0 switches the meter off (for bench/energy.py, which measures its cost).
"""

import os
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from finetune.errors import UsageError

POWERCAP_ROOT = Path("/sys/class/powercap")
RAPL_SAMPLE_SECONDS = 30.0
WATTS_PER_THREAD = 4.0  # codecarbon's DEFAULT_POWER_PER_CORE (per logical CPU) for a CPU without a known TDP
WATTS_PER_GB = 3.0 / 8  # codecarbon 2.x: 3 W per 8 GB of memory
WORLD_CARBON_INTENSITY = 475.0  # gCO2eq/kWh, IEA 2019, codecarbon's world average
CARBON_INTENSITY_ENV = "FINETUNE_CARBON_INTENSITY"
# Board power of common training GPUs (W), for a GPU whose power NVML cannot tell; others count DEFAULT_GPU_WATTS.
RATED_GPU_WATTS = {"H200": 700, "H100": 700, "A100": 400, "L40": 300, "A10": 150, "L4": 72, "T4": 70, "V100": 300,
                   "4090": 450, "3090": 350}
DEFAULT_GPU_WATTS = 300


@dataclass
class ProcessUsage:
    """One training process's own resource use so far, sent to the main process at the end of the run."""

    cpu_seconds: float  # user + system, its finished and live children included
    peak_memory_gb: float  # its peak resident memory (and its largest child's)
    host: str


@dataclass
class RunCost:
    """The run's cost as results.json (`cost`) and the card record it."""

    wall_seconds: float  # from the start of the run to the writing of its card
    hardware: str  # CPU model and logical CPUs; GPUs when on CUDA
    energy_kwh: float
    method: str  # how the energy was obtained, in words, for the card
    source: str  # the same in a few words, for the Hub's co2_eq_emissions.source
    co2_grams: float  # CO2-equivalent, grams
    carbon_intensity: float  # gCO2eq per kWh used
    carbon_intensity_source: str  # where that number came from
    energy_kwh_by_part: dict[str, float] = field(default_factory=dict)  # cpu, memory, gpu
    measured: bool = False  # every part came from a counter
    processes: int = 1
    cpu_seconds: float = 0.0  # of every process
    metering_seconds: float = 0.0  # what measuring cost the main process (reads, threads)

    def co2_eq_emissions(self) -> dict:
        """The Hub's model-card metadata field (emissions in grams)."""
        return {
            "emissions": round(self.co2_grams, 4),
            "source": self.source,
            "training_type": "fine-tuning",
            "geographical_location": "unknown (carbon intensity: "
            f"{self.carbon_intensity:g} gCO2eq/kWh, {self.carbon_intensity_source})",
            "hardware_used": self.hardware,
        }


# --- pure arithmetic ------------------------------------------------------------------------------------------

def estimated_cpu_kwh(cpu_seconds: float, watts_per_thread: float = WATTS_PER_THREAD) -> float:
    """Energy of `cpu_seconds` of busy logical CPUs, each drawing `watts_per_thread`."""
    return cpu_seconds * watts_per_thread / 3.6e6


def estimated_memory_kwh(memory_gb: float, seconds: float, watts_per_gb: float = WATTS_PER_GB) -> float:
    return memory_gb * watts_per_gb * seconds / 3.6e6


def co2_grams(kwh: float, grams_per_kwh: float) -> float:
    return kwh * grams_per_kwh


def counter_delta(start: int, end: int, wrap_at: int) -> int:
    """Increase of a counter that restarts from 0 after `wrap_at` (read at least once per wrap)."""
    return end - start if end >= start else end + wrap_at - start


def rated_gpu_watts(name: str) -> float:
    for model, watts in RATED_GPU_WATTS.items():
        if model in name:
            return watts
    return DEFAULT_GPU_WATTS


def carbon_intensity(flag: float | None, environ=os.environ) -> tuple[float, str]:
    """gCO2eq/kWh and its source: --carbon_intensity, else $FINETUNE_CARBON_INTENSITY, else the world average."""
    if flag is not None:
        return flag, "--carbon_intensity"
    value = environ.get(CARBON_INTENSITY_ENV)
    if value:
        try:
            grams = float(value)
        except ValueError:
            grams = -1.0
        if not grams >= 0:
            raise UsageError(f"{CARBON_INTENSITY_ENV}={value}: must be a number of gCO2eq per kWh, 0 or more.")
        return grams, f"${CARBON_INTENSITY_ENV}"
    return WORLD_CARBON_INTENSITY, "world average, IEA 2019, codecarbon's default; set --carbon_intensity for your grid"


# --- counters (the edge) --------------------------------------------------------------------------------------

class RaplCounters:
    """The RAPL packages' and their DRAM zones' energy counters under a powercap folder, summed, wraps handled."""

    def __init__(self, root: Path = POWERCAP_ROOT):
        self.zones = self.readable_zones(Path(root))
        self._last = {zone: self._read(zone) for zone in self.zones}
        self._wrap = {zone: int((zone / "max_energy_range_uj").read_text()) for zone in self.zones}
        self.joules = 0.0
        self._lock = threading.Lock()

    @staticmethod
    def readable_zones(root: Path) -> list[Path]:
        """Top-level packages (intel-rapl:N; AMD's too) and their `dram` subzones: the package zone excludes DRAM,
        its other subzones (core, uncore) are part of it, and intel-rapl-mmio repeats the package."""
        zones = []
        for zone in sorted(root.glob("intel-rapl:*")):
            top = re.fullmatch(r"intel-rapl:\d+", zone.name)
            if not top and not _zone_name(zone) == "dram":
                continue
            try:
                int((zone / "energy_uj").read_text())
                int((zone / "max_energy_range_uj").read_text())
            except (OSError, ValueError):  # unreadable (root only since 2020's PLATYPUS fix) or malformed
                continue
            zones.append(zone)
        return zones

    @staticmethod
    def _read(zone: Path) -> int:
        return int((zone / "energy_uj").read_text())

    def sample(self) -> float:
        """Read every counter now; joules since the start."""
        with self._lock:
            for zone in self.zones:
                now = self._read(zone)
                self.joules += counter_delta(self._last[zone], now, self._wrap[zone]) / 1e6
                self._last[zone] = now
            return self.joules


def _zone_name(zone: Path) -> str:
    try:
        return (zone / "name").read_text().strip()
    except OSError:
        return ""


class NvmlCounters:
    """NVML's total-energy counters (mJ since the driver loaded) of every GPU, by UUID; power limits for GPUs
    without one. `nvml` is the pynvml module (nvidia-ml-py), or a stand-in in tests."""

    def __init__(self, nvml):
        self.nvml = nvml
        nvml.nvmlInit()
        self.start_mj: dict[str, int | None] = {}
        self.limit_watts: dict[str, float] = {}
        for i in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            uuid = _text(nvml.nvmlDeviceGetUUID(handle)).removeprefix("GPU-")
            self.start_mj[uuid] = self._energy_mj(handle)
            try:
                self.limit_watts[uuid] = nvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000
            except nvml.NVMLError:
                pass

    def _energy_mj(self, handle) -> int | None:
        try:
            return self.nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        except self.nvml.NVMLError:  # older than Volta
            return None

    def joules(self, uuid: str) -> float | None:
        """Energy of one GPU since the start, or None where it has no counter."""
        start = self.start_mj.get(uuid)
        if start is None:
            return None
        handle = self.nvml.nvmlDeviceGetHandleByUUID(f"GPU-{uuid}")
        end = self._energy_mj(handle)
        return None if end is None else (end - start) / 1000


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _nvml_module():
    try:
        import pynvml  # noqa: PLC0415  (nvidia-ml-py, optional)
    except ImportError:
        return None
    return pynvml


def process_usage() -> ProcessUsage:
    """This process's CPU seconds (its children's too) and peak memory, from the operating system."""
    times = os.times()
    cpu = times.user + times.system + times.children_user + times.children_system  # children: finished, waited for
    try:
        import psutil  # noqa: PLC0415  (accelerate's dependency)

        for child in psutil.Process().children(recursive=True):  # live children (persistent dataloader workers)
            try:
                child_times = child.cpu_times()
                cpu += child_times.user + child_times.system
            except psutil.Error:
                continue
    except ImportError:
        pass
    peak = 0.0
    try:
        import resource  # noqa: PLC0415

        kib = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
        peak = kib * 1024 / 1e9
    except ImportError:  # Windows
        pass
    return ProcessUsage(cpu, peak, socket.gethostname())


def other_processes_usage(meter: "EnergyMeter", world_size: int, rank: int) -> list[ProcessUsage]:
    """The other training processes' usage since their meter started, for the main process (one all_gather:
    every process must call it, at the end of its work; each but the main then exits)."""
    if world_size <= 1:
        return []
    import torch  # noqa: PLC0415

    everyone: list = [None] * world_size
    torch.distributed.all_gather_object(everyone, meter.usage())
    return [usage for i, usage in enumerate(everyone) if i != rank]


def enabled(environ=os.environ) -> bool:
    return environ.get("FINETUNE_ENERGY", "1") != "0"


class EnergyMeter:
    """Started before a run prepares anything; `finish` reads it when the run is about to write its card."""

    def __init__(self, powercap_root: Path = POWERCAP_ROOT, nvml=None, counters: bool = True):
        """`counters`: read the machine's counters (one process per machine does: local rank 0)."""
        began = time.perf_counter()
        self.started = began
        self._cpu_before = process_usage().cpu_seconds  # a process that ran before the run (a notebook, pytest)
        self.rapl = RaplCounters(powercap_root if counters else Path("/nonexistent"))
        self.nvml = None
        nvml = (nvml if nvml is not None else _nvml_module()) if counters else None
        if nvml is not None:
            try:
                self.nvml = NvmlCounters(nvml)
            except Exception:  # noqa: BLE001  (no driver, no GPU: NVML raises its own errors)
                self.nvml = None
        self._stop = threading.Event()
        self._thread = None
        if self.rapl.zones:
            self._thread = threading.Thread(target=self._sample_rapl, name="rapl-sampler", daemon=True)
            self._thread.start()
        self.metering_seconds = time.perf_counter() - began

    def usage(self) -> ProcessUsage:
        """This process's use since the meter started (peak memory: its peak so far)."""
        now = process_usage()
        now.cpu_seconds -= self._cpu_before
        return now

    def _sample_rapl(self) -> None:
        while not self._stop.wait(RAPL_SAMPLE_SECONDS):
            self.rapl.sample()

    def finish(self, hardware: str, grams_per_kwh: float, intensity_source: str,
               other_processes: list[ProcessUsage] = (), gpus: list[tuple[str, str]] = ()) -> RunCost:
        """The run's cost so far, read by the main process. `other_processes`: the other training processes'
        usage at their end (gather_usage); `gpus`: (UUID, name) of the GPUs the run trained on."""
        began = time.perf_counter()
        wall = began - self.started
        self._stop.set()
        parts, methods, sources, measured = {}, [], [], True
        usage = [self.usage(), *other_processes]  # this process's own use now, after its last phase
        cpu_seconds = sum(u.cpu_seconds for u in usage)
        peak_gb = sum(u.peak_memory_gb for u in usage)
        processes = f"{len(usage)} training process(es)" + (
            f" on {len({u.host for u in usage})} machines" if len({u.host for u in usage}) > 1 else "")
        if self.rapl.zones:
            joules = self.rapl.sample()
            dram = any(_zone_name(zone) == "dram" for zone in self.rapl.zones)
            parts["cpu" + ("_and_memory" if dram else "")] = joules / 3.6e6
            methods.append(f"CPU{' and memory' if dram else ''}: measured by this machine's RAPL energy counters "
                           f"({len(self.rapl.zones)} zones under /sys/class/powercap), the whole socket over the run, "
                           "idle power and any other work on it included")
            sources.append("RAPL counters")
        else:
            measured = False
            parts["cpu"] = estimated_cpu_kwh(cpu_seconds)
            methods.append(
                f"CPU: estimated, as this machine exposes no readable power counter (no RAPL): the CPU time of all "
                f"{processes}, their child processes included ({cpu_seconds:,.0f} CPU-seconds), at "
                f"{WATTS_PER_THREAD:g} W per busy logical CPU (codecarbon's default for a CPU without a known TDP)")
            sources.append("estimate from CPU time and rated power")
        if not any(key.endswith("memory") for key in parts):
            measured = False
            parts["memory"] = estimated_memory_kwh(peak_gb, wall)
            methods.append(f"memory: estimated at {WATTS_PER_GB:g} W per GB of the processes' peak resident memory "
                           f"({peak_gb:.1f} GB) over the wall time")
        if gpus:
            counted, limited = 0.0, []
            for uuid, name in gpus:
                joules = self.nvml.joules(uuid) if self.nvml else None
                if joules is None:
                    watts = (self.nvml.limit_watts.get(uuid) if self.nvml else None) or rated_gpu_watts(name)
                    limited.append(f"{name} at {watts:g} W")
                    joules = watts * wall
                counted += joules
            parts["gpu"] = counted / 3.6e6
            if limited:
                measured = False
                methods.append("GPU: estimated at its power limit or rated power over the wall time, an upper bound "
                               f"({', '.join(limited)}; install nvidia-ml-py for NVML's energy counter)")
                sources.append("GPU rated power")
            else:
                methods.append(f"GPU: measured by NVML's energy counter of the {len(gpus)} GPU(s) trained on")
                sources.append("NVML counters")
        kwh = sum(parts.values())
        self.metering_seconds += time.perf_counter() - began
        return RunCost(
            wall_seconds=round(wall, 2), hardware=hardware, energy_kwh=kwh, method="; ".join(methods) + ".",
            source="finetune-reviews finetune/energy.py: " + " + ".join(sources), co2_grams=co2_grams(kwh, grams_per_kwh),
            carbon_intensity=grams_per_kwh, carbon_intensity_source=intensity_source,
            energy_kwh_by_part=parts, measured=measured, processes=len(usage),
            cpu_seconds=round(cpu_seconds, 2), metering_seconds=round(self.metering_seconds, 4),
        )


def hardware_description(cpu_model: str, logical_cpus: int, gpus: list[str] = ()) -> str:
    """E.g. 'Intel(R) Xeon(R) Processor (2 logical CPUs) + 1 x NVIDIA H100 80GB HBM3'."""
    text = f"{cpu_model} ({logical_cpus} logical CPU{'s' if logical_cpus != 1 else ''})"
    if gpus:
        text += " + " + ", ".join(f"{gpus.count(name)} x {name}" for name in dict.fromkeys(gpus))
    return text
