"""The ONNX copy of a fine-tuned model: export it, check it against PyTorch, quantize it to int8.

    python -m finetune.onnx_export outputs/all-minilm-l6-v2-rotten-tomatoes   # add one to an existing model folder

Every training run writes it (--export_onnx, default true) in the layout the Hub's ONNX readers
expect (transformers.js, Optimum): onnx/model.onnx (fp32) and onnx/model_quantized.onnx (int8:
dynamic quantization of every MatMul weight, per output channel), with dynamic batch and sequence
axes, the tokenizer's input names and one output, `logits`. The demo serves it through ONNX Runtime
(finetune/inference.py) and a push uploads it.

The copy is checked as it is written: the fp32 logits must match PyTorch's within TOLERANCE on a few
reviews (one padded batch and one review alone, so both dynamic axes are exercised). Otherwise, or if
the export or the quantization fails, the onnx/ folder goes and the folder keeps its PyTorch weights only.
"""

import argparse
import inspect
import logging
import re
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from finetune import artifacts, errors, reading
from finetune.logs import setup_logging
from finetune.model_card import with_onnx_section

logger = logging.getLogger(__name__)

OPSET = 20
TOLERANCE = 1e-4  # largest |logit difference| allowed between the fp32 copy and PyTorch
CHECK_REVIEWS = 8
CHECK_BATCH_LENGTH = 128
# What the check reads when a caller has fewer than two reviews (the export needs a batch of two or more,
# or it fixes the batch axis at 1), and what the command line checks with.
SAMPLE_REVIEWS = [
    "A gorgeous, moving film with a cast that makes every scene count.",
    "Two hours of my life I will never get back: dull, loud and badly written.",
    "Fine.",
    "The food was fine, but the service was painfully slow and the room was cold. We waited forty minutes for a "
    "table we had booked, the starters came after the mains, and nobody said sorry. I would not go back.",
]


class ExportFailed(RuntimeError):
    """The ONNX copy could not be written or does not match the PyTorch model."""


@dataclass
class OnnxCopy:
    files: list[str]  # paths relative to the model folder
    reviews_checked: int
    max_logit_difference: float  # fp32 copy vs PyTorch
    int8_same_label: int  # of reviews_checked, how many the int8 copy labels as PyTorch does
    seconds: float


def export_onnx(folder: Path, texts: list[str], update_card: bool = True) -> OnnxCopy | None:
    """Write and check the ONNX copy of the model saved in `folder`, then name it in the folder's card (unless
    `update_card` is False: a training run renders its card afterwards, the copy included).

    Never raises: a failure logs a warning, leaves no onnx/ folder and returns None (the PyTorch
    weights are untouched, and serving falls back to them)."""
    folder = Path(folder)
    start = time.perf_counter()
    staging = folder / (artifacts.ONNX_DIR + artifacts.TEMPORARY_SUFFIX)
    shutil.rmtree(staging, ignore_errors=True)
    try:
        check = write_onnx_files(folder, staging, texts)
        remove_onnx_copy(folder, update_card)
        staging.replace(folder / artifacts.ONNX_DIR)
    except Exception as err:  # the export touches torch.export, onnxscript and onnxruntime: any of them may refuse
        shutil.rmtree(staging, ignore_errors=True)
        remove_onnx_copy(folder, update_card)
        logger.warning("no ONNX copy: %s: %s. The model folder keeps its PyTorch weights only (the demo serves them "
                       "with PyTorch); --export_onnx false skips the export.", type(err).__name__, _reason(err))
        return None
    copy = OnnxCopy(files=list(artifacts.ONNX_FILES), seconds=round(time.perf_counter() - start, 2), **check)
    if update_card:
        _update_card(folder, copy)
    logger.info("ONNX copy written in %.0f s: %s; fp32 logits within %.1e of PyTorch on %d reviews, int8 gives the "
                "same label on %d of them", copy.seconds, ", ".join(copy.files), copy.max_logit_difference,
                copy.reviews_checked, copy.int8_same_label)
    return copy


