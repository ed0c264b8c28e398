"""What a run costs: the estimator's arithmetic, counters read from fake sysfs and NVML, the meter's report."""

import socket
import time

import pytest

from finetune import energy
from finetune.errors import UsageError


def test_estimates_are_power_times_time():
    assert energy.estimated_cpu_kwh(3600, watts_per_thread=4) == pytest.approx(0.004)  # 1 CPU-hour at 4 W
    assert energy.estimated_cpu_kwh(900) == pytest.approx(0.001)  # default: 4 W per busy logical CPU
    assert energy.estimated_memory_kwh(8, 3600) == pytest.approx(0.003)  # 8 GB at 3 W per 8 GB for an hour
    assert energy.co2_grams(0.007, 475) == pytest.approx(3.325)


def test_counter_delta_survives_one_wrap():
    assert energy.counter_delta(100, 250, wrap_at=1000) == 150
    assert energy.counter_delta(900, 50, wrap_at=1000) == 150


def test_carbon_intensity_flag_then_environment_then_world_average():
    assert energy.carbon_intensity(120.0, {"FINETUNE_CARBON_INTENSITY": "30"}) == (120.0, "--carbon_intensity")
    assert energy.carbon_intensity(None, {"FINETUNE_CARBON_INTENSITY": "30"}) == (30.0, "$FINETUNE_CARBON_INTENSITY")
    grams, source = energy.carbon_intensity(None, {})
    assert grams == 475 and "world average" in source
    with pytest.raises(UsageError, match="FINETUNE_CARBON_INTENSITY=lots"):
        energy.carbon_intensity(None, {"FINETUNE_CARBON_INTENSITY": "lots"})


def test_carbon_intensity_flag_refuses_a_negative_value(tmp_path):
    from finetune.train import parse_run

    with pytest.raises(UsageError, match="--carbon_intensity -5"):
        parse_run(["--output_dir", str(tmp_path / "run"), "--carbon_intensity", "-5"])


def _zone(root, name, zone_name, energy_uj, wrap=1_000_000_000):
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "name").write_text(zone_name + "\n")
    (folder / "energy_uj").write_text(f"{energy_uj}\n")
    (folder / "max_energy_range_uj").write_text(f"{wrap}\n")
    return folder


def _set(folder, energy_uj):
    (folder / "energy_uj").write_text(f"{energy_uj}\n")


@pytest.fixture
def powercap(tmp_path):
    """A RAPL tree as Linux shows it: two packages, one with core and DRAM subzones, and the MMIO copy."""
    root = tmp_path / "powercap"
    zones = {
        "package-0": _zone(root, "intel-rapl:0", "package-0", 5_000_000),
        "core": _zone(root, "intel-rapl:0:0", "core", 1_000_000),  # part of the package: not added again
        "dram": _zone(root, "intel-rapl:0:1", "dram", 2_000_000),  # not part of the package: added
        "package-1": _zone(root, "intel-rapl:1", "package-1", 999_000_000),  # about to wrap
        "mmio": _zone(root, "intel-rapl-mmio:0", "package-0", 5_000_000),  # the package again
    }
    broken = root / "intel-rapl:2"
    broken.mkdir()
    (broken / "energy_uj").write_text("")  # unreadable counters are skipped
    return root, zones


def test_rapl_counters_sum_packages_and_dram_across_a_wrap(powercap):
    root, zones = powercap
    counters = energy.RaplCounters(root)
    assert [zone.name for zone in counters.zones] == ["intel-rapl:0", "intel-rapl:0:1", "intel-rapl:1"]
    _set(zones["package-0"], 7_000_000)  # +2 J
    _set(zones["core"], 9_000_000)  # ignored
    _set(zones["dram"], 2_500_000)  # +0.5 J
    _set(zones["package-1"], 500_000)  # wrapped at 1000 J: +1.5 J
    assert counters.sample() == pytest.approx(4.0)
    _set(zones["package-0"], 8_000_000)
    assert counters.sample() == pytest.approx(5.0)


def test_meter_reports_rapl_energy_as_measured(powercap):
    root, zones = powercap
    meter = energy.EnergyMeter(powercap_root=root, nvml=_NoNvml)
    _set(zones["package-0"], 5_000_000 + 360_000_000)  # +360 J = 0.1 Wh
    cost = meter.finish("Test CPU (2 logical CPUs)", 500.0, "--carbon_intensity")
    assert cost.energy_kwh_by_part == {"cpu_and_memory": pytest.approx(0.0001)}
    assert cost.measured and cost.source.endswith("RAPL counters") and "RAPL" in cost.method
    assert cost.co2_grams == pytest.approx(0.05)
    meter._thread.join(timeout=5)  # finish stops the sampling thread
    assert not meter._thread.is_alive()


