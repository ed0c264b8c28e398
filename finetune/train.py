"""Fine-tune a BERT-family classifier on reviews with the Hugging Face Trainer.

    accelerate launch finetune/train.py                      # embedded MiniLM + Rotten Tomatoes, offline
    accelerate launch finetune/train.py --config recipes/bert-base-cased-yelp.yaml
    accelerate launch finetune/train.py --train_file my.csv --text_column_name review --label_column_name stars
    accelerate launch finetune/train.py --train_file my.csv --label_column_name stars --problem_type regression
    accelerate launch finetune/train.py --train_file tags.jsonl --label_column_name aspects --problem_type multi_label
    accelerate launch finetune/train.py --train_file my.csv --text_column_names title,text
    accelerate launch --multi_gpu --num_processes 2 finetune/train.py     # two processes (CPU: gloo)
    accelerate launch --config_file accelerate_configs/multi_gpu.yaml finetune/train.py ...
    accelerate launch finetune/train.py --push_to_hub --hub_model_id me/minilm-reviews

`python finetune/train.py --help` lists every flag (ours and all TrainingArguments).
"""

import copy
import dataclasses
import json
import logging
import math
import os
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script (`accelerate launch finetune/train.py`), Python puts finetune/ first on
    # sys.path: our modules would shadow libraries and `import finetune` would fail. Use the repo root.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import numpy as np
import torch
from datasets import DatasetDict
from transformers import EarlyStoppingCallback, Trainer, set_seed
from transformers.trainer_callback import TrainerCallback

from finetune import (
    artifacts,
    data_files,
    energy,
    errors,
    families,
    hub,
    hub_checkpoints,
    logs,
    machine,
    memory,
    objective,
    precision,
    search,
    suspects,
    tasks,
    text_fields,
    trust,
)
from finetune import truncation as truncating
from finetune.audit import AuditReport, audit
from finetune.batching import BucketedCollator, ReviewTrainer, default_multiple
from finetune.config import RunConfig, parse_config
from finetune.data import (
    ReviewData,
    load_review_data,
    restore_order,
    sort_by_length,
    take_subset,
    tokenize_splits,
)
from finetune.errors import UsageError
from finetune.history import LogLossAtEpochEnd
from finetune.metrics import make_compute_metrics, score_task
from finetune.modeling import load_classifier, load_pretrained_config, load_tokenizer, output_layer, resolve_model_path
from finetune.onnx_export import CHECK_REVIEWS, export_onnx, remove_onnx_copy
from finetune.reading import ReviewReading
from finetune.report import RunOutcome, write_run_files

logger = logging.getLogger("finetune")

# The exit codes of every command (finetune/errors.py); these names stay importable from here.
EXIT_USAGE, EXIT_PUSH_FAILED, EXIT_FINISH_FAILED, EXIT_DIVERGED = (errors.EXIT_USAGE, errors.EXIT_HUB_FAILED,
                                                              errors.EXIT_FINISH_FAILED, errors.EXIT_DIVERGED)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    clock = PhaseClock()
    meter = start_energy_meter()
    try:
        config = parse_run(argv)
        setup_logging(config)
        if config.run.audit_only:  # nothing is written, so the output folder and the Hub are not asked
            return print_audit(prepare(config).audit)
        plan = make_plan(config, clock)
    except UsageError as err:
        return errors.report(err, errors.EXIT_USAGE)
    start_run_folder(plan)
    try:
        trained = train(plan)
    except UsageError as err:  # diverged in fp32: nothing to fall back to
        return errors.report(err, errors.EXIT_DIVERGED)
    save_trained_model(plan, trained.trainer, clock)
    try:
        finished = finish_run(plan, trained, meter, clock)
    except Exception as err:
        if not trained.trainer.is_world_process_zero():
            raise
        return report_unfinished(plan, err, argv)
    if finished is None:  # the other processes: the main one writes and pushes
        return 0
    return publish(plan, trained, finished, clock)


def start_energy_meter() -> "energy.EnergyMeter | None":
    """Before anything is loaded: the whole run's energy. One process per machine reads its counters."""
    return energy.EnergyMeter(counters=os.environ.get("LOCAL_RANK", "0") == "0") if energy.enabled() else None


@dataclass(frozen=True)
class Plan:
    """Everything decided before the output folder is touched, from the flags, the files, the machine and the Hub:
    the final training arguments (precision, the family's recipe, the search's choice) are in `config`, and nothing
    changes them afterwards. run_config.yaml is this plan, written once (start_run_folder)."""

    config: RunConfig
    prepared: "Prepared"
    resume: str | None  # the checkpoint training resumes from
    push_target: "PushTarget | None"
    carbon_intensity: tuple[float, str]  # for the card's training cost (finetune/energy.py)
    search: dict | None = None  # the hyperparameter search's trials and choice (main process), for hp_search.json
    prepared_at: float = 0.0  # perf_counter when the data was ready: FirstStepClock's origin


def make_plan(config: RunConfig, clock: "PhaseClock") -> Plan:
    """The checks that read the output folder, the Hub and the machine, the model and data, and the search; raises
    UsageError before the run writes a file of its own (a Hub resume has downloaded its checkpoint by then)."""
    intensity = energy.carbon_intensity(config.run.carbon_intensity)
    set_cpu_threads(config)
    resume = artifacts.check_output_dir(Path(config.training.output_dir), config.training.resume_from_checkpoint,
                                        config.run.overwrite_output_dir)
    push_target = plan_push(config)
    resume = fetch_hub_checkpoint(config, resume, push_target)
    check_resume_matches(resume, config)
    prepared = prepare(config)
    prepared.small_validation = plan_small_validation(config, len(prepared.data.splits["validation"]))
    log_device_summary(config, prepared)
    clock.lap("preparation")
    prepared_at = time.perf_counter()
    searched = None
    if config.run.hp_search_trials:
        searched = hyperparameter_search(config, prepared)
        clock.lap("hyperparameter_search")
    return Plan(config, prepared, resume, push_target, intensity, searched, prepared_at)


@dataclass
class Trained:
    trainer: Trainer
    pusher: "hub_checkpoints.CheckpointPusher | None"
    precision_fallback: str = ""  # the card's sentence when a non-finite loss sent training on in fp32


