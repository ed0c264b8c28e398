"""What measuring a run's energy costs: short trainings with the meter on and off, side by side.

    python bench/energy.py                        # 3 rounds of 2 runs (off, on), 512 training reviews, 1 epoch
    python bench/energy.py --rounds 5 --max_train_samples 1024

Each round runs `python finetune/train.py` twice in fresh processes, one after the other: with
FINETUNE_ENERGY=0 (no meter) and with the meter (the default), alternating which goes first. It prints
each run's wall time (launch to exit) and training seconds (results.json), the medians and their ratio
(on / off), and the meter's own time as the run recorded it (results.json cost.metering_seconds): what the
start and the final reading cost the main process. It also times one RAPL reading on a fake powercap folder,
the sampling thread's only work (once every RAPL_SAMPLE_SECONDS), since this machine may have no RAPL.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_line, markdown_table  # noqa: E402


def train(output_dir: Path, meter: bool, samples: int) -> dict:
    command = [sys.executable, str(REPO / "finetune" / "train.py"), "--max_train_samples", str(samples),
               "--max_eval_samples", "64", "--max_test_samples", "64", "--num_train_epochs", "1",
               "--export_onnx", "false", "--bf16", "false", "--disable_tqdm", "true",
               "--output_dir", str(output_dir), "--overwrite_output_dir"]
    env = {**os.environ, "FINETUNE_ENERGY": "1" if meter else "0"}
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    results = json.loads((output_dir / "results.json").read_text())
    load = os.getloadavg()[0]
    return {"meter": "on" if meter else "off", "wall": wall, "training": results["seconds"]["training"],
            "cost": results["cost"], "load": load}


def rapl_read_seconds(reads: int = 2000) -> float:
    from finetune.energy import RaplCounters

    with tempfile.TemporaryDirectory() as tmp:
        for name, zone in (("intel-rapl:0", "package-0"), ("intel-rapl:0:1", "dram"), ("intel-rapl:1", "package-1")):
            folder = Path(tmp) / name
            folder.mkdir()
            (folder / "name").write_text(zone)
            (folder / "energy_uj").write_text("123456789")
            (folder / "max_energy_range_uj").write_text("262143328850")
        counters = RaplCounters(Path(tmp))
        start = time.perf_counter()
        for _ in range(reads):
            counters.sample()
        return (time.perf_counter() - start) / reads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max_train_samples", type=int, default=512)
    args = parser.parse_args()
    from finetune.energy import RAPL_SAMPLE_SECONDS

    print(f"# Energy meter overhead\n\n{machine_line()}\n")
    print(f"`python bench/energy.py --rounds {args.rounds} --max_train_samples {args.max_train_samples}`: "
          "`finetune/train.py --num_train_epochs 1 --max_eval_samples 64 --max_test_samples 64 --export_onnx false "
          "--bf16 false`, FINETUNE_ENERGY=0 (off) against the default (on), alternating order.\n")
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            order = (False, True) if round_ % 2 == 0 else (True, False)
            for meter in order:
                run = train(Path(tmp) / "run", meter, args.max_train_samples)
                run["round"] = round_ + 1
                runs.append(run)
                print(f"round {run['round']} meter {run['meter']}: wall {run['wall']:.1f} s, training "
                      f"{run['training']:.1f} s, load {run['load']:.1f}", file=sys.stderr)
    rows = [[r["round"], r["meter"], r["wall"], r["training"],
             "-" if r["cost"] is None else f"{r['cost']['metering_seconds']:.4f}",
             "-" if r["cost"] is None else f"{r['cost']['energy_kwh']:.3g}", r["load"]] for r in runs]
    print(markdown_table(["round", "meter", "wall s (launch to exit)", "training s", "meter's own s", "kWh",
                          "load avg"], rows))
    on = [r for r in runs if r["meter"] == "on"]
    off = [r for r in runs if r["meter"] == "off"]
    wall_ratio = statistics.median(r["wall"] for r in on) / statistics.median(r["wall"] for r in off)
    train_ratio = statistics.median(r["training"] for r in on) / statistics.median(r["training"] for r in off)
    own = statistics.median(r["cost"]["metering_seconds"] / r["cost"]["wall_seconds"] for r in on)
    read = rapl_read_seconds()
    print(f"\nmedian wall on / off: **{wall_ratio:.3f}**; median training seconds on / off: {train_ratio:.3f}")
    print(f"the meter's own time (start + final reading, main process): median {own:.4%} of the run's wall time")
    print(f"one RAPL reading of 3 zones (fake powercap folder): {read * 1e6:.0f} µs; the sampling thread reads "
          f"once every {RAPL_SAMPLE_SECONDS:g} s: {read / RAPL_SAMPLE_SECONDS:.6%} of the time")
    print(f"method of these runs: {on[0]['cost']['method']}")


if __name__ == "__main__":
    main()
