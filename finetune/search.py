"""Hyperparameter search: `Trainer.hyperparameter_search` with optuna, scored on validation only.

Each trial trains a fresh model with sampled TrainingArguments (learning rate, batch size,
epochs, warmup, weight decay by default; a recipe's `hp_search_space` replaces that) and is
scored by the metric that picks the best model (`--metric_for_best_model`), at its best epoch.
The test split is never looked at. Hopeless trials are stopped after an epoch whose score is
below the median of the earlier trials' scores at that epoch. Under `accelerate launch` only the
main process samples (transformers broadcasts each trial's parameters); the decision to stop a
trial is broadcast too, so every process stops together.
"""

import copy
import logging
import math
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import yaml
from transformers import Trainer, TrainerCallback, TrainingArguments

from finetune.errors import UsageError

logger = logging.getLogger(__name__)

# The default space, in the vocabulary of the recipe key `hp_search_space`.
DEFAULT_SPACE: dict[str, dict[str, Any]] = {
    "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-4, "log": True},
    "per_device_train_batch_size": {"type": "categorical", "choices": [8, 16, 32]},
    "num_train_epochs": {"type": "int", "low": 1, "high": 4},
    "warmup_steps": {"type": "float", "low": 0.0, "high": 0.2},  # a fraction of the steps (transformers 5)
    "weight_decay": {"type": "float", "low": 0.0, "high": 0.1},
}
SPACE_TYPES = ("float", "int", "categorical")
# Settings of this project (RunArguments) a trial may set besides TrainingArguments: the Trainer sets a trial's
# parameters on its arguments, where the trainer reads these (finetune/batching.py create_optimizer).
RUN_SETTINGS = ("layerwise_lr_decay",)
PRUNE_AFTER_TRIALS = 2  # finished trials needed before a median means anything
PRUNE_FROM_EVALUATION = 1  # the first epoch of a trial is never judged


@dataclass
class TrialRecord:
    number: int
    params: dict[str, Any]
    value: float | None  # the objective at the trial's best epoch
    state: str  # complete, pruned or failed
    seconds: float
    epoch_values: list[float] = field(default_factory=list)


@dataclass
class SearchResult:
    metric: str
    direction: str
    space: dict[str, dict[str, Any]]
    train_samples: int
    trials: list[TrialRecord]
    best_params: dict[str, Any]
    best_value: float

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "trials": [asdict(t) for t in self.trials]}


