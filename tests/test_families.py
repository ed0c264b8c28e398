"""Today's encoder families end to end, each on a tiny random model of its own architecture and tokenizer kind
(conftest.build_tiny): train, evaluate, ONNX copy checked against PyTorch, push to the fake Hub, load back and
serve; and what each family needs (finetune/families.py): its recipe, its precision, its attention, its context."""

import json

import pytest
import torch
import yaml
from conftest import FAMILIES, TOKEN, build_tiny, make_reviews, tiny_run_args, write_csv
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from finetune import artifacts, families, truncation
from finetune.errors import UsageError
from finetune.inference import ReviewClassifier
from finetune.modeling import load_classifier, load_pretrained_config, output_layer
from finetune.train import EXIT_USAGE, apply_family, main, parse_run

TEXTS = ["the film was great and loved it", "awful boring plot", "the cast was quite dull", "superb moving story"]


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("families")
    return {family: build_tiny(family, folder / family) for family in FAMILIES}


@pytest.fixture(scope="module")
def small_reviews(tmp_path_factory):
    folder = tmp_path_factory.mktemp("family-reviews")
    return {"train": write_csv(folder / "train.csv", make_reviews(48, seed=1)),
            "validation": write_csv(folder / "validation.csv", make_reviews(16, seed=2))}


def _logits(model_ref, texts):
    tokenizer = AutoTokenizer.from_pretrained(model_ref)
    model = AutoModelForSequenceClassification.from_pretrained(model_ref).eval()
    with torch.no_grad():
        return model(**tokenizer(texts, padding=True, return_tensors="pt")).logits


