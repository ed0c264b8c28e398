"""What serving the demo's endpoints as MCP tools costs: start-up and memory of `python app.py` three ways.

    python bench/mcp_cost.py                          # the default run's model folder, 5 rounds
    python bench/mcp_cost.py --model outputs/<run> --rounds 3

Without the `mcp` package (its import blocked, as if it were not installed), installed with the server off
(--no-mcp_server) and on (--mcp_server), alternating, each round a fresh process. Gradio imports `mcp`
whenever it is installed, so the package costs the same with the server on or off: the question for a
Space (finetune/agent_tools.py turns it on there) is what installing it costs. CPU seconds to the first
page are compared, not wall-clock seconds, which follow the machine's other load; memory is the RSS after
one answered /classify.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_line, markdown_table, require_trained_model  # noqa: E402
from startup import free_port  # noqa: E402

from finetune import artifacts  # noqa: E402

BLOCKED = ("import runpy, sys; sys.modules['mcp'] = None; sys.argv = ['app.py', *sys.argv[1:]]; "
           "runpy.run_path('app.py', run_name='__main__')")
WAYS = {
    "mcp not installed (import blocked)": ["-c", BLOCKED, "--no-mcp_server"],
    "installed, --no-mcp_server": ["app.py", "--no-mcp_server"],
    "installed, --mcp_server": ["app.py", "--mcp_server"],
}


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _rss_mb(pid: int) -> float:
    line = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("VmRSS"))
    return int(line.split()[1]) / 1024


def one_start(args: list[str], model: str, timeout: float = 180) -> tuple[float, float, float, bool]:
    """Wall and CPU seconds until the page answers, RSS after one /classify, and whether MCP is served."""
    import httpx
    from gradio_client import Client

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {**os.environ, "MODEL_ID": model, "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False"}
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, *args], cwd=REPO_ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"app.py {' '.join(args[-1:])} exited with {process.returncode}")
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.perf_counter() - start > timeout:
                raise TimeoutError(f"app.py did not answer in {timeout} s")
            time.sleep(0.05)
        wall, cpu = time.perf_counter() - start, _cpu_seconds(process.pid)
        Client(url, verbose=False).predict("A fine film.", api_name="/classify")
        served = httpx.get(url + "gradio_api/mcp/schema").status_code == 200
        return wall, cpu, _rss_mb(process.pid), served
    finally:
        process.terminate()
        process.wait(timeout=30)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=artifacts.DEFAULT_OUTPUT_DIR)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    require_trained_model(args.model)
    runs: dict[str, list] = {name: [] for name in WAYS}
    for _ in range(args.rounds):
        for name, way in WAYS.items():
            runs[name].append(one_start(way, args.model))
    rows = [[name, statistics.median(r[1] for r in got), statistics.median(r[2] for r in got),
             statistics.median(r[0] for r in got), "yes" if got[0][3] else "no"] for name, got in runs.items()]
    print(f"Machine: {machine_line()}\nModel: {args.model}\n\n### python app.py with and without MCP "
          f"(medians of {args.rounds} rounds)\n\n"
          + markdown_table(["way", "CPU s to first page", "RSS MB after /classify", "wall s (load-dependent)",
                            "MCP served"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
