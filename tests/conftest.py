"""Shared fixtures: an isolated Hugging Face home, a tiny BERT, small review files.

Every cache and token points into a temporary folder, and HF_ENDPOINT at a port on
127.0.0.1 where the fake Hub (tests/fake_hub.py) listens when a test asks for it.
Nothing here reaches the network.
"""

import os
import random
import socket
import sys
import tempfile
from pathlib import Path

# Set before huggingface_hub, transformers or gradio are imported: they read these at import.
_HOME = Path(tempfile.mkdtemp(prefix="finetune-tests-"))


def free_port() -> int:
    """A port on 127.0.0.1 where nothing listens (until someone binds it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


FAKE_HUB_PORT = free_port()
os.environ.update(
    {
        "HF_HOME": str(_HOME / "hf"),
        "HF_ENDPOINT": f"http://127.0.0.1:{FAKE_HUB_PORT}",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
        # Uploads take the LFS path, which the fake Hub serves (with Xet the client asks for a Xet token).
        "HF_HUB_DISABLE_XET": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "TOKENIZERS_PARALLELISM": "false",
        "DISABLE_TQDM": "1",
        "TRANSFORMERS_VERBOSITY": "warning",
    }
)
os.environ.pop("HF_TOKEN", None)
os.environ.pop("HF_HUB_OFFLINE", None)

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

POSITIVE = ["great", "wonderful", "loved", "excellent", "superb", "delightful", "moving", "brilliant"]
NEGATIVE = ["awful", "terrible", "hated", "boring", "dreadful", "worst", "dull", "messy"]
FILLER = ["the", "film", "movie", "was", "plot", "acting", "really", "a", "and", "it", "story", "cast", "quite"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


# --- the fake Hub (tests/fake_hub.py) and its users --------------------------------------------------

TOKEN = "hf_fakeTokenForTests0123456789abcdef"  # the user `me`, who may write
READ_TOKEN = "hf_fakeReadOnlyTokenForTheSpace01"  # also `me`: the read token a user gives a Space
OTHER_TOKEN = "hf_fakeTokenOfAnotherUser012345678"  # the user `someone`
HUB_USERS = {TOKEN: "me", READ_TOKEN: "me", OTHER_TOKEN: "someone"}


def _serve_fake_hub():
    from fake_hub import FakeHub

    hub = FakeHub(FAKE_HUB_PORT, tokens=HUB_USERS).start()
    try:
        yield hub
    finally:
        hub.stop()


@pytest.fixture(scope="module")
def fake_hub():
    """The fake Hub at HF_ENDPOINT, one per test module: what one test pushes, the next can read."""
    yield from _serve_fake_hub()


@pytest.fixture
def fresh_fake_hub():
    """The fake Hub at HF_ENDPOINT, empty for each test (in a module that does not use `fake_hub`)."""
    yield from _serve_fake_hub()


@pytest.fixture
def token(monkeypatch) -> str:
    """The user `me` logged in: HF_TOKEN set for this test only."""
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    return TOKEN


# --- reviews and a tiny BERT ----------------------------------------------------------------------


def make_reviews(n: int, seed: int = 0) -> list[dict]:
    """Short reviews whose label follows from their sentiment words: a tiny model can learn them."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "positive" if i % 2 == 0 else "negative"
        words = POSITIVE if label == "positive" else NEGATIVE
        text = " ".join(rng.sample(FILLER, 4) + rng.sample(words, 2) + rng.sample(FILLER, rng.randint(0, 6)))
        rows.append({"text": text, "label": label})
    return rows


def write_csv(path: Path, rows: list[dict], columns=("text", "label")) -> Path:
    import csv

    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c) for c in columns})
    return path


