"""The serving path: load a fine-tuned classifier once, predict batches fast on a CPU.

Reviews are sorted by length before batching, so each batch pads to a similar length
(transformers' `pipeline` pads batches in arrival order). Reviews longer than the
model's maximum are truncated to their first `max_length` tokens. Optional int8
dynamic quantization of the Linear layers speeds up CPU serving.
"""

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

DEFAULT_MAX_LENGTH = 512


@dataclass
class Prediction:
    scores: dict[str, float]  # every label -> probability
    label: str
    tokens: int  # tokens the model saw
    truncated: bool


class ReviewClassifier:
    def __init__(self, model_ref: str | Path, token: str | None = None, quantize: bool = False,
                 max_length: int | None = None):
        self.model_ref = str(model_ref)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_ref, token=token)
        model = AutoModelForSequenceClassification.from_pretrained(self.model_ref, token=token).eval()
        if quantize:
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        self.model = model
        self.quantized = quantize
        limit = min(self.tokenizer.model_max_length, getattr(model.config, "max_position_embeddings", DEFAULT_MAX_LENGTH))
        self.max_length = min(max_length or limit, limit, DEFAULT_MAX_LENGTH)
        self.label_names = [model.config.id2label[i] for i in range(model.config.num_labels)]

    def predict(self, texts: list[str], batch_size: int = 32) -> list[Prediction]:
        if not texts:
            return []
        encodings, truncated = self._encode(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i]["input_ids"]))
        results: list[Prediction | None] = [None] * len(texts)
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                indices = order[start:start + batch_size]
                batch = self.tokenizer.pad([encodings[i] for i in indices], return_tensors="pt")
                probabilities = torch.softmax(self.model(**batch).logits.float(), dim=-1).tolist()
                for i, row in zip(indices, probabilities):
                    scores = dict(zip(self.label_names, row))
                    results[i] = Prediction(scores=scores, label=max(scores, key=scores.get),
                                            tokens=len(encodings[i]["input_ids"]), truncated=i in truncated)
        return results

    def _encode(self, texts: list[str]) -> tuple[list[dict], set[int]]:
        """One tokenizer pass: each review truncated to max_length, and which ones were cut."""
        encoded = self.tokenizer(texts, truncation=True, max_length=self.max_length, return_overflowing_tokens=True)
        keys = [k for k in self.tokenizer.model_input_names if k in encoded]
        first_row: dict[int, int] = {}
        truncated: set[int] = set()
        for row, sample in enumerate(encoded["overflow_to_sample_mapping"]):
            if sample in first_row:
                truncated.add(sample)
            else:
                first_row[sample] = row
        return [{k: encoded[k][first_row[i]] for k in keys} for i in range(len(texts))], truncated

    def predict_one(self, text: str) -> Prediction:
        return self.predict([text], batch_size=1)[0]


def serving_threads() -> int:
    """All the cores this process may use (a free Space has 2 vCPU)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
