"""Hyperparameter search (finetune/search.py): the space, a trial's parameters and arguments, the median rule,
and the search run end to end by train.main."""

import json
import math

import optuna
import pytest
import yaml
from conftest import tiny_run_args
from transformers import TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_utils import SchedulerType

from finetune import artifacts, run_views
from finetune.errors import UsageError
from finetune.search import (
    DEFAULT_SPACE,
    SearchResult,
    TrialMonitor,
    TrialRecord,
    apply_params,
    parse_space,
    search_arguments,
    suggest,
)
from finetune.train import EXIT_USAGE, main


def _training_args(tmp_path, **settings) -> TrainingArguments:
    return TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True, **settings)


# --- parse_space ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [None, ""])
def test_parse_space_without_text_is_a_copy_of_the_default(text):
    space = parse_space(text)
    assert space == DEFAULT_SPACE
    space["learning_rate"]["low"] = 1.0  # the caller's copy: the default stays as it is
    assert DEFAULT_SPACE["learning_rate"]["low"] == 1e-5


def test_parse_space_reads_yaml_and_json_alike():
    from_yaml = parse_space("learning_rate: {type: float, low: 0.001, high: 0.01, log: true}\n"
                            "per_device_train_batch_size: {type: categorical, choices: [8, 16]}\n")
    from_json = parse_space('{"learning_rate": {"type": "float", "low": 0.001, "high": 0.01, "log": true}, '
                            '"per_device_train_batch_size": {"type": "categorical", "choices": [8, 16]}}')
    assert from_yaml == from_json == {
        "learning_rate": {"type": "float", "low": 0.001, "high": 0.01, "log": True},
        "per_device_train_batch_size": {"type": "categorical", "choices": [8, 16]},
    }


def test_parse_space_takes_numbers_written_as_strings():
    # YAML 1.1 reads 1e-5 (no dot) as the string "1e-5".
    space = parse_space("learning_rate: {type: float, low: 1e-5, high: 1e-4, log: true}\n"
                        "num_train_epochs: {type: int, low: '1', high: '3'}\n")
    assert space["learning_rate"]["low"] == 1e-5 and space["learning_rate"]["high"] == 1e-4
    assert space["num_train_epochs"]["low"] == 1 and space["num_train_epochs"]["high"] == 3


@pytest.mark.parametrize("text, message", [
    ("learning_rate: [1, 2", "--hp_search_space: not valid YAML or JSON"),
    ("learning_rate", "--hp_search_space: expected a mapping of TrainingArguments names to ranges"),
    ("{}", "--hp_search_space: expected a mapping of TrainingArguments names to ranges"),
    ('{"no_such_setting": {"type": "float", "low": 0, "high": 1}}',
     "--hp_search_space no_such_setting: not a TrainingArguments setting (e.g. learning_rate, num_train_epochs)."),
    ('{"learning_rate": {"type": "uniform", "low": 0, "high": 1}}',
     "--hp_search_space learning_rate: give a mapping with type one of float, int, categorical."),
    ('{"learning_rate": [0, 1]}',
     "--hp_search_space learning_rate: give a mapping with type one of float, int, categorical."),
    ('{"per_device_train_batch_size": {"type": "categorical", "choices": []}}',
     "--hp_search_space per_device_train_batch_size: a categorical range needs a non-empty list `choices`."),
    ('{"per_device_train_batch_size": {"type": "categorical", "choices": 8}}',
     "--hp_search_space per_device_train_batch_size: a categorical range needs a non-empty list `choices`."),
    ('{"num_train_epochs": {"type": "int", "low": 4, "high": 2}}',
     "--hp_search_space num_train_epochs: a int range needs numbers low <= high."),
    ('{"weight_decay": {"type": "float", "low": 0}}',
     "--hp_search_space weight_decay: a float range needs numbers low <= high."),
    ('{"weight_decay": {"type": "float", "low": "small", "high": 0.1}}',
     "--hp_search_space weight_decay: a float range needs numbers low <= high."),
    ('{"weight_decay": {"type": "float", "low": true, "high": 0.1}}',
     "--hp_search_space weight_decay: a float range needs numbers low <= high."),
    ('{"learning_rate": {"type": "float", "low": 0, "high": 1, "log": true}}',
     "--hp_search_space learning_rate: a log range needs low > 0."),
    ('{"learning_rate": {"type": "float", "low": -1, "high": 1, "log": true}}',
     "--hp_search_space learning_rate: a log range needs low > 0."),
])
def test_parse_space_refuses_a_space_it_cannot_search_and_names_the_setting(text, message):
    with pytest.raises(UsageError) as refused:
        parse_space(text)
    assert message in str(refused.value)