def build_tiny_bert(folder: Path) -> Path:
    """A randomly initialised 2-layer BERT (hidden 32) with a WordPiece vocabulary of the test words."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(SPECIAL + sorted(set(POSITIVE + NEGATIVE + FILLER))) + "\n")
    tokenizer = BertTokenizer(vocab=str(vocab), model_max_length=64)
    tokenizer.save_pretrained(folder)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    with torch.random.fork_rng():  # the same weights in every session: a test's result does not hang on the draw
        torch.manual_seed(0)
        model = BertModel(config)
    model.save_pretrained(folder)
    return folder


# Encoder families the pipeline takes with no flag beyond --model_name_or_path (finetune/families.py), by
# config.json model_type: ModernBERT stands for Ettin too (same architecture), deberta-v2 for DeBERTa-v3.
FAMILIES = ("bert", "distilbert", "electra", "roberta", "deberta-v2", "modernbert")
LETTERS = list("abcdefghijklmnopqrstuvwxyz.,!")


def build_tiny(family: str, folder: Path, positions: int = 64) -> Path:
    """A randomly initialised 2-layer model (hidden 32) of a family's architecture, with a tokenizer of the test
    words of that family's kind: WordPiece (BERT, DistilBERT, ELECTRA), byte-level BPE (RoBERTa), SentencePiece
    Unigram (DeBERTa-v3), a fast tokenizer with [CLS]/[SEP] and no token types (ModernBERT). `positions`: the
    most tokens the model takes (ModernBERT's real checkpoints: 8,192)."""
    import json

    import torch
    import transformers as tf
    from tokenizers import ByteLevelBPETokenizer, Tokenizer, models, normalizers, pre_tokenizers, processors

    folder.mkdir(parents=True, exist_ok=True)
    words = sorted(set(POSITIVE + NEGATIVE + FILLER))
    if family in ("bert", "distilbert", "electra"):
        vocab = folder / "vocab.txt"
        vocab.write_text("\n".join(SPECIAL + words + LETTERS) + "\n")
        kind = {"bert": tf.BertTokenizer, "distilbert": tf.DistilBertTokenizer, "electra": tf.ElectraTokenizer}[family]
        tokenizer = kind(vocab=str(vocab), model_max_length=positions)
    elif family == "roberta":
        bpe = ByteLevelBPETokenizer()
        bpe.train_from_iterator([" ".join(words)] * 3 + words, vocab_size=400, min_frequency=1, show_progress=False,
                                special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
        model = json.loads(bpe._tokenizer.to_str())["model"]
        merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
        tokenizer = tf.RobertaTokenizer(vocab=model["vocab"], merges=merges, model_max_length=positions)
    elif family == "deberta-v2":
        pieces = [(token, 0.0) for token in SPECIAL] + [("\u2581" + w, -1.0) for w in words]
        tokenizer = tf.DebertaV2Tokenizer(vocab=pieces + [(c, -5.0) for c in LETTERS + ["\u2581"]],
                                          model_max_length=positions)
    elif family == "modernbert":
        ids = {token: i for i, token in enumerate(SPECIAL + words + LETTERS)}
        fast = Tokenizer(models.WordLevel(ids, unk_token="[UNK]"))
        fast.normalizer, fast.pre_tokenizer = normalizers.Lowercase(), pre_tokenizers.Whitespace()
        fast.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
            special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])])
        tokenizer = tf.PreTrainedTokenizerFast(
            tokenizer_object=fast, cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]", unk_token="[UNK]",
            mask_token="[MASK]", model_max_length=positions, model_input_names=["input_ids", "attention_mask"])
    else:
        raise ValueError(family)
    tokenizer.save_pretrained(folder)
    size = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                pad_token_id=tokenizer.pad_token_id, vocab_size=len(tokenizer))
    config = {
        "bert": lambda: tf.BertConfig(max_position_embeddings=positions, **size),
        "electra": lambda: tf.ElectraConfig(embedding_size=32, max_position_embeddings=positions, **size),
        "distilbert": lambda: tf.DistilBertConfig(vocab_size=len(tokenizer), dim=32, n_layers=2, n_heads=2,
                                                  hidden_dim=64, max_position_embeddings=positions,
                                                  pad_token_id=tokenizer.pad_token_id),
        # fairseq's positions start after the padding id: 2 more than the tokens (finetune/truncation.py)
        "roberta": lambda: tf.RobertaConfig(max_position_embeddings=positions + 2, type_vocab_size=1,
                                            bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
                                            **size),
        # DeBERTa-v3's own settings: relative positions only, no token type embeddings
        "deberta-v2": lambda: tf.DebertaV2Config(
            max_position_embeddings=positions, type_vocab_size=0, relative_attention=True, position_buckets=32,
            max_relative_positions=-1, pos_att_type=["p2c", "c2p"], position_biased_input=False,
            norm_rel_ebd="layer_norm", share_att_key=True, **size),
        "modernbert": lambda: tf.ModernBertConfig(
            max_position_embeddings=positions, local_attention=16, global_attn_every_n_layers=2,
            cls_token_id=tokenizer.cls_token_id, sep_token_id=tokenizer.sep_token_id,
            bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id, **size),
    }[family]()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = tf.AutoModel.from_config(config)
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def review_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("reviews")
    return {
        "train": write_csv(folder / "train.csv", make_reviews(96, seed=1)),
        "validation": write_csv(folder / "validation.csv", make_reviews(32, seed=2)),
        "test": write_csv(folder / "test.csv", make_reviews(32, seed=3)),
    }