def train(plan: Plan) -> Trained:
    """Train (with the checkpoint pushes, if any), and on a non-finite loss in mixed precision go on in fp32;
    raises UsageError when fp32 diverges too."""
    config, prepared = plan.config, plan.prepared
    banner(f"Training on {len(prepared.tokenized['train']):,} reviews: {describe_task(prepared.data.task)}")
    if plan.resume:  # the Trainer resumes without a word; a finished run's resume only finishes it again
        logger.info("resuming from %s (its optimizer, schedule and step; a run whose epochs are all done goes "
                    "straight to evaluation and the files; the card's time and cost are this resume's)",
                    Path(plan.resume).name if plan.resume != artifacts.HUB_RESUME else "the Hub's checkpoint")
    trainer = build_trainer(config, prepared)
    trainer.add_callback(FirstStepClock(plan.prepared_at))
    pusher = checkpoint_pusher(config, plan.push_target)
    if pusher:
        trainer.add_callback(pusher)
    guard = NonFiniteGuard()
    trainer.add_callback(guard)
    output_dir = Path(config.training.output_dir)
    try:
        trainer.train(resume_from_checkpoint=plan.resume)  # its end waits for the checkpoint pushes
        if guard.tripped:
            trainer, note = train_again_in_fp32(config, prepared, guard, pusher)
            return Trained(trainer, pusher, note)
    except UsageError:
        raise
    except BaseException:
        if (output_dir / artifacts.PREVIOUS_RUN_DIR).exists() and trainer.is_world_process_zero():
            errors.print_error(f"training stopped; the run this one was replacing is kept in "
                               f"{output_dir / artifacts.PREVIOUS_RUN_DIR}")
        raise
    return Trained(trainer, pusher)


def save_trained_model(plan: Plan, trainer: Trainer, clock: "PhaseClock") -> None:
    """The trained model is saved before anything else can fail: evaluation, the card, the push."""
    output_dir = Path(plan.config.training.output_dir)
    trainer.save_model(str(output_dir))
    if trainer.is_world_process_zero():
        artifacts.drop_previous_run(output_dir)
    memory.release()
    clock.lap("training", evaluation_during_training=sum(
        entry.get("eval_runtime", 0.0) for entry in trainer.state.log_history))


@dataclass
class Finished:
    evaluated: "Evaluated"
    outcome: RunOutcome


def finish_run(plan: Plan, trained: Trained, meter, clock: "PhaseClock") -> Finished | None:
    """The final evaluation (every process), then in the main process the baseline, the ONNX copy and the run's
    files, the card once; None in the other processes."""
    config, prepared, trainer = plan.config, plan.prepared, trained.trainer
    data = prepared.data
    banner("Evaluating the " + ("restored best model" if config.training.load_best_model_at_end else "last epoch's model"))
    evaluated = final_evaluation(trainer, prepared.tokenized, data.task, prepared.orders, config.run.min_precision,
                                 prepared.audit.leaked if prepared.audit else None)
    if data.task.problem_type != tasks.REGRESSION and trainer.is_world_process_zero():
        prepared.reading.save(trainer.model.config)  # with the temperature and thresholds just fitted on validation
        trainer.model.config.save_pretrained(config.training.output_dir)
    probabilities = predict_unlabelled(trainer, prepared.unlabelled, prepared.orders, data.task)
    # Every process predicts (a distributed predict gathers from all); the main process ranks them below.
    train_outputs = predict_train_sample(config, prepared, trainer) \
        if config.run.frozen_baseline and data.task.problem_type == tasks.SINGLE_LABEL else None
    memory.release()
    clock.lap("final_evaluation")
    others = energy.other_processes_usage(meter, config.training.world_size, config.training.process_index) \
        if meter else []
    if not trainer.is_world_process_zero():
        return None
    output_dir = Path(config.training.output_dir)
    frozen = None
    if config.run.frozen_baseline:
        frozen = frozen_baseline_and_suspects(config, prepared, evaluated, train_outputs, output_dir)
        clock.lap("frozen_baseline_and_suspects")
    onnx_copy = export_onnx_copy(plan)
    if onnx_copy is not None:
        clock.lap("onnx_export")
    outcome = RunOutcome(
        evaluated.scores, evaluated.matrices, evaluated.outputs, probabilities, prepared.max_length,
        config.training.world_size, repo_id=plan.push_target.repo_id if plan.push_target else None,
        seconds=clock.seconds, peak_memory_gb=clock.peak_memory_gb, batches_in_pieces=trainer.batches_in_pieces,
        class_weights=dict(zip(data.label_names, prepared.class_weights)) if prepared.class_weights else None,
        onnx_copy=onnx_copy, cost=run_cost(meter, config, others, plan.carbon_intensity) if meter else None,
        intervals=evaluated.intervals, calibration=evaluated.calibration, unseen=evaluated.unseen,
        audit=prepared.audit, small_validation=prepared.small_validation,
        frozen=frozen.to_json() if frozen else None, precision_fallback=trained.precision_fallback,
        search=plan.search)
    artifacts.tidy_tensorboard_logs(output_dir)  # --report_to tensorboard: published without the host name
    # The card describes the arguments the model trained with (after a precision fallback, fp32's).
    trained_config = dataclasses.replace(config, training=trainer.args)
    write_run_files(output_dir, trained_config, data, trainer.state.log_history, outcome)  # the card, once
    return Finished(evaluated, outcome)


def export_onnx_copy(plan: Plan):
    """--export_onnx: the ONNX copy, checked against PyTorch on a few validation reviews (a failure only warns);
    without it an earlier copy goes, as it would no longer match the weights. Returns the copy (or None)."""
    output_dir = Path(plan.config.training.output_dir)
    if not plan.config.run.export_onnx:
        remove_onnx_copy(output_dir, update_card=False)
        return None
    return export_onnx(output_dir, plan.prepared.data.splits["validation"]["text"][:CHECK_REVIEWS], update_card=False)


def report_unfinished(plan: Plan, err: Exception, argv: list[str]) -> int:
    """Finishing failed after the model was saved: say how to finish without retraining."""
    logger.exception("finishing the run failed")
    errors.print_error(
        f"the model is trained and saved in {plan.config.training.output_dir} (it loads with from_pretrained), but "
        f"finishing the run failed ({type(err).__name__}: {err}). Finish it without retraining: run the same "
        f"command with --resume_from_checkpoint true, e.g.\n  {finish_command(argv)}")
    return errors.EXIT_FINISH_FAILED


def publish(plan: Plan, trained: Trained, finished: Finished, clock: "PhaseClock") -> int:
    """The checkpoint pushes' summary, the push of the finished folder, and the summary on standard output."""
    output_dir, data = Path(plan.config.training.output_dir), plan.prepared.data
    pusher, target = trained.pusher, plan.push_target
    if pusher and pusher.uploader:
        print(pusher.summary())
        for line in pusher.report(output_dir):
            print(f"warning: {line}", file=sys.stderr)
    if target:
        banner(f"Pushing {output_dir} to the Hub as {target.repo_id}")
        try:
            url = hub.push_folder(output_dir, target.repo_id, target.token, target.private,
                                  commit_message=f"Fine-tuned on {data.dataset_name}: "
                                  + _score_line(finished.evaluated.scores, data.task))
        except hub.PushError as err:
            print_summary(output_dir, data, finished.evaluated, clock)  # the run itself succeeded: show what it made
            return errors.report(err, errors.EXIT_HUB_FAILED)
        print(f"Pushed: {url}")
    print_summary(output_dir, data, finished.evaluated, clock)
    return 0