# --- suggest --------------------------------------------------------------------------------------


def test_suggest_takes_a_fixed_trials_values_for_the_default_space():
    chosen = {"learning_rate": 3e-5, "per_device_train_batch_size": 16, "num_train_epochs": 2,
              "warmup_steps": 0.1, "weight_decay": 0.05}
    assert suggest(optuna.trial.FixedTrial(chosen), DEFAULT_SPACE) == chosen


def test_suggest_gives_whole_numbers_for_an_int_range_written_as_strings():
    space = parse_space("num_train_epochs: {type: int, low: '1', high: '3'}")
    params = suggest(optuna.trial.FixedTrial({"num_train_epochs": 2}), space)
    assert params == {"num_train_epochs": 2} and type(params["num_train_epochs"]) is int


def test_suggest_stays_in_the_space_on_a_real_study():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        params = suggest(study.ask(), DEFAULT_SPACE)
        assert set(params) == set(DEFAULT_SPACE)
        assert 1e-5 <= params["learning_rate"] <= 1e-4
        assert params["per_device_train_batch_size"] in (8, 16, 32)
        assert type(params["num_train_epochs"]) is int and 1 <= params["num_train_epochs"] <= 4
        assert 0.0 <= params["warmup_steps"] <= 0.2 and 0.0 <= params["weight_decay"] <= 0.1
    distribution = study.trials[0].distributions["learning_rate"]
    assert distribution.log and not study.trials[0].distributions["weight_decay"].log


# --- a trial's arguments --------------------------------------------------------------------------


def test_search_arguments_save_no_checkpoints_and_leave_the_runs_arguments_alone(tmp_path):
    args = _training_args(tmp_path, eval_strategy="epoch", save_strategy="epoch", load_best_model_at_end=True,
                          metric_for_best_model="f1", learning_rate=3e-5)
    trial_args = search_arguments(args)
    assert trial_args is not args
    assert trial_args.save_strategy == "no" and trial_args.load_best_model_at_end is False
    assert trial_args.eval_strategy == "epoch" and trial_args.learning_rate == 3e-5
    assert args.save_strategy == "epoch" and args.load_best_model_at_end is True


def test_apply_params_casts_each_value_to_its_settings_type(tmp_path):
    args = _training_args(tmp_path, num_train_epochs=3.0, per_device_train_batch_size=8, learning_rate=5e-5,
                          warmup_steps=0.0, lr_scheduler_type="linear")
    apply_params(args, {"num_train_epochs": 2, "per_device_train_batch_size": 32.0, "learning_rate": "1e-5",
                        "warmup_steps": 0.15, "lr_scheduler_type": "cosine"})
    assert type(args.num_train_epochs) is float and args.num_train_epochs == 2.0
    assert type(args.per_device_train_batch_size) is int and args.per_device_train_batch_size == 32
    assert type(args.learning_rate) is float and args.learning_rate == 1e-5
    assert args.warmup_steps == 0.15
    assert args.lr_scheduler_type is SchedulerType.COSINE


def test_apply_params_keeps_a_value_as_given_where_the_setting_is_unset(tmp_path):
    args = _training_args(tmp_path)
    assert args.max_grad_norm is not None and args.hub_model_id is None
    apply_params(args, {"hub_model_id": "me/tuned"})
    assert args.hub_model_id == "me/tuned"


def test_apply_params_keeps_a_warmup_fraction_when_warmup_steps_was_the_int_zero(tmp_path):
    args = _training_args(tmp_path)
    assert args.warmup_steps == 0 and type(args.warmup_steps) is int
    apply_params(args, {"warmup_steps": 0.15})
    assert args.warmup_steps == 0.15


# --- the record of a search -----------------------------------------------------------------------


