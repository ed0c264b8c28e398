"""Demo start-up: seconds from `python app.py` to the first answered /classify request.

    python bench/startup.py                       # the default run's model folder, 3 rounds
    python bench/startup.py --model outputs/<run> --rounds 5

Side by side, alternating, against the usual tutorial demo (bench/baseline_app.py:
gr.Interface around transformers.pipeline) on the same model, and against app.py serving
with PyTorch (ENGINE=pytorch: how it served before models had an ONNX copy). Each round
starts a fresh process and polls with gradio_client until the first classification comes back.
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_line, markdown_table, require_trained_model  # noqa: E402

from finetune import artifacts  # noqa: E402

# name -> (script, extra environment)
APPS = {
    "app.py (this project)": ("app.py", {}),
    "app.py, PyTorch engine (ENGINE=pytorch)": ("app.py", {"ENGINE": "pytorch"}),
    "baseline: gr.Interface + pipeline": ("bench/baseline_app.py", {}),
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def seconds_to_first_answer(script: str, model: str, timeout: float = 120, extra_env: dict | None = None) -> float:
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    port = free_port()
    env = {**os.environ, "MODEL_ID": model, "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False",
           **(extra_env or {})}
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, script], cwd=REPO_ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{script} exited with {process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    pass
                Client(f"http://127.0.0.1:{port}/", verbose=False).predict("A fine film.", api_name="/classify")
                return time.perf_counter() - start
            except AppError:
                raise  # the app is up but its answer failed: a bug, not a slow start
            except Exception:  # not listening yet, or not ready to serve its API
                if time.perf_counter() - start > timeout:
                    raise TimeoutError(f"{script} did not answer in {timeout} s") from None
                time.sleep(0.05)
    finally:
        process.terminate()
        process.wait(timeout=30)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=artifacts.DEFAULT_OUTPUT_DIR)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    require_trained_model(args.model)
    times: dict[str, list[float]] = {name: [] for name in APPS}
    for _ in range(args.rounds):
        for name, (script, extra_env) in APPS.items():
            times[name].append(seconds_to_first_answer(script, args.model, extra_env=extra_env))
    ours = statistics.median(times["app.py (this project)"])
    rows = [[name, statistics.median(t), min(t), max(t), f"{statistics.median(t) / ours:.2f}x"]
            for name, t in times.items()]
    print(f"Machine: {machine_line()}\nModel: {args.model}\n\n### Demo start-up to first answered request "
          f"({args.rounds} rounds)\n\n"
          + markdown_table(["app", "median s", "min s", "max s", "vs app.py"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