class NonFiniteGuard(TrainerCallback):
    """Stops training at the first logged loss or gradient norm that is not finite (bf16 and fp16 runs of some
    BERT-family set-ups produce NaN), before that step's checkpoint is saved: every checkpoint on disk holds finite
    weights. A loss is logged at least at every epoch's end (LogLossAtEpochEnd), before the epoch's checkpoint."""

    def __init__(self):
        self.tripped, self.step, self.what = False, None, ""

    def on_log(self, args, state, control, logs=None, **kwargs):
        bad = [name for name in ("loss", "grad_norm") if name in (logs or {}) and not math.isfinite(float(logs[name]))]
        if bad and not self.tripped:
            self.tripped, self.step = True, state.global_step
            self.what = f"{bad[0]} {logs[bad[0]]} at step {state.global_step}"
            control.should_training_stop, control.should_save, control.should_evaluate = True, False, False
        return control


def train_again_in_fp32(config: RunConfig, prepared: "Prepared", guard: NonFiniteGuard, pusher) -> tuple[Trainer, str]:
    """After a non-finite loss in mixed precision: back to the last checkpoint before it (or the start) and on in
    fp32, keeping what was trained; returns the new trainer and the card's sentence. In fp32 there is nothing to
    fall back to: the run stops with its checkpoints kept."""
    args = copy.deepcopy(config.training)  # the plan stays as it was (run_config.yaml); the card reads trainer.args
    was = args.mixed_precision
    if was == "no":
        raise UsageError(f"training diverged in fp32 ({guard.what}): lower --learning_rate (or raise --warmup_steps) "
                         f"and resume with --resume_from_checkpoint true; the checkpoints in {args.output_dir} are kept.")
    checkpoint = last_checkpoint_before(Path(args.output_dir), guard.step)
    note = (f"a non-finite {guard.what} in {was}: training went back to "
            f"{Path(checkpoint).name if checkpoint else 'its start'} and went on in fp32")
    logger.warning("%s (the card says so)", note)
    args.fp16 = False
    precision.apply(args, False)
    # accelerate keeps one AcceleratorState per process and refuses another precision in it; the distributed part
    # (PartialState: the process group) stays as it is.
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=False)
    if checkpoint is None:  # nothing finite was saved: a new head on the pretrained encoder, seeded as before
        set_seed(args.seed)
        prepared.model = new_model(config, prepared.data.label_names, prepared.reading, prepared.tokenized["train"])
    trainer = build_trainer(config, prepared, args=args)
    again = NonFiniteGuard()
    trainer.add_callback(again)
    if pusher:
        trainer.add_callback(pusher)
    trainer.train(resume_from_checkpoint=checkpoint)
    if again.tripped:
        raise UsageError(f"training diverged in fp32 too ({again.what}), after {note}: lower --learning_rate and "
                         f"resume with --resume_from_checkpoint true; the checkpoints in {args.output_dir} are kept.")
    return trainer, note


def last_checkpoint_before(output_dir: Path, step: int) -> str | None:
    """The newest complete checkpoint (trainer_state.json written) saved before `step`."""
    found = []
    for folder in output_dir.glob("checkpoint-*"):
        number = folder.name.removeprefix("checkpoint-")
        if number.isdigit() and int(number) < step and (folder / "trainer_state.json").is_file():
            found.append((int(number), folder))
    return str(max(found)[1]) if found else None


class FirstStepClock(TrainerCallback):
    """Logs when the first training step begins, in seconds after preparation: the wait between the data
    being ready and training (building the Trainer, the length-grouped sampler, the first batch)."""

    def __init__(self, since: float):
        self.since, self.logged = since, False

    def on_step_begin(self, args, state, control, **kwargs):
        if not self.logged:
            self.logged = True
            logger.info("first training step began %.1f s after preparation", time.perf_counter() - self.since)


class PhaseClock:
    """Wall seconds of each phase of a run, for results.json and the summary: what a user waits for; and the
    process's peak memory at the end of each phase, so that the phase that raised it shows."""

    def __init__(self):
        self.start = self._last = time.perf_counter()
        self.seconds: dict[str, float] = {}
        self.peak_memory_gb: dict[str, float] = {}

    def lap(self, phase: str, evaluation_during_training: float = 0.0) -> None:
        now = time.perf_counter()
        self.seconds[phase] = round(now - self._last - evaluation_during_training, 2)
        if evaluation_during_training:
            self.seconds["evaluation_during_training"] = round(evaluation_during_training, 2)
        self.peak_memory_gb[phase] = memory.peak_rss_gb()
        logger.info("%s took %.0f s; peak memory so far %.2f GB, now %.2f GB", phase, now - self._last,
                    self.peak_memory_gb[phase], memory.rss_gb())
        self._last = now

    @property
    def evaluation(self) -> float:
        return self.seconds.get("evaluation_during_training", 0.0) + self.seconds.get("final_evaluation", 0.0)

    @property
    def total(self) -> float:
        return time.perf_counter() - self.start


def start_run_folder(plan: Plan) -> None:
    """Every check has passed: only now may an overwritten run's files go (so that the folder never mixes two runs).
    The plan is then written, once: run_config.yaml first, marking the folder as a run's, and the search's trials."""
    config = plan.config
    args = config.training
    output_dir = Path(args.output_dir)
    with args.main_process_first(desc="preparing the output folder"):
        if args.process_index != 0:
            return
        if plan.resume is None and config.run.overwrite_output_dir:
            moved = artifacts.set_aside_previous_run(output_dir)
            if moved:
                logger.info("--overwrite_output_dir: the previous run (%s) waits in %s until this run has saved "
                            "its model", ", ".join(moved), output_dir / artifacts.PREVIOUS_RUN_DIR)
        output_dir.mkdir(parents=True, exist_ok=True)
        artifacts.write_run_config(output_dir, config.to_dict())
        if plan.search is not None:
            artifacts.write_json(output_dir, artifacts.SEARCH_FILE, plan.search)


