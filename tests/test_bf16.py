"""Mixed precision: on a CPU bf16 or fp32 by a probe of the loaded model (finetune/precision.py), on CUDA by
what the GPU supports (finetune/machine.py); an explicit flag always wins; and what a bf16 run records."""

import logging
import math

import numpy as np
import pytest
import torch
from conftest import make_reviews, tiny_run_args
from datasets import Dataset
from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

from finetune import artifacts, precision
from finetune.machine import DeviceFacts, device_defaults
from finetune.train import main, parse_run

CPU = DeviceFacts("cpu", "Intel(R) Xeon(R) Processor", cores=2)
H100 = DeviceFacts("cuda", "NVIDIA H100 80GB HBM3", cores=16, bf16_supported=True, tf32_supported=True)
T4 = DeviceFacts("cuda", "Tesla T4", cores=4, bf16_supported=False, tf32_supported=False)
UNSET = dict.fromkeys(("bf16", "fp16", "tf32", "dataloader_num_workers", "dataloader_pin_memory"))


@pytest.mark.parametrize("fp32, bf16, expected", [
    (1.00, 0.50, True),  # the AMD EPYC kind: bf16 1.5-2x faster
    (1.05, 1.00, True),  # 5% faster is enough
    (1.00, 0.97, False),  # 3% is within noise: fp32 kept
    (1.00, 1.00, False),
    (0.60, 1.00, False),  # the Intel Xeon without AMX: bf16 1.6x slower
])
def test_choose_keeps_fp32_unless_bf16_is_clearly_faster(fp32, bf16, expected):
    assert precision.choose(fp32, bf16) is expected


def test_device_defaults_on_a_cpu_probe_the_precision_and_use_no_loader_workers():
    defaults = device_defaults(UNSET, CPU)
    assert defaults.probe_precision
    assert defaults.values == {"bf16": False, "fp16": False, "tf32": None, "dataloader_num_workers": 0,
                               "dataloader_pin_memory": False}


def test_device_defaults_on_a_bf16_gpu():
    defaults = device_defaults(UNSET, H100)
    assert not defaults.probe_precision
    assert defaults.values == {"bf16": True, "fp16": False, "tf32": True, "dataloader_num_workers": 4,
                               "dataloader_pin_memory": True}
    assert defaults.reasons["precision"] == "default: this GPU computes bf16"


def test_device_defaults_on_a_gpu_without_bf16_use_fp16_and_no_tf32():
    defaults = device_defaults(UNSET, T4)
    assert defaults.values["fp16"] is True and defaults.values["bf16"] is False
    assert defaults.values["tf32"] is None  # TrainingArguments refuses --tf32 true before Ampere
    assert defaults.values["dataloader_num_workers"] == 4


def test_device_defaults_share_loader_workers_among_local_processes():
    facts = DeviceFacts("cuda", "NVIDIA A100", cores=8, local_processes=4, bf16_supported=True, tf32_supported=True)
    assert device_defaults(UNSET, facts).values["dataloader_num_workers"] == 2


@pytest.mark.parametrize("given", [
    {"bf16": False}, {"bf16": True}, {"fp16": True}, {"tf32": False}, {"dataloader_num_workers": 0},
    {"dataloader_pin_memory": False},
])
@pytest.mark.parametrize("facts", [CPU, H100, T4], ids=["cpu", "h100", "t4"])
def test_device_defaults_never_override_a_flag_the_user_gave(given, facts):
    defaults = device_defaults({**UNSET, **given}, facts)
    for name, value in given.items():
        assert defaults.values.get(name, value) == value
    if "bf16" in given or "fp16" in given:
        assert not defaults.probe_precision
        assert defaults.values["bf16"] is bool(given.get("bf16")) and defaults.values["fp16"] is bool(given.get("fp16"))


def test_device_defaults_leave_the_precision_to_accelerate_launch():
    for facts in (CPU, H100):
        defaults = device_defaults(UNSET, facts, accelerate_precision="fp16")
        assert not defaults.probe_precision and not defaults.values["bf16"] and not defaults.values["fp16"]


def test_parse_config_leaves_the_cpu_precision_to_the_probe(monkeypatch):
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    assert parse_run(["--bf16", "false"]).training.mixed_precision == "no"
    assert parse_run(["--bf16", "true"]).training.mixed_precision == "bf16"
    config = parse_run([])
    assert config.device_defaults.probe_precision and config.training.mixed_precision == "no"  # until the probe
    precision.apply(config.training, True)
    assert (config.training.bf16, config.training.mixed_precision) == (True, "bf16")


