"""Reviews in several text columns (a title and a body): which columns, in which order, joined how.

Training joins each review's non-empty fields with the tokenizer's separator token (" [SEP] " for BERT):
one text, so that every length, truncation and batching path stays the same. The fields, the separator and
the pairing are saved with the model (finetune/reading.py), so that
`finetune.score` reads the same columns of a file and the demo shows one box per field.
"""

DEFAULT_FIELDS = ["text"]


def separator_of(tokenizer) -> str:
    """The tokenizer's separator token between spaces (" [SEP] ", " </s> "), or a newline when it has none."""
    token = getattr(tokenizer, "sep_token", None)
    return f" {token} " if token else "\n"


def join(values, separator: str) -> str | None:
    """One review's fields, empty ones left out, joined; None when every field is empty."""
    parts = []
    for value in values:
        if value is None:
            continue
        text = value.strip() if isinstance(value, str) else str(value).strip()
        if text:
            parts.append(text)
    return separator.join(parts) if parts else None


# How two fields go in: joined (one segment, token type 0) or as a pair, BERT's way for two texts: the second
# field, after the first separator, is segment 1 (token_type_ids), as tokenizer(title, body) marks it.
PAIRINGS = ("join", "pair")


def segment_ids(input_ids: list[int], sep_id: int | None) -> list[int]:
    """Token types of a joined pair: 0 up to the first separator, 1 after it up to the last, 0 for padding."""
    separators = [i for i, token in enumerate(input_ids) if token == sep_id]
    if len(separators) < 2:
        return [0] * len(input_ids)
    first, last = separators[0], separators[-1]
    return [1 if first < i <= last else 0 for i in range(len(input_ids))]


def mark_pairs(encoded: dict, tokenizer) -> dict:
    """The encoded reviews with the second field as segment 1, where the model takes token types."""
    if "token_type_ids" in tokenizer.model_input_names:
        encoded["token_type_ids"] = [segment_ids(ids, tokenizer.sep_token_id) for ids in encoded["input_ids"]]
    return encoded