def tiny_run_args(tiny_bert: Path, review_files: dict[str, Path], output_dir: Path, *extra: str) -> list[str]:
    """Flags for a fast run of the real pipeline on the tiny BERT (data: the files given, or flags in extra)."""
    files = [arg for split, path in review_files.items() for arg in (f"--{split}_file", str(path))]
    return [
        "--model_name_or_path", str(tiny_bert),
        *files,
        "--output_dir", str(output_dir),
        "--num_train_epochs", "2",
        "--learning_rate", "3e-3",
        "--per_device_train_batch_size", "16",
        "--logging_steps", "2",
        "--disable_tqdm", "true",
        "--dataloader_pin_memory", "false",
        "--cpu_threads", "1",
        "--export_onnx", "false",  # seconds per run: trained_run and tests/test_onnx_export.py cover the export
        # The same numbers on every CPU: the default turns bf16 on only where the CPU has it (tests/test_bf16.py).
        "--bf16", "false",
        # The tiny BERT's word vectors are random, not pretrained: frozen (the default), they leave it too little to
        # learn from in a few epochs. The default is trained by the embedded MiniLM's smoke run and
        # tests/test_recipe_defaults.py.
        "--freeze_word_embeddings", "false",
        *extra,
    ]


@pytest.fixture(scope="session")
def trained_run(tiny_bert, review_files, tmp_path_factory) -> Path:
    """A finished 2-epoch run of the real pipeline on the tiny BERT, with its ONNX copy (so the demo's tests
    serve through ONNX Runtime, as a default run's model is served)."""
    from finetune.train import main

    output_dir = tmp_path_factory.mktemp("run") / "tiny"
    assert main(tiny_run_args(tiny_bert, review_files, output_dir, "--export_onnx", "true")) == 0
    return output_dir


# More reviews than one length-grouped megabatch of transformers' LengthGroupedSampler (50 x the evaluation
# batch of 16): enough for a sampler that permutes rows to show in the per-review files.
MANY_REVIEWS = 850


@pytest.fixture(scope="session")
def many_review_files(tmp_path_factory, review_files) -> dict[str, Path]:
    """The small training file, with validation and test splits of MANY_REVIEWS reviews each."""
    folder = tmp_path_factory.mktemp("many-reviews")
    return {
        "train": review_files["train"],
        "validation": write_csv(folder / "validation.csv", make_reviews(MANY_REVIEWS, seed=12)),
        "test": write_csv(folder / "test.csv", make_reviews(MANY_REVIEWS, seed=13)),
    }


def read_predictions(output_dir: Path, split: str) -> list[dict]:
    import csv

    from finetune import artifacts

    with open(Path(output_dir) / artifacts.predictions_file(split), newline="") as handle:
        return list(csv.DictReader(handle))


def assert_predictions_belong_to_their_reviews(output_dir: Path, split: str, sample: int = 40) -> None:
    """predictions_<split>.csv pairs each review with the model's prediction for that review: a sample of rows,
    re-predicted one review at a time, gets the file's label and probabilities; and on a labelled split the
    file's agreement is the accuracy results.json reports (to the last review)."""
    from finetune import artifacts
    from finetune.inference import ReviewClassifier

    rows = read_predictions(output_dir, split)
    classifier = ReviewClassifier(output_dir, engine="pytorch")
    for i in random.Random(split).sample(range(len(rows)), min(sample, len(rows))):
        prediction = classifier.predict_one(rows[i]["text"])
        assert prediction.label == rows[i]["predicted_label"], (split, i, rows[i]["text"])
        for name, probability in prediction.scores.items():
            assert float(rows[i][f"p({name})"]) == pytest.approx(probability, abs=1e-4), (split, i)
    if "label" in rows[0]:
        correct = sum(row["label"] == row["predicted_label"] for row in rows)
        accuracy = artifacts.read_json(output_dir, artifacts.RESULTS_FILE)["scores"][split]["accuracy"]
        assert correct / len(rows) == pytest.approx(accuracy, abs=1e-9), split
        # A model that predicts one class would agree with any order: this one has learnt the task.
        assert accuracy >= 0.8, f"the tiny model did not learn ({split} accuracy {accuracy})"


@pytest.fixture(scope="session")
def learnt_run(tiny_bert, review_files, tmp_path_factory) -> Path:
    """A 10-epoch run of the tiny BERT, its best epoch picked by validation loss: unlike trained_run's 2 epochs
    (still near chance), it has learnt which words are positive and is sure of it (validation loss about 0.06,
    where epoch 3 already has accuracy 1.0 at a loss of 0.69), so per-word and per-row checks on it mean something."""
    from finetune.train import main

    output_dir = tmp_path_factory.mktemp("learnt") / "tiny"
    assert main(tiny_run_args(tiny_bert, review_files, output_dir, "--num_train_epochs", "10",
                              "--metric_for_best_model", "loss")) == 0
    return output_dir


def prediction_columns(model_dir: Path, *before: str, labels=("negative", "positive")) -> list[str]:
    """The columns a single-label model's predictions file has: `before` (text, label, predicted_label), then
    `unsure` if the model has an abstention threshold (config.json's review_min_confidence), then p(<class>)."""
    import json

    abstains = json.loads((Path(model_dir) / "config.json").read_text()).get("review_min_confidence") is not None
    return [*before, *(["unsure"] if abstains else []), *(f"p({name})" for name in labels)]