def test_search_result_to_dict_is_json_with_one_mapping_per_trial():
    trials = [TrialRecord(0, {"learning_rate": 1e-3}, 0.8, "complete", 1.5, [0.7, 0.8]),
              TrialRecord(1, {"learning_rate": 4e-3}, None, "failed", math.nan)]
    result = SearchResult("f1", "maximize", {"learning_rate": DEFAULT_SPACE["learning_rate"]}, 48, trials,
                          {"learning_rate": 1e-3}, 0.8)
    payload = json.loads(json.dumps(result.to_dict()))
    assert payload["trials"][0] == {"number": 0, "params": {"learning_rate": 1e-3}, "value": 0.8,
                                    "state": "complete", "seconds": 1.5, "epoch_values": [0.7, 0.8]}
    assert payload["trials"][1]["value"] is None and payload["trials"][1]["epoch_values"] == []
    assert math.isnan(payload["trials"][1]["seconds"])
    assert {k: payload[k] for k in ("metric", "direction", "train_samples", "best_params", "best_value")} == {
        "metric": "f1", "direction": "maximize", "train_samples": 48, "best_params": {"learning_rate": 1e-3},
        "best_value": 0.8}
    assert payload["space"] == {"learning_rate": {"type": "float", "low": 1e-5, "high": 1e-4, "log": True}}


# --- TrialMonitor: the median rule and the objective ----------------------------------------------


def test_search_monitor_stops_a_trial_below_the_median_of_earlier_ones():
    from finetune.search import TrialMonitor

    monitor = TrialMonitor("eval_f1", maximize=True)
    monitor.history = {0: [0.6, 0.7], 1: [0.5, 0.8]}
    monitor.values = [0.55]
    assert not monitor._hopeless()  # the first epoch is never judged
    monitor.values = [0.55, 0.6]
    assert monitor._hopeless()  # below the median 0.75 of the earlier trials' second epochs
    monitor.values = [0.55, 0.76]
    assert not monitor._hopeless()


def test_trial_monitor_judges_a_loss_by_its_lowest_value():
    monitor = TrialMonitor("eval_loss", maximize=False)
    monitor.history = {0: [0.7, 0.4], 1: [0.7, 0.6]}
    monitor.values = [0.9, 0.45]
    assert not monitor._hopeless()  # below the median loss 0.5 of the earlier trials' second epochs
    monitor.values = [0.9, 0.55]
    assert monitor._hopeless()
    monitor.values = [0.3, 0.9]
    assert not monitor._hopeless()  # the trial's best epoch counts, not its latest


def test_trial_monitor_waits_for_two_earlier_trials_that_reached_the_epoch():
    monitor = TrialMonitor("eval_f1", maximize=True)
    monitor.history = {0: [0.9, 0.9], 1: [0.9]}  # trial 1 was stopped after one epoch
    monitor.values = [0.1, 0.1]
    assert not monitor._hopeless()


def test_trial_monitor_objective_is_the_best_score_of_the_trial():
    best_f1 = TrialMonitor("eval_f1", maximize=True)
    best_f1.values = [0.6, 0.8, 0.7]
    assert best_f1.objective({"eval_f1": 0.7}) == 0.8
    lowest_loss = TrialMonitor("eval_loss", maximize=False)
    lowest_loss.values = [0.6, 0.4, 0.5]
    assert lowest_loss.objective({"eval_loss": 0.5}) == 0.4
    assert TrialMonitor("eval_f1", maximize=True).objective({"eval_f1": 0.3}) == 0.3  # no evaluation yet


def test_trial_monitor_stops_a_hopeless_trial_then_marks_it_pruned(tmp_path):
    args, state = _training_args(tmp_path), TrainerState()
    monitor = TrialMonitor("eval_f1", maximize=True)
    monitor.history = {0: [0.6, 0.7], 1: [0.5, 0.8]}
    monitor.trial = optuna.trial.FixedTrial({}, number=2)
    control = TrainerControl()
    monitor.on_train_begin(args, state, control)
    monitor.on_evaluate(args, state, control, metrics={"eval_f1": 0.55})
    assert not control.should_training_stop
    monitor.on_evaluate(args, state, control, metrics={"eval_f1": 0.6})
    assert control.should_training_stop
    with pytest.raises(optuna.TrialPruned):
        monitor.on_train_end(args, state, control)
    assert monitor.pruned == {2} and monitor.history[2] == [0.55, 0.6] and monitor.seconds[2] >= 0


def test_trial_monitor_records_a_trial_that_runs_to_its_end(tmp_path):
    args, state, control = _training_args(tmp_path), TrainerState(), TrainerControl()
    monitor = TrialMonitor("eval_loss", maximize=False)
    monitor.trial = optuna.trial.FixedTrial({}, number=0)
    monitor.on_train_begin(args, state, control)
    for loss in (0.7, 0.5):
        monitor.on_evaluate(args, state, control, metrics={"eval_loss": loss})
    monitor.on_train_end(args, state, control)
    assert not control.should_training_stop and monitor.pruned == set()
    assert monitor.history == {0: [0.7, 0.5]} and set(monitor.seconds) == {0}


