"""Which part of a long review the model reads: its head, its tail, or both ends (Sun et al. 2019).

A review longer than max_length word pieces keeps, special tokens aside (`room` = max_length minus
the [CLS]/[SEP] the tokenizer adds):
- head: its first `room` word pieces (what `truncation=True` does);
- tail: its last `room` (reviewers often give their verdict at the end);
- head_tail: its first HEAD_TOKENS and its last `room - HEAD_TOKENS`. At max_length 512 that is
  the paper's best on IMDb, 128 + 382. A shorter max_length keeps the same share for the head,
  a quarter of the room, once the room is at most 2 x 128.

The choice is saved with the model (finetune/reading.py: `review_truncation` in its config.json, and a tail
model's tokenizer truncates on the left, so a plain `pipeline` reads its tail too) and every path that
tokenizes a review applies it through `encode`: training, evaluation, finetune.score and the demo
with either engine.
"""

from finetune.errors import UsageError

STRATEGIES = ("head", "tail", "head_tail")
HEAD_TOKENS = 128
# A fast tokenizer cuts these itself (before it adds [CLS]/[SEP]) when its truncation_side says so; a tail
# model's saved tokenizer truncates on the left. Otherwise, and for head_tail, `encode` cuts the ids.
TOKENIZER_SIDE = {"head": "right", "tail": "left"}
READ_PARTS = {"head": "its beginning", "tail": "its end", "head_tail": "its beginning and its end"}  # for messages


# What a model reads unless --max_seq_length says otherwise: BERT's 512 positions (a longer input costs
# quadratically in attention, and most review encoders were pretrained at 512).
DEFAULT_MAX_LENGTH = 512
UNSET_TOKENIZER_LIMIT = 10**6  # a tokenizer saved without model_max_length reports int(1e30)
# Architectures whose positions start after the padding id (fairseq's convention): RoBERTa's 514 positions
# hold 512 tokens.
OFFSET_POSITIONS = ("roberta", "xlm-roberta", "camembert", "longformer", "bart", "mbart", "xmod", "roberta-prelayernorm")


def model_limit(tokenizer, model_config) -> int:
    """The most tokens one review may have for this model: its tokenizer's model_max_length and its position
    embeddings, whichever is smaller. The one rule every path that builds a batch obeys (training, the precision
    probe, scoring, the demo, the ONNX export): a batch longer than the positions fails inside the model."""
    limits = [tokenizer.model_max_length] if tokenizer.model_max_length < UNSET_TOKENIZER_LIMIT else []
    positions = getattr(model_config, "max_position_embeddings", None)
    if positions:
        pad = getattr(model_config, "pad_token_id", None)
        offset = pad + 1 if model_config.model_type in OFFSET_POSITIONS and pad is not None else 0
        limits.append(positions - offset)
    return min(limits) if limits else DEFAULT_MAX_LENGTH


def max_length(tokenizer, model_config, requested: int | None = None, clamp: bool = False) -> int:
    """The length reviews are cut to: `requested` (--max_seq_length, or the length a model was trained with) if the
    model takes it, else DEFAULT_MAX_LENGTH or the model's limit if that is smaller. Past the limit: UsageError
    (training), or the limit with `clamp` (serving: a longer request cannot be read)."""
    limit = model_limit(tokenizer, model_config)
    if requested is None:
        return min(limit, DEFAULT_MAX_LENGTH)
    if requested > limit:
        if clamp:
            return limit
        raise UsageError(f"--max_seq_length {requested}: this model takes at most {limit} tokens. Pass "
                         f"--max_seq_length {limit} or less, or leave it out ({min(DEFAULT_MAX_LENGTH, limit)} by default).")
    return requested


def head_size(room: int) -> int:
    return HEAD_TOKENS if room > 2 * HEAD_TOKENS else room // 4


def keep(ids: list[int], room: int, strategy: str) -> list[int]:
    """The word pieces of one review that fit `room`, by `strategy`."""
    if len(ids) <= room:
        return ids
    if strategy == "head":
        return ids[:room]
    if strategy == "tail":
        return ids[len(ids) - room:]
    head = head_size(room)
    return ids[:head] + ids[len(ids) - (room - head):]


def encode(tokenizer, texts: list[str], max_length: int, strategy: str = "head",
           pad: bool = False) -> tuple[dict[str, list], list[bool]]:
    """The tokenizer's inputs per review, each cut to max_length by `strategy` (padded to it with `pad`), and
    whether each review was cut."""
    if tokenizer.is_fast and tokenizer.truncation_side == TOKENIZER_SIDE.get(strategy):  # the tokenizer's own, in Rust
        encoded = tokenizer(texts, truncation=True, max_length=max_length, padding="max_length" if pad else False)
        return dict(encoded), [bool(encoding.overflowing) for encoding in encoded.encodings]
    prefix, suffix = special_sides(tokenizer)
    room = max_length - prefix - suffix
    whole = tokenizer(texts, truncation=False, verbose=False)  # special tokens in, nothing cut
    keys = [key for key in tokenizer.model_input_names if key in whole]
    encoded = {key: [_cut(row, prefix, suffix, room, strategy) for row in whole[key]] for key in keys}
    if pad:
        encoded = dict(tokenizer.pad(encoded, padding="max_length", max_length=max_length))
    return encoded, [len(ids) - prefix - suffix > room for ids in whole["input_ids"]]


def _cut(row: list[int], prefix: int, suffix: int, room: int, strategy: str) -> list[int]:
    end = len(row) - suffix
    return row[:prefix] + keep(row[prefix:end], room, strategy) + row[end:]


def special_sides(tokenizer) -> tuple[int, int]:
    """How many special tokens the tokenizer puts before and after one review ([CLS] and [SEP]: 1, 1)."""
    body = tokenizer("review", add_special_tokens=False)["input_ids"]
    whole = tokenizer("review")["input_ids"]
    for start in range(len(whole) - len(body) + 1):
        if whole[start:start + len(body)] == body:
            return start, len(whole) - start - len(body)
    return 0, tokenizer.num_special_tokens_to_add(pair=False)