def parse_space(text: str | None) -> dict[str, dict[str, Any]]:
    """The search space from --hp_search_space (YAML or JSON mapping), checked, or the default."""
    if not text:
        return copy.deepcopy(DEFAULT_SPACE)
    try:
        space = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise UsageError(f"--hp_search_space: not valid YAML or JSON ({err}).") from err
    if not isinstance(space, dict) or not space:
        raise UsageError("--hp_search_space: expected a mapping of TrainingArguments names to ranges, e.g. "
                         '{"learning_rate": {"type": "float", "low": 1e-5, "high": 1e-4, "log": true}}.')
    known = {f.name for f in TrainingArguments.__dataclass_fields__.values()} | set(RUN_SETTINGS)
    for name, spec in space.items():
        where = f"--hp_search_space {name}"
        if name not in known:
            raise UsageError(f"{where}: not a TrainingArguments setting (e.g. learning_rate, num_train_epochs).")
        if not isinstance(spec, dict) or spec.get("type") not in SPACE_TYPES:
            raise UsageError(f"{where}: give a mapping with type one of {', '.join(SPACE_TYPES)}.")
        if spec["type"] == "categorical":
            if not isinstance(spec.get("choices"), list) or not spec["choices"]:
                raise UsageError(f"{where}: a categorical range needs a non-empty list `choices`.")
        else:
            # YAML reads 1e-5 (no dot) as a string: take numbers written either way.
            low, high = spec["low"], spec["high"] = _number(spec.get("low")), _number(spec.get("high"))
            if low is None or high is None or low > high:
                raise UsageError(f"{where}: a {spec['type']} range needs numbers low <= high.")
            if spec.get("log") and low <= 0:
                raise UsageError(f"{where}: a log range needs low > 0.")
    return space


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def suggest(trial, space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One trial's parameters (works with optuna's Trial and FixedTrial alike)."""
    params = {}
    for name, spec in space.items():
        if spec["type"] == "categorical":
            params[name] = trial.suggest_categorical(name, spec["choices"])
        elif spec["type"] == "int":
            params[name] = trial.suggest_int(name, int(spec["low"]), int(spec["high"]), log=bool(spec.get("log")))
        else:
            params[name] = trial.suggest_float(name, float(spec["low"]), float(spec["high"]),
                                               log=bool(spec.get("log")))
    return params


class TrialMonitor(TrainerCallback):
    """Times each trial, keeps its score per epoch, and stops it when it is hopeless (median rule).

    The Trainer reports every evaluation to optuna itself; the study's own pruner is off, because
    transformers raises optuna's TrialPruned in the main process alone, which would leave the other
    processes waiting. Here the main process decides, the decision is broadcast, every process stops
    the trial after that epoch, and the main process marks it pruned once training has wound down.
    """

    def __init__(self, metric_key: str, maximize: bool):
        self.metric_key, self.maximize = metric_key, maximize
        self.history: dict[int, list[float]] = {}  # finished trial -> its score after each evaluation
        self.seconds: dict[int, float] = {}
        self.pruned: set[int] = set()
        self.trial = None  # the live optuna trial (main process) or its FixedTrial copy
        self.values: list[float] = []
        self._prune_now = False

    # compute_objective for Trainer.hyperparameter_search: the best score so far in this trial.
    def objective(self, metrics: dict[str, float]) -> float:
        return (max if self.maximize else min)(self.values) if self.values else metrics[self.metric_key]

    def on_train_begin(self, args, state, control, **kwargs):
        self.values, self._prune_now, self._start = [], False, time.perf_counter()

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        self.values.append(float(metrics[self.metric_key]))
        decision = [self._hopeless() if args.process_index == 0 else None]
        if args.world_size > 1:
            torch.distributed.broadcast_object_list(decision, src=0)
        if decision[0]:
            control.should_training_stop = self._prune_now = True

    def on_train_end(self, args, state, control, **kwargs):
        number = getattr(self.trial, "number", None)
        if number is None:
            return
        self.seconds[number] = time.perf_counter() - self._start
        self.history[number] = list(self.values)
        if self._prune_now and args.process_index == 0:
            import optuna

            self.pruned.add(number)
            logger.info("trial %d stopped after %d epoch(s): below the median of earlier trials", number,
                        len(self.values))
            raise optuna.TrialPruned()

    def _hopeless(self) -> bool:
        step = len(self.values) - 1
        if step < PRUNE_FROM_EVALUATION:
            return False
        earlier = [values[step] for values in self.history.values() if len(values) > step]
        if len(earlier) < PRUNE_AFTER_TRIALS:
            return False
        median, current = statistics.median(earlier), max(self.values) if self.maximize else min(self.values)
        return current < median if self.maximize else current > median


def search_arguments(args: TrainingArguments, run: Any = None) -> TrainingArguments:
    """The run's arguments for the trials: no checkpoints (a trial's model is thrown away), no best-model
    reload (its score is tracked instead), a cheap evaluation every epoch; and the RUN_SETTINGS of `run`
    (RunArguments), which a trial may change."""
    trial_args = copy.deepcopy(args)
    trial_args.save_strategy = "no"
    trial_args.load_best_model_at_end = False
    for name in RUN_SETTINGS:
        setattr(trial_args, name, getattr(run, name, None))
    return trial_args


def run_search(trainer: Trainer, space: dict[str, dict[str, Any]], n_trials: int, metric: str,
               maximize: bool, seed: int) -> SearchResult | None:
    """Run the search on `trainer` (built with model_init); the SearchResult in the main process, else None."""
    import optuna

    monitor = TrialMonitor(f"eval_{metric}" if metric != "loss" else "eval_loss", maximize)
    trainer.add_callback(monitor)

    def hp_space(trial):
        monitor.trial = trial
        return suggest(trial, space)

    storage = optuna.storages.InMemoryStorage()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trainer.hyperparameter_search(
        hp_space=hp_space,
        compute_objective=monitor.objective,
        n_trials=n_trials,
        direction="maximize" if maximize else "minimize",
        backend="optuna",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.NopPruner(),
        study_name="finetune",
        storage=storage,
        catch=(ValueError, RuntimeError),  # a trial that fails (e.g. out of memory) is recorded, the search goes on
    )
    if trainer.args.process_index != 0:
        return None
    study = optuna.load_study(study_name="finetune", storage=storage)
    records = []
    for trial in study.trials:
        state = "pruned" if trial.number in monitor.pruned else trial.state.name.lower()
        history = monitor.history.get(trial.number, [])
        value = trial.value if trial.value is not None else (
            (max if maximize else min)(history) if history else None)
        records.append(TrialRecord(trial.number, dict(trial.params), value, state,
                                   round(monitor.seconds.get(trial.number, math.nan), 2), history))
    finished = [r for r in records if r.state == "complete" and r.value is not None]
    if not finished:
        raise UsageError("the hyperparameter search finished no trial (see the log): widen --hp_search_space or "
                         "run more --hp_search_trials.")
    best = (max if maximize else min)(finished, key=lambda r: r.value)
    return SearchResult(metric, "maximize" if maximize else "minimize", space, len(trainer.train_dataset),
                        records, best.params, best.value)


def apply_params(args: TrainingArguments, params: dict[str, Any], run: Any = None) -> None:
    """Set the chosen parameters on the run's own arguments (RUN_SETTINGS on `run`, its RunArguments), cast to
    each setting's declared type (not to its current value's: warmup_steps, a float, defaults to the int 0,
    and int(0.15) would drop the warmup)."""
    fields = type(args).__dataclass_fields__
    for name, value in params.items():
        if name in RUN_SETTINGS:
            setattr(run, name, float(value))
            continue
        declared, old = fields[name].type if name in fields else None, getattr(args, name)
        if declared in (int, float, bool, str):
            value = declared(value)
        elif old is not None:  # e.g. lr_scheduler_type: a SchedulerType
            value = type(old)(value)
        setattr(args, name, value)
