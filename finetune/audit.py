"""A data audit run before training: duplicates, leakage, near-duplicates, label conflicts and label spellings.

    from finetune.audit import audit
    report = audit({"train": train_texts, "test": test_texts}, {"train": train_labels, "test": test_labels})
    for line in report.summary_lines(): logger.info(line)

Pure: lists in, an `AuditReport` out; nothing is read, written or removed here. What it finds:

- Exact duplicates after light normalisation (`normalize`: NFKC, HTML entities decoded, tags such as `<br />`
  removed, case folded, whitespace collapsed): rows of train that repeat an earlier train row, and rows of each
  evaluation split whose text also occurs in train (`leaked`, exact row indices; a later evaluation split is
  also checked against the earlier ones, `overlap`). Candidates are found by a 64-bit hash of the normalised
  text and then confirmed by comparing the normalised texts themselves, so `leaked` holds no hash collision:
  the trainer scores the test split again on the rows not in `leaked`, and that number must be exact.
- Near-duplicates (MinHash over 3-word shingles, LSH banding, Jaccard estimated >= 0.8): rows of an evaluation
  split that nearly repeat a train review, and train rows that nearly repeat an earlier one. Reported, not
  removed, and not counted as leakage: the estimate is probabilistic (a pair at Jaccard 0.9, one word changed
  in 60, is found 9,995 times in 10,000; one at 0.8 about half the time; one at 0.7 three times in 1,000), so
  a score on "unseen" rows that depended on it would hang on a coin toss at the threshold; and a review that
  shares most of its words with a train review (a template, a chain's boilerplate) is still a review the model
  will meet in use. The counts say how much the test score may flatter the model; the exact leak is what is
  taken out.
- Conflicts: the same normalised train text with different labels (labels compared by `canonical_label`, a
  list of labels as a set, a rating as a number).
- Label spellings that differ only by case, surrounding spaces or numeric form (`label_variants`).
- A text column of numbers (`numeric_text`): at least 90% of train's non-empty texts parse as numbers, as when
  the text and label columns are swapped.

Speed. The budget is the tutorial's Yelp at full size, 650,000 + 50,000 reviews (median ~130 words), within
60 s and 1 GB of extra memory on this project's 2 cores. Measured with `python bench/audit.py` on bench/scale.py's
synthetic Yelp-shaped reviews (bench/results/2026-12-07-audit.md; 2 vCPU AMD EPYC shared with other sessions,
load average 6 to 7 throughout, so wall time ran about twice the CPU time):

- datasketch 2.0.0 as documented (each review's set of shingles, `MinHash.bulk` with its SHA-1 hash, 128
  permutations, `MinHashLSH(threshold=0.8)`), on 20,000 + 1,538 reviews: 19.1 s (10.6 CPU s), 0.46 GB;
  with xxhash's 32-bit hash instead of SHA-1, 13.9 s (6.8 CPU s). Linearly, 450 to 620 s for 700,000
  reviews, for the near-duplicates alone, and a Python set and sketch object per review (gigabytes).
- This module, the whole audit on the same reviews: 1.6 s (0.8 CPU s), 0.13 GB. At 650,000 + 50,000: 49 s
  (26 CPU s, on 2 threads), 0.43 GB above the texts; every planted duplicate, leak and near-duplicate found.

So the library's algorithm without its per-review Python: the same sketches as datasketch 2.0.0's default
"affine32" scheme (MurmurHash3's 32-bit finalizer, then `a*h + b mod 2^32` with the parameters its seed draws:
`MinHash(num_perm=128, hashfunc=int).update_batch(shingle_hashes(text))` holds `minhash_signatures`' values,
tests/test_audit.py checks it), computed for a chunk of reviews at once: shingles hashed from the normalised
bytes by numpy prefix sums (no Python per word), each permutation applied to all the chunk's shingles and
reduced per review with `np.minimum.reduceat`, the LSH banding a numpy sort of band keys; chunks on 2 threads
(numpy lets go of the GIL). datasketch is not a runtime dependency: it is in requirements-dev.txt, for that test
and the benchmark. Nothing is bounded or sampled: every evaluation row is compared with train, and train with
itself. What the banding misses: a row is compared with the first train review of each bucket it falls in, not
with every member, so a near-duplicate whose buckets are all headed by other, less similar reviews is missed.
"""

