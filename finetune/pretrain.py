"""Further pre-training on your own reviews: masked-language-model training on the training split's texts.

    python -m finetune.pretrain --train_file reviews.csv --text_column_name review --output_dir outputs/mlm
    python -m finetune.pretrain --unlabelled_file more_reviews.csv             # the embedded reviews, and more
    accelerate launch finetune/train.py --model_name_or_path outputs/mlm --train_file reviews.csv ...

Sun et al. 2019 ("How to Fine-Tune BERT for Text Classification?") measured this as their largest gain:
the model first learns the words of the task's own text (15% of word pieces masked, as BERT was trained),
then it is fine-tuned as usual. It reads the reviews the training run would train on (the same data flags
and --seed give the same split: validation and test reviews are never read) plus, optionally, a file of
unlabelled reviews. Any BERT-family checkpoint works; one saved without its masked-LM head (the embedded
MiniLM) gets a new head, built as BERT's (its output layer is the word embeddings). The output folder holds
the encoder (with the base model's pooler, which masked-LM training does not use or change) and the
tokenizer, ready for `--model_name_or_path`, and pretrain.json: the texts, the settings and the masked-LM
loss on held-out texts before and after.
"""

import dataclasses
import json
import logging
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from finetune import errors
from finetune.config import DataArguments, ModelArguments, check_positive
from finetune.errors import UsageError

logger = logging.getLogger("finetune")

EXIT_USAGE = errors.EXIT_USAGE  # finetune/errors.py
RESULT_FILE = "pretrain.json"
HELD_OUT_SHARE = 0.05  # of the pre-training texts, to measure the masked-LM loss before and after


@dataclass
class PretrainArguments:
    output_dir: str | None = field(default=None, metadata={
        "help": "Where the pre-trained model goes. Default: outputs/<model>-<data>-mlm."})
    unlabelled_file: str | None = field(default=None, metadata={
        "help": "A CSV/JSON/Parquet file of more reviews (its --text_column_name column), read besides the training "
        "split. Never pass a validation or test split here: the scores would no longer be held out."})
    num_train_epochs: float = field(default=1.0, metadata={"help": "Passes over the texts."})
    learning_rate: float = field(default=5e-5, metadata={"help": "Peak learning rate (linear decay, 6%% warmup)."})
    per_device_train_batch_size: int = field(default=16, metadata={"help": "Texts per step."})
    mlm_probability: float = field(default=0.15, metadata={"help": "Share of word pieces masked (BERT: 0.15)."})
    seed: int = field(default=42, metadata={
        "help": "The seed of the training run to come: with the same data flags it carves the same validation "
        "split, which pre-training then never reads."})
    cpu_threads: int | None = field(default=None, metadata={"help": "Threads on a CPU. Default: every core here."})

    def __post_init__(self):
        check_positive(self, "num_train_epochs", "learning_rate", "per_device_train_batch_size", "cpu_threads")
        if not 0 < self.mlm_probability < 1:
            raise UsageError(f"--mlm_probability {self.mlm_probability}: must be in (0, 1), e.g. 0.15.")


def parse_args(argv: list[str]) -> tuple[ModelArguments, DataArguments, PretrainArguments]:
    from transformers import HfArgumentParser

    from finetune import data_files

    parser = HfArgumentParser((ModelArguments, DataArguments, PretrainArguments), prog="python -m finetune.pretrain",
                              description=__doc__.split("\n\n")[0], allow_abbrev=False)
    try:
        model, data, run = parser.parse_args_into_dataclasses(argv)
    except SystemExit as exit_:
        if exit_.code in (0, None):  # --help printed the usage: nothing went wrong
            raise
        raise UsageError("see the message above; `python -m finetune.pretrain --help` lists the flags") from exit_
    data_files.check_files(data)
    if run.unlabelled_file is not None:
        data_files.check_data_file("unlabelled_file", run.unlabelled_file)
    return model, data, run


