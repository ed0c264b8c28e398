"""bf16 autocast or fp32 on a CPU: measured on the model about to be trained, not read from the CPU's flags.

CPUs with the same bf16 flags differ: on a 2-core AMD EPYC with AVX512-BF16, bf16 autocast trained 1.5x
faster than fp32; on an Intel Xeon with AVX512-BF16 but no AMX it trained 1.6x slower (README, "bf16 on
CPU"). So `measure` times forward + backward of the real model on a representative batch in both
precisions (a warm-up, then a few alternating repeats, a few seconds in all), and `choose` keeps fp32
unless bf16 is clearly faster. The model is left as it was: no optimizer step, gradients and buffers as
before, train/eval mode restored, and the random number generator's state restored, so that a probed run
trains exactly as a run given the same --bf16 would.

A result is cached per machine (CPU model and flags), torch version, thread count, model shape and length
bucket, in `cache_file()`; the log says when the cached answer is used.
"""

import contextlib
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from finetune import machine

logger = logging.getLogger(__name__)

MIN_SPEEDUP = 1.05  # bf16 must be this much faster than fp32 to be chosen: below it, noise could decide
PROBE_BUDGET_SECONDS = 3.0  # timed repeats stop within about this much (warm-ups included)
MAX_REPEATS = 5
LENGTH_SAMPLE_ROWS = 10_000  # the median length is read from at most this many rows, evenly spaced
CACHE_FILE = "precision-probes.json"


@dataclass
class ProbeResult:
    fp32_ms: float  # one forward + backward, the mean of the repeats (each a new shape)
    bf16_ms: float
    rows: int  # the probe batch: this many reviews ...
    length: int  # ... padded to this many tokens
    repeats: int
    measured: str = ""  # when (UTC, ISO date)
    cached_in: str | None = None  # the cache file, when the answer came from it

    @property
    def bf16(self) -> bool:
        return choose(self.fp32_ms, self.bf16_ms)

    def describe(self) -> str:
        """The log's words: both timings, and why the choice (which the device summary line names)."""
        speedup = self.fp32_ms / self.bf16_ms
        verdict = (f"bf16 {speedup:.2f}x as fast" if self.bf16 else
                   f"bf16 {speedup:.2f}x as fast as fp32, not {MIN_SPEEDUP:.2f}x or more: fp32 kept")
        source = (f"cached probe of {self.measured} in {self.cached_in}" if self.cached_in else
                  f"probe of {self.repeats} repeat(s)")
        return (f"{source}, {self.rows} reviews x {self.length} tokens: fp32 {self.fp32_ms:.0f} ms, bf16 "
                f"{self.bf16_ms:.0f} ms per forward+backward; {verdict}; --bf16 true|false decides without a probe")


def choose(fp32_seconds: float, bf16_seconds: float, min_speedup: float = MIN_SPEEDUP) -> bool:
    """bf16 when it is clearly faster than fp32; fp32 otherwise (a tie keeps full precision)."""
    return fp32_seconds >= bf16_seconds * min_speedup


def apply(args, bf16: bool) -> None:
    """Set the choice on already-built TrainingArguments: its __post_init__ turned bf16/fp16 into
    `mixed_precision` once, and the Trainer hands `mixed_precision` (not `bf16`) to the Accelerator, so
    both must change; the card (report.py) and run_config.yaml then record the final choice."""
    args.bf16 = bf16
    args.mixed_precision = "bf16" if bf16 else ("fp16" if args.fp16 else "no")


# --- the probe --------------------------------------------------------------------------------------


def decide(model, train, collator, rows: int, max_tokens: int | None = None, threads: int | None = None,
           measure_fn: Callable[..., tuple[float, float, int]] | None = None,
           cache: Path | None = None, limit: int | None = None, reused_shapes: bool = False) -> ProbeResult:
    """The precision for training `model` on `train` (a tokenized split) in batches of `rows`: from the
    cache when this machine measured the same case before, else measured now and cached. `limit` is the most
    tokens the model takes (finetune/truncation.py's model_limit): no probe batch is longer. `reused_shapes`: the
    training batches are padded to buckets (--pad_to_multiple_of above 1), so a step mostly meets a shape whose
    kernels exist and every repeat times the warm shape; False: each repeat is a new shape, as unbucketed
    length-grouped steps are."""
    sample, lengths = length_sample(train)
    length = int(np.median(lengths))
    rows = probe_rows(rows, length, max_tokens)
    threads = threads or torch.get_num_threads()
    cache = cache or cache_file()
    key, facts = cache_key(model.config, rows, length, threads, reused_shapes=reused_shapes)
    cached = read_cache(cache).get(key)
    if cached is not None:
        try:
            return ProbeResult(**{**cached["result"], "cached_in": str(cache)})
        except (KeyError, TypeError):  # an entry of another version of this file: measure again
            pass
    batch = probe_batch(sample, lengths, collator, rows, length, limit)
    fp32, bf16, repeats = (measure_fn or measure)(model, batch, new_shapes=not reused_shapes)
    result = ProbeResult(round(fp32 * 1000, 1), round(bf16 * 1000, 1), rows, int(batch["input_ids"].shape[1]),
                         repeats, measured=datetime.now(timezone.utc).date().isoformat())
    write_cache(cache, key, facts, result)
    return result