def parse_run(argv: list[str] | None = None) -> RunConfig:
    """The command line, parsed (config.parse_config, with this machine's device defaults), then the checks
    that read more than the flags, all before a model is loaded: the data files, a model folder, the search
    space, and the repo a Hub resume downloads from."""
    config = parse_config(argv, machine.resolve_device)
    data_files.check_files(config.data)
    model = config.model.model_name_or_path
    if model is not None and artifacts.is_local_path(model) and not Path(model).expanduser().is_dir():
        raise UsageError(
            f"--model_name_or_path {model}: no such folder. Pass an existing model folder, a Hub id such as "
            "google-bert/bert-base-cased, or leave the flag out for the embedded MiniLM."
        )
    search.parse_space(config.run.hp_search_space)  # a bad space fails now, not after training
    if artifacts.is_hub_resume(config.training.resume_from_checkpoint):
        hub_checkpoints.resume_repo(config.training.resume_from_checkpoint, config.training.hub_model_id)
    return config


def check_resume_matches(resume: str | None, config: RunConfig) -> None:
    """A checkpoint resumes only as the kind of model it is (its config.json's problem_type), training the same
    parameters (word_embeddings_frozen): another head would fail to load after the data is prepared, or train a
    different task on its optimizer's state, and another set of trained parameters does not fit that state."""
    path = Path(resume) / "config.json" if resume else None
    if path is None or not path.is_file():
        return
    try:
        saved_config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    saved = saved_config.get("problem_type") or tasks.SINGLE_LABEL
    if saved != config.data.problem_type:
        raise UsageError(f"--resume_from_checkpoint {resume}: that checkpoint is a {saved} model and this run asks "
                         f"for {config.data.problem_type}. Resume with --problem_type {saved}, or start afresh in "
                         "another --output_dir.")
    frozen = bool(saved_config.get("word_embeddings_frozen", False))
    if frozen != config.model.freeze_word_embeddings:
        did, asks = ("froze", "trains") if frozen else ("trained", "freezes")
        raise UsageError(f"--resume_from_checkpoint {resume}: that checkpoint {did} its word embeddings and this run "
                         f"{asks} them, which its optimizer state does not fit. Resume with --freeze_word_embeddings "
                         f"{str(frozen).lower()}, or start afresh in another --output_dir.")


