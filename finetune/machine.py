"""What this machine is, and the training defaults that follow from it.

Reading the machine (`device_facts`, `cpu_model`, `cpu_flags`, `has_accelerator`) is the edge;
`device_defaults` is pure: it takes the facts as arguments, so the GPU choices are unit-tested
with the device faked. Whether bf16 pays on a CPU is not read from its flags but measured on the
model about to be trained (finetune/precision.py).
"""

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finetune.config import DEVICE_FLAGS

MAX_DATALOADER_WORKERS = 4


@dataclass(frozen=True)
class DeviceFacts:
    kind: str  # "cpu", "cuda", "xpu" or "mps": where training runs
    name: str  # the CPU's model name, or the GPU's
    cores: int  # CPU cores this process may use
    local_processes: int = 1  # training processes on this machine
    bf16_supported: bool = False  # CUDA: torch.cuda.is_bf16_supported()
    tf32_supported: bool = False  # CUDA: Ampere or newer (compute capability 8+)


@dataclass
class DeviceDefaults:
    values: dict[str, Any]  # flag -> value, for the device flags the user left unset
    reasons: dict[str, str] = field(default_factory=dict)  # flag -> why, for the device summary line
    probe_precision: bool = False  # CPU: bf16 or fp32 is decided by finetune/precision.py on the loaded model


def device_defaults(given: dict[str, Any], facts: DeviceFacts, accelerate_precision: str = "no") -> DeviceDefaults:
    """Values for the device flags left unset (None in `given`); a flag the user gave always wins.

    `accelerate_precision` is ACCELERATE_MIXED_PRECISION (`accelerate launch --mixed_precision`): other than
    "no", accelerate chose the precision, and TrainingArguments reads it from there.
    """
    values: dict[str, Any] = {}
    reasons: dict[str, str] = {}
    probe = False
    precision_given = given.get("bf16") is not None or given.get("fp16") is not None
    if not precision_given:
        if accelerate_precision != "no":
            reasons["precision"] = f"accelerate launch --mixed_precision {accelerate_precision}"
        elif facts.kind == "cuda":
            bf16 = facts.bf16_supported
            values.update(bf16=bf16, fp16=not bf16)
            reasons["precision"] = "default: this GPU computes bf16" if bf16 else "default: this GPU has no bf16"
        elif facts.kind == "cpu":
            probe = True
            reasons["precision"] = "default: measured on the model (precision probe)"
        else:
            reasons["precision"] = f"default on {facts.kind}: fp32 (choose with --bf16 true)"
    else:
        reasons["precision"] = "--bf16/--fp16 given"
    values.setdefault("bf16", bool(given.get("bf16")))
    values.setdefault("fp16", bool(given.get("fp16")))

    if given.get("tf32") is None:
        if facts.kind == "cuda" and facts.tf32_supported:
            values["tf32"] = True
            reasons["tf32"] = "default on Ampere or newer"
        else:
            values["tf32"] = None  # TrainingArguments leaves torch's own setting (and refuses True without support)
    else:
        reasons["tf32"] = "--tf32 given"

    if given.get("dataloader_num_workers") is None:
        if facts.kind == "cuda":
            # Collating in worker processes overlaps with the GPU's work; on a CPU the workers would take
            # cores from training itself.
            per_process = max(1, facts.cores // max(1, facts.local_processes))
            values["dataloader_num_workers"] = min(MAX_DATALOADER_WORKERS, per_process)
            reasons["dataloader_num_workers"] = f"default on a GPU: min({MAX_DATALOADER_WORKERS}, cores per process)"
        else:
            values["dataloader_num_workers"] = 0
    if given.get("dataloader_pin_memory") is None:
        values["dataloader_pin_memory"] = facts.kind == "cuda"  # pinned pages speed host-to-GPU copies only
    return DeviceDefaults(values, reasons, probe)


def resolve_device(values: dict[str, Any]) -> tuple[DeviceFacts, DeviceDefaults]:
    """config.parse_config's device resolver: fills use_cpu and the DEVICE_FLAGS left unset in the parsed values.

    Without an accelerator use_cpu is set: TrainingArguments then sets up CPU processes (gloo) as one
    distributed job; otherwise two launched processes would each train alone."""
    if values.get("use_cpu") is None:
        values["use_cpu"] = not has_accelerator()
    facts = device_facts(values["use_cpu"])
    defaults = device_defaults({name: values.get(name) for name in DEVICE_FLAGS}, facts,
                               os.environ.get("ACCELERATE_MIXED_PRECISION", "no"))
    values.update(defaults.values)
    return facts, defaults


def device_facts(use_cpu: bool) -> "DeviceFacts":
    """The facts device_defaults needs, read from torch and the operating system."""
    import torch  # noqa: PLC0415  (torch loads in seconds; the machine is read only when a run is parsed)

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    if not use_cpu and torch.cuda.is_available():
        major, _ = torch.cuda.get_device_capability()
        return DeviceFacts("cuda", torch.cuda.get_device_name(), cores, local_processes,
                           bf16_supported=torch.cuda.is_bf16_supported(), tf32_supported=major >= 8)
    if not use_cpu and hasattr(torch, "xpu") and torch.xpu.is_available():
        return DeviceFacts("xpu", torch.xpu.get_device_name(), cores, local_processes)
    if not use_cpu and torch.backends.mps.is_available():
        return DeviceFacts("mps", "Apple MPS", cores, local_processes)
    return DeviceFacts("cpu", cpu_model(), cores, local_processes)


def has_accelerator() -> bool:
    import torch  # noqa: PLC0415

    return torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available()) or (
        torch.backends.mps.is_available()
    )


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux
        return ""


def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU's model name, e.g. 'Intel(R) Xeon(R) Processor' (as lscpu prints it)."""
    match = re.search(r"^model name\s*:\s*(.+)$", _cpuinfo() if cpuinfo is None else cpuinfo, re.MULTILINE)
    if match:
        return match.group(1).strip()
    import platform  # noqa: PLC0415

    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_flags(cpuinfo: str | None = None) -> list[str]:
    """The CPU's feature flags (/proc/cpuinfo), sorted; empty where the system does not list them."""
    match = re.search(r"^flags\s*:\s*(.*)$", _cpuinfo() if cpuinfo is None else cpuinfo, re.MULTILINE)
    return sorted(set(match.group(1).split())) if match else []


def bf16_flags(flags: list[str]) -> list[str]:
    """The flags that say how a CPU computes bf16 (for the log and the benchmark notes, not for a choice)."""
    return [flag for flag in flags if flag in ("avx512_bf16", "amx_bf16", "amx_tile", "avx512_fp16")]
