"""The precision probe alone: fp32 against bf16 autocast on the model and batch a training run would probe.

    python bench/precision.py                                  # the default run's model and data
    python bench/precision.py --max_train_samples 1536 --rounds 5
    python bench/precision.py --train_file reviews.csv --per_device_train_batch_size 32

Any finetune/train.py flag picks the model, the data and the batch. Each round runs the probe of
finetune/precision.py (a warm-up and a few alternating repeats of forward + backward) without its cache,
and prints both timings, their ratio and what a run would choose. The CPU's model name and bf16 flags
head the output, for bench/results/.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _common import machine_line, quiet_libraries  # noqa: E402
from transformers import DataCollatorWithPadding  # noqa: E402

from finetune import machine, precision  # noqa: E402
from finetune.train import (  # noqa: E402
    parse_run,  # noqa: E402
    prepare,
    set_cpu_threads,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="Probes to run, one after the other.")
    own, train_flags = parser.parse_known_args()
    quiet_libraries()
    # --bf16 given: prepare() loads the model and data without probing; the probe runs below, uncached.
    config = parse_run([*train_flags, "--bf16", "false", "--output_dir", "/tmp/bench-precision"])
    set_cpu_threads(config)
    run = prepare(config)
    print(machine_line())
    print(f"bf16 flags: {', '.join(machine.bf16_flags(machine.cpu_flags())) or 'none'}")

    train = run.tokenized["train"]
    sample, lengths = precision.length_sample(train)
    length = int(np.median(lengths))
    rows = precision.probe_rows(config.training.per_device_train_batch_size, length,
                                config.run.max_train_batch_tokens or None)
    batch = precision.probe_batch(sample, lengths, DataCollatorWithPadding(run.tokenizer), rows, length)
    print(f"probe batch: {rows} reviews x {batch['input_ids'].shape[1]} tokens (median of {len(lengths):,} "
          f"training reviews), {torch.get_num_threads()} threads")
    print("| round | fp32 ms | bf16 ms | fp32/bf16 | repeats | choice |\n|---|---|---|---|---|---|")
    for round_number in range(1, own.rounds + 1):
        fp32, bf16, repeats = precision.measure(run.model, batch)
        choice = "bf16" if precision.choose(fp32, bf16) else "fp32"
        print(f"| {round_number} | {fp32 * 1000:.0f} | {bf16 * 1000:.0f} | {fp32 / bf16:.2f} | {repeats} | {choice} |")


if __name__ == "__main__":
    main()