def finish_command(argv: list[str]) -> str:
    """This run's command line, resuming: training is complete, so only evaluation and writing remain."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in ("--resume_from_checkpoint", "--overwrite_output_dir"):
            # their value, if given separately, goes too (a bare --overwrite_output_dir takes none)
            skip = "=" not in arg and name == "--resume_from_checkpoint"
            continue
        kept.append(arg)
    script = Path(__file__).resolve()
    launcher = [sys.executable, str(script)]
    if int(os.environ.get("WORLD_SIZE", 1)) > 1:
        launcher = ["accelerate", "launch", "--num_processes", os.environ["WORLD_SIZE"], str(script)]
    return shlex.join([*launcher, *kept, "--resume_from_checkpoint", "true"])


@dataclass
class Prepared:
    """Everything training needs, loaded and checked."""

    tokenizer: object
    reading: ReviewReading  # how the model reads a review: saved with it (finetune/reading.py)
    data: ReviewData
    tokenized: DatasetDict  # train as it comes; the others sorted by length (see `orders`)
    model: object
    unlabelled: DatasetDict  # tokenized splits whose labels are hidden: predicted, not scored; sorted too
    orders: dict[str, np.ndarray]  # split -> sort_by_length's order, to put per-review results back
    precision_note: str = ""  # how the mixed precision was chosen, for the device summary line
    class_weights: list[float] | None = None  # --class_weights balanced: per class id (finetune/objective.py)
    audit: AuditReport | None = None  # the data audit (finetune/audit.py), made before the model loads
    small_validation: str = ""  # what a validation split too small to choose on changed (plan_small_validation)

    @property
    def max_length(self) -> int:
        return self.reading.max_length


def prepare(config: RunConfig) -> Prepared:
    """Model and data, in the order that fails fastest on bad input; raises UsageError."""
    model_config = load_pretrained_config(config.model)  # a wrong model name fails here, before the data is read
    family_note = apply_family(config, model_config)
    tokenizer = load_tokenizer(config.model)
    # How the model reads a review (finetune/reading.py): saved with the model once, in new_model; the tokenizer's
    # truncation side is set before tokenizing, so that its own (fast) truncation cuts the training data too.
    reading = ReviewReading(None, config.data.text_columns(), text_fields.separator_of(tokenizer),
                            config.data.text_pairing, config.data.truncation,
                            truncating.max_length(tokenizer, model_config, config.data.max_seq_length))
    reading.set_tokenizer_side(tokenizer)
    max_length, separator = reading.max_length, reading.separator
    with config.training.main_process_first(desc="loading and tokenizing data"):
        data = load_review_data(config.data, config.training.seed, separator)
        reading.task = data.task
        data_audit = audit_data(data)
        if config.run.audit_only:
            return Prepared(tokenizer, reading, data, DatasetDict(), None, DatasetDict(), {}, audit=data_audit)
        # The main process tokenizes (or reads its cache) first; the others then read what it wrote.
        cache = dict(num_proc=config.data.preprocessing_num_workers, truncation=config.data.truncation,
                     pairing=config.data.text_pairing,
                     overwrite_cache=config.data.overwrite_cache and config.training.process_index == 0)
        tokenized = tokenize_splits(data.splits, tokenizer, max_length, config.data.pad_to_max_length, **cache)
        unlabelled = tokenize_splits(data.unlabelled, tokenizer, max_length, config.data.pad_to_max_length, **cache)
    orders = {}
    for splits in (tokenized, unlabelled):
        for name in [n for n in splits if n != "train"]:
            if config.run.sort_eval_by_length:
                splits[name], orders[name] = sort_by_length(splits[name])
            else:
                orders[name] = np.arange(len(splits[name]))
    check_metric_name(config.training.metric_for_best_model, data.task)
    set_seed(config.training.seed)  # the new classifier head's initialisation
    model = new_model(config, data.label_names, reading, tokenized["train"])
    note = family_note or choose_precision(config, model, tokenized["train"], tokenizer, reading.max_length)
    if config.run.pad_to_multiple_of is None:  # chosen for the precision just decided (finetune/batching.py)
        config.run.pad_to_multiple_of = default_multiple(config.training)
    weights = None
    if config.run.class_weights == "balanced":
        weights = objective.balanced_weights(tokenized["train"]["label"][:], len(data.label_names))
        logger.info("class weights (--class_weights balanced): %s",
                    ", ".join(f"{name} {w:.3f}" for name, w in zip(data.label_names, weights)))
    return Prepared(tokenizer, reading, data, tokenized, model, unlabelled, orders, note, weights, data_audit)


def audit_data(data: ReviewData) -> AuditReport:
    """The data audit of the prepared splits (finetune/audit.py), logged: duplicates, test reviews also in train,
    texts with conflicting labels, label spellings merged (by data loading), a text column of numbers."""
    splits = {"train": data.splits["train"], **{n: s for n, s in data.splits.items() if n != "train"}}
    labels = {name: [data.task.label_text(value) for value in split["label"][:]] for name, split in splits.items()}
    # a split whose labels are hidden (a Hub test split) can leak too: its texts are audited, its labels are none
    texts = {name: split["text"][:] for name, split in {**splits, **data.unlabelled}.items()}
    report = audit(texts, labels)
    report.label_variants = data.label_variants
    banner("Data audit")
    for line in report.summary_lines():
        found = line.startswith("warning") or ("leaked" in line and " 0 of " not in line)
        (logger.warning if found else logger.info)(line)
    return report


def apply_family(config: RunConfig, model_config) -> str:
    """What the model's family asks of the run (finetune/families.py), on the flags the user left unset: its
    authors' recipe (logged, and recorded for the card), and fp32 where half precision breaks it. Returns the
    precision note for the device summary line ("": the usual choice applies)."""
    family = families.family_of(model_config)
    families.configure(model_config, family, config.model.classifier_pooling)  # a bad --classifier_pooling fails now
    config.family_recipe = families.apply_recipe(config.training, family, config.unset)
    if config.family_recipe:
        logger.info("%s defaults (flags you did not give): %s", family.name, config.family_recipe)
    # Half precision the user asked for: --bf16/--fp16 true, or `accelerate launch --mixed_precision`.
    asked = {flag for flag in ("bf16", "fp16") if flag not in config.unset and getattr(config.training, flag)}
    asked |= {os.environ.get("ACCELERATE_MIXED_PRECISION", "no")} & {"bf16", "fp16"}
    return families.check_precision(config.training, family, asked)


def new_model(config: RunConfig, label_names: list[str], reading: ReviewReading, train):
    """The pretrained encoder with a new head for the task, and how it reads a review saved on its config. A rating
    head starts at train's mean rating (its bias), not at 0: the first steps then learn from the reviews, not the
    scale."""
    model = load_classifier(config.model, label_names, reading.task)
    reading.save(model.config)  # config.json: the demo, finetune.score and the ONNX export read reviews as training
    if reading.task.problem_type == tasks.REGRESSION:
        last = output_layer(model)
        if last is not None and last.bias is not None:
            with torch.no_grad():
                last.bias.fill_(float(np.mean(train["label"][:])))
    return model


def describe_task(task: tasks.Task) -> str:
    if task.problem_type == tasks.REGRESSION:
        scale = task.scale()
        return f"a rating ({task.label_names[0]}" + (f", {scale[0]:g} to {scale[1]:g})" if scale else ")")
    kind = "labels per review (multi-label)" if task.problem_type == tasks.MULTI_LABEL else "classes"
    return f"{len(task.label_names)} {kind}: {task.label_names}"


def choose_precision(config: RunConfig, model, train, tokenizer, max_length: int) -> str:
    """On a CPU with --bf16 not given: bf16 or fp32 by a probe of this model (finetune/precision.py), set on
    config.training before the Trainer reads it. The main process measures (or finds its cached probe) and
    tells the others, so that every process trains in the same precision. Returns the log's words."""
    args, defaults = config.training, config.device_defaults
    if defaults is None or not defaults.probe_precision:
        return defaults.reasons.get("precision", "") if defaults else ""
    flags = machine.cpu_flags()
    if flags and not machine.bf16_flags(flags):
        # No bf16 instruction at all: autocast emulates bf16, and one probe step of long reviews took 260 s against
        # fp32's 12 s on such an AMD EPYC (minutes of probing before training). The probe is for CPUs that have it.
        precision.apply(args, False)
        return "fp32: this CPU has no bf16 instructions (avx512_bf16, amx_bf16), so bf16 would be emulated; no probe"
    shared: list = [None]
    if args.process_index == 0:
        shared[0] = precision.decide(model, train, BucketedCollator(tokenizer, config.run.pad_to_multiple_of, max_length),
                                     args.per_device_train_batch_size,
                                     config.run.max_train_batch_tokens or None, torch.get_num_threads(),
                                     limit=truncating.model_limit(tokenizer, model.config),
                                     # under --pad_to_multiple_of N > 1 a training step mostly meets a warm shape
                                     reused_shapes=(config.run.pad_to_multiple_of or 1) > 1)
    if args.world_size > 1:
        torch.distributed.broadcast_object_list(shared, src=0)
    precision.apply(args, shared[0].bf16)
    return shared[0].describe()


def build_trainer(config: RunConfig, prepared: Prepared, **overrides) -> Trainer:
    settings = dict(
        model=prepared.model,
        args=config.training,
        train_dataset=prepared.tokenized["train"],
        eval_dataset=prepared.tokenized["validation"],
        processing_class=prepared.tokenizer,
        data_collator=BucketedCollator(prepared.tokenizer, config.run.pad_to_multiple_of, prepared.max_length),
        compute_metrics=make_compute_metrics(prepared.data.task),
        callbacks=[LogLossAtEpochEnd(), *early_stopping(config)],
    )
    if config.run.class_weights == "balanced" and "compute_loss_func" not in overrides:
        settings["compute_loss_func"] = objective.weighted_cross_entropy(prepared.class_weights)
    return ReviewTrainer(**{**settings, **overrides}, max_train_batch_tokens=config.run.max_train_batch_tokens or None,
                         layerwise_lr_decay=config.run.layerwise_lr_decay)


def hyperparameter_search(config: RunConfig, prepared: Prepared) -> dict | None:
    """Search on validation, then set the best trial's parameters on config.training for the final run (still
    planning: nothing is written yet). Returns the trials and the choice (hp_search.json, the card's section) in
    the main process, None in the others."""
    args, n_trials = config.training, config.run.hp_search_trials
    train = prepared.tokenized["train"]
    if config.run.hp_search_train_samples:
        train = take_subset(train, config.run.hp_search_train_samples, args.seed)
    banner(f"Hyperparameter search: {n_trials} trials on {len(train):,} training reviews, scored by validation "
           f"{args.metric_for_best_model}")
    trainer = build_trainer(
        config, prepared, model=None, model_init=lambda: new_model(config, prepared.data.label_names, prepared.reading, train),
        args=search.search_arguments(args, config.run), train_dataset=train,
        callbacks=[LogLossAtEpochEnd()],  # the search stops hopeless trials itself
    )
    result = search.run_search(trainer, search.parse_space(config.run.hp_search_space), n_trials,
                               args.metric_for_best_model or "loss", args.greater_is_better, args.seed)
    best = [result.best_params if result else None]
    if args.world_size > 1:
        torch.distributed.broadcast_object_list(best, src=0)
    search.apply_params(args, best[0], config.run)
    if result is None:
        return None
    logger.info("best trial: %s = %.4f with %s", result.metric, result.best_value, result.best_params)
    return result.to_dict()


