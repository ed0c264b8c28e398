"""What pushing checkpoints to the Hub while training costs the training: the stall.

    python bench/hub_push_stall.py                     # embedded MiniLM, 960 reviews, a save every 20 steps
    python bench/hub_push_stall.py --repeats 3 --save_steps 10

It starts the fake Hub of the tests (tests/fake_hub.py, LFS uploads as the real Hub takes them) in
this process and runs `python finetune/train.py` in fresh processes, alternately without pushing
and with `--push_to_hub --hub_strategy checkpoint` (each save uploads the model at the repo's root
and the whole checkpoint, optimizer states included, under last-checkpoint/: about 270 MB for
MiniLM). It reports the training phase's seconds (results.json, evaluation excluded), how much of
it the callback held training up (`training waited`), how long the uploads took in the background,
and how long the end of training waited for the last one; the ratio compares the training loop's
time with pushes running beside it to the time without. A save every 20 steps (every few seconds
here) is far more often than a real run saves; the fake Hub also hashes every upload on the same
cores: both make this an upper bound on the cost.
"""

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_line, markdown_table  # noqa: E402

TOKEN = "hf_benchTokenForTheFakeHub0123456789"
SUMMARY = re.compile(r"(\d+) checkpoint push\(es\).*?training waited ([\d.]+) s for them \(uploads took ([\d.]+) s "
                     r"in the background\), its end ([\d.]+) s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(flags: list[str], output_dir: Path, env: dict) -> dict:
    command = [sys.executable, str(REPO / "finetune" / "train.py"), *flags, "--output_dir", str(output_dir),
               "--disable_tqdm", "true"]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"run failed ({result.returncode}):\n{result.stderr[-3000:]}")
    seconds = json.loads((output_dir / "results.json").read_text())["seconds"]
    measured = {"training": seconds["training"], "pushes": 0, "stalled": 0.0, "uploading": 0.0, "end_wait": 0.0}
    found = SUMMARY.search(result.stdout)
    if found:
        measured.update(pushes=int(found[1]), stalled=float(found[2]), uploading=float(found[3]),
                        end_wait=float(found[4]))
    return measured


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2, help="runs of each kind, alternating (median reported)")
    parser.add_argument("--max_train_samples", type=int, default=960)
    parser.add_argument("--num_train_epochs", type=int, default=2)
    parser.add_argument("--save_steps", type=int, default=20)
    args = parser.parse_args(argv)

    port = free_port()
    home = Path(tempfile.mkdtemp(prefix="bench-hub-home-"))
    env = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_TOKEN": TOKEN, "HF_HOME": str(home),
           "HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "TRANSFORMERS_VERBOSITY": "warning"}
    os.environ.update(env)
    from fake_hub import FakeHub  # noqa: PLC0415  (after the environment is set)

    hub = FakeHub(port, tokens={TOKEN}, keep_bodies=False).start()
    common = ["--max_train_samples", str(args.max_train_samples), "--max_eval_samples", "200",
              "--max_test_samples", "200", "--num_train_epochs", str(args.num_train_epochs),
              "--save_strategy", "steps", "--save_steps", str(args.save_steps), "--load_best_model_at_end", "false"]
    kinds = {"no push while training": [],
             "--hub_strategy checkpoint": ["--push_to_hub", "--hub_strategy", "checkpoint"]}
    print(f"Machine: {machine_line()}; load average {os.getloadavg()[0]:.1f} at the start", flush=True)
    results: dict[str, list[dict]] = {kind: [] for kind in kinds}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-hub-stall-") as tmp:
            for repeat in range(args.repeats):
                for i, (kind, flags) in enumerate(kinds.items()):
                    repo_flags = ["--hub_model_id", f"me/stall-{repeat}"] if flags else []
                    started = time.perf_counter()
                    measured = run(common + flags + repo_flags, Path(tmp) / f"run-{repeat}-{i}", env)
                    results[kind].append(measured)
                    print(f"  measured: {kind} #{repeat + 1}: training {measured['training']:.1f} s "
                          f"(run {time.perf_counter() - started:.0f} s)", flush=True)
    finally:
        hub.stop()

    base = statistics.median(m["training"] for m in results["no push while training"])
    rows = []
    for kind, runs in results.items():
        median = {key: statistics.median(m[key] for m in runs) for key in runs[0]}
        loop = median["training"] - median["end_wait"]  # the training loop, uploads running beside it
        rows.append([kind, median["training"], median["pushes"], median["stalled"], median["uploading"],
                     median["end_wait"], f"{loop / base:.3f}x", f"{median['training'] / base:.3f}x"])
    print(f"\n### Checkpoint pushes while training: embedded MiniLM, {args.max_train_samples} reviews x "
          f"{args.num_train_epochs} epochs, a save every {args.save_steps} steps, medians of {args.repeats}; "
          f"load average {os.getloadavg()[0]:.1f} at the end\n")
    print(markdown_table(["run", "training s", "pushes", "training waited s", "uploads s (background)",
                          "end waited s", "loop vs no push", "training phase vs no push"], rows), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
