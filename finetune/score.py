"""Score (or just run) any fine-tuned classifier on new reviews: the training run's metrics, per review.

    python -m finetune.score outputs/all-minilm-l6-v2-rotten-tomatoes              # the embedded test split
    python -m finetune.score me/minilm-reviews --test_file new.csv --text_column_name review
    python -m finetune.score me/minilm-reviews --dataset_name rotten_tomatoes --label_map neg=rotten,pos=fresh
    python -m finetune.score me/minilm-reviews --test_file new.csv --add_to_card    # and publish the result

MODEL is a model folder or a Hub repo id. Labelled data gets the metrics of training (accuracy, macro
and per-class precision/recall/F1 through `evaluate`, the confusion matrix; a rating model's MAE, MSE and
correlations, a multi-label model's micro/macro F1 at its threshold: finetune/tasks.py), printed and written to
evaluation.json; every review's prediction goes to predictions_<split>.csv (text, label, predicted
label, probabilities), so the mistakes can be read. Data without labels gets the predictions only.
`--add_to_card` adds the scores to the model card (one more model-index entry and a section); for a
Hub repo it pushes the card alone, in one commit (token: HF_TOKEN or `hf auth login`).

(Named `score`, not `evaluate`: a module named like the `evaluate` library it uses would shadow it
whenever a file of this package runs as a script.)
"""

import dataclasses
import logging
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from finetune import artifacts, errors, hub, tasks, trust
from finetune.artifacts import is_local_path, public_value
from finetune.config import TRUNCATION_STRATEGIES, ReviewSource, check_choice, check_positive, slug
from finetune.errors import UsageError
from finetune.logs import setup_logging
from finetune.mistakes import furthest_off, most_confident_mistakes

logger = logging.getLogger("finetune")

EXIT_USAGE, EXIT_CARD_FAILED = errors.EXIT_USAGE, errors.EXIT_HUB_FAILED  # finetune/errors.py
EVALUATION_FILE = "evaluation.json"
CHUNK_BATCHES = 16  # batches per call of the serving path: the progress bar moves once per chunk
SHOWN_MISTAKES = 5


@dataclass
class ScoreArguments(ReviewSource):
    """Where the reviews come from, as `finetune/train.py` reads them (ReviewSource), for one split, and what to
    do with the result."""

    split: str = field(default="test", metadata={
        "help": "Which split of the dataset to score; with --test_file, the name the results give the file's data."})
    label_column_name: str | None = field(default=None, metadata={
        "help": "Column that holds the label. Default: `label` if the data has one; data without labels is predicted, "
        "not scored."})
    label_map: str | None = field(default=None, metadata={
        "help": "Data label -> model label, for data that names the classes differently: DATA=MODEL pairs separated "
        "by commas, e.g. positive=fresh,negative=rotten. Unlisted labels keep their names."})
    max_test_samples: int | None = field(default=None, metadata={"help": "Score a seeded random subset of this many reviews."})
    seed: int = field(default=42, metadata={"help": "Seed of the --max_test_samples subset."})
    revision: str | None = field(default=None, metadata={"help": "Branch, tag or commit of a Hub model (default: main)."})
    max_seq_length: int | None = field(default=None, metadata={
        "help": "Truncate reviews to this many tokens. Default: what the model was trained with (its run_config.yaml), "
        "else the model's maximum, at most 512."})
    truncation: str | None = field(default=None, metadata={
        "help": "Which part of a long review to read: head, tail or head_tail. Default: what the model was trained "
        "with (saved in its config.json; head for models trained without the option)."})
    batch_size: int = field(default=32, metadata={"help": "Reviews per forward pass (batches of similar length)."})
    output_dir: str | None = field(default=None, metadata={
        "help": "Where evaluation.json and predictions_<split>.csv go. Default: outputs/evaluations/<model>--<data>-<split>."})
    add_to_card: bool = field(default=False, metadata={
        "help": "Add the scores to the model card: a model-index entry (dataset, split) and a section; the same "
        "dataset and split again replace their entry. A Hub repo gets the card alone, in one commit (needs a "
        "write token: HF_TOKEN or `hf auth login`). Review texts never go into the card."})

    def __post_init__(self):
        super().__post_init__()
        check_positive(self, "max_test_samples", "max_seq_length", "batch_size")
        if self.truncation is not None:
            check_choice("truncation", self.truncation, TRUNCATION_STRATEGIES)
        self.labels = parse_label_map(self.label_map)