def _reason(err: Exception) -> str:
    """An error's message in one line; for the exporter's long reports, the line that says what failed."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip()  # the exporter colours its messages
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if "## Exception summary" in lines[:-1]:
        return lines[lines.index("## Exception summary") + 1][:500]
    return lines[0][:500] if lines else ""


def remove_onnx_copy(folder: Path, update_card: bool = True) -> None:
    """Remove the folder's ONNX copy (and its card section, if `update_card`): a copy that no longer matches the
    weights must not be served."""
    folder = Path(folder)
    shutil.rmtree(folder / artifacts.ONNX_DIR, ignore_errors=True)
    if update_card:
        _update_card(folder, None)


def write_onnx_files(folder: Path, out: Path, texts: list[str]) -> dict:
    """Export the model of `folder` into `out` (model.onnx, model_quantized.onnx); return the check's numbers."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    # Eager attention: its matmul-softmax-matmul is the subgraph ONNX Runtime fuses into one Attention kernel.
    model = _load_for_export(AutoModelForSequenceClassification, folder)
    texts = [t for t in texts if t and t.strip()][:CHECK_REVIEWS]
    if len(texts) < 2:
        texts = SAMPLE_REVIEWS
    saved = reading.of_model(model.config)  # how the model reads a review, as trained (finetune/reading.py)
    max_length = saved.cut_length(tokenizer, model.config)
    # The batch is cut at 128 word pieces and the longest review is checked alone at full length: eight
    # 512-piece reviews made the export and its check peak at 1.9 GB (0.7 GB with short ones).
    batch = tokenizer(texts, truncation=True, max_length=min(max_length, CHECK_BATCH_LENGTH), padding=True,
                      return_tensors="pt")
    accepted = inspect.signature(model.forward).parameters  # e.g. DistilBERT takes no token_type_ids
    names = [name for name in tokenizer.model_input_names if name in batch and name in accepted]
    longest = max(texts, key=len)
    alone = tokenizer([longest], truncation=True, max_length=max_length, return_tensors="pt")
    with torch.inference_mode():
        expected = [model(**{n: b[n] for n in names}).logits.numpy() for b in (batch, alone)]

    out.mkdir(parents=True)
    fp32, int8 = out / Path(artifacts.ONNX_MODEL_FILE).name, out / Path(artifacts.ONNX_QUANTIZED_FILE).name
    _export(model, {n: batch[n] for n in names}, fp32)
    got = [_run(fp32, {n: b[n].numpy() for n in names}) for b in (batch, alone)]
    difference = max(float(np.abs(g - e).max()) for g, e in zip(got, expected))
    if not difference <= TOLERANCE:  # `not <=`: a NaN fails too
        raise ExportFailed(f"the ONNX model's logits differ from PyTorch's by {difference:.2e} (allowed: {TOLERANCE:.0e})")

    _quantize(fp32, int8)
    int8_logits = _run(int8, {n: batch[n].numpy() for n in names})
    if int8_logits.shape != expected[0].shape or not np.isfinite(int8_logits).all():
        raise ExportFailed(f"the int8 model's logits have shape {int8_logits.shape} or are not finite")
    # The same prediction as PyTorch's: the class; the rounded rating; the whole set of labels (finetune/tasks.py)
    task = saved.task
    agree = [task.predicted_text(a) == task.predicted_text(b)
             for a, b in zip(task.outputs(int8_logits), task.outputs(expected[0]))]
    same = int(sum(agree))
    return {"reviews_checked": len(texts), "max_logit_difference": difference, "int8_same_label": same}


def _load_for_export(auto_class, folder: Path):
    try:
        model = auto_class.from_pretrained(folder, attn_implementation="eager")
    except (ValueError, TypeError):  # an architecture with one attention implementation only
        model = auto_class.from_pretrained(folder)
    return model.float().eval()


