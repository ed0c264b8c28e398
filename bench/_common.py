"""Shared instruments for the benchmarks: the machine's matmul peak, model FLOPs, review length mixes."""

import math
import platform
import random
import time
from datetime import date

import torch


def matmul_peak_flops(size: int = 2048, repeats: int = 10) -> float:
    """fp32 FLOP/s of a large square torch.mm where training runs (the GPU if there is one, else the
    CPU with the current thread setting)."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        size *= 4
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    for _ in range(2):
        torch.mm(a, b)
    best = math.inf
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        torch.mm(a, b)
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def non_embedding_parameters(model) -> int:
    embedding_ids = {id(p) for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()}
    return sum(p.numel() for p in model.parameters() if id(p) not in embedding_ids)


def training_flops(non_embedding_params: int, layers: int, hidden: int, batch: int, length: int) -> float:
    """Forward + backward FLOPs of one batch padded to `length`: 6·P·B·L for the weights, plus
    12·layers·hidden·B·L² for the attention products (QKᵀ and AV, forward and backward)."""
    return 6 * non_embedding_params * batch * length + 12 * layers * hidden * batch * length**2


def yelp_like_reviews(source: list[str], tokenizer, count: int, seed: int = 0, median: int = 160,
                      share_over_512: float = 0.06) -> list[str]:
    """Reviews with a Yelp-like length mix (log-normal word pieces: median ~160, ~6% past 512),
    made of real review sentences strung together."""
    rng = random.Random(seed)
    sigma = math.log(512 / median) / 1.5548  # the normal quantile of 1 - 0.06
    if share_over_512 != 0.06:
        raise ValueError("only the 6% tail is calibrated")
    texts = []
    pieces_per_word = 1.25
    for _ in range(count):
        target = max(8, int(rng.lognormvariate(math.log(median), sigma)))
        words: list[str] = []
        while len(words) * pieces_per_word < target:
            words.extend(rng.choice(source).split())
        texts.append(" ".join(words[: int(target / pieces_per_word)]))
    return texts


def machine_line() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{date.today()} · {cpu} · {torch.get_num_threads()} threads · {gpu} · torch {torch.__version__}"


def markdown_table(headers: list[str], rows: list[list]) -> str:
    def cell(value):
        return f"{value:,.2f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def quiet_libraries() -> None:
    """Benchmarks print tables, not progress bars and load reports."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()


def require_trained_model(folder: str) -> None:
    """Exit with the command that creates the model when `folder` holds none."""
    import sys
    from pathlib import Path

    from finetune import artifacts

    if not artifacts.holds_model(Path(folder)):
        sys.exit(f"error: no model in {folder}. Train one first: .venv/bin/accelerate launch finetune/train.py")
