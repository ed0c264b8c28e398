"""How a model reads a review: one object saved with the model once, read back once.

Training decides it (the task, the text columns and how they are joined, which part of a long review is kept, and
the length reviews are cut to) and saves it in the model's config.json and tokenizer_config.json; the serving path
(finetune/inference.py: the demo, finetune.score), the ONNX export and the card read it back through `of_model`,
so that every path reads a review the way training did.

The keys in config.json are the ones models saved before this object existed (`review_truncation`,
`review_text_fields`, `review_text_separator`, `review_text_pairing`, and the task's own: finetune/tasks.py), plus
`review_max_length`; a model saved without a key reads it as its default, as before.
"""

from dataclasses import dataclass, field

from finetune import tasks, text_fields
from finetune import truncation as truncating

TRUNCATION_KEY = "review_truncation"
FIELDS_KEY, SEPARATOR_KEY, PAIRING_KEY = "review_text_fields", "review_text_separator", "review_text_pairing"
MAX_LENGTH_KEY = "review_max_length"


@dataclass
class ReviewReading:
    task: tasks.Task | None = None  # what a label is; None before the data has said (finetune/tasks.py)
    text_fields: list[str] = field(default_factory=lambda: list(text_fields.DEFAULT_FIELDS))  # joined in this order
    separator: str = " "  # between the fields: the tokenizer's separator token in training (text_fields.separator_of)
    pairing: str = "join"  # two fields: one text, or the second as BERT's second segment ("pair")
    truncation: str = "head"  # which part of a long review is kept (finetune/truncation.py)
    max_length: int | None = None  # the length training cut reviews to; None: a model saved before it was recorded

    def save(self, model_config) -> None:
        """On the model's config (config.json, written with the model): the one place a reading is saved."""
        if self.task is not None:
            self.task.save(model_config)
        setattr(model_config, TRUNCATION_KEY, self.truncation)
        if len(self.text_fields) > 1:
            setattr(model_config, FIELDS_KEY, list(self.text_fields))
            setattr(model_config, SEPARATOR_KEY, self.separator)
        if self.pairing != "join":
            setattr(model_config, PAIRING_KEY, self.pairing)
        if self.max_length is not None:
            setattr(model_config, MAX_LENGTH_KEY, self.max_length)

    def set_tokenizer_side(self, tokenizer) -> None:
        """A tail model's tokenizer truncates on the left, so that a plain `pipeline` reads the same end; set before
        tokenizing, so that its own (fast) truncation cuts the training data too, and saved with the tokenizer."""
        side = "left" if self.truncation == "tail" else "right"
        tokenizer.truncation_side = tokenizer.init_kwargs["truncation_side"] = side  # init_kwargs: what is saved

    def cut_length(self, tokenizer, model_config, requested: int | None = None) -> int:
        """The length to cut reviews to when serving: `requested`, else the length training used, within what the
        model takes (finetune/truncation.py's one rule; a longer request is clamped, not refused)."""
        return truncating.max_length(tokenizer, model_config, requested or self.max_length, clamp=True)

    def compose(self, fields: dict[str, str | None]) -> str:
        """One review from its fields (a title, a body), joined as training joined them; "" when all are empty."""
        return text_fields.join([fields.get(name) for name in self.text_fields], self.separator) or ""

    def encode(self, tokenizer, texts: list[str], max_length: int) -> tuple[dict[str, list], list[bool]]:
        """The tokenizer's inputs per review, cut as training cut them, and whether each was cut."""
        encoded, cut = truncating.encode(tokenizer, texts, max_length, self.truncation)
        if self.pairing == "pair":
            encoded = text_fields.mark_pairs(dict(encoded), tokenizer)
        return encoded, cut


def of_model(model_config) -> ReviewReading:
    """The reading a model was saved with (a model of another project, or saved before a key existed: defaults)."""
    length = getattr(model_config, MAX_LENGTH_KEY, None)
    return ReviewReading(
        task=tasks.Task.of_model(model_config),
        text_fields=list(getattr(model_config, FIELDS_KEY, None) or text_fields.DEFAULT_FIELDS),
        separator=getattr(model_config, SEPARATOR_KEY, None) or " ",
        pairing=getattr(model_config, PAIRING_KEY, None) or "join",
        truncation=getattr(model_config, TRUNCATION_KEY, None) or "head",
        max_length=int(length) if length else None,
    )