import html
import math
import os
import re
import threading
import time
import unicodedata
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import numpy as np

from finetune.errors import UsageError

TRAIN = "train"
SHINGLE_WORDS = 3
NUM_PERM = 128
# 16 x 8 = NUM_PERM. A pair shares a band with probability 1 - (1 - J^8)^16: 0.9999 at Jaccard 0.9, 0.95 at 0.8,
# 0.61 at 0.7, 0.06 at 0.5 (then its sketches' agreement decides).
BANDS, ROWS_PER_BAND = 16, 8
NEAR_THRESHOLD = 0.8  # estimated Jaccard of the shingle sets, at or above which two reviews are near-duplicates
MINHASH_SEED = 1  # datasketch's default seed: the permutations of datasketch.MinHash(num_perm=128)
NUMERIC_SHARE = 0.9
EXAMPLES = 3
EXAMPLE_CHARS = 200
CHUNK_CHARS = 500_000  # texts hashed together: a few MB of numpy work arrays (smaller chunks stay in cache)
THREADS = min(2, os.cpu_count() or 1)

_TAG = re.compile(r"<[a-zA-Z/!][^<>]*>")  # "<br />", "<p>", "<!-- -->"; not "3 < 5" nor "<3"
_NUMBER = re.compile(r"[+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][+-]?\d+)?")
_MAX_NUMBER_CHARS = 40  # a longer text is not a number; the regex is not tried on it
_U32, _U64 = np.uint32, np.uint64
_BYTE_BASE = _U64(0x9E3779B97F4A7C15)  # odd, so invertible modulo 2^64
_BYTE_BASE_INVERSE = _U64(pow(int(_BYTE_BASE), -1, 2**64))
_BAND_BASE = _U64(0xC2B2AE3D27D4EB4F)
_EMPTY = _U64(0)  # the key of an empty text
_ASCII_WHITESPACE = np.isin(np.arange(256), [9, 10, 11, 12, 13, 28, 29, 30, 31, 32])  # str.split()'s, below 128


@dataclass
class AuditReport:
    """What `audit` found; `to_json` is what a run saves, `summary_lines` what it logs."""

    rows: dict[str, int]  # split -> rows audited
    duplicates_in_train: int  # train rows whose normalised text repeats an earlier train row
    leaked: dict[str, list[int]]  # evaluation split -> row indices whose normalised text occurs in train (exact)
    # later evaluation split -> earlier evaluation split -> its rows whose normalised text occurs in that split
    overlap: dict[str, dict[str, list[int]]]
    # split -> rows with a near-duplicate (not an exact one) in train; for train, at an earlier train row.
    # Empty when near-duplicates were not looked for.
    near_duplicates: dict[str, int]
    conflicts: int  # distinct normalised train texts seen with more than one label
    label_variants: dict[str, list[str]]  # display name -> its spellings, for names spelled 2+ ways
    numeric_text: bool  # at least NUMERIC_SHARE of train's non-empty texts are numbers
    examples: dict[str, list[dict]] = field(default_factory=dict)  # finding -> a few, texts cut short
    seconds: float = 0.0

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "AuditReport":
        return cls(**data)

    def summary_lines(self) -> list[str]:
        """The log's lines: what was audited and how long it took, then one line per finding."""
        sizes = ", ".join(f"{split} {rows:,}" for split, rows in self.rows.items())
        lines = [f"data audit of {sizes} reviews took {self.seconds:.1f} s"]
        train_rows = self.rows.get(TRAIN, 0)
        if self.duplicates_in_train:
            lines.append(f"train: {self.duplicates_in_train:,} of {train_rows:,} reviews repeat an earlier one "
                         "(the same text after normalising case, spacing and HTML)")
        for split, rows in self.leaked.items():
            lines.append(f"{split}: {len(rows):,} of {self.rows[split]:,} reviews also in train (leaked)")
        for split, earlier in self.overlap.items():
            for other, rows in earlier.items():
                if rows:
                    lines.append(f"{split}: {len(rows):,} of {self.rows[split]:,} reviews also in {other}")
        for split, count in self.near_duplicates.items():
            where = "an earlier train review" if split == TRAIN else "a train review"
            lines.append(f"{split}: {count:,} of {self.rows[split]:,} reviews nearly repeat {where} "
                         f"(MinHash Jaccard >= {NEAR_THRESHOLD}; reported, not counted as leaked)")
        if self.conflicts:
            lines.append(f"train: texts with different labels (conflicts): {self.conflicts:,}")
        for name, spellings in self.label_variants.items():
            lines.append(f"labels: {', '.join(repr(s) for s in spellings)} differ only by case, spaces or "
                         f"number form; {name!r} would name them all")
        if self.numeric_text:
            lines.append(f"warning: at least {NUMERIC_SHARE:.0%} of train's texts are numbers: are the text and "
                         "label columns swapped? Pass the reviews' column with --text_column_name")
        return lines


