"""The ONNX copy: written and checked by a run, served by ONNX Runtime, pushed with the model, loaded back by repo id."""

import logging
import re
import shutil
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from conftest import TOKEN
from huggingface_hub import ModelCard
from transformers import AutoModelForSequenceClassification, AutoTokenizer

import app
from finetune import artifacts, hub, onnx_export, run_views
from finetune.inference import ReviewClassifier
from finetune.model_card import ONNX_HEADING

TEXTS = ["great", "the movie was really quite boring and dull and messy", "awful film", "brilliant cast " * 40]


def _copy(run: Path, tmp_path: Path, with_onnx: bool = True) -> Path:
    """A copy of the shared trained run that a test may change (without its checkpoints)."""
    folder = Path(shutil.copytree(run, tmp_path / "run", ignore=shutil.ignore_patterns("checkpoint-*")))
    if not with_onnx:
        onnx_export.remove_onnx_copy(folder)
    return folder


def _torch_logits(folder: Path, texts: list[str]) -> np.ndarray:
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with torch.inference_mode():
        return model(**tokenizer(texts, truncation=True, padding=True, return_tensors="pt")).logits.numpy()


def _onnx_logits(path: Path, folder: Path, texts: list[str]) -> np.ndarray:
    tokenizer = AutoTokenizer.from_pretrained(folder)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = tokenizer(texts, truncation=True, padding=True, return_tensors="np")
    return session.run(["logits"], {i.name: inputs[i.name] for i in session.get_inputs()})[0]


def test_training_run_writes_onnx_copy_whose_logits_match_pytorch(trained_run):
    # The export is a phase of the run: results.json has its seconds and the peak memory after it.
    results = artifacts.read_json(trained_run, artifacts.RESULTS_FILE)
    assert "onnx_export" in results["seconds"] and "onnx_export" in results["peak_memory_gb"]
    assert results["peak_memory_gb"]["onnx_export"] >= results["peak_memory_gb"]["training"] > 0
    fp32, int8 = (trained_run / name for name in artifacts.ONNX_FILES)
    assert sorted(p.name for p in (trained_run / "onnx").iterdir()) == ["model.onnx", "model_quantized.onnx"]
    session = onnxruntime.InferenceSession(str(fp32), providers=["CPUExecutionProvider"])
    assert [(i.name, i.shape) for i in session.get_inputs()] == [
        (name, ["batch", "sequence"]) for name in ("input_ids", "attention_mask", "token_type_ids")]  # forward's order
    assert [o.name for o in session.get_outputs()] == ["logits"]
    # batch sizes and lengths other than the export's example: the axes are dynamic
    for texts in (TEXTS, TEXTS[:1], TEXTS[1:3]):
        expected = _torch_logits(trained_run, texts)
        np.testing.assert_allclose(_onnx_logits(fp32, trained_run, texts), expected, atol=onnx_export.TOLERANCE, rtol=0)
        np.testing.assert_allclose(_onnx_logits(int8, trained_run, texts), expected, atol=0.1, rtol=0)
    assert int8.stat().st_size < fp32.stat().st_size
    assert b"site-packages" not in fp32.read_bytes()  # no stack traces naming this machine's files
    assert artifacts.foreign_entries(trained_run) == []  # onnx/ is a run's own: --overwrite_output_dir may replace it


def test_training_run_card_has_onnx_section_and_tags(trained_run):
    card = ModelCard.load(trained_run / artifacts.CARD_FILE)
    assert {"onnx", "transformers.js"} <= set(card.data.tags)
    assert card.text.count(ONNX_HEADING) == 1
    assert card.text.index(ONNX_HEADING) < card.text.index("## Training history")
    # the snippets name the model as the card's pipeline snippet does (the folder; a push points both at its repo)
    model = re.search(r'model="([^"]*)"', card.text).group(1)
    assert f'REPO = "{model}"' in card.text and "import onnxruntime as ort" in card.text
    assert f"pipeline('text-classification', '{model}', {{ dtype: 'q8' }})" in card.text
    assert len(card.data.eval_results) == 8  # the metadata survived the edit


def test_export_onnx_that_fails_its_check_leaves_pytorch_weights_only(trained_run, tmp_path, monkeypatch, caplog):
    folder = _copy(trained_run, tmp_path)  # holds a copy from the run: a failed export must not leave it behind
    weights = (folder / "model.safetensors").read_bytes()
    monkeypatch.setattr(onnx_export, "TOLERANCE", -1.0)  # no difference passes
    with caplog.at_level(logging.WARNING, logger="finetune.onnx_export"):
        assert onnx_export.export_onnx(folder, TEXTS) is None
    assert "no ONNX copy: ExportFailed: the ONNX model's logits differ from PyTorch's" in caplog.text
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith("onnx")) == []
    assert (folder / "model.safetensors").read_bytes() == weights
    card = ModelCard.load(folder / artifacts.CARD_FILE)
    assert ONNX_HEADING not in card.text and "onnx" not in card.data.tags
    assert ReviewClassifier(folder).engine == "pytorch fp32"

    monkeypatch.undo()  # the command adds a copy to an existing folder, and its card section once
    assert onnx_export.main([str(folder)]) == 0
    assert all((folder / name).is_file() for name in artifacts.ONNX_FILES)
    assert (folder / artifacts.CARD_FILE).read_text().count(ONNX_HEADING) == 1
    assert ReviewClassifier(folder).engine == "onnxruntime fp32"