class _NoNvml:
    """NVML as seen on a machine without an NVIDIA driver."""

    class NVMLError(Exception):
        pass

    @classmethod
    def nvmlInit(cls):
        raise cls.NVMLError("Driver Not Loaded")


def _burn_cpu(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_meter_without_counters_estimates_every_process_cpu_time(tmp_path):
    meter = energy.EnergyMeter(powercap_root=tmp_path / "no-powercap", nvml=_NoNvml)
    _burn_cpu(0.05)
    other = energy.ProcessUsage(cpu_seconds=900.0, peak_memory_gb=8.0, host=socket.gethostname())
    cost = meter.finish("Test CPU (2 logical CPUs)", 475.0, "world average", other_processes=[other])
    assert not cost.measured and cost.processes == 2
    assert 900.05 <= cost.cpu_seconds < 910  # since the meter started, not since pytest did
    assert cost.energy_kwh_by_part["cpu"] == pytest.approx(energy.estimated_cpu_kwh(cost.cpu_seconds), rel=1e-6)
    assert cost.energy_kwh_by_part["memory"] > 0
    assert cost.energy_kwh == pytest.approx(sum(cost.energy_kwh_by_part.values()))
    assert cost.co2_grams == pytest.approx(cost.energy_kwh * 475)
    assert "estimated" in cost.method and "2 training process(es)" in cost.method
    assert cost.co2_eq_emissions()["hardware_used"] == "Test CPU (2 logical CPUs)"
    assert cost.metering_seconds < 0.5


class _FakeNvml:
    """pynvml's calls the meter makes, over two GPUs: one with an energy counter (mJ), one without."""

    class NVMLError(Exception):
        pass

    energy_mj = {"GPU-aaa": 1_000_000, "GPU-bbb": None}
    limits_mw = {"GPU-aaa": 700_000, "GPU-bbb": 250_000}

    def nvmlInit(self):
        pass

    def nvmlDeviceGetCount(self):
        return 2

    def nvmlDeviceGetHandleByIndex(self, index):
        return ["GPU-aaa", "GPU-bbb"][index]

    def nvmlDeviceGetHandleByUUID(self, uuid):
        return uuid

    def nvmlDeviceGetUUID(self, handle):
        return handle.encode()  # older nvidia-ml-py returns bytes

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        if self.energy_mj[handle] is None:
            raise self.NVMLError("Not Supported")
        return self.energy_mj[handle]

    def nvmlDeviceGetEnforcedPowerLimit(self, handle):
        return self.limits_mw[handle]


def test_meter_reads_nvml_energy_and_bounds_a_gpu_without_a_counter(tmp_path):
    nvml = _FakeNvml()
    meter = energy.EnergyMeter(powercap_root=tmp_path / "no-powercap", nvml=nvml)
    nvml.energy_mj = {"GPU-aaa": 1_000_000 + 3_600_000, "GPU-bbb": None}  # +3600 J = 1 Wh
    cost = meter.finish("CPU + 1 x H100", 475.0, "world average", gpus=[("aaa", "NVIDIA H100")])
    assert cost.energy_kwh_by_part["gpu"] == pytest.approx(0.001)
    assert "NVML's energy counter" in cost.method

    meter = energy.EnergyMeter(powercap_root=tmp_path / "no-powercap", nvml=nvml)
    time.sleep(0.3)
    cost = meter.finish("CPU + 1 x T4", 475.0, "world average", gpus=[("bbb", "Tesla T4")])
    assert cost.energy_kwh_by_part["gpu"] == pytest.approx(250 * cost.wall_seconds / 3.6e6, rel=0.05)
    assert "upper bound" in cost.method and "Tesla T4 at 250 W" in cost.method


def test_rated_gpu_power_by_name():
    assert energy.rated_gpu_watts("NVIDIA H200") == 700
    assert energy.rated_gpu_watts("Some Future GPU") == energy.DEFAULT_GPU_WATTS


def test_hardware_description_names_cpu_cores_and_gpus():
    assert energy.hardware_description("Intel(R) Xeon(R) Processor", 2) == "Intel(R) Xeon(R) Processor (2 logical CPUs)"
    assert energy.hardware_description("AMD EPYC", 16, ["NVIDIA H100", "NVIDIA H100"]) == (
        "AMD EPYC (16 logical CPUs) + 2 x NVIDIA H100")