# --- the search run by train.main -----------------------------------------------------------------

SEARCH_SPACE = ('{"learning_rate": {"type": "float", "low": 1e-3, "high": 5e-3, "log": true}, '
                '"num_train_epochs": {"type": "int", "low": 1, "high": 2}}')


def test_search_runs_trials_then_trains_the_best_and_records_them(tiny_bert, review_files, tmp_path):
    output_dir = tmp_path / "searched"
    assert main(tiny_run_args(tiny_bert, review_files, output_dir, "--hp_search_trials", "2",
                              "--hp_search_space", SEARCH_SPACE, "--hp_search_train_samples", "48")) == 0
    search = artifacts.read_json(output_dir, artifacts.SEARCH_FILE)
    assert [t["number"] for t in search["trials"]] == [0, 1] and search["train_samples"] == 48
    assert search["metric"] == "f1" and search["direction"] == "maximize"
    for trial in search["trials"]:
        assert trial["state"] == "complete" and 1e-3 <= trial["params"]["learning_rate"] <= 5e-3
        assert trial["seconds"] > 0 and len(trial["epoch_values"]) == trial["params"]["num_train_epochs"]
        assert trial["value"] == max(trial["epoch_values"])
    best = max(search["trials"], key=lambda t: t["value"])
    assert search["best_params"] == best["params"]
    # The final model trained on all 96 reviews with the best trial's settings.
    config = yaml.safe_load((output_dir / artifacts.CONFIG_FILE).read_text())
    assert config["training"]["learning_rate"] == pytest.approx(best["params"]["learning_rate"])
    history = artifacts.read_json(output_dir, artifacts.HISTORY_FILE)
    assert len(history) == best["params"]["num_train_epochs"] and history[-1]["step"] % 6 == 0
    card = (output_dir / "README.md").read_text()
    assert "## Hyperparameter search" in card and "The test split was not used" in card


@pytest.mark.parametrize("flags, message", [
    (["--hp_search_trials", "2", "--hp_search_space", '{"no_such_setting": {"type": "float", "low": 0, "high": 1}}'],
     "not a TrainingArguments setting"),
    (["--hp_search_trials", "2", "--hp_search_space", '{"learning_rate": {"type": "float", "low": 0, "high": 1, '
      '"log": true}}'], "a log range needs low > 0"),
    (["--hp_search_train_samples", "10"], "need --hp_search_trials"),
    (["--hp_search_trials", "2", "--resume_from_checkpoint", "true"], "a resumed run keeps the settings"),
])
def test_search_flags_that_cannot_work_are_refused(tiny_bert, review_files, tmp_path, capsys, flags, message):
    assert main(tiny_run_args(tiny_bert, review_files, tmp_path / "out", *flags)) == EXIT_USAGE
    assert message in capsys.readouterr().err


def test_search_space_comes_from_a_recipe_mapping(tmp_path):
    from finetune.train import parse_run

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("hp_search_trials: 3\nhp_search_space:\n  weight_decay: {type: float, low: 0.0, high: 0.3}\n")
    config = parse_run(["--config", str(recipe)])
    assert json.loads(config.run.hp_search_space) == {"weight_decay": {"type": "float", "low": 0.0, "high": 0.3}}


def test_search_trials_reach_the_demo(tiny_bert, review_files, tmp_path):
    from conftest import free_port
    from gradio_client import Client

    import app

    output_dir = tmp_path / "searched"
    assert main(tiny_run_args(tiny_bert, review_files, output_dir, "--hp_search_trials", "2",
                              "--hp_search_space", SEARCH_SPACE, "--num_train_epochs", "1")) == 0
    search = artifacts.read_json(output_dir, artifacts.SEARCH_FILE)
    demo = app.build_demo(run_views.load_served_model(str(output_dir)))
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        table, plot, note = Client(f"http://127.0.0.1:{port}/", verbose=False).predict(api_name="/hp_search")
    finally:
        demo.close()
    assert [row[0] for row in table["data"]] == [0, 1]
    assert table["headers"][:4] == ["trial", "state", "f1", "seconds"]
    assert [round(row[1], 4) for row in plot["data"]] == [round(t["value"], 4) for t in search["trials"]]
    assert "2 trials on 96 training reviews" in note


def test_search_view_without_a_search_says_so(trained_run):

    table, plot, note = run_views.search_view(run_views.load_served_model(str(trained_run)))
    assert table.empty and plot.empty and "did not search" in note
