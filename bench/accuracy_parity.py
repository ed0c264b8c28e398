"""Accuracy parity: does the fast pipeline reach the tutorial recipe's accuracy? Several seeds.

    python bench/accuracy_parity.py                          # 3 seeds, 2,000 reviews, 2 epochs
    python bench/accuracy_parity.py --seeds 1 2 3 4 5 --train_samples 10000

Each configuration fine-tunes the embedded MiniLM with the real entry point (finetune.train.main)
on the same seeded subset of the embedded training reviews, for the same epochs, and is scored
on the full validation and test splits. The seed changes the subset order, the classifier's
initialisation and dropout. "Noise" is the standard deviation across seeds.

The tutorial row uses dynamic padding instead of padding="max_length": with the attention
mask, padding to 512 gives the same logits and loss (tests/test_data.py checks this on a
tiny BERT) and costs 30x more compute here, so only the speed differs. Everything else is
the tutorial's: batch 8, random order, attention dropout 0.1, learning rate 5e-5.
"""

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_line, markdown_table, quiet_libraries  # noqa: E402

from finetune import artifacts  # noqa: E402
from finetune.train import main as train  # noqa: E402

CONFIGS = {
    "tutorial recipe (batch 8, random order, attention dropout 0.1)": [
        "--per_device_train_batch_size", "8", "--train_sampling_strategy", "random", "--attention_dropout", "0.1"],
    "project default (batch 16, length-grouped, attention dropout 0)": [],
    "project default with attention dropout 0.1": ["--attention_dropout", "0.1"],
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--train_samples", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args(argv)
    quiet_libraries()
    scores: dict[str, list[tuple[float, float]]] = {name: [] for name in CONFIGS}
    with tempfile.TemporaryDirectory(prefix="parity-") as tmp:
        for seed in args.seeds:
            for name, flags in CONFIGS.items():
                out = Path(tmp) / f"{len(scores[name])}-{seed}-{abs(hash(name))}"
                code = train([*flags, "--seed", str(seed), "--max_train_samples", str(args.train_samples),
                              "--num_train_epochs", str(args.epochs), "--output_dir", str(out),
                              "--disable_tqdm", "true", "--dataloader_pin_memory", "false", "--logging_strategy", "epoch"])
                if code != 0:
                    return code
                result = artifacts.read_json(out, artifacts.RESULTS_FILE)["scores"]
                scores[name].append((result["validation"]["accuracy"], result["test"]["accuracy"]))
                print(f"  seed {seed}: {name}: validation {scores[name][-1][0]:.4f}, test {scores[name][-1][1]:.4f}",
                      flush=True)

    def mean_std(values):
        return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)

    base_val = statistics.mean(v for v, _ in scores[next(iter(CONFIGS))])
    rows = []
    for name, pairs in scores.items():
        val_mean, val_std = mean_std([v for v, _ in pairs])
        test_mean, test_std = mean_std([t for _, t in pairs])
        rows.append([name, f"{val_mean:.4f} ± {val_std:.4f}", f"{(val_mean - base_val) * 100:+.2f}",
                     f"{test_mean:.4f} ± {test_std:.4f}", " ".join(f"{v:.3f}" for v, _ in pairs)])
    print(f"\nMachine: {machine_line()}\n\n### Accuracy parity: embedded MiniLM, {args.train_samples:,} training "
          f"reviews, {args.epochs} epochs, seeds {args.seeds} (mean ± standard deviation across seeds)\n\n"
          + markdown_table(["configuration", "validation accuracy", "points vs tutorial", "test accuracy",
                            "validation per seed"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
