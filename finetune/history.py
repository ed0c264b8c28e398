"""Per-epoch history: one row per evaluated epoch, built from the Trainer's log history."""

from typing import Any

from transformers import TrainerCallback

_EVAL_RUN_KEYS = ("eval_runtime", "eval_samples_per_second", "eval_steps_per_second")


def epoch_history(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of epoch, step, train loss (mean over the epoch's steps), eval loss and metrics.

    Train loss is the step-weighted mean of the `loss` entries logged since the previous
    evaluation. An evaluation repeated at the same step (a final `trainer.evaluate()`) is
    not a new epoch and is skipped.
    """
    rows: list[dict[str, Any]] = []
    seen_steps: set[int] = set()
    loss_sum, loss_steps, last_loss_step = 0.0, 0, 0
    for entry in log_history:
        if "loss" in entry and "eval_loss" not in entry:
            window = entry["step"] - last_loss_step
            loss_sum += entry["loss"] * window
            loss_steps += window
            last_loss_step = entry["step"]
        elif "eval_loss" in entry and entry["step"] not in seen_steps:
            seen_steps.add(entry["step"])
            row = {
                "epoch": round(entry["epoch"], 4),
                "step": entry["step"],
                "train_loss": loss_sum / loss_steps if loss_steps else None,
            }
            for key, value in entry.items():
                if key.startswith("eval_") and key not in _EVAL_RUN_KEYS:
                    row[key if key == "eval_loss" else key.removeprefix("eval_")] = value
            rows.append(row)
            loss_sum, loss_steps = 0.0, 0
    return rows


def best_row(rows: list[dict[str, Any]], metric: str, greater_is_better: bool = True) -> dict[str, Any] | None:
    metric = "eval_loss" if metric in ("loss", "eval_loss") else metric.removeprefix("eval_")
    scored = [row for row in rows if row.get(metric) is not None]
    if not scored:
        return None
    pick = max if greater_is_better else min
    return pick(scored, key=lambda row: row[metric])


class LogLossAtEpochEnd(TrainerCallback):
    """Log the training loss at every epoch's end, so no logging window spans two epochs
    and each history row's train loss is exactly that epoch's mean."""

    def on_epoch_end(self, args, state, control, **kwargs):
        control.should_log = True
        return control