# --- the probe itself, on a tiny BERT -----------------------------------------------------------------


@pytest.fixture
def tiny_classifier(tiny_bert):
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    reviews = make_reviews(40, seed=5)
    train = Dataset.from_list([{"text": r["text"], "label": int(r["label"] == "positive")} for r in reviews])
    train = train.map(lambda batch: tokenizer(batch["text"], truncation=True), batched=True, remove_columns=["text"])
    return model, tokenizer, train


def test_the_probe_times_new_shapes_or_the_warm_one(tiny_classifier):
    model, tokenizer, train = tiny_classifier
    sample, lengths = precision.length_sample(train)
    batch = precision.probe_batch(sample, lengths, DataCollatorWithPadding(tokenizer), 8, int(lengths.mean()))
    widths = []
    hook = model.bert.embeddings.register_forward_hook(lambda module, args, output: widths.append(output.shape[1]))
    try:
        precision.measure(model, batch, budget=10.0, new_shapes=False)
        warm = list(widths)
        widths.clear()
        precision.measure(model, batch, budget=10.0, new_shapes=True)
    finally:
        hook.remove()
    length = batch["input_ids"].shape[1]
    assert set(warm) == {length}  # bucketed training meets its shapes again: every repeat times the warm one
    assert widths[:2] == [length, length] and widths[2:] == [w for extra in range(1, len(widths) // 2) for w in
                                                             (length + extra, length + extra)]


def test_the_probe_leaves_weights_grads_mode_and_rng_as_they_were(tiny_classifier):
    model, tokenizer, train = tiny_classifier
    model.eval()
    weights = {name: value.clone() for name, value in model.state_dict().items()}
    earlier_grad = torch.ones_like(model.classifier.weight)
    model.classifier.weight.grad = earlier_grad
    rng = torch.get_rng_state()
    sample, lengths = precision.length_sample(train)
    batch = precision.probe_batch(sample, lengths, DataCollatorWithPadding(tokenizer), 16, int(lengths.mean()))

    fp32, bf16, repeats = precision.measure(model, batch, budget=0.5)

    assert fp32 > 0 and bf16 > 0 and 1 <= repeats <= precision.MAX_REPEATS
    assert all(torch.equal(value, weights[name]) for name, value in model.state_dict().items())
    assert model.classifier.weight.grad is earlier_grad
    assert all(p.grad is None for name, p in model.named_parameters() if not name.startswith("classifier.weight"))
    assert model.training is False
    assert torch.equal(torch.get_rng_state(), rng)


def test_probe_batch_is_a_training_batch_of_about_the_median_length(tiny_classifier):
    _, tokenizer, train = tiny_classifier
    sample, lengths = precision.length_sample(train)
    median = int(sorted(lengths)[len(lengths) // 2])
    batch = precision.probe_batch(sample, lengths, DataCollatorWithPadding(tokenizer), 16, median)
    assert batch["input_ids"].shape[0] == 16 and batch["labels"].shape == (16,)
    assert abs(batch["input_ids"].shape[1] - median) <= 3
    assert precision.probe_rows(16, 512, max_tokens=4096) == 8  # a batch past the token bound runs in pieces


def test_the_probe_is_cached_per_machine_threads_model_shape_and_length(tiny_classifier, tmp_path):
    model, tokenizer, train = tiny_classifier
    cache, calls = tmp_path / "probes.json", []

    def fake_measure(model, batch, new_shapes=True):
        calls.append(batch["input_ids"].shape)
        return 0.200, 0.100, 3

    collator = DataCollatorWithPadding(tokenizer)
    first = precision.decide(model, train, collator, 16, threads=2, measure_fn=fake_measure, cache=cache)
    assert (first.bf16, first.fp32_ms, first.bf16_ms, first.cached_in) == (True, 200.0, 100.0, None)
    again = precision.decide(model, train, collator, 16, threads=2, measure_fn=fake_measure, cache=cache)
    assert len(calls) == 1 and again.cached_in == str(cache) and again.bf16_ms == 100.0
    assert "cached probe" in again.describe()
    precision.decide(model, train, collator, 16, threads=1, measure_fn=fake_measure, cache=cache)  # other threads
    precision.decide(model, train, collator, 8, threads=2, measure_fn=fake_measure, cache=cache)  # other batch
    assert len(calls) == 3
    key, facts = precision.cache_key(model.config, 16, 20, 2)
    assert facts["cpu"] and facts["torch"] == torch.__version__ and facts["length_bucket"] == 32
    assert precision.cache_key(model.config, 16, 20, 2, cpu="AMD EPYC 9R14")[0] != key
    assert precision.cache_key(model.config, 16, 20, 2, flags=["avx512f"])[0] != key
    assert precision.cache_key(model.config, 16, 30, 2)[0] == key  # same length bucket
    assert precision.cache_key(model.config, 16, 40, 2)[0] != key
    assert precision.cache_key(model.config, 16, 20, 2, reused_shapes=True)[0] != key  # the warm-shape probe
    bigger = type(model.config)(**{**model.config.to_dict(), "hidden_size": 64})
    assert precision.cache_key(bigger, 16, 20, 2)[0] != key
    cache.write_text("not json")  # a damaged cache is measured again, not fatal
    precision.decide(model, train, collator, 16, threads=2, measure_fn=fake_measure, cache=cache)
    assert len(calls) == 4


# --- whole runs ---------------------------------------------------------------------------------------


@pytest.fixture
def finetune_log():
    """The finetune logger's messages (train.py's setup_logging replaces the root handlers)."""
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    logger = logging.getLogger("finetune")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


@pytest.fixture
def bf16_cpu(monkeypatch):
    """A CPU that lists avx512_bf16, whatever this machine is: the probe runs (on one without bf16 instructions it
    is skipped, tests below), so that these tests mean the same on every CPU kind."""
    from finetune import machine

    monkeypatch.setattr(machine, "cpu_flags", lambda cpuinfo=None: ["avx2", "avx512_bf16", "avx512f"])


def test_a_cpu_without_bf16_instructions_trains_in_fp32_without_a_probe(tiny_bert, review_files, tmp_path,
                                                                       monkeypatch, finetune_log):
    from finetune import machine

    monkeypatch.setattr(machine, "cpu_flags", lambda cpuinfo=None: ["avx", "avx2", "fma", "sse4_2"])

    def no_probe(model, batch, new_shapes):
        raise AssertionError("no bf16 instructions: no probe")

    monkeypatch.setattr(precision, "measure", no_probe)
    out = tmp_path / "run"
    assert main(probed_args(tiny_bert, review_files, out, "--num_train_epochs", "1")) == 0
    summary = next(line for line in finetune_log if line.startswith("Device: CPU"))
    assert "fp32: this CPU has no bf16 instructions" in summary
    assert "bf16: false" in (out / artifacts.CONFIG_FILE).read_text()


def probed_args(tiny_bert, review_files, out, *extra):
    """tiny_run_args without its --bf16 false: the precision is left to the probe."""
    args = tiny_run_args(tiny_bert, review_files, out, *extra)
    at = args.index("--bf16")
    return args[:at] + args[at + 2:]


def test_a_probed_run_trains_exactly_as_the_same_explicit_choice(bf16_cpu, tiny_bert, review_files, tmp_path, monkeypatch,
                                                                 finetune_log):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty probe cache
    assert main(probed_args(tiny_bert, review_files, tmp_path / "probed")) == 0
    summary = next(line for line in finetune_log if line.startswith("Device: CPU"))
    assert "probe of" in summary and "fp32" in summary and "bf16" in summary and "ms per forward+backward" in summary
    chosen = artifacts.read_json(tmp_path / "probed", artifacts.RESULTS_FILE)
    bf16 = "mixed precision bf16" in summary
    assert f"bf16: {str(bf16).lower()}" in (tmp_path / "probed" / artifacts.CONFIG_FILE).read_text()

    explicit = tiny_run_args(tiny_bert, review_files, tmp_path / "explicit", "--bf16", str(bf16).lower())
    assert main(explicit) == 0
    given = artifacts.read_json(tmp_path / "explicit", artifacts.RESULTS_FILE)
    assert chosen["scores"] == given["scores"]  # the probe consumed no random numbers and changed no weight
    assert (artifacts.read_json(tmp_path / "probed", artifacts.HISTORY_FILE)
            == artifacts.read_json(tmp_path / "explicit", artifacts.HISTORY_FILE))


@pytest.mark.parametrize("buckets, new_shapes", [([], True), (["--pad_to_multiple_of", "16"], False)])
def test_a_probe_that_finds_bf16_faster_trains_in_bf16_and_says_so(bf16_cpu, tiny_bert, review_files, tmp_path, monkeypatch,
                                                                   finetune_log, buckets, new_shapes):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    probed_new_shapes = []
    monkeypatch.setattr(precision, "measure",
                        lambda model, batch, new_shapes: probed_new_shapes.append(new_shapes) or (0.150, 0.100, 3))
    out = tmp_path / "run"
    assert main(probed_args(tiny_bert, review_files, out, "--num_train_epochs", "1", *buckets)) == 0
    # batches padded to their longest review (the CPU default) meet new shapes; bucketed ones a warm shape
    assert probed_new_shapes == [new_shapes]
    summary = next(line for line in finetune_log if line.startswith("Device: CPU"))
    assert "mixed precision bf16 (probe of 3 repeat(s)" in summary
    assert "fp32 150 ms, bf16 100 ms per forward+backward; bf16 1.50x as fast" in summary
    assert "mixed_precision: bf16" in (out / "README.md").read_text()
    assert "bf16: true" in (out / artifacts.CONFIG_FILE).read_text()

    def no_probe(model, batch, new_shapes):
        raise AssertionError("the cached answer should have been used")

    monkeypatch.setattr(precision, "measure", no_probe)
    finetune_log.clear()
    assert main(probed_args(tiny_bert, review_files, out, "--num_train_epochs", "1", "--overwrite_output_dir", *buckets)) == 0
    summary = next(line for line in finetune_log if line.startswith("Device: CPU"))
    assert "mixed precision bf16 (cached probe of " in summary and str(tmp_path / "hf") in summary


def test_the_probes_choice_reaches_the_accelerator(tiny_classifier, tmp_path):
    from transformers import Trainer

    model, _, _ = tiny_classifier
    for bf16, expected in ((True, "bf16"), (False, "no")):
        # Fresh arguments each time: building TrainingArguments' device resets accelerate's one state.
        args = parse_run(["--output_dir", str(tmp_path / "out"), "--eval_strategy", "no",
                             "--load_best_model_at_end", "false"]).training
        precision.apply(args, bf16)
        assert Trainer(model=model, args=args).accelerator.mixed_precision == expected


def test_a_bf16_run_trains_and_says_so_without_a_probe(tiny_bert, review_files, tmp_path, monkeypatch, finetune_log):
    def no_probe(model, batch, new_shapes):
        raise AssertionError("--bf16 given: no probe")

    monkeypatch.setattr(precision, "measure", no_probe)
    out = tmp_path / "bf16"
    assert main(tiny_run_args(tiny_bert, review_files, out, "--bf16", "true", "--num_train_epochs", "6")) == 0
    assert "mixed_precision: bf16" in (out / "README.md").read_text()
    assert "bf16: true" in (out / artifacts.CONFIG_FILE).read_text()
    assert any("mixed precision bf16 (--bf16/--fp16 given)" in line for line in finetune_log)
    # bf16 arithmetic still learns the task (weights stay fp32; tests/test_distributed.py: 6 epochs learn it).
    assert artifacts.read_json(out, artifacts.RESULTS_FILE)["scores"]["validation"]["accuracy"] >= 0.8


# --- long reviews: the model's maximum length bounds every probe batch (issue 27) ----------------------


def reviews_of_words(n: int, words: int, seed: int) -> list[dict]:
    """make_reviews' reviews, each repeated up to exactly `words` words (one word piece each for the tiny BERT)."""
    rows = []
    for row in make_reviews(n, seed=seed):
        base = row["text"].split()
        rows.append({"text": " ".join((base * (words // len(base) + 1))[:words]), "label": row["label"]})
    return rows


def test_a_probe_batch_of_reviews_at_the_maximum_length_stays_within_the_model(tiny_classifier):
    model, tokenizer, _ = tiny_classifier
    limit = model.config.max_position_embeddings  # 64
    train = Dataset.from_list([{"text": r["text"], "label": int(r["label"] == "positive")}
                               for r in reviews_of_words(24, 200, seed=8)])
    train = train.map(lambda batch: tokenizer(batch["text"], truncation=True, max_length=limit), batched=True,
                      remove_columns=["text"])
    sample, lengths = precision.length_sample(train)
    assert int(np.median(lengths)) == limit  # every review fills the model
    batch = precision.probe_batch(sample, lengths, DataCollatorWithPadding(tokenizer), 8, limit, limit=limit)
    assert batch["input_ids"].shape[1] == limit - precision.MAX_REPEATS
    assert batch["labels"].shape == (8,)  # the labels are not cut
    # Every repeat's shape fits: the probe's longest batch is the limit itself, and the model runs on it.
    fp32, bf16, repeats = precision.measure(model, batch, budget=10.0)
    assert repeats == precision.MAX_REPEATS and fp32 > 0 and bf16 > 0


@pytest.mark.parametrize("words", [62, 150])  # 62 words + [CLS] + [SEP]: exactly the tiny BERT's 64; 150: far past it
def test_the_default_path_trains_on_reviews_at_and_past_the_maximum_length(bf16_cpu, tiny_bert, tmp_path, monkeypatch,
                                                                         finetune_log, words):
    from conftest import write_csv

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty probe cache: the probe really runs
    files = {split: write_csv(tmp_path / f"{split}.csv", reviews_of_words(n, words, seed))
             for split, n, seed in (("train", 48, 1), ("validation", 16, 2), ("test", 16, 3))}
    out = tmp_path / "run"
    assert main(probed_args(tiny_bert, files, out, "--num_train_epochs", "1")) == 0
    summary = next(line for line in finetune_log if line.startswith("Device: CPU"))
    assert f"reviews x {64 - precision.MAX_REPEATS} tokens" in summary
    results = artifacts.read_json(out, artifacts.RESULTS_FILE)
    assert set(results["scores"]) >= {"validation", "test"}


# --- a non-finite loss in mixed precision (issue 25 §4) -------------------------------------------------


def test_a_non_finite_loss_in_bf16_goes_back_to_the_last_checkpoint_and_on_in_fp32(tiny_bert, review_files, tmp_path,
                                                                                  monkeypatch, finetune_log):
    from finetune.batching import ReviewTrainer

    compute_loss = ReviewTrainer.compute_loss

    def nan_in_bf16_from_step_8(self, model, inputs, *args, **kwargs):
        result = compute_loss(self, model, inputs, *args, **kwargs)
        if self.args.bf16 and self.state.global_step >= 8:  # epoch 2 of 6 steps each: a NaN, as bf16 can give
            loss = result[0] if isinstance(result, tuple) else result
            loss = loss * float("nan")
            return (loss, *result[1:]) if isinstance(result, tuple) else loss
        return result

    monkeypatch.setattr(ReviewTrainer, "compute_loss", nan_in_bf16_from_step_8)
    out = tmp_path / "run"
    assert main(tiny_run_args(tiny_bert, review_files, out, "--bf16", "true", "--num_train_epochs", "6")) == 0
    note = next(line for line in finetune_log if line.startswith("a non-finite")).removesuffix(" (the card says so)")
    assert "in bf16: training went back to checkpoint-6 and went on in fp32" in note
    history = artifacts.read_json(out, artifacts.HISTORY_FILE)
    assert [row["epoch"] for row in history] == [1, 2, 3, 4, 5, 6]
    assert all(math.isfinite(row["train_loss"]) and math.isfinite(row["eval_loss"]) for row in history)
    results = artifacts.read_json(out, artifacts.RESULTS_FILE)
    assert results["precision_fallback"] == note  # the loss or the gradient norm, whichever was logged first
    assert results["scores"]["validation"]["accuracy"] >= 0.8  # what was trained was kept, and it learnt
    card = (out / artifacts.CARD_FILE).read_text()
    assert f"precision_fallback: {note}" in card and "mixed_precision: no" in card


def test_a_non_finite_loss_in_fp32_stops_with_the_checkpoints_kept(tiny_bert, review_files, tmp_path, monkeypatch,
                                                                   capsys):
    from finetune.batching import ReviewTrainer

    compute_loss = ReviewTrainer.compute_loss

    def nan_from_step_8(self, model, inputs, *args, **kwargs):
        result = compute_loss(self, model, inputs, *args, **kwargs)
        if self.state.global_step >= 8:
            return result * float("nan") if not isinstance(result, tuple) else (result[0] * float("nan"), *result[1:])
        return result

    monkeypatch.setattr(ReviewTrainer, "compute_loss", nan_from_step_8)
    out = tmp_path / "run"
    assert main(tiny_run_args(tiny_bert, review_files, out, "--num_train_epochs", "3")) == 5
    assert "error: training diverged in fp32 (" in capsys.readouterr().err
    assert (out / "checkpoint-6" / "trainer_state.json").is_file()