def measure(model, batch: dict[str, torch.Tensor], timer: Callable[[], float] = time.perf_counter,
            budget: float = PROBE_BUDGET_SECONDS, new_shapes: bool = True) -> tuple[float, float, int]:
    """Seconds of one forward + backward in fp32 and under bf16 autocast (the mean of a few alternating
    repeats, after one warm-up each), and the number of repeats; the model is left as it was.

    With `new_shapes`, each repeat pads the batch one token longer: a new shape, as almost every step of
    length-grouped training without buckets is. On a Sapphire Rapids Xeon (AMX) bf16 was 1.4x *faster* than
    fp32 on a shape it had seen and 1.45x slower on a new one, which is what whole runs showed
    (bench/results/2026-12-01-precision.md). Without, every repeat times the warm shape: bucketed training
    (finetune/batching.py BucketedCollator) meets each of its few shapes many times.
    """
    with untouched(model):
        step = _step_timer(model, timer)
        warm = step(batch, False) + step(batch, True)  # the first call of each also loads its libraries
        repeats = max(1, min(MAX_REPEATS, int(budget / max(warm, 1e-9)) - 1))
        fp32, bf16 = [], []
        for extra in range(1, repeats + 1):
            longer = padded(batch, extra) if new_shapes else batch
            fp32.append(step(longer, False))
            bf16.append(step(longer, True))
    return sum(fp32) / repeats, sum(bf16) / repeats, repeats


def padded(batch: dict[str, torch.Tensor], extra: int) -> dict[str, torch.Tensor]:
    """The batch with `extra` more padding columns (masked out): the same reviews in a new shape."""
    # Per-token tensors (ids, attention mask, token types) grow; zeros are masked out, whatever id 0 means. The
    # labels do not (a multi-label batch's are 2-D too: one 0/1 per label).
    return {name: torch.nn.functional.pad(value, (0, extra)) if value.dim() == 2 and name != "labels" else value
            for name, value in batch.items()}


def _step_timer(model, timer):
    parameters = [p for p in model.parameters() if p.requires_grad]

    def step(batch, bf16: bool) -> float:
        start = timer()
        # As accelerate's CPU bf16 does: the forward under autocast, the backward outside it.
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(**batch).loss
        loss.backward()
        seconds = timer() - start
        for parameter in parameters:
            parameter.grad = None
        return seconds

    return step


@contextlib.contextmanager
def untouched(model):
    """Whatever runs inside leaves `model` and torch's random state as they were: gradients, buffers,
    train/eval mode and the CPU generator (dropout draws from it) are put back."""
    was_training = model.training
    parameters = list(model.parameters())
    grads = [p.grad for p in parameters]
    buffers = {name: buffer.detach().clone() for name, buffer in model.named_buffers()}
    with torch.random.fork_rng(devices=[]):
        try:
            for parameter in parameters:
                parameter.grad = None
            model.train()  # dropout as in training: the probe times a training step
            yield
        finally:
            for parameter, grad in zip(parameters, grads, strict=True):
                parameter.grad = grad
            with torch.no_grad():
                for name, buffer in model.named_buffers():
                    buffer.copy_(buffers[name])
            model.train(was_training)


def length_sample(train):
    """At most LENGTH_SAMPLE_ROWS rows of the split, evenly spaced, and their token counts."""
    count = len(train)
    if count == 0:
        raise ValueError("the training split is empty")
    picked = np.unique(np.linspace(0, count - 1, min(count, LENGTH_SAMPLE_ROWS)).astype(np.int64))
    sample = train.select(picked)
    if "length" in sample.column_names:  # precomputed by data preparation
        lengths = np.asarray(sample["length"], dtype=np.int64)
    else:
        lengths = np.fromiter((len(ids) for ids in sample["input_ids"]), dtype=np.int64, count=len(sample))
    return sample, lengths