def parse_label_map(text: str | None) -> dict[str, str]:
    """'positive=fresh,negative=rotten' -> {'positive': 'fresh', 'negative': 'rotten'}."""
    if not text:
        return {}
    pairs = [item.split("=", 1) for item in text.split(",") if item.strip()]
    if not pairs or any(len(pair) != 2 or not pair[0].strip() or not pair[1].strip() for pair in pairs):
        raise UsageError(f"--label_map {text}: write DATA=MODEL pairs separated by commas, e.g. "
                         "--label_map positive=fresh,negative=rotten.")
    mapping = {data.strip(): model.strip() for data, model in pairs}
    if len(mapping) != len(pairs):
        raise UsageError(f"--label_map {text}: a data label is mapped twice.")
    return mapping


def parse_args(argv: list[str]) -> tuple[str, ScoreArguments]:
    from transformers import HfArgumentParser

    from finetune.data_files import check_files

    parser = HfArgumentParser(ScoreArguments, prog="python -m finetune.score",
                              description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("model", help="a model folder (e.g. outputs/<run>) or a Hub repo id (e.g. me/minilm-reviews)")
    args, rest = parser.parse_args_into_dataclasses(argv)
    check_files(args)
    return rest.model, args


# --- loading --------------------------------------------------------------------------------------


@dataclass
class Reviews:
    """The reviews to score, their true labels as the model's metrics read them (class ids, ratings, or a 0/1 row
    per label; None: unlabelled), and where they came from."""

    texts: list[str]
    label_ids: list | None
    dataset_name: str
    dataset_id: str | None
    dataset_config: str | None
    split: str
    dropped_rows: int = 0
    hidden_label_rows: int = 0


def load_model(model_ref: str, args: ScoreArguments, token: str | None):
    """The serving path's classifier (length-sorted batches), truncating as the model was trained, and for a
    Hub repo the commit it was loaded from (resolved first: a branch may move while the files download)."""
    from finetune.inference import ReviewClassifier

    local = Path(model_ref).expanduser().is_dir()
    if not local and is_local_path(model_ref):
        raise UsageError(f"MODEL {model_ref}: no such folder. Pass a model folder, e.g. outputs/<run>, or a Hub "
                         "repo id such as me/minilm-reviews.")
    try:
        commit = None if local else hub.api(token).model_info(model_ref, revision=args.revision).sha
        revision = commit or args.revision
        classifier = ReviewClassifier(model_ref, token=token, max_length=args.max_seq_length, revision=revision,
                                      truncation=args.truncation)  # cut as trained: finetune/reading.py
        if args.max_seq_length is None and classifier.reading.max_length is None:
            legacy = legacy_max_length(model_ref, token, revision)  # a model saved before config.json held it
            if legacy:
                classifier.max_length = classifier.reading.cut_length(classifier.tokenizer, classifier.config, legacy)
        return classifier, commit
    except Exception as err:  # OSError (no folder, no repo, no access), HTTP errors, bad files
        raise UsageError(
            f"MODEL {model_ref}{f' (revision {args.revision})' if args.revision else ''}: could not load a "
            f"classifier ({type(err).__name__}: {str(err).splitlines()[0][:300]}). Pass a model folder with "
            "config.json, or a Hub repo id you can read (a private one needs HF_TOKEN or `hf auth login`)."
        ) from err


def legacy_max_length(model_ref: str, token: str | None, revision: str | None) -> int | None:
    """The max_seq_length a run trained with, from its run_config.yaml: for models saved before config.json held
    it (finetune/reading.py), so that their scores still compare with their card's."""
    import yaml

    path = artifacts.fetch_run_files(model_ref, token, names=(artifacts.CONFIG_FILE,), revision=revision)
    if path[artifacts.CONFIG_FILE] is None:
        return None
    config = yaml.safe_load(path[artifacts.CONFIG_FILE].read_text(encoding="utf-8")) or {}
    return (config.get("data") or {}).get("max_seq_length")


def load_reviews(args: ScoreArguments, classifier) -> Reviews:
    """The split to score, read as training reads its splits (finetune/data/reading.py): its texts made of the
    fields the model was trained on (finetune/text_fields.py), its labels read as the model's task reads them;
    raises UsageError."""
    from finetune.data import Reading, label_columns, load_split, model_labels, read_splits, source_identity

    task = classifier.task
    fields = _text_columns(args, classifier.text_fields)
    if args.label_delimiter and task.problem_type != tasks.MULTI_LABEL:
        raise UsageError(f"--label_delimiter splits a review's several labels; this model is {task.problem_type}, "
                         "one label per review. Drop --label_delimiter.")
    if args.label_column_names and task.problem_type != tasks.MULTI_LABEL:
        raise UsageError(f"--label_column_names: 0/1 columns are the labels of a multi-label model; this model is "
                         f"{task.problem_type}. Pass its label column with --label_column_name.")
    named = label_columns(args)
    split = load_split(args, args.split, (*fields, *named))
    if not named:
        # `label`, or a rating model's own column (its one output is named after the column it was trained on)
        rating = task.label_names[0] if task.problem_type == tasks.REGRESSION else None
        named = [c for c in ("label", rating) if c and c in split.column_names][:1]
    reading = dataclasses.replace(
        Reading.of(args, task.problem_type, classifier.separator), text_columns=fields, label_sources=tuple(named),
        files={args.split: f"--test_file {args.test_file}"} if args.test_file else {},
        rating_need="this model predicts a rating (regression): scoring it needs")
    rows = read_splits({args.split: split}, reading, model_labels(task, args.labels),
                       limits={args.split: args.max_test_samples}, seed=args.seed)
    scored = rows.labelled.get(args.split)
    if args.labels and (scored is None or task.problem_type == tasks.REGRESSION):
        logger.warning("--label_map is ignored: the data has no labels" if scored is None else
                       "--label_map is ignored: a rating has no label names")
    reviews = scored if scored is not None else rows.unlabelled[args.split]
    name, hub_id = source_identity(args)
    return Reviews(reviews["text"][:], None if scored is None else scored["label"][:], name, hub_id,
                   args.dataset_config_name if args.dataset_name else None, args.split,
                   rows.dropped[args.split], rows.hidden.get(args.split, 0))


def _text_columns(args: ScoreArguments, model_fields: list[str]) -> tuple[str, ...]:
    """The columns a review's text comes from: the flags', which must be as many as the model was trained on; by
    default the model's own (finetune/text_fields.py)."""
    if args.text_column_names is None and len(model_fields) > 1:
        if args.text_column_name != "text":
            raise UsageError(f"the model reads {len(model_fields)} text columns ({', '.join(model_fields)}), joined: "
                             "pass them all with --text_column_names, e.g. --text_column_names "
                             f"{','.join(model_fields)} (in that order).")
        return tuple(model_fields)
    if args.text_column_names is not None and len(args.text_columns()) != len(model_fields):
        raise UsageError(f"--text_column_names {args.text_column_names}: the model was trained on {len(model_fields)} "
                         f"text column(s) ({', '.join(model_fields)}); pass that many, in that order.")
    return tuple(args.text_columns())


# --- the pure core: predict, score ----------------------------------------------------------------


def predict_probabilities(classifier, texts: list[str], batch_size: int, progress: bool = True) -> np.ndarray:
    """Class probabilities of every review, in the data's order, through the serving path.

    Longest reviews first (a batch too big for memory fails at once, not at the end), in chunks of
    CHUNK_BATCHES batches: each chunk is sorted by token length and batched by the classifier, as the
    demo's file jobs are, and the progress bar moves once per chunk.
    """
    from tqdm.auto import tqdm

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
    probabilities = np.zeros((len(texts), len(classifier.label_names)), dtype=np.float32)  # or the rating
    chunk = batch_size * CHUNK_BATCHES
    with tqdm(total=len(texts), unit="review", desc="Predicting", disable=not progress) as bar:
        for start in range(0, len(order), chunk):
            indices = order[start:start + chunk]
            for i, prediction in zip(indices, classifier.predict([texts[i] for i in indices], batch_size=batch_size)):
                probabilities[i] = [prediction.scores[name] for name in classifier.label_names]
            bar.update(len(indices))
    return probabilities


# --- the edges: files, card -----------------------------------------------------------------------


def default_output_dir(model_ref: str, reviews: Reviews) -> Path:
    model = Path(model_ref.rstrip("/")).name if Path(model_ref).expanduser().is_dir() else model_ref.replace("/", "-")
    return Path("outputs") / "evaluations" / f"{slug(model)}--{slug(reviews.dataset_name)}-{slug(reviews.split)}"


def card_evaluation(result: dict, reviews: Reviews, task: tasks.Task | None = None):
    from finetune.model_card import Evaluation

    return Evaluation(
        dataset_name=reviews.dataset_name, dataset_id=reviews.dataset_id, dataset_config=reviews.dataset_config,
        split=reviews.split, label_names=result["label_names"], scores=result["scores"],
        confusion_matrix=result["confusion_matrix"], reviews=result["reviews"], model_revision=result["model_revision"],
        label_map=result["label_map"], dropped_rows=reviews.dropped_rows, hidden_label_rows=reviews.hidden_label_rows,
        max_seq_length=result["max_seq_length"], task=task,
    )


def add_to_card(model_ref: str, evaluation, token: str | None) -> str:
    """Add the evaluation to the card of a model folder (in place) or a Hub repo (one commit); say where."""
    from finetune.model_card import add_evaluation

    folder = Path(model_ref).expanduser()
    if folder.is_dir():
        card = folder / artifacts.CARD_FILE
        text = card.read_text(encoding="utf-8") if card.is_file() else None
        artifacts.write_text(card, add_evaluation(text, evaluation, folder.name))
        return str(card)
    summary = ", ".join(f"{m} {evaluation.scores[m]:.4f}" for m in evaluation.task.headline[:2])
    return hub.update_card(
        model_ref, lambda text: add_evaluation(text, evaluation, model_ref.split("/")[-1]), token,
        commit_message=f"Evaluation on {evaluation.dataset_name}, {evaluation.split}: {summary}",
    )


# --- the command ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    setup_logging()
    started = time.perf_counter()
    try:
        model_ref, args = parse_args(argv)
        is_hub_repo = not Path(model_ref).expanduser().is_dir()
        # A card pushed to the Hub needs a write token: checked now, not after an hour of predicting.
        token = hub.require_token(purpose="--add_to_card") if args.add_to_card and is_hub_repo else hub.read_token()
        classifier, commit = load_model(model_ref, args, token)
        reviews = load_reviews(args, classifier)
    except UsageError as err:
        return errors.report(err, EXIT_USAGE)
    loaded = time.perf_counter()
    what = "Scoring" if reviews.label_ids is not None else "Predicting (no labels: nothing to score)"
    logger.info("===== %s %s on %s, %s: %d reviews =====", what, model_ref, reviews.dataset_name, reviews.split,
                len(reviews.texts))
    probabilities = predict_probabilities(classifier, reviews.texts, args.batch_size)
    predicted_at = time.perf_counter()

    output_dir = Path(args.output_dir) if args.output_dir else default_output_dir(model_ref, reviews)
    output_dir.mkdir(parents=True, exist_ok=True)
    result = build_result(model_ref, commit, classifier, args, reviews, probabilities)
    result["seconds"] = {"loading": round(loaded - started, 2), "prediction": round(predicted_at - loaded, 2)}
    result["reviews_per_second"] = round(len(reviews.texts) / max(predicted_at - loaded, 1e-9), 2)
    write_evaluation(output_dir, result, reviews, probabilities, classifier.task)
    print_result(result, reviews, probabilities, classifier.task, output_dir)

    if args.add_to_card:
        if reviews.label_ids is None:
            return errors.report("--add_to_card: the data has no labels, so there are no scores to add to the card "
                                 f"(the predictions are in {output_dir}).", EXIT_USAGE)
        try:
            where = add_to_card(model_ref, card_evaluation(result, reviews, classifier.task), token)
        except Exception as err:  # the Hub said no, or could not be reached: the evaluation is saved
            return errors.report(f"adding the result to the card of {model_ref} failed ({type(err).__name__}: {err}). "
                                 f"The evaluation is saved in {output_dir}; run the same command again to retry:\n  "
                                 f"{shlex.join([sys.executable, '-m', 'finetune.score', *argv])}", EXIT_CARD_FAILED)
        print(f"Added to the model card: {where}")
    return 0


def build_result(model_ref: str, commit: str | None, classifier, args: ScoreArguments, reviews: Reviews,
                 probabilities: np.ndarray) -> dict:
    task = classifier.task
    result = {
        "model": model_ref if commit else public_value(model_ref),
        "model_revision": commit,  # the commit that was scored: a Hub model's main moves on, its commits do not
        "engine": getattr(classifier, "engine", "pytorch"),
        "dataset": {"name": reviews.dataset_name, "id": reviews.dataset_id, "config": reviews.dataset_config,
                    "split": reviews.split},
        "problem_type": task.problem_type,
        "label_names": classifier.label_names,
        **({"rating_values": task.rating_values} if task.problem_type == tasks.REGRESSION else {}),
        **({"threshold": task.threshold} if task.problem_type == tasks.MULTI_LABEL else {}),
        "text_fields": classifier.text_fields,
        "label_map": args.labels,
        "reviews": len(reviews.texts),
        "dropped_rows": reviews.dropped_rows,
        "hidden_label_rows_dropped": reviews.hidden_label_rows,
        "max_seq_length": classifier.max_length,
        "truncation": classifier.truncation,
        "scores": None,
        "confusion_matrix": None,
        "predictions": artifacts.predictions_file(reviews.split),
    }
    if reviews.label_ids is not None:
        from finetune.metrics import score_task

        result["scores"], result["confusion_matrix"] = score_task(task, probabilities, reviews.label_ids,
                                                                  confusion_matrix=True)
        result["intervals"] = trust.split_intervals(task, probabilities, reviews.label_ids)
    if task.problem_type == tasks.SINGLE_LABEL and task.min_confidence is not None:
        answered = ~task.unsure_mask(probabilities)
        result["abstention"] = {"threshold": task.min_confidence, "unsure": int((~answered).sum()),
                                "coverage": float(answered.mean()) if len(answered) else None}
        if reviews.label_ids is not None and answered.any():
            right = probabilities.argmax(axis=-1) == np.asarray(reviews.label_ids)
            result["abstention"]["precision"] = float(right[answered].mean())
    return result


def write_evaluation(output_dir: Path, result: dict, reviews: Reviews, probabilities: np.ndarray,
                     task: tasks.Task) -> None:
    from finetune.report import write_predictions

    labels = None if reviews.label_ids is None else [task.label_text(label) for label in reviews.label_ids]
    write_predictions(output_dir, reviews.split, reviews.texts, probabilities.tolist(), task, labels)
    artifacts.write_json(output_dir, EVALUATION_FILE, result)


def print_result(result: dict, reviews: Reviews, probabilities: np.ndarray, task: tasks.Task,
                 output_dir: Path) -> None:
    label_names = task.label_names
    print(f"\n{result['model']} on {reviews.dataset_name}, {reviews.split}: {result['reviews']:,} reviews, "
          f"{result['reviews_per_second']:.1f} reviews/s")
    scores = result["scores"]
    if scores:
        bounds = result.get("intervals") or {}
        print("  " + "  ".join(f"{m} {scores[m]:.4f}" + (f" {trust.plus_minus(bounds[m])}" if m in bounds else "")
                               for m in task.headline))
        if task.problem_type == tasks.MULTI_LABEL:
            print(f"  at the model's decision threshold {task.threshold:.2f}")
        if task.problem_type != tasks.REGRESSION:
            width = max(len(n) for n in label_names)
            matrix = result["confusion_matrix"] or [None] * len(label_names)
            for name, row in zip(label_names, matrix):
                print(f"  {name:<{width}}  precision {scores[f'precision_{name}']:.4f}  recall "
                      f"{scores[f'recall_{name}']:.4f}  f1 {scores[f'f1_{name}']:.4f}"
                      + (f"  predicted as {dict(zip(label_names, row))}" if row is not None else ""))
    abstention = result.get("abstention")
    if abstention:
        line = (f"  unsure (confidence below {abstention['threshold']:.3f}): {abstention['unsure']:,} reviews; "
                f"answered {trust.share_text(abstention['coverage'])}")
        print(line + (f" at precision {abstention['precision']:.3f}" if "precision" in abstention else ""))
    if scores and task.problem_type == tasks.SINGLE_LABEL:
        predicted = probabilities.argmax(axis=-1)
        mistakes = most_confident_mistakes(
            reviews.texts, [label_names[i] for i in reviews.label_ids], [label_names[i] for i in predicted],
            probabilities.max(axis=-1).tolist(), SHOWN_MISTAKES)
        if mistakes:
            print("  Most confidently wrong:")
            for m in mistakes:
                text = " ".join(m["text"].split())  # one line per review
                text = text if len(text) <= 100 else text[:97] + "..."
                print(f"    {m['confidence']:.2f} {m['predicted_label']} (is {m['label']}): {text}")
    if scores and task.problem_type == tasks.REGRESSION:
        print("  Furthest off:")
        for m in furthest_off(reviews.texts, [float(v) for v in reviews.label_ids],
                              probabilities[:, 0].astype(float).tolist(), SHOWN_MISTAKES):
            text = " ".join(m["text"].split())
            text = text if len(text) <= 100 else text[:97] + "..."
            print(f"    predicted {m['value']:.2f} (is {tasks.value_name(m['label'])}): {text}")
    print(f"Results: {output_dir / EVALUATION_FILE}\nPer review: {output_dir / result['predictions']}")


if __name__ == "__main__":
    sys.exit(main())