def check_metric_name(metric: str | None, task: tasks.Task) -> None:
    """--metric_for_best_model must name a metric the evaluation produces; the Trainer would find out
    only after the first epoch."""
    if metric is None:
        return
    known = task.metric_names()
    if metric.removeprefix("eval_") not in known:
        raise UsageError(f"--metric_for_best_model {metric}: not a metric of this run ({task.problem_type}). Choose "
                         f"one of {', '.join(known)}" + (" (precision, recall and f1 are macro averages)."
                                                         if task.problem_type != tasks.REGRESSION else "."))


# Below this, validation cannot tell epochs apart: one review is over 3 points of accuracy (the issue asked for
# about 50; 30 keeps the project's own 32-review test fixtures choosing their best epoch).
MIN_VALIDATION_REVIEWS = 30


def plan_small_validation(config: RunConfig, reviews: int) -> str:
    """With fewer than MIN_VALIDATION_REVIEWS validation reviews, the epoch a run keeps is not chosen on them (a
    score on 2 reviews is 0, 0.5 or 1: the 'best' epoch would be chance): the last epoch is kept, and early
    stopping, which would stop on the same noise, is off. Returns the card's sentence ('' when validation is
    large enough); set before the run's configuration is written, so run_config.yaml records it."""
    if reviews >= MIN_VALIDATION_REVIEWS:
        return ""
    args = config.training
    changed = []
    if args.load_best_model_at_end:
        args.load_best_model_at_end = False
        changed.append("the last epoch is kept, not the best on validation")
    if config.run.early_stopping_patience is not None:
        config.run.early_stopping_patience = None
        changed.append("early stopping is off")
    note = (f"Validation has {reviews} reviews, fewer than {MIN_VALIDATION_REVIEWS}: too few to choose an epoch on "
            f"(one review is {100 / max(reviews, 1):.0f} points of accuracy)" + (": " + "; ".join(changed) if changed else "")
            + ". Its scores are shown but are too uncertain to read much into; add labelled reviews, or pass a "
            "larger --validation_file.")
    logger.warning(note)
    return note


def early_stopping(config: RunConfig) -> list[EarlyStoppingCallback]:
    """Stop when the metric that picks the best model has not improved for `patience` evaluations."""
    if config.run.early_stopping_patience is None:
        return []
    return [EarlyStoppingCallback(config.run.early_stopping_patience, config.run.early_stopping_threshold)]


@dataclass
class PushTarget:
    repo_id: str
    token: str
    private: bool | None


def plan_push(config: RunConfig) -> PushTarget | None:
    """Check the token and create the repo now: a run must not train for an hour, then fail on a login.

    Only the main process talks to the Hub; it tells the others whether the check passed, so that
    they stop with it instead of waiting for it. The Trainer's own push is switched off (it would
    create the repo inside __init__ and write its own card); this project pushes after training.
    """
    args = config.training
    wanted, args.push_to_hub = args.push_to_hub, False
    if not wanted:
        return None
    target, problem = None, [None]
    if args.process_index == 0:
        try:
            token = hub.require_token()
            repo_id = hub.prepare_repo(args.hub_model_id or Path(args.output_dir).name, token, args.hub_private_repo)
            target = PushTarget(repo_id, token, args.hub_private_repo)
        except UsageError as err:
            problem[0] = str(err)
    if args.world_size > 1:
        torch.distributed.broadcast_object_list(problem, src=0)  # the message only: the token stays here
    if problem[0] is not None:
        raise UsageError(problem[0])
    return target  # None in the other processes: they never push


def fetch_hub_checkpoint(config: RunConfig, resume: str | None, push_target: PushTarget | None) -> str | None:
    """`--resume_from_checkpoint hub[:owner/name]`: the main process downloads the repo's last checkpoint into
    the output folder; every process then resumes from that folder. Other values pass through."""
    if not artifacts.is_hub_resume(resume):
        return resume
    args = config.training
    shared = [None, None]  # the checkpoint's path, or the problem's message
    if args.process_index == 0:
        try:
            if resume == artifacts.HUB_RESUME and push_target is not None:
                repo_id, token = push_target.repo_id, push_target.token
            else:
                repo_id, token = hub_checkpoints.resume_repo(resume, args.hub_model_id), None
            shared[0] = str(hub_checkpoints.download_checkpoint(repo_id, token, Path(args.output_dir)))
        except UsageError as err:
            shared[1] = str(err)
    if args.world_size > 1:
        torch.distributed.broadcast_object_list(shared, src=0)
    if shared[1] is not None:
        raise UsageError(shared[1])
    return shared[0]


def checkpoint_pusher(config: RunConfig, push_target: PushTarget | None) -> hub_checkpoints.CheckpointPusher | None:
    """With --hub_strategy other than end, every process gets the callback (they wait for each other's
    checkpoint files); the main process alone, which holds the push target, uploads."""
    args = config.training
    if args.hub_strategy == "end":
        return None
    if push_target is None:
        return hub_checkpoints.CheckpointPusher(args.hub_strategy.value)
    hub_checkpoints.remove_stale_staging(Path(args.output_dir))
    return hub_checkpoints.CheckpointPusher(args.hub_strategy.value, push_target.repo_id, push_target.token,
                                            push_target.private, args.hub_always_push)