def probe_rows(batch_rows: int, length: int, max_tokens: int | None) -> int:
    """The rows of one forward/backward in training: a batch past --max_train_batch_tokens runs in pieces."""
    if max_tokens:
        return max(1, min(batch_rows, max_tokens // max(1, length)))
    return batch_rows


def probe_batch(sample, lengths: np.ndarray, collator, rows: int, length: int,
                limit: int | None = None) -> dict[str, torch.Tensor]:
    """`rows` reviews of about `length` tokens (the nearest to it), collated as the Trainer collates. With a
    `limit`, the batch leaves room for `measure`'s padding: at most limit - MAX_REPEATS tokens long. Where the
    median review fills the model's maximum length (long reviews, cut to it), the last columns go: a batch
    past the model's position embeddings fails inside it, and the timing hardly changes by a few tokens."""
    nearest = np.argsort(np.abs(lengths - length), kind="stable")[:rows]
    nearest = np.resize(nearest, rows)  # a split smaller than a batch: reviews repeat, as the shape needs
    columns = [c for c in ("input_ids", "attention_mask", "token_type_ids", "label", "labels") if c in sample.column_names]
    features = [{c: row[c] for c in columns} for row in (sample[int(i)] for i in nearest)]
    batch = dict(collator(features))
    room = None if limit is None else max(1, limit - MAX_REPEATS)
    if room is not None and batch["input_ids"].shape[1] > room:
        batch = {name: value[:, :room] if value.dim() == 2 and name != "labels" else value
                 for name, value in batch.items()}
    return batch


# --- the cache --------------------------------------------------------------------------------------


def cache_file() -> Path:
    """$HF_HOME/finetune-reviews/precision-probes.json, or ~/.cache/finetune-reviews/ without HF_HOME."""
    base = Path(os.environ["HF_HOME"]) if os.environ.get("HF_HOME") else Path("~/.cache").expanduser()
    return base / "finetune-reviews" / CACHE_FILE


def length_bucket(length: int) -> int:
    """Lengths in one bucket (up to the next power of two, at least 16) share a cached probe."""
    return 2 ** math.ceil(math.log2(max(16, length)))


def model_shape_hash(config) -> str:
    """The model's configuration without its names and labels: what a step's cost depends on."""
    shape = {k: v for k, v in config.to_dict().items()
             if k not in ("id2label", "label2id", "_name_or_path", "name_or_path", "transformers_version")}
    shape["num_labels"] = config.num_labels
    shape["attn_implementation"] = getattr(config, "_attn_implementation", None)
    return hashlib.sha256(json.dumps(shape, sort_keys=True, default=str).encode()).hexdigest()[:16]


# 2: each timed step a new shape (length-grouped training changes shape on most steps; bf16 kernels of a
# shape seen before ran 1.40x faster than fp32 here, of a new shape 1.45x slower). Version 1 repeated one
# shape and chose bf16 where whole runs were slower in it.
PROBE_VERSION = 2


def cache_key(config, rows: int, length: int, threads: int, cpu: str | None = None,
              flags: list[str] | None = None, reused_shapes: bool = False) -> tuple[str, dict[str, Any]]:
    """The key a probe is cached under, and the facts it stands for (kept next to it for a reader). A probe of the
    warm shape (`reused_shapes`, for bucketed training) is its own case; the new-shape probe keeps its keys."""
    flags = machine.cpu_flags() if flags is None else flags
    facts = {
        "probe": PROBE_VERSION,  # a change in how the probe measures makes earlier answers stale
        "cpu": machine.cpu_model() if cpu is None else cpu,
        "cpu_flags": hashlib.sha256(" ".join(sorted(flags)).encode()).hexdigest()[:16],
        "bf16_flags": machine.bf16_flags(flags),
        "torch": torch.__version__,
        "threads": threads,
        "model": model_shape_hash(config),
        "rows": rows,
        "length_bucket": length_bucket(length),
    }
    if reused_shapes:
        facts["reused_shapes"] = True
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:24], facts


def read_cache(path: Path) -> dict[str, Any]:
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError):  # none yet, or unreadable: measure (and rewrite it)
        return {}
    return entries if isinstance(entries, dict) else {}


def write_cache(path: Path, key: str, facts: dict[str, Any], result: ProbeResult) -> None:
    """Add one entry, atomically (runs in parallel each write a whole file); a failure only warns."""
    entry = asdict(result)
    entry.pop("cached_in")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        entries = {**read_cache(path), key: {"facts": facts, "result": entry}}
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(entries, indent=2) + "\n")
        os.replace(temporary, path)
    except OSError as err:
        logger.warning("could not cache the precision probe in %s (%s); the next run measures again", path, err)