def test_classifier_serves_onnx_copy_with_the_labels_of_pytorch(trained_run):
    onnx, torch_path = ReviewClassifier(trained_run), ReviewClassifier(trained_run, engine="pytorch")
    assert (onnx.engine, torch_path.engine) == ("onnxruntime fp32", "pytorch fp32")
    assert onnx.label_names == torch_path.label_names and onnx.max_length == torch_path.max_length == 64
    for a, b in zip(onnx.predict(TEXTS, batch_size=2), torch_path.predict(TEXTS, batch_size=2)):
        assert (a.label, a.tokens, a.truncated) == (b.label, b.tokens, b.truncated)
        for name in a.scores:
            assert a.scores[name] == pytest.approx(b.scores[name], abs=1e-5)
    int8 = ReviewClassifier(trained_run, quantize=True)
    assert int8.engine == "onnxruntime int8" and int8.quantized
    for a, b in zip(int8.predict(TEXTS), torch_path.predict(TEXTS)):
        assert sum(a.scores.values()) == pytest.approx(1.0, abs=1e-5)
        for name in a.scores:
            assert a.scores[name] == pytest.approx(b.scores[name], abs=0.05)


def test_classifier_without_onnx_copy_falls_back_to_pytorch(trained_run, tmp_path):
    folder = _copy(trained_run, tmp_path, with_onnx=False)
    assert ReviewClassifier(folder).engine == "pytorch fp32"
    assert ReviewClassifier(folder, quantize=True).engine == "pytorch int8"
    with pytest.raises(FileNotFoundError, match="no ONNX copy"):
        ReviewClassifier(folder, engine="onnxruntime")


@pytest.mark.parametrize("with_onnx, engine", [(True, "onnxruntime fp32"), (False, "pytorch fp32")])
def test_demo_serves_a_folder_and_says_which_engine(trained_run, tmp_path, with_onnx, engine):
    folder = _copy(trained_run, tmp_path, with_onnx=with_onnx)
    run = run_views.load_served_model(str(folder))
    demo = app.build_demo(run)
    model_line = next(block for block in demo.blocks.values() if getattr(block, "elem_id", None) == "model-line")
    assert f"served by {engine}" in model_line.value
    assert f"(served by {engine})" in run_views.card_summary(run)
    assert "seed 42, word embeddings trained" in run_views.card_summary(run)  # tiny_run_args trains them
    scores, _ = app.classify(run, "the film was great and loved it")
    reference = ReviewClassifier(trained_run, engine="pytorch").predict_one("the film was great and loved it")
    assert max(scores, key=scores.get) == reference.label


def test_push_carries_onnx_files_and_the_demo_loads_them_back_by_repo_id(fake_hub, trained_run, tmp_path):
    folder = _copy(trained_run, tmp_path)
    (folder / "onnx" / "notes.txt").write_text("not part of the model")
    hub.push_folder(folder, "me/onnx-reviews", TOKEN)
    repo = fake_hub.repo("me/onnx-reviews")
    assert sorted(name for name in repo.files if name.startswith("onnx/")) == sorted(artifacts.ONNX_FILES)
    for name in artifacts.ONNX_FILES:
        assert repo.files[name] == (folder / name).read_bytes()
    card = repo.files["README.md"].decode()
    assert 'REPO = "me/onnx-reviews"' in card and "pipeline('text-classification', 'me/onnx-reviews'" in card

    run = run_views.load_served_model("me/onnx-reviews")
    assert run.problem is None and run.classifier.engine == "onnxruntime fp32"
    int8 = ReviewClassifier("me/onnx-reviews", quantize=True)
    assert int8.engine == "onnxruntime int8"
    local = ReviewClassifier(folder)
    for a, b in zip(run.classifier.predict(TEXTS), local.predict(TEXTS)):
        assert a.scores == b.scores


def test_training_run_cards_onnx_snippet_runs_against_the_local_folder(trained_run, tmp_path, capsys):
    """The card's Python snippet, naming a local folder (as a run's card does before a push), loads the folder's
    ONNX copy: no Hub. (The shared run's card may name a fake-Hub repo by now: other tests push it.)"""
    folder = _copy(trained_run, tmp_path)
    hub.point_card_at(folder, str(folder))
    card = ModelCard.load(folder / "README.md").text
    section = card[card.index(ONNX_HEADING):]
    snippet = section[section.index("```python\n") + len("```python\n"):section.index("```", section.index("```python\n") + 3)]
    assert f'REPO = "{folder}"' in snippet
    scope = {}
    exec(compile(snippet, "card-snippet", "exec"), scope)
    printed = capsys.readouterr().out
    assert printed.strip().strip("[]").strip("'") in ("negative", "positive")
    # its probabilities are the served ones: calibrated by the run's temperature, as the demo gives them
    from finetune.inference import ReviewClassifier

    served = ReviewClassifier(folder, engine="onnxruntime").predict_one("The food was great and the staff were lovely.")
    assert scope["probabilities"][0].tolist() == pytest.approx([served.scores["negative"], served.scores["positive"]],
                                                                abs=1e-5)