def audit(texts: dict[str, list[str]], labels: dict[str, list] | None = None,
          near_duplicates: bool = True) -> AuditReport:
    """Audit the splits' texts (and labels, when given): `texts` must hold "train"; every other split is an
    evaluation split, audited against train and against the evaluation splits before it (in `texts`' order)."""
    started = time.perf_counter()
    _check_inputs(texts, labels)
    splits = list(texts)
    evaluation = [split for split in splits if split != TRAIN]
    hashed = {split: _hash_split(texts[split], near_duplicates) for split in splits}

    train_keys = hashed[TRAIN].keys
    examples: dict[str, list[dict]] = {}
    first = _first_occurrences(train_keys)
    duplicates = int(np.count_nonzero((train_keys != _EMPTY) & ~first))
    examples["duplicates"] = _duplicate_examples(texts[TRAIN], train_keys, first)

    in_train = {split: _exact_matches(texts[split], hashed[split].keys, texts[TRAIN], train_keys)
                for split in evaluation}
    leaked = {split: [row for row, _ in pairs] for split, pairs in in_train.items()}
    examples["leaked"] = [_pair_example(split, row, texts[split], train_row) for split in evaluation
                          for row, train_row in in_train[split][:EXAMPLES]][:EXAMPLES]
    overlap = {later: {earlier: [row for row, _ in _exact_matches(texts[later], hashed[later].keys, texts[earlier],
                                                                   hashed[earlier].keys)]
                       for earlier in evaluation[:position]}
               for position, later in enumerate(evaluation) if position}

    near: dict[str, int] = {}
    if near_duplicates:
        near, examples["near_duplicates"] = _near_duplicates(texts, hashed, first, leaked)

    conflicts, examples["conflicts"] = _conflicts(texts[TRAIN], train_keys, labels.get(TRAIN) if labels else None)
    return AuditReport(
        rows={split: len(texts[split]) for split in splits},
        duplicates_in_train=duplicates,
        leaked=leaked,
        overlap=overlap,
        near_duplicates=near,
        conflicts=conflicts,
        label_variants=label_variants(list(_label_names(labels))) if labels else {},
        numeric_text=is_numeric_text(texts[TRAIN]),
        examples=examples,
        seconds=round(time.perf_counter() - started, 3),
    )


def _check_inputs(texts: dict, labels: dict | None) -> None:
    if TRAIN not in texts:
        raise UsageError(f"the data audit needs a train split; it was given {', '.join(texts) or 'none'}.")
    for split, values in (labels or {}).items():
        if split in texts and len(values) != len(texts[split]):
            raise UsageError(f"the {split} split has {len(texts[split])} texts but {len(values)} labels.")