@pytest.mark.parametrize("family", FAMILIES)
def test_family_trains_exports_pushes_and_serves_with_no_flag_but_the_model(family, tiny_models, small_reviews,
                                                                             fake_hub, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    output_dir, repo_id = tmp_path / family, f"me/tiny-{family}"
    # tiny_run_args' flags only make the run fast and repeatable (threads, bf16 off); ModernBERT's recipe fills
    # what they leave unset
    assert main(tiny_run_args(tiny_models[family], small_reviews, output_dir, "--num_train_epochs", "1",
                              "--export_onnx", "true", "--push_to_hub", "--hub_model_id", repo_id)) == 0

    # the ONNX copy is written only when its logits match PyTorch's (finetune/onnx_export.py TOLERANCE)
    assert (output_dir / artifacts.ONNX_MODEL_FILE).is_file(), f"{family}: no ONNX copy"
    repo = fake_hub.repo(repo_id)
    assert {"model.safetensors", "config.json", "README.md", artifacts.ONNX_MODEL_FILE,
            artifacts.ONNX_QUANTIZED_FILE} <= set(repo.files)
    assert not [name for name in repo.files if name.startswith(("checkpoint-", "runs/"))]

    # loaded back by repo id: the same model
    assert torch.allclose(_logits(str(output_dir), TEXTS), _logits(repo_id, TEXTS), atol=1e-6)
    # served as the demo serves it: the ONNX copy from the Hub, and PyTorch; the same labels and probabilities
    served = ReviewClassifier(repo_id, engine="onnxruntime").predict(TEXTS)
    local = ReviewClassifier(output_dir, engine="pytorch").predict(TEXTS)
    assert [p.label for p in served] == [p.label for p in local]
    for a, b in zip(served, local):
        assert a.scores == pytest.approx(b.scores, abs=1e-4)

    saved = AutoConfig.from_pretrained(output_dir)
    assert saved.model_type == family
    hyperparameters = (output_dir / "README.md").read_text()
    run_config = yaml.safe_load((output_dir / artifacts.CONFIG_FILE).read_text())
    if family == "modernbert":  # its authors' recipe for the flags not given, said on the card
        assert saved.classifier_pooling == "mean"
        assert "ModernBERT's GLUE fine-tuning recipe" in hyperparameters
        assert "- adam_betas: (0.9, 0.98)" in hyperparameters and "- weight_decay: 8e-06" in hyperparameters
        assert run_config["training"]["adam_epsilon"] == 1e-6 and run_config["training"]["weight_decay"] == 8e-6
        # the flags tiny_run_args gives win over the recipe
        assert run_config["training"]["learning_rate"] == 3e-3
        assert run_config["training"]["per_device_train_batch_size"] == 16
    else:
        assert "- recipe:" not in hyperparameters
        assert run_config["training"]["adam_beta2"] == 0.999 and run_config["training"]["weight_decay"] == 0.01
    if family == "deberta-v2":
        assert "- mixed_precision: no" in hyperparameters


# --- the recipe: only where the user gave no value ----------------------------------------------------------


def _resolved(model, *flags, tmp_path):
    config = parse_run(["--model_name_or_path", str(model), "--output_dir", str(tmp_path / "out"), *flags])
    apply_family(config, load_pretrained_config(config.model))
    return config


def test_modernbert_takes_its_authors_recipe_for_every_flag_not_given(tiny_models, tmp_path):
    args = _resolved(tiny_models["modernbert"], tmp_path=tmp_path).training
    assert {name: getattr(args, name) for name in families.MODERNBERT_RECIPE} == families.MODERNBERT_RECIPE


def test_a_flag_given_on_the_command_line_or_in_a_recipe_file_beats_the_family_recipe(tiny_models, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("num_train_epochs: 5\n")
    config = _resolved(tiny_models["modernbert"], "--config", str(recipe), "--learning_rate", "5e-5",
                       tmp_path=tmp_path)
    args = config.training
    assert (args.learning_rate, args.num_train_epochs) == (5e-5, 5)
    assert (args.adam_beta2, args.weight_decay, args.per_device_train_batch_size) == (0.98, 8e-6, 32)
    assert "learning_rate" not in config.family_recipe and "adam_beta2 0.98" in config.family_recipe


def test_bert_keeps_the_project_defaults(tiny_models, tmp_path):
    config = _resolved(tiny_models["bert"], tmp_path=tmp_path)
    args = config.training
    assert (args.learning_rate, args.num_train_epochs, args.weight_decay, args.adam_beta2) == (5e-5, 3, 0.01, 0.999)
    assert config.family_recipe == ""


# --- what families need ---------------------------------------------------------------------------------------


def test_deberta_trains_in_fp32_and_refuses_half_precision_asked_for(tiny_models, small_reviews, tmp_path, capsys):
    config = _resolved(tiny_models["deberta-v2"], "--bf16", "false", tmp_path=tmp_path)
    assert config.training.mixed_precision == "no"
    code = main(tiny_run_args(tiny_models["deberta-v2"], small_reviews, tmp_path / "bf16", "--bf16", "true"))
    assert code == EXIT_USAGE
    err = capsys.readouterr().err
    assert "--bf16 true: DeBERTa-v3 and mDeBERTa (deberta-v2 models) are trained in fp32" in err
    assert "Drop --bf16" in err
    with pytest.raises(UsageError, match="--fp16 true"):
        families.check_precision(config.training, families.FAMILIES["deberta-v2"], {"fp16"})


@pytest.mark.parametrize("family", FAMILIES)
def test_attention_is_sdpa_where_the_architecture_has_it_else_its_own(family, tiny_models, tmp_path):
    config = parse_run(["--model_name_or_path", str(tiny_models[family]), "--output_dir", str(tmp_path / "o")])
    model = load_classifier(config.model, ["negative", "positive"])
    assert model.config._attn_implementation == ("eager" if family == "deberta-v2" else "sdpa")


@pytest.mark.parametrize("family", FAMILIES)
def test_rating_head_bias_is_found_in_every_family(family, tiny_models):
    model = AutoModelForSequenceClassification.from_pretrained(tiny_models[family], num_labels=1)
    layer = output_layer(model)
    assert isinstance(layer, torch.nn.Linear) and layer.out_features == 1 and layer.bias is not None


def test_modernbert_context_of_8192_tokens_is_allowed_and_512_stays_the_default(tmp_path):
    folder = build_tiny("modernbert", tmp_path / "long", positions=8192)
    tokenizer, config = AutoTokenizer.from_pretrained(folder), AutoConfig.from_pretrained(folder)
    assert truncation.model_limit(tokenizer, config) == 8192
    assert truncation.max_length(tokenizer, config) == 512
    assert truncation.max_length(tokenizer, config, 8192) == 8192
    with pytest.raises(UsageError, match="at most 8192 tokens"):
        truncation.max_length(tokenizer, config, 8193)


def test_modernbert_trains_on_reviews_longer_than_512_tokens(tmp_path):
    folder = build_tiny("modernbert", tmp_path / "long", positions=8192)
    long = [{"text": (row["text"] + " ") * 100, "label": row["label"]} for row in make_reviews(16, seed=4)]
    files = {"train": write_csv(tmp_path / "train.csv", long), "validation": write_csv(tmp_path / "val.csv", long[:8])}
    output_dir = tmp_path / "out"
    assert main(tiny_run_args(folder, files, output_dir, "--num_train_epochs", "1", "--max_seq_length", "1024",
                              "--truncation", "head")) == 0
    assert "- max_seq_length: 1024" in (output_dir / "README.md").read_text()
    prediction = ReviewClassifier(output_dir, engine="pytorch", max_length=1024).predict_one(long[0]["text"])
    assert 512 < prediction.tokens <= 1024  # read past BERT's 512


def test_classifier_pooling_is_refused_for_a_model_without_the_choice(tiny_models, tmp_path):
    with pytest.raises(UsageError, match="--classifier_pooling: bert models have no pooling choice"):
        _resolved(tiny_models["bert"], "--classifier_pooling", "mean", tmp_path=tmp_path)
    config = _resolved(tiny_models["modernbert"], "--classifier_pooling", "cls", tmp_path=tmp_path)
    assert load_classifier(config.model, ["a", "b"]).config.classifier_pooling == "cls"


# --- remote code ----------------------------------------------------------------------------------------------

CUSTOM_CONFIG = """from transformers import BertConfig


class TinyCustomConfig(BertConfig):
    model_type = "tiny-custom"
"""
CUSTOM_MODEL = """from transformers import BertForSequenceClassification

from .configuration_custom import TinyCustomConfig


class TinyCustomForSequenceClassification(BertForSequenceClassification):
    config_class = TinyCustomConfig
"""


def _remote_code_model(tiny_bert, folder):
    import shutil

    shutil.copytree(tiny_bert, folder)
    (folder / "configuration_custom.py").write_text(CUSTOM_CONFIG)
    (folder / "modeling_custom.py").write_text(CUSTOM_MODEL)
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="tiny-custom", auto_map={
        "AutoConfig": "configuration_custom.TinyCustomConfig",
        "AutoModelForSequenceClassification": "modeling_custom.TinyCustomForSequenceClassification"})
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_a_model_that_needs_remote_code_is_refused_unless_trusted(tiny_bert, review_files, tmp_path, capsys):
    model = _remote_code_model(tiny_bert, tmp_path / "custom")
    code = main(tiny_run_args(model, review_files, tmp_path / "out", "--num_train_epochs", "1"))
    assert code == EXIT_USAGE
    err = capsys.readouterr().err
    assert "its architecture ('tiny-custom') is not built into transformers" in err
    assert "configuration_custom, modeling_custom" in err and "pass --trust_remote_code" in err
    assert not (tmp_path / "out").exists()
    # trusted: its own code loads and trains
    assert main(tiny_run_args(model, review_files, tmp_path / "trusted", "--num_train_epochs", "1",
                              "--trust_remote_code", "true")) == 0
    assert type(AutoModelForSequenceClassification.from_pretrained(
        tmp_path / "trusted", trust_remote_code=True)).__name__ == "TinyCustomForSequenceClassification"


def test_a_built_in_architecture_with_an_auto_map_loads_without_remote_code(tiny_bert):
    assert not families.needs_remote_code({"model_type": "bert", "auto_map": {"AutoModel": "x.Y"}})
    assert families.needs_remote_code({"model_type": "tiny-custom", "auto_map": {"AutoModel": "x.Y"}})
