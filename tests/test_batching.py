"""Training batches bounded by tokens (finetune/batching.py): same gradients, less memory."""

import torch
from conftest import tiny_run_args
from transformers import AutoModelForSequenceClassification, TrainingArguments

from finetune import artifacts
from finetune.batching import (
    BucketedCollator,
    ReviewTrainer,
    bucket_length,
    default_multiple,
    split_rows,
)
from finetune.train import main


def _batch(rows: int, length: int, lengths: list[int]) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(5, 15, (rows, length), generator=generator)  # within the tiny vocabulary
    mask = torch.zeros(rows, length, dtype=torch.long)
    for row, n in enumerate(lengths):
        mask[row, :n] = 1
    input_ids[mask == 0] = 0
    return {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(input_ids),
            "labels": torch.arange(rows) % 2}


def test_split_rows_keeps_every_row_once_within_the_budget():
    lengths = [512] * 3 + [400] * 5 + [120] * 8
    batch = _batch(16, 512, lengths)
    pieces = split_rows(batch, 4096)
    assert [len(p["input_ids"]) for p in pieces] == [8, 8]
    assert all(p["input_ids"].numel() <= 4096 for p in pieces)
    # Each piece is cut to its own longest review; labels and every per-row tensor follow their rows.
    assert [p["input_ids"].shape[1] for p in pieces] == [512, 120]
    assert torch.equal(torch.cat([p["labels"] for p in pieces]), batch["labels"])
    for piece, start in zip(pieces, (0, 8)):
        width = piece["input_ids"].shape[1]
        assert torch.equal(piece["input_ids"], batch["input_ids"][start:start + 8, :width])
        assert torch.equal(piece["token_type_ids"], batch["token_type_ids"][start:start + 8, :width])


def test_split_rows_leaves_batches_within_the_budget_alone():
    batch = _batch(16, 100, [100] * 16)
    assert split_rows(batch, 4096) == [batch]
    assert split_rows(_batch(16, 512, [512] * 16), None)[0]["input_ids"].shape == (16, 512)
    # Even pieces, each under the budget: 16 rows of 300 tokens at 2,000 a piece is 6 + 5 + 5 rows.
    assert [len(p["input_ids"]) for p in split_rows(_batch(16, 300, [300] * 16), 2000)] == [6, 5, 5]
    # A single row longer than the budget is still one piece: rows are not cut.
    assert len(split_rows(_batch(1, 512, [512]), 100)) == 1