# --- normalisation and labels --------------------------------------------------------------


def normalize(text: str | None) -> str:
    """The form two reviews are compared in: `Great&amp;cheap<br />FOOD ` and `great&cheap food` are one text.

    NFKC first (full-width letters, ligatures, non-breaking spaces become plain ones), then entities (so an
    escaped tag `&lt;br&gt;` is a tag too), tags replaced by a space (`good<br />bad` is two words), case folded
    (`Straße` and `STRASSE` agree), whitespace runs made one space, none at either end."""
    return " ".join(_prepare(text).split())


def _prepare(text: str | None) -> str:
    """`normalize` but for the whitespace of an ASCII text, which the hashing collapses on the bytes (a
    Python split and join per review was half of the audit's time)."""
    if not text:
        return ""
    text = unicodedata.normalize("NFKC", text)
    if "&" in text:
        text = html.unescape(text)
    if "<" in text:
        text = _TAG.sub(" ", text)
    if text.isascii():
        return text.lower()  # casefold() of ASCII, faster
    return " ".join(text.casefold().split())


def canonical_label(name) -> str:
    """The key under which label spellings are one label: `Pos`, ` pos` and `pos` are `pos`; `5`, `5.0`, ` 5`
    and `+5` are `5`. A word is not a number (`five` stays `five`); `nan` and `inf` stay words."""
    text = unicodedata.normalize("NFKC", str(name)).strip().casefold()
    try:
        number = float(text)
    except ValueError:
        return text
    if not math.isfinite(number) or not _NUMBER.fullmatch(text):
        return text
    return str(int(number)) if number.is_integer() else repr(number)


def label_variants(names: list[str]) -> dict[str, list[str]]:
    """Label spellings that name one label, grouped: display name -> spellings (first seen first), only for
    labels spelled two or more ways. `names` may repeat (a label column): the display name is the most
    frequent spelling, ties going to the first seen, so the same data always gives the same name."""
    counts = Counter(str(name) for name in names)  # in order of first appearance
    groups: dict[str, list[str]] = {}
    for spelling in counts:
        groups.setdefault(canonical_label(spelling), []).append(spelling)
    return {max(spellings, key=counts.__getitem__): spellings
            for spellings in groups.values() if len(spellings) > 1}


def _label_names(labels: dict[str, list]) -> Iterable[str]:
    """Every label name in every split (a list of labels gives each); ratings (numbers) have no names."""
    for values in labels.values():
        for value in values:
            if isinstance(value, str):
                yield value
            elif isinstance(value, (list, tuple, set)):
                yield from (item for item in value if isinstance(item, str))