def pretraining_texts(data_args: DataArguments, run: PretrainArguments) -> tuple[list[str], str]:
    """The training split's texts (as finetune/train.py would split the data) and the unlabelled file's."""
    from finetune.data import load_review_data
    from finetune.data_files import read_data_file

    data = load_review_data(data_args, run.seed)
    texts = data.splits["train"]["text"][:]
    if run.unlabelled_file:
        extra = read_data_file(run.unlabelled_file, "unlabelled_file", data_args.file_encoding,
                               data_args.csv_delimiter, (data_args.text_column_name,), data_args.sheet)
        if data_args.text_column_name not in extra.column_names:
            raise UsageError(f"--unlabelled_file {run.unlabelled_file}: no column '{data_args.text_column_name}' "
                             f"(it has: {', '.join(extra.column_names)}). Pass --text_column_name.")
        texts += [t for t in extra[data_args.text_column_name][:] if isinstance(t, str) and t.strip()]
    return texts, data.dataset_name


def masked_lm(model_path: str):
    """The checkpoint with a masked-LM head: its own, or a new one built as BERT's (tied to the embeddings)."""
    from transformers import AutoModelForMaskedLM

    return AutoModelForMaskedLM.from_pretrained(model_path)


WARMUP_TEXTS = 1000
HEAD_WARMUP_LR = 1e-3  # a new, random head alone: 20x the encoder's rate (5e-5 moved its loss 11.1 -> 10.5)


def warm_up_new_head(mlm, model_path: str, trainer, texts) -> None:
    """A masked-LM head the checkpoint did not have is random: trained first on its own, the encoder frozen, over
    up to WARMUP_TEXTS texts at HEAD_WARMUP_LR, so that its first gradients do not reach the encoder (linear probing, then
    fine-tuning). A checkpoint with its own head starts at once."""
    from transformers import AutoConfig

    architectures = AutoConfig.from_pretrained(model_path).architectures or []
    if any(name.endswith(("ForMaskedLM", "ForPreTraining")) for name in architectures):
        return
    encoder = mlm.base_model
    for parameter in encoder.parameters():
        parameter.requires_grad_(False)
    tied = mlm.get_output_embeddings()
    if tied is not None:
        tied.weight.requires_grad_(False)  # the decoder is the word embeddings: they stay as they are
    try:
        args = dataclasses.replace(trainer.args, num_train_epochs=1, learning_rate=HEAD_WARMUP_LR)
        warm = masked_lm_trainer(model=mlm, args=args, data_collator=trainer.data_collator,
                                 train_dataset=texts.select(range(min(WARMUP_TEXTS, len(texts)))))
        loss = warm.train().training_loss
        logger.info("the new masked-LM head, trained alone first (encoder frozen): loss %.3f", loss)
    finally:
        for parameter in mlm.parameters():
            parameter.requires_grad_(True)


def masked_positions_loss(model, inputs):
    """The masked-LM loss from the masked positions alone (15% of them): the head's vocabulary projection, the
    costliest part on a CPU, runs on those rows only. Models whose head is not BERT's `cls` run whole."""
    import torch

    head = getattr(model, "cls", None)
    if head is None:
        return model(**inputs).loss
    labels = inputs.pop("labels")
    hidden = model.base_model(**inputs).last_hidden_state
    chosen = labels != -100
    return torch.nn.functional.cross_entropy(head(hidden[chosen]).float(), labels[chosen])


def masked_lm_trainer(**kwargs):
    from transformers import Trainer

    class MaskedLMTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss = masked_positions_loss(model, inputs)
            return (loss, {"loss": loss}) if return_outputs else loss

    return MaskedLMTrainer(**kwargs)


def save_encoder(mlm, model_path: str, tokenizer, output_dir: Path) -> None:
    """The trained encoder with the base checkpoint's pooler (the classifier reads it), as a plain model."""
    from transformers import AutoModel

    base = AutoModel.from_pretrained(model_path)
    missing, unexpected = base.load_state_dict(mlm.base_model.state_dict(), strict=False)
    if unexpected or any("pooler" not in name for name in missing):
        raise RuntimeError(f"encoder weights did not match: missing {missing}, unexpected {unexpected}")
    base.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)


