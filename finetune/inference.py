"""The serving path: load a fine-tuned classifier once, predict batches fast on a CPU.

Two engines behind one API. A model with an ONNX copy (onnx/model.onnx in its folder or Hub
repo, written by finetune/onnx_export.py) is served by ONNX Runtime: fp32 by default (the same
labels as PyTorch), its int8 copy (onnx/model_quantized.onnx) with `quantize=True`. A model
without one is served by PyTorch, in int8 with `quantize=True` through torch.ao dynamic
quantization of most Linear layers (which PyTorch marks as deprecated: the fallback only).
`classifier.engine` says which one serves.

Reviews are sorted by length before batching, so each batch pads to a similar length
(transformers' `pipeline` pads batches in arrival order). Reviews longer than the
length it was trained with keep the part it was trained on (its head, tail or both ends: finetune/truncation.py),
unless `max_length` or `truncation` say otherwise: both as saved with the model (finetune/reading.py).
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from finetune import artifacts, reading, tasks

ENGINES = ("auto", "onnxruntime", "pytorch")  # auto: ONNX Runtime when the model has an ONNX copy


@dataclass
class Prediction:
    scores: dict[str, float]  # every class or label -> probability; a rating: its name -> the predicted value
    label: str  # the class; a rating rounded to the nearest seen in train; several labels joined by ';'
    tokens: int  # tokens the model saw
    truncated: bool
    value: float | None = None  # a rating: the predicted value
    labels: list[str] | None = None  # several labels: those at or above the model's threshold
    unsure: bool = False  # classes: the calibrated confidence is below the model's abstention threshold


class ReviewClassifier:
    def __init__(self, model_ref: str | Path, token: str | None = None, quantize: bool = False,
                 max_length: int | None = None, revision: str | None = None, engine: str = "auto",
                 truncation: str | None = None):
        # revision: a branch, tag or commit of a Hub repo (None: main); a Space pins it (MODEL_REVISION)
        if engine not in ENGINES:
            raise ValueError(f"engine {engine!r}: choose one of {', '.join(ENGINES)}")
        self.model_ref = str(model_ref)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_ref, token=token, revision=revision)
        onnx_file = None if engine == "pytorch" else find_onnx_copy(self.model_ref, quantize, token, revision)
        if onnx_file is None and engine == "onnxruntime":
            raise FileNotFoundError(
                f"{self.model_ref} has no ONNX copy ({onnx_file_name(quantize)}). Write one with "
                "`python -m finetune.onnx_export <model folder>`, or serve it with PyTorch."
            )
        self.model, self.session = None, None
        if onnx_file is not None:
            self.config = AutoConfig.from_pretrained(self.model_ref, token=token, revision=revision)
            self.session = onnx_session(onnx_file)
            self.onnx_inputs = [i.name for i in self.session.get_inputs()]
            self.engine = "onnxruntime " + ("int8" if quantize else "fp32")
        else:
            model = AutoModelForSequenceClassification.from_pretrained(self.model_ref, token=token,
                                                                       revision=revision).eval()
            self.model = quantize_for_cpu(model) if quantize else model
            self.config = model.config
            self.engine = "pytorch " + ("int8" if quantize else "fp32")
        self.quantized = quantize
        self.label_names = [self.config.id2label[i] for i in range(self.config.num_labels)]
        # How the model reads a review, as training saved it (finetune/reading.py); `truncation` overrides its part.
        self.reading = reading.of_model(self.config)
        if truncation:
            self.reading.truncation = truncation
        self.max_length = self.reading.cut_length(self.tokenizer, self.config, max_length)
        self.task = self.reading.task  # what a label is (finetune/tasks.py), as saved in config.json

    @property
    def truncation(self) -> str:
        return self.reading.truncation

    @property
    def text_fields(self) -> list[str]:
        return self.reading.text_fields  # the text columns a review is made of

    @property
    def separator(self) -> str:
        return self.reading.separator

    @property
    def pairing(self) -> str:
        return self.reading.pairing  # join, or the second field as segment 1

    def compose(self, fields: dict[str, str | None]) -> str:
        """One review from its fields (a title, a body), joined as training joined them; "" when all are empty."""
        return self.reading.compose(fields)

    def predict(self, texts: list[str], batch_size: int = 32) -> list[Prediction]:
        if not texts:
            return []
        encodings, truncated = self._encode(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i]["input_ids"]))
        results: list[Prediction | None] = [None] * len(texts)
        for start in range(0, len(order), batch_size):
            indices = order[start:start + batch_size]
            outputs = self.task.outputs(self._logits([encodings[i] for i in indices])).tolist()
            for i, row in zip(indices, outputs):
                results[i] = self._prediction(row, len(encodings[i]["input_ids"]), i in truncated)
        return results

    def _prediction(self, row: list[float], tokens: int, truncated: bool) -> Prediction:
        task = self.task
        scores = dict(zip(self.label_names, row))
        prediction = Prediction(scores=scores, label=task.predicted_text(row), tokens=tokens, truncated=truncated,
                                unsure=task.unsure(row))
        if task.problem_type == tasks.REGRESSION:
            prediction.value = row[0]
        elif task.problem_type == tasks.MULTI_LABEL:
            prediction.labels = task.predicted_labels(row)
        return prediction

    def _logits(self, features: list[dict]) -> np.ndarray:
        """One padded batch through the engine: float32 logits, one row per review."""
        if self.session is not None:
            batch = self.tokenizer.pad(features, return_tensors="np")
            # an ONNX copy made elsewhere may ask for token_type_ids that this tokenizer does not make: all zeros
            feeds = {name: batch.get(name, np.zeros_like(batch["input_ids"])).astype(np.int64) for name in self.onnx_inputs}
            return self.session.run(["logits"], feeds)[0].astype(np.float32)
        batch = self.tokenizer.pad(features, return_tensors="pt")
        with torch.inference_mode():
            return self.model(**batch).logits.float().numpy()

    def _encode(self, texts: list[str]) -> tuple[list[dict], set[int]]:
        """One tokenizer pass: each review cut to max_length as the model was trained, and which ones were cut."""
        encoded, cut = self.reading.encode(self.tokenizer, texts, self.max_length)
        keys = [k for k in self.tokenizer.model_input_names if k in encoded]
        rows = [{k: encoded[k][i] for k in keys} for i in range(len(texts))]
        return rows, {i for i, was_cut in enumerate(cut) if was_cut}

    def predict_one(self, text: str) -> Prediction:
        return self.predict([text], batch_size=1)[0]


def onnx_file_name(quantize: bool) -> str:
    return artifacts.ONNX_QUANTIZED_FILE if quantize else artifacts.ONNX_MODEL_FILE


def find_onnx_copy(model_ref: str, quantize: bool, token: str | None = None, revision: str | None = None) -> Path | None:
    """The model's ONNX file for this precision, from its folder or downloaded from its Hub repo; None if it has
    none (offline and not in the cache counts as none: PyTorch then serves)."""
    name = onnx_file_name(quantize)
    return artifacts.fetch_run_files(model_ref, token=token, names=(name,), revision=revision)[name]


def onnx_session(path: Path):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: it warns about initializers it folds away
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


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

