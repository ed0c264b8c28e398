"""Which words drove a prediction: occlusion, with either serving engine.

Each word (whole words, split on whitespace; not word pieces) is left out in turn, and its attribution is
how much the predicted class's probability drops without it: positive when the word pushed the review
towards the prediction, negative when it pulled away. All the variants go through the model in one
batch. A long review is cut into at most `max_spans` spans of consecutive words, each left out whole,
so that the cost stays bounded (bench/attribution.py measures it).
"""

import math
import re
from dataclasses import dataclass

MAX_SPANS = 32  # 60 words: 30 spans of 2, about 350 ms with ONNX Runtime fp32 (bench/attribution.py)
WORD = re.compile(r"\S+")


@dataclass
class Attribution:
    label: str  # the predicted class
    probability: float  # its probability for the whole review
    spans: list[tuple[str, float]]  # (words, probability drop without them), in the review's order
    words_per_span: int
    gaps: list[str] | None = None  # what stands between span i and i+1 when it is more than whitespace (a separator)

    def segments(self) -> list[tuple[str, float | None]]:
        """The review as text pieces for gr.HighlightedText: each span with its drop scaled into [-1, 1] by the
        largest drop (the colour's strength), the whitespace between spans unmarked."""
        largest = max((abs(value) for _, value in self.spans), default=0.0) or 1.0
        out: list[tuple[str, float | None]] = []
        for i, (text, value) in enumerate(self.spans):
            if i:
                out.append((self.gaps[i - 1] if self.gaps else " ", None))
            out.append((text, round(value / largest, 4)))
        return out

    def strongest(self, n: int = 3, least: float = 0.0005) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
        """The n spans that raised the prediction most, and the n that lowered it most; a drop smaller than
        `least` (it would print as 0.000) counts as neither."""
        ranked = sorted(self.spans, key=lambda span: -span[1])
        return [s for s in ranked[:n] if s[1] >= least], [s for s in reversed(ranked[-n:]) if s[1] <= -least]


def word_spans(text: str, max_spans: int = MAX_SPANS, skip: tuple[str, ...] = ()) -> tuple[list[tuple[int, int]], int]:
    """Character bounds of the review's words, grouped into at most max_spans spans of equal word counts. A word
    in `skip` (the separator between a review's fields) is in no span, and no span reaches across it."""
    words = [(match.span(), match.group()) for match in WORD.finditer(text)]
    counted = [span for span, word in words if word not in skip]
    per_span = max(1, math.ceil(len(counted) / max_spans))
    spans, group = [], []
    for span, word in words:
        if word in skip or len(group) == per_span:
            if group:
                spans.append((group[0][0], group[-1][1]))
            group = []
        if word not in skip:
            group.append(span)
    if group:
        spans.append((group[0][0], group[-1][1]))
    return spans, per_span


def occlusion(classifier, text: str, max_spans: int = MAX_SPANS, skip: tuple[str, ...] = ()) -> Attribution:
    """The predicted class of `text` and, per span of words, the drop of its probability when the span is left
    out (words in `skip` never are: they stay, unmarked). `classifier` is a finetune.inference.ReviewClassifier
    (any object with its `predict`)."""
    spans, per_span = word_spans(text, max_spans, skip)
    variants = [(text[:start] + " " + text[end:]).strip() for start, end in spans]
    predictions = classifier.predict([text, *variants], batch_size=len(variants) + 1)  # one batch
    whole = predictions[0]
    # A class; for several labels, the likeliest one; for a rating, its name (the drop is then the value's)
    label = whole.label if whole.label in whole.scores else max(whole.scores, key=whole.scores.get)
    drops = [whole.scores[label] - p.scores[label] for p in predictions[1:]]
    between = [text[spans[i - 1][1]:spans[i][0]].strip() for i in range(1, len(spans))]
    gaps = [f" {gap} " if gap else " " for gap in between] if any(between) else None
    return Attribution(label, whole.scores[label], [(text[s:e], d) for (s, e), d in zip(spans, drops)], per_span,
                       gaps)
