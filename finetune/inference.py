"""The serving path: load a fine-tuned classifier once, predict batches fast on a CPU.

Reviews are sorted by length before batching, so each batch pads to a similar length
(transformers' `pipeline` pads batches in arrival order). Reviews longer than the
model's maximum are truncated to their first `max_length` tokens. Optional int8
dynamic quantization of most Linear layers speeds up CPU serving.
"""

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
                 max_length: int | None = None, revision: str | None = None):
        # revision: a branch, tag or commit of a Hub repo (None: main); a Space pins it (MODEL_REVISION)
        self.model_ref = str(model_ref)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_ref, token=token, revision=revision)
        model = AutoModelForSequenceClassification.from_pretrained(self.model_ref, token=token,
                                                                   revision=revision).eval()
        if quantize:
            model = quantize_for_cpu(model)
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


# Linear layers whose inputs quantize well: attention projections and the feed-forward block's first
# layer (BERT/RoBERTa "intermediate", DistilBERT "lin1"). The feed-forward output layers read GELU
# outputs, whose outliers per-tensor int8 activations clip: quantizing them too cost 1.4 to 2.6
# accuracy points on the embedded test split, this choice none (bench/inference.py).
QUANTIZED_LAYER_HINTS = ("attention", "intermediate", "lin1")


def quantize_for_cpu(model):
    """int8 dynamic quantization with per-channel weights, of the layers above (all Linear layers of
    an architecture that names none of them); the classifier head stays fp32."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    linear = [name for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)]
    chosen = [name for name in linear if any(hint in name for hint in QUANTIZED_LAYER_HINTS)]
    spec = {name: per_channel_dynamic_qconfig for name in chosen} or {torch.nn.Linear: per_channel_dynamic_qconfig}
    return quantize_dynamic(model, spec, dtype=torch.qint8)