def final_evaluation(trainer: Trainer, tokenized, task: tasks.Task, orders: dict[str, np.ndarray],
                     min_precision: float = 0.0, leaked: dict[str, list[int]] | None = None) -> "Evaluated":
    """Scores, confusion matrices and per-review outputs (class or label probabilities, or the rating; in the
    data's own order) of the restored best model on validation and, if present, test. A multi-label model's
    decision threshold is chosen here, on validation, before either split is scored (finetune/tasks.py)."""
    scores, matrices, outputs, bounds = {}, {}, {}, {}
    predicted = {split: trainer.predict(tokenized[split], metric_key_prefix="eval")
                 for split in ("validation", "test") if split in tokenized}
    # Calibrated first (the temperature, then for classes the "unsure" threshold), so that every output written
    # and every threshold chosen below is on the probabilities the served model gives (finetune/trust.py).
    calibration = trust.calibrate(task, {s: _logits(o) for s, o in predicted.items()},
                                  {s: o.label_ids for s, o in predicted.items()}, min_precision)
    if task.problem_type == tasks.MULTI_LABEL:
        task.threshold = task.choose_threshold(task.outputs(predicted["validation"].predictions),
                                               predicted["validation"].label_ids)
        logger.info("decision threshold %.2f: the best micro F1 on validation", task.threshold)
    for split, output in predicted.items():
        values = task.outputs(output.predictions)
        split_scores, matrix = score_task(task, values, output.label_ids, confusion_matrix=True)
        scores[split] = {"loss": output.metrics["eval_loss"], **split_scores}
        if matrix is not None:
            matrices[split] = matrix
        bounds[split] = trust.split_intervals(task, values, output.label_ids)
        outputs[split] = _in_data_order(values, orders[split])
    unseen = {split: unseen_scores(task, outputs[split], restore_order(predicted[split].label_ids, orders[split]), rows)
              for split, rows in (leaked or {}).items() if rows and split in predicted}
    return Evaluated(scores, matrices, outputs, bounds, calibration, unseen)


def predict_train_sample(config: RunConfig, prepared: Prepared, trainer: Trainer) -> np.ndarray:
    """The fine-tuned model's outputs on the train reviews the suspect ranking reads (suspects.sample_rows), in
    their order."""
    rows = suspects.sample_rows(len(prepared.data.splits["train"]), config.training.seed,
                                suspects.review_limit(config.training.device.type))
    sorted_train, order = sort_by_length(prepared.tokenized["train"].select(rows))
    return restore_order(prepared.data.task.outputs(trainer.predict(sorted_train).predictions), order)


def frozen_baseline_and_suspects(config: RunConfig, prepared: Prepared, evaluated: "Evaluated",
                                 train_outputs: np.ndarray | None, output_dir: Path) -> suspects.FrozenResult | None:
    """The base model's frozen baseline on the same splits, and (classes) suspect_labels.csv: finetune/suspects.py."""
    started = time.perf_counter()
    data, task, seed = prepared.data, prepared.data.task, config.training.seed
    limit = suspects.review_limit(config.training.device.type)
    rows = {split: suspects.sample_rows(len(data.splits[split]), seed, limit) for split in ["train", *evaluated.outputs]}
    texts = {split: data.splits[split].select(r)["text"][:] for split, r in rows.items()}
    labels = {split: np.asarray(data.splits[split].select(r)["label"][:]) for split, r in rows.items()}
    try:
        from transformers import AutoModel

        base = AutoModel.from_pretrained(resolve_model_path(config.model), revision=config.model.model_revision,
                                         cache_dir=config.model.cache_dir).eval()
        vectors = {split: suspects.embed(base, prepared.tokenizer, texts[split], prepared.max_length)
                   for split in rows}
        del base
        scores, frozen_outputs = suspects.frozen_baseline(task, vectors, labels, seed)
    except Exception as err:  # numerical trouble or an architecture AutoModel cannot load: the run stands
        logger.warning("the frozen baseline was not computed (%s: %s)", type(err).__name__, err)
        return None
    result = suspects.FrozenResult(scores, len(rows["train"]), {s: len(r) for s, r in rows.items() if s != "train"})
    logger.info("frozen baseline (logistic regression on the base model's mean-pooled embeddings): %s", "; ".join(
        f"{split} " + ", ".join(f"{m} {v:.4f}" for m, v in found.items()) for split, found in scores.items()))
    if train_outputs is not None and len(rows["train"]) < suspects.MIN_REVIEWS:
        logger.info("suspect labels: %d training reviews are too few to rank (at least %d)", len(rows["train"]),
                    suspects.MIN_REVIEWS)
    elif train_outputs is not None:
        result.suspects = rank_suspects(task, train_outputs, evaluated, rows, texts, labels, vectors, seed,
                                        frozen_outputs, output_dir)
    memory.release()
    result.seconds = suspects.elapsed(started)
    return result


def rank_suspects(task, train_outputs, evaluated, rows, texts, labels, vectors, seed, frozen_outputs,
                  output_dir: Path) -> dict:
    """Every sampled train review and every scored review ranked by how likely its label is wrong."""
    finetuned = {"train": np.asarray(train_outputs)}
    finetuned.update({split: np.asarray(values)[rows[split]] for split, values in evaluated.outputs.items()})
    try:
        frozen = {"train": suspects.out_of_sample_probabilities(task, vectors["train"], labels["train"], seed),
                  **frozen_outputs}
    except ValueError as err:
        logger.info("suspect labels from the fine-tuned model alone (%s)", err)
        frozen = {}
    found = []
    for split in rows:
        split_rows, _, _ = suspects.suspect_rows(task, split, texts[split], rows[split], labels[split],
                                                 finetuned[split], frozen.get(split))
        found += split_rows
    found.sort(key=lambda row: row["score"])
    suspects.write_suspects(output_dir, found)
    issues = sum(row["label_issue"] for row in found)
    logger.info("suspect labels: %d of %d reviews flagged by cleanlab; most suspect in %s", issues, len(found),
                artifacts.SUSPECTS_FILE)
    shown = ("split", "row", "text", "label", "model_label", "score")
    return {"reviews": len(found), "label_issues": issues, "signals": "fine-tuned",
            "top": [{k: row[k] for k in shown} for row in found[:suspects.SHOWN]]}


def unseen_scores(task: tasks.Task, outputs: list, references: np.ndarray, leaked: list[int]) -> dict:
    """A split's headline scores on its reviews that are not also in train (the audit's exact matches): what
    the model does on reviews it has not seen. Both in the data's order."""
    keep = np.ones(len(outputs), dtype=bool)
    keep[np.asarray(leaked, dtype=np.int64)] = False
    values, labels = np.asarray(outputs)[keep], np.asarray(references)[keep]
    result = {"reviews": int(keep.sum()), "leaked": len(leaked), "scores": {}, "intervals": {}}
    if keep.any():
        found, _ = score_task(task, values, labels)
        result["scores"] = {m: found[m] for m in task.headline if m in found}
        result["intervals"] = trust.split_intervals(task, values, labels)
    return result


def _logits(output) -> np.ndarray:
    return np.asarray(output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions)


@dataclass
class Evaluated:
    """The final evaluation: per split its scores, confusion matrix, per-review outputs (data order) and 95%
    intervals; the calibration report (None for a rating)."""

    scores: dict
    matrices: dict
    outputs: dict
    intervals: dict
    calibration: dict | None
    unseen: dict = field(default_factory=dict)  # split -> scores on its reviews not also in train (leaked ones out)