def _label_key(value):
    """What two labels are compared by: a set for several labels, a canonical name (numbers included) for one;
    None for a missing label, which conflicts with nothing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (list, tuple, set, frozenset)):
        return frozenset(canonical_label(item) for item in value)
    return canonical_label(value)


def is_numeric_text(texts: list[str]) -> bool:
    """At least NUMERIC_SHARE of the non-empty texts are numbers (`4`, `3.5`, `-1`, `1e3`)."""
    non_empty = numbers = 0
    for text in texts:
        if not text or text.isspace():
            continue
        non_empty += 1
        numbers += len(text) <= _MAX_NUMBER_CHARS and _NUMBER.fullmatch(text.strip()) is not None
    return non_empty > 0 and numbers >= NUMERIC_SHARE * non_empty


# --- hashing: exact keys and MinHash sketches ----------------------------------------------


@dataclass
class _Hashed:
    keys: np.ndarray  # uint64 per row: a hash of its normalised text; _EMPTY for an empty one
    signatures: np.ndarray | None  # (rows, NUM_PERM) uint32 MinHash values; all 2^32-1 for an empty text


def _hash_split(texts: list[str], sketches: bool) -> _Hashed:
    """Keys (and sketches) of a split's texts, a chunk of CHUNK_CHARS characters at a time, THREADS chunks at
    once (numpy lets go of the GIL in its loops, where nearly all the time goes)."""
    keys = np.empty(len(texts), dtype=_U64)
    signatures = np.empty((len(texts), NUM_PERM), dtype=_U32) if sketches else None
    local = threading.local()

    def hash_chunk(bounds: tuple[int, int]) -> None:
        start, stop = bounds
        if not hasattr(local, "powers"):
            local.powers = _Powers()
        chunk_keys, shingles, counts = _hash_texts([_prepare(text) for text in texts[start:stop]], local.powers)
        keys[start:stop] = chunk_keys
        if sketches:
            signatures[start:stop] = minhash_signatures(shingles, counts)

    with ThreadPoolExecutor(THREADS) as pool:
        for _ in pool.map(hash_chunk, _chunks(texts)):
            pass
    return _Hashed(keys, signatures)


def _chunks(texts: list[str]) -> Iterable[tuple[int, int]]:
    start, size = 0, 0
    for row, text in enumerate(texts):
        size += len(text) if text else 0
        if size >= CHUNK_CHARS:
            yield start, row + 1
            start, size = row + 1, 0
    if start < len(texts):
        yield start, len(texts)


class _Powers:
    """BASE^i and BASE^-i modulo 2^64 for i < n, kept from chunk to chunk and grown when a chunk is longer."""

    def __init__(self):
        self.forward = self.inverse = np.ones(0, dtype=_U64)

    def up_to(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        if len(self.forward) < n:
            size = max(n, 2 * len(self.forward))
            self.forward, self.inverse = _powers(int(_BYTE_BASE), size), _powers(int(_BYTE_BASE_INVERSE), size)
        return self.forward, self.inverse


def _powers(base: int, n: int) -> np.ndarray:
    """base^0 .. base^(n-1) modulo 2^64, by doubling (a numpy cumprod is ten times slower)."""
    powers = np.empty(max(n, 1), dtype=_U64)
    powers[0] = 1
    filled = 1
    while filled < n:
        step = min(filled, n - filled)
        np.multiply(powers[:step], _U64(pow(base, filled, 2**64)), out=powers[filled:filled + step])
        filled += step
    return powers[:n]


def _hash_texts(prepared: list[str], powers: _Powers | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For texts from `_prepare`: each text's 64-bit key, and its shingles' 32-bit hashes (concatenated, text
    after text) with each text's shingle count. Both hash the words of `normalize(text)`, so texts that
    normalise alike get one key, and a shingle has one hash wherever its words occur.

    A word is a run of bytes between whitespace (str.split's ASCII whitespace: a non-ASCII text has none left
    but single spaces). A word's hash is a polynomial of its bytes, a range of words' one of its words'
    hashes, both by numpy prefix sums; a shingle is SHINGLE_WORDS consecutive words (a shorter text: all)."""
    blob = np.frombuffer("".join(prepared).encode("utf-8"), dtype=np.uint8)
    if not len(blob):
        return np.full(len(prepared), _EMPTY), np.zeros(0, dtype=_U32), np.zeros(len(prepared), dtype=np.int64)
    lengths = np.fromiter((len(text) if text.isascii() else len(text.encode("utf-8")) for text in prepared),
                          dtype=np.int64, count=len(prepared))
    text_ends = np.cumsum(lengths)
    space = blob <= ord(" ")
    controls = np.flatnonzero(blob < 28)  # rare: most are not whitespace
    space[controls] = _ASCII_WHITESPACE[blob[controls]]
    text_starts_here = np.zeros(len(blob) + 1, dtype=bool)
    text_starts_here[text_ends - lengths] = True
    text_starts_here[-1] = True
    solid = ~space
    word_starts = np.flatnonzero(solid & (np.concatenate([[True], space[:-1]]) | text_starts_here[:-1]))
    word_ends = np.flatnonzero(solid & (np.concatenate([space[1:], [True]]) | text_starts_here[1:])) + 1
    text_of_word = np.searchsorted(text_ends, word_starts, side="right")

    powers, inverse = (powers or _Powers()).up_to(len(blob) + 1)
    word_hashes = _range_hashes(blob, word_starts, word_ends, powers, inverse, offset=1)  # no byte counts as 0
    words = np.bincount(text_of_word, minlength=len(prepared))
    first_word = np.cumsum(words) - words
    keys = _range_hashes(word_hashes, first_word, first_word + words, powers, inverse)
    keys[keys == _EMPTY] = _U64(1)  # _EMPTY stays the key of empty texts only
    keys[words == 0] = _EMPTY

    last_word = (first_word + words - 1)[text_of_word]
    word = np.arange(len(word_starts))
    starts_shingle = (word + SHINGLE_WORDS - 1 <= last_word) | (word == first_word[text_of_word])
    shingle_ends = np.minimum(word + SHINGLE_WORDS - 1, last_word)[starts_shingle] + 1
    shingles = _range_hashes(word_hashes, word[starts_shingle], shingle_ends, powers, inverse)
    counts = np.bincount(text_of_word[starts_shingle], minlength=len(prepared))
    return keys, _fold32(shingles), counts