def _gradients(model_dir, batch, max_tokens, accumulation=1):
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir, num_labels=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    args = TrainingArguments(output_dir="unused", use_cpu=True, report_to=[], gradient_accumulation_steps=accumulation)
    trainer = ReviewTrainer(model=model, args=args, max_train_batch_tokens=max_tokens)
    trainer.current_gradient_accumulation_steps = accumulation
    loss = trainer.training_step(trainer.model, dict(batch), num_items_in_batch=torch.tensor(len(batch["labels"])))
    return loss, {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def test_pieces_give_the_whole_batch_gradient(tiny_bert):
    batch = _batch(8, 20, [20, 18, 17, 15, 9, 8, 6, 4])
    whole_loss, whole = _gradients(tiny_bert, batch, None)
    piece_loss, pieces = _gradients(tiny_bert, batch, 48)  # 4 pieces of 2 rows (2 x 20 tokens <= 48)
    assert len(split_rows(batch, 48)) == 4
    torch.testing.assert_close(piece_loss, whole_loss)
    assert whole.keys() == pieces.keys()
    for name in whole:
        torch.testing.assert_close(pieces[name], whole[name], rtol=1e-4, atol=1e-6, msg=name)


def test_gradient_accumulation_divides_the_loss(tiny_bert):
    """transformers 5 took BERT's classifier for one that divides its loss by the item count itself; it does not,
    so with accumulation over 2 the logged loss came out doubled."""
    batch = _batch(8, 20, [20] * 8)
    one, _ = _gradients(tiny_bert, batch, None, accumulation=1)
    two, _ = _gradients(tiny_bert, batch, None, accumulation=2)
    torch.testing.assert_close(two, one / 2)


def test_a_run_counts_the_batches_it_ran_in_pieces(tiny_bert, review_files, tmp_path):
    out = tmp_path / "pieces"
    assert main(tiny_run_args(tiny_bert, review_files, out, "--max_train_batch_tokens", "40")) == 0
    results = artifacts.read_json(out, artifacts.RESULTS_FILE)
    assert results["batches_in_pieces"] == 12  # 2 epochs x 6 batches of 16 short reviews, each over 40 tokens
    assert "max_train_batch_tokens: 40" in (out / artifacts.CONFIG_FILE).read_text()

    unlimited = tmp_path / "unlimited"
    assert main(tiny_run_args(tiny_bert, review_files, unlimited, "--max_train_batch_tokens", "0")) == 0
    assert artifacts.read_json(unlimited, artifacts.RESULTS_FILE)["batches_in_pieces"] == 0


# --- bucketed shapes (BucketedCollator) -------------------------------------------------------------


def test_bucket_length_rounds_up_within_the_model_limit():
    assert [bucket_length(n, 16, 512) for n in (1, 16, 17, 500, 510, 512)] == [16, 16, 32, 512, 512, 512]
    # a limit that is not a multiple caps the bucket: a 510-position model never gets a 512-token batch
    assert bucket_length(500, 16, 510) == 510
    assert bucket_length(7, 1, 64) == 7


def test_bucketed_collator_pads_to_the_bucket_and_keeps_every_token(tiny_bert):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    texts = ["great", "great film and a fine cast " * 3, "bad " * 39]
    features = [{**tokenizer(text, truncation=True, max_length=40), "label": i % 2} for i, text in enumerate(texts)]
    batch = BucketedCollator(tokenizer, 16, 64)(features)
    assert batch["input_ids"].shape == (3, 48)  # the longest, cut to 40 tokens by tokenization, rounded up to 48
    assert batch["labels"].tolist() == [0, 1, 0]
    for row, feature in enumerate(features):
        n = len(feature["input_ids"])
        assert batch["attention_mask"][row].sum() == n
        assert batch["input_ids"][row, :n].tolist() == feature["input_ids"]
    assert BucketedCollator(tokenizer, 16, 44)(features)["input_ids"].shape == (3, 44)  # capped by the limit
    assert BucketedCollator(tokenizer, 1, 64)(features)["input_ids"].shape == (3, 40)  # longest review only


def _shapes_of_a_run(tiny_bert, tmp_path, multiple: int):
    import random

    from conftest import FILLER, write_csv

    from finetune.train import build_trainer, parse_run, prepare

    rng = random.Random(5)
    # lengths from 1 to 80 words: the tiny BERT's 64 positions cut the longest (tail truncation)
    rows = [{"text": " ".join(rng.choices(FILLER, k=rng.randint(1, 80))), "label": ["positive", "negative"][i % 2]}
            for i in range(120)]
    files = {"train": write_csv(tmp_path / f"train-{multiple}.csv", rows)}
    config = parse_run(tiny_run_args(tiny_bert, files, tmp_path / f"run-{multiple}", "--num_train_epochs", "1",
                                     "--per_device_train_batch_size", "8", "--eval_strategy", "no",
                                     "--save_strategy", "no", "--load_best_model_at_end", "false",
                                     "--frozen_baseline", "false", "--pad_to_multiple_of", str(multiple)))
    prepared = prepare(config)
    trainer = build_trainer(config, prepared)
    seen = []
    collate = trainer.data_collator

    def recording(features):
        batch = collate(features)
        seen.append(batch)
        return batch

    trainer.data_collator = recording
    trainer.train()
    return prepared, seen


def test_bucketed_run_meets_few_shapes_and_reads_every_review_as_tokenized(tiny_bert, tmp_path):
    prepared, seen = _shapes_of_a_run(tiny_bert, tmp_path, 16)
    limit = prepared.max_length
    shapes = {batch["input_ids"].shape[1] for batch in seen}
    assert all(width % 16 == 0 or width == limit for width in shapes) and len(shapes) <= -(-limit // 16)
    # every training review reached the model as tokenization cut it: the same word pieces, no more, no fewer
    read = sorted(tuple(ids[mask.bool()].tolist()) for batch in seen for ids, mask in
                  zip(batch["input_ids"], batch["attention_mask"]))
    assert read == sorted(tuple(ids) for ids in prepared.tokenized["train"]["input_ids"])
    _, unbucketed = _shapes_of_a_run(tiny_bert, tmp_path, 1)
    assert len({batch["input_ids"].shape[1] for batch in unbucketed}) > len(shapes)


def test_buckets_are_the_default_on_a_gpu_in_mixed_precision_only():
    class Args:  # what default_multiple reads of TrainingArguments
        def __init__(self, device: str, bf16: bool = False, fp16: bool = False, mixed_precision: str = "no"):
            self.device, self.bf16, self.fp16, self.mixed_precision = torch.device(device), bf16, fp16, mixed_precision

    assert default_multiple(Args("cpu")) == 1 and default_multiple(Args("cpu", bf16=True)) == 1
    assert default_multiple(Args("cuda", fp16=True)) == 8 and default_multiple(Args("cuda", mixed_precision="bf16")) == 8
    assert default_multiple(Args("cuda")) == 1