def predict_unlabelled(trainer: Trainer, tokenized: DatasetDict, orders: dict[str, np.ndarray], task: tasks.Task):
    """Every review's outputs for the splits without labels, in the data's own order."""
    return {split: _in_data_order(task.outputs(trainer.predict(dataset).predictions), orders[split])
            for split, dataset in tokenized.items()}


def _in_data_order(outputs: np.ndarray, order: np.ndarray) -> list[list[float]]:
    """Per-review outputs of a length-sorted split, put back in the data's order (see sort_by_length)."""
    return restore_order(np.asarray(outputs, dtype=np.float32), order).tolist()


def run_cost(meter: energy.EnergyMeter, config: RunConfig, others: list[energy.ProcessUsage],
             intensity: tuple[float, str]) -> energy.RunCost:
    """Wall time, hardware, energy and CO2 of the run so far (main process): the card's Training cost."""
    cores = config.device.cores if config.device else (os.cpu_count() or 1)
    gpus = cuda_devices() if config.training.device.type == "cuda" else []
    hardware = energy.hardware_description(machine.cpu_model(), cores, [name for _, name in gpus])
    cost = meter.finish(hardware, *intensity, other_processes=others, gpus=gpus)
    logger.info("run cost: %.0f s, %.3g kWh, %.3g g CO2eq (%s); measuring took %.3f s", cost.wall_seconds,
                cost.energy_kwh, cost.co2_grams, cost.source, cost.metering_seconds)
    return cost


def cuda_devices() -> list[tuple[str, str]]:
    """(UUID, name) of the GPUs this machine's training processes use: local rank i trains on cuda:i."""
    devices = []
    for index in range(min(int(os.environ.get("LOCAL_WORLD_SIZE", 1)), torch.cuda.device_count())):
        properties = torch.cuda.get_device_properties(index)
        devices.append((str(getattr(properties, "uuid", index)), properties.name))
    return devices


def set_cpu_threads(config: RunConfig) -> int | None:
    """Threads per training process on a CPU: the cores this process may use, shared among this machine's
    processes (launchers would pin 1 each), or --cpu_threads."""
    if config.training.device.type != "cpu":
        return None
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    threads = config.run.cpu_threads or max(1, len(os.sched_getaffinity(0)) // local_processes)
    torch.set_num_threads(threads)
    return threads


def log_device_summary(config: RunConfig, prepared: Prepared) -> None:
    """One line: the device and every setting chosen for it (precision, TF32, optimizer, loaders, attention)."""
    logger.info("%s", device_summary(config, getattr(prepared.model.config, "_attn_implementation", None),
                                     prepared.precision_note))


def device_summary(config: RunConfig, attention: str | None, precision_note: str) -> str:
    args, facts = config.training, config.device
    reasons = config.device_defaults.reasons if config.device_defaults else {}
    processes = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    if args.device.type == "cpu":
        where = f"CPU {facts.name if facts else ''}: {torch.get_num_threads()} thread(s) per process"
    else:
        where = f"{args.device.type.upper()} {facts.name if facts else args.device}"
    tf32 = {True: "on", False: "off", None: "torch default"}[args.tf32]
    return "; ".join([
        f"Device: {where}, {processes} process(es) on this machine",
        f"mixed precision {args.mixed_precision} ({precision_note or reasons.get('precision', 'given')})",
        f"TF32 matmuls {tf32}" + (f" ({reasons['tf32']})" if "tf32" in reasons else ""),
        f"optimizer {getattr(args.optim, 'value', args.optim)}",
        f"dataloader {args.dataloader_num_workers} worker(s), pinned memory {'on' if args.dataloader_pin_memory else 'off'}",
        f"attention {attention or 'model default'}",
    ])


def setup_logging(config: RunConfig) -> None:
    logs.setup_logging(logging.INFO if config.training.process_index == 0 else logging.WARNING)


def banner(text: str) -> None:
    logger.info("===== %s =====", text)


def _score_line(scores: dict[str, dict[str, float]], task: tasks.Task) -> str:
    split = "test" if "test" in scores else "validation"
    if task.problem_type == tasks.SINGLE_LABEL:
        return f"{split} accuracy {scores[split]['accuracy']:.4f}, macro F1 {scores[split]['f1']:.4f}"
    return f"{split} " + ", ".join(f"{m} {scores[split][m]:.4f}" for m in task.headline[:2])


def print_audit(report: AuditReport) -> int:
    """--audit_only: the audit on standard output (and as JSON with its examples), nothing trained."""
    for line in report.summary_lines():
        print(line)
    print(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    return 0


def print_summary(output_dir: Path, data: ReviewData, evaluated: "Evaluated", clock: PhaseClock) -> None:
    total = clock.total
    print(f"\nModel folder: {output_dir.resolve()}")
    print(f"  took {total // 60:.0f} min {total % 60:.0f} s, of which evaluation {clock.evaluation:.0f} s "
          f"({clock.evaluation / total:.0%})")
    for split, values in evaluated.scores.items():
        bounds = evaluated.intervals.get(split, {})
        print(f"  {split:<10} " + "  ".join(f"{m} {values[m]:.4f}" + (f" {trust.plus_minus(bounds[m])}" if m in bounds
                                                                     else "") for m in data.task.headline)
              + f"  ({len(data.splits[split]):,} reviews)")
    for split, result in evaluated.unseen.items():
        bounds = result["intervals"]
        print(f"  {split:<10} on its {result['reviews']:,} reviews not also in train ({result['leaked']:,} leaked): "
              + "  ".join(f"{m} {v:.4f}" + (f" {trust.plus_minus(bounds[m])}" if m in bounds else "")
                          for m, v in result["scores"].items()))
    abstention = (evaluated.calibration or {}).get("abstention") or {}
    if abstention.get("threshold") is not None and "test" in abstention:
        test = abstention["test"]
        print(f"  unsure below confidence {abstention['threshold']:.3f}: test precision {test['precision']:.3f} on the "
              f"{trust.share_text(test['coverage'])} answered (--min_precision {abstention['min_precision']:.2f})")
    if data.task.problem_type == tasks.MULTI_LABEL:
        print(f"  decision threshold {data.task.threshold:.2f} (chosen on validation; saved in config.json)")
    for split, unlabelled in data.unlabelled.items():
        print(f"  {split:<10} no labels: {len(unlabelled):,} reviews predicted, not scored, in "
              f"{artifacts.predictions_file(split)}")
    # The interpreter that trained: the command works as printed, virtual environment or not.
    print(f"Serve it in the demo:\n  MODEL_ID={shlex.quote(str(output_dir))} {shlex.quote(sys.executable)} app.py")


if __name__ == "__main__":
    sys.exit(main())