def _range_hashes(values: np.ndarray, starts: np.ndarray, ends: np.ndarray, powers: np.ndarray,
                  inverse: np.ndarray, offset: int = 0) -> np.ndarray:
    """A hash of each range values[start:end]: sum(values[i] * BASE^(i - start)) and the length, mixed."""
    prefix = np.zeros(len(values) + 1, dtype=_U64)
    scaled = values.astype(_U64)
    if offset:
        scaled += _U64(offset)
    scaled *= powers[: len(values)]
    np.cumsum(scaled, out=prefix[1:])
    sums = (prefix[ends] - prefix[starts]) * inverse[starts]
    return _fmix64(sums ^ (ends - starts).astype(_U64))


def shingle_hashes(text: str) -> np.ndarray:
    """The 32-bit hashes of one text's shingles (after `normalize`), as the audit's sketches see them."""
    _, shingles, _ = _hash_texts([_prepare(text)])
    return shingles


def _fmix64(values: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finalizer: every input bit moves about half the output bits."""
    values = values ^ (values >> _U64(33))
    values *= _U64(0xFF51AFD7ED558CCD)
    values ^= values >> _U64(33)
    values *= _U64(0xC4CEB9FE1A85EC53)
    values ^= values >> _U64(33)
    return values


def _fold32(values: np.ndarray) -> np.ndarray:
    return (values >> _U64(32)).astype(_U32)


def _fmix32(values: np.ndarray) -> np.ndarray:
    values = values ^ (values >> _U32(16))
    values *= _U32(0x85EBCA6B)
    values ^= values >> _U32(13)
    values *= _U32(0xC2B2AE35)
    values ^= values >> _U32(16)
    return values


def permutations(num_perm: int = NUM_PERM, seed: int = MINHASH_SEED) -> tuple[np.ndarray, np.ndarray]:
    """The affine permutations `a*h + b mod 2^32` (a odd: a bijection) that datasketch 2.0.0 draws for
    MinHash(num_perm, seed) under its default "affine32" scheme."""
    generator = np.random.RandomState(seed)
    a = generator.randint(0, 1 << 31, num_perm, dtype=_U32) * _U32(2) + _U32(1)
    b = generator.randint(0, 1 << 32, num_perm, dtype=_U32)
    return a, b


def minhash_signatures(shingles: np.ndarray, counts: np.ndarray, num_perm: int = NUM_PERM) -> np.ndarray:
    """(texts, num_perm) MinHash values of texts whose shingle hashes are concatenated in `shingles`, `counts[i]`
    of them text i's; a text without shingles keeps the empty sketch (2^32-1 everywhere)."""
    signatures = np.full((len(counts), num_perm), np.iinfo(_U32).max, dtype=_U32)
    present = counts > 0
    if not present.any():
        return signatures
    starts = (np.cumsum(counts) - counts)[present]
    mixed = _fmix32(shingles)
    permuted = np.empty_like(mixed)
    minima = np.empty((num_perm, len(starts)), dtype=_U32)
    for k, (a, b) in enumerate(zip(*permutations(num_perm))):
        np.multiply(mixed, a, out=permuted)
        permuted += b
        minima[k] = np.minimum.reduceat(permuted, starts)
    signatures[present] = minima.T
    return signatures


# --- findings ------------------------------------------------------------------------------


def _first_occurrences(keys: np.ndarray) -> np.ndarray:
    """True at each row whose key no earlier row has (empty texts included, as never repeating)."""
    _, first_rows = np.unique(keys, return_index=True)
    first = np.zeros(len(keys), dtype=bool)
    first[first_rows] = True
    first[keys == _EMPTY] = True
    return first


def _exact_matches(texts: list[str], keys: np.ndarray, reference_texts: list[str],
                   reference_keys: np.ndarray) -> list[tuple[int, int]]:
    """(row, reference row) for the rows of `texts` whose normalised text is also one of `reference_texts`'
    (its first row there): found by key, confirmed by comparing the normalised texts."""
    unique_keys, first_rows = np.unique(reference_keys, return_index=True)
    if not len(unique_keys):
        return []
    positions = np.minimum(np.searchsorted(unique_keys, keys), len(unique_keys) - 1)
    candidates = np.flatnonzero((unique_keys[positions] == keys) & (keys != _EMPTY))
    pairs = [(int(row), int(first_rows[positions[row]])) for row in candidates]
    return [(row, other) for row, other in pairs if normalize(texts[row]) == normalize(reference_texts[other])]


def _duplicate_examples(texts: list[str], keys: np.ndarray, first: np.ndarray) -> list[dict]:
    rows = np.flatnonzero(~first)[:EXAMPLES]
    unique_keys, first_rows = np.unique(keys, return_index=True)
    earlier = first_rows[np.searchsorted(unique_keys, keys[rows])]
    return [{"row": int(row), "same_as_row": int(other), "text": _short(texts[row])} for row, other in zip(rows, earlier)]


def _pair_example(split: str, row: int, texts: list[str], train_row: int | None, **extra) -> dict:
    example = {"split": split, "row": int(row), "text": _short(texts[row])}
    if train_row is not None:
        example["train_row"] = int(train_row)
    return {**example, **extra}


def _short(text: str | None) -> str:
    text = text or ""
    return text if len(text) <= EXAMPLE_CHARS else text[: EXAMPLE_CHARS - 1] + "…"


def _conflicts(texts: list[str], keys: np.ndarray, labels: list | None) -> tuple[int, list[dict]]:
    """Normalised train texts that carry more than one label, and a few of them with their labels."""
    if labels is None:
        return 0, []
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    groups: dict[int, tuple[int, dict]] = {}  # text -> (its first row, label key -> the label as first seen)
    for row in np.flatnonzero((counts[inverse] > 1) & (keys != _EMPTY)):
        _, found = groups.setdefault(int(inverse[row]), (int(row), {}))
        key = _label_key(labels[row])
        if key is not None:
            found.setdefault(key, labels[row])
    conflicting = [(row, list(found.values())) for row, found in groups.values() if len(found) > 1]
    examples = [{"row": row, "text": _short(texts[row]), "labels": found} for row, found in conflicting[:EXAMPLES]]
    return len(conflicting), examples


def _near_duplicates(texts: dict[str, list[str]], hashed: dict[str, _Hashed], train_first: np.ndarray,
                     leaked: dict[str, list[int]]) -> tuple[dict[str, int], list[dict]]:
    """Rows with a near-duplicate in train that are not exact ones, per split, by MinHash LSH.

    Train's sketches are indexed by band (a train text that repeats an earlier one exactly stays out: its
    earlier copy stands for it). An evaluation row is compared with the first train row in each band's bucket
    it falls in; a train row with the first train row of its buckets, when that row is earlier. A pair counts
    when its sketches agree on at least NEAR_THRESHOLD of their values (the Jaccard estimate)."""
    train = hashed[TRAIN].signatures
    indexed = np.flatnonzero(train_first & (hashed[TRAIN].keys != _EMPTY))
    queries = {split: _near_candidates_rows(hashed[split], leaked[split]) for split in hashed if split != TRAIN}
    pairs: dict[str, list[np.ndarray]] = {split: [] for split in [TRAIN, *queries]}
    for band in range(BANDS):
        band_keys = _band_keys(train, indexed, band)
        order = np.argsort(band_keys, kind="stable")
        sorted_keys, sorted_rows = band_keys[order], indexed[order]
        run_start = np.concatenate([[True], sorted_keys[1:] != sorted_keys[:-1]])
        bucket_first = sorted_rows[np.maximum.accumulate(np.where(run_start, np.arange(len(order)), 0))]
        later = sorted_rows != bucket_first
        pairs[TRAIN].append(np.stack([sorted_rows[later], bucket_first[later]]))
        for split, rows in queries.items():
            query_keys = _band_keys(hashed[split].signatures, rows, band)
            positions = np.minimum(np.searchsorted(sorted_keys, query_keys), max(len(sorted_keys) - 1, 0))
            hit = sorted_keys[positions] == query_keys if len(sorted_keys) else np.zeros(len(rows), dtype=bool)
            pairs[split].append(np.stack([rows[hit], bucket_first[positions[hit]]]))
    counts, examples = {}, []
    for split, found in pairs.items():
        near_rows, near_train, similarity = _confirmed(np.concatenate(found, axis=1), hashed[split].signatures, train)
        counts[split] = len(near_rows)
        examples += [_pair_example(split, row, texts[split], other, similarity=round(float(sim), 3),
                                   train_text=_short(texts[TRAIN][other]))
                     for row, other, sim in zip(near_rows[:EXAMPLES], near_train, similarity)]
    return counts, examples[: EXAMPLES * 2]


def _near_candidates_rows(hashed: _Hashed, leaked: list[int]) -> np.ndarray:
    usable = hashed.keys != _EMPTY
    usable[leaked] = False
    return np.flatnonzero(usable)


def _band_keys(signatures: np.ndarray, rows: np.ndarray, band: int) -> np.ndarray:
    """One 64-bit key per row's sketch for its band's ROWS_PER_BAND values: equal values give equal keys."""
    keys = np.zeros(len(rows), dtype=_U64)
    for column in signatures[rows, band * ROWS_PER_BAND:(band + 1) * ROWS_PER_BAND].T:
        keys = keys * _BAND_BASE + column.astype(_U64)
    return keys


def _confirmed(pairs: np.ndarray, signatures: np.ndarray, train: np.ndarray,
               block: int = 65_536) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Of candidate (row, train row) pairs, the rows whose best pair reaches NEAR_THRESHOLD: rows, their train
    row and the estimated Jaccard, in row order."""
    pairs = np.unique(pairs, axis=1) if pairs.size else pairs
    similarity = np.concatenate([(signatures[pairs[0, i:i + block]] == train[pairs[1, i:i + block]]).mean(axis=1)
                                 for i in range(0, pairs.shape[1], block)]) if pairs.size else np.zeros(0)
    near = similarity >= NEAR_THRESHOLD
    rows, others, similarity = pairs[0, near], pairs[1, near], similarity[near]
    best = np.lexsort((-similarity, rows))  # by row, the most similar first
    rows, others, similarity = rows[best], others[best], similarity[best]
    first = np.concatenate([[True], rows[1:] != rows[:-1]]) if len(rows) else np.zeros(0, dtype=bool)
    return rows[first], others[first], similarity[first]