def _export(model, inputs: dict, path: Path) -> None:
    """TorchScript export (not torch.export/dynamo): ONNX Runtime recognises its attention, layer-norm and GELU
    subgraphs and fuses them when it loads the model; the dynamo exporter's graph it does not, and on long
    reviews that graph ran 1.3-1.8x slower (bench/inference.py; README, Performance). Standard ops either way."""
    import onnx
    import torch

    # The TorchScript exporter takes inputs by position: in the order of forward's parameters, each named so.
    parameters = list(inspect.signature(model.forward).parameters)
    order = [name for name in parameters if name in inputs]
    if order != parameters[:len(order)]:
        raise ExportFailed(f"the model's forward takes {parameters[:len(order)]} first, the tokenizer gives {order}")
    dynamic = {name: {0: "batch", 1: "sequence"} for name in order} | {"logits": {0: "batch"}}
    with warnings.catch_warnings(), _quiet("torch.onnx"):
        warnings.simplefilter("ignore")  # the exporter's deprecation notes: nothing to act on
        torch.onnx.export(
            model, tuple(inputs[name] for name in order), str(path), input_names=order, output_names=["logits"],
            dynamic_axes=dynamic, opset_version=OPSET, dynamo=False, do_constant_folding=True,
        )
    proto = onnx.load(str(path))
    for node in proto.graph.node:
        # A node may record where it was made (file paths of this machine), which a push would publish.
        del node.metadata_props[:]
    # Shapes annotated on weights: onnxruntime's quantizer transposes some weights (Gemm -> MatMul) without
    # updating them, and its shape inference then fails. Nothing needs them.
    weights = {init.name for init in proto.graph.initializer}
    annotations = [info for info in proto.graph.value_info if info.name not in weights]
    del proto.graph.value_info[:]
    proto.graph.value_info.extend(annotations)
    onnx.save(proto, str(path))  # one file (no external data): what transformers.js loads


def _quantize(fp32: Path, int8: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="onnx-quantize-") as tmp, _quiet("root"):  # it logs each tensor at INFO
        prepared = Path(tmp) / "prepared.onnx"
        # Symbolic shape inference fails on this exporter's graphs; ONNX's own shape inference suffices.
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        quantize_dynamic(str(prepared), str(int8), op_types_to_quantize=["MatMul"], per_channel=True,
                         weight_type=QuantType.QInt8)


def _run(path: Path, feeds: dict) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    # The graph's own inputs: the exporter drops one the model ignores (DeBERTa-v3's token_type_ids, with no
    # token type embeddings), as finetune/inference.py feeds it.
    inputs = [i.name for i in session.get_inputs()]
    return session.run(["logits"], {name: feeds[name].astype(np.int64) for name in inputs})[0]


class _quiet:
    """Raise these loggers to ERROR for a while: the exporter and quantizer log progress and advice at INFO/WARNING."""

    def __init__(self, *names: str):
        self.loggers = [logging.getLogger(name) for name in names]

    def __enter__(self):
        self.levels = [lg.level for lg in self.loggers]
        for lg in self.loggers:
            lg.setLevel(logging.ERROR)

    def __exit__(self, *exc):
        for lg, level in zip(self.loggers, self.levels):
            lg.setLevel(level)


def _update_card(folder: Path, copy: OnnxCopy | None) -> None:
    card = folder / artifacts.CARD_FILE
    if not card.is_file():
        return
    try:
        text = card.read_text(encoding="utf-8")
        task, fields = None, None
        if (folder / "config.json").is_file():  # the snippet reads the outputs as this model's task does
            from transformers import AutoConfig

            saved = reading.of_model(AutoConfig.from_pretrained(folder))
            task, fields = saved.task, saved.text_fields
        updated = with_onnx_section(text, copy, task, fields)
    except Exception as err:  # a card this project did not write (bad YAML, odd metadata): the copy stands without
        logger.warning("the model card %s was not updated for the ONNX copy (%s: %s)", card, type(err).__name__, err)
        return
    if updated != text:
        artifacts.write_text(card, updated)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m finetune.onnx_export", description=__doc__.split("\n\n")[0],
                                     allow_abbrev=False)
    parser.add_argument("folder", type=Path, help="a model folder written by finetune/train.py (or any saved classifier)")
    args = parser.parse_args(argv)
    setup_logging()
    if not artifacts.holds_model(args.folder):
        return errors.report(f"no model in {args.folder}. Pass a model folder (it holds config.json and "
                             "model.safetensors).", errors.EXIT_USAGE)
    copy = export_onnx(args.folder, SAMPLE_REVIEWS)  # a failed check is logged
    return errors.EXIT_OK if copy else errors.EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