def main(argv: list[str] | None = None) -> int:
    from finetune.logs import setup_logging

    argv = list(sys.argv[1:] if argv is None else argv)
    setup_logging()
    try:
        model_args, data_args, run = parse_args(argv)
        texts, data_name = pretraining_texts(data_args, run)
    except UsageError as err:
        return errors.report(err, EXIT_USAGE)
    import torch
    from datasets import Dataset
    from transformers import AutoConfig, AutoTokenizer, DataCollatorForLanguageModeling, TrainingArguments, set_seed

    from finetune import machine, truncation
    from finetune.artifacts import public_value
    from finetune.config import default_output_dir
    from finetune.modeling import resolve_model_path

    model_path = resolve_model_path(model_args)
    output_dir = Path(run.output_dir or default_output_dir(model_args.model_name_or_path, data_args.dataset_name,
                                                           data_args.train_file) + "-mlm")
    torch.set_num_threads(run.cpu_threads or len(os.sched_getaffinity(0)))
    set_seed(run.seed)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    max_length = truncation.max_length(tokenizer, AutoConfig.from_pretrained(model_path), data_args.max_seq_length or 128)
    dataset = Dataset.from_dict({"text": texts}).shuffle(seed=run.seed)
    held_out = max(1, int(len(dataset) * HELD_OUT_SHARE))
    splits = dataset.train_test_split(test_size=held_out, seed=run.seed)
    tokenized = splits.map(lambda b: tokenizer(b["text"], truncation=True, max_length=max_length,
                                               return_special_tokens_mask=True),
                           batched=True, remove_columns=["text"])
    mlm = masked_lm(model_path)
    args = TrainingArguments(
        output_dir=str(output_dir / "mlm-checkpoints"), num_train_epochs=run.num_train_epochs,
        learning_rate=run.learning_rate, per_device_train_batch_size=run.per_device_train_batch_size,
        per_device_eval_batch_size=32, warmup_steps=0.06, weight_decay=0.01, save_strategy="no",
        eval_strategy="no", logging_steps=50, report_to="none", seed=run.seed, use_cpu=not machine.has_accelerator(),
        train_sampling_strategy="group_by_length", disable_tqdm=True, prediction_loss_only=True,
    )
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=run.mlm_probability, seed=run.seed)
    trainer = masked_lm_trainer(model=mlm, args=args, train_dataset=tokenized["train"],
                                eval_dataset=tokenized["test"], data_collator=collator)
    logger.info("===== Masked-LM pre-training of %s on %d texts (%s%s), %g epochs, max_length %d =====",
                model_path, len(tokenized["train"]), data_name, " + unlabelled" if run.unlabelled_file else "",
                run.num_train_epochs, max_length)
    started = time.perf_counter()
    before = trainer.evaluate()["eval_loss"]
    warm_up_new_head(mlm, model_path, trainer, tokenized["train"])
    trainer.train()
    after = trainer.evaluate()["eval_loss"]
    seconds = time.perf_counter() - started
    output_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(output_dir / "mlm-checkpoints", ignore_errors=True)  # save_strategy no: nothing of value there
    save_encoder(mlm, model_path, tokenizer, output_dir)
    result = {
        "base_model": model_args.model_name_or_path or "embedded MiniLM", "data": data_name,
        "texts": len(tokenized["train"]), "held_out_texts": held_out, "unlabelled_file": bool(run.unlabelled_file),
        "max_length": max_length, "seconds": round(seconds, 1),
        "held_out_mlm_loss": {"before": round(before, 4), "after": round(after, 4)},
        "held_out_perplexity": {"before": round(math.exp(before), 2), "after": round(math.exp(after), 2)},
        "settings": {k: public_value(v) for k, v in asdict(run).items() if k != "output_dir"},  # no local paths
    }
    (output_dir / RESULT_FILE).write_text(json.dumps(result, indent=2) + "\n")
    logger.info("held-out masked-LM loss %.3f -> %.3f (perplexity %.1f -> %.1f) in %.0f s; the model is in %s",
                before, after, math.exp(before), math.exp(after), seconds, output_dir)
    print(f"Fine-tune it: accelerate launch finetune/train.py --model_name_or_path {output_dir} "
          "(with the same data flags and --seed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
