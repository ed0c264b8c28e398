from huggingface_hub import ModelCard

from finetune.model_card import CardFacts, build_card


def _facts(**changes):
    facts = dict(
        model_name="minilm-reviews",
        base_model="google-bert/bert-base-cased",
        base_model_hub_id="google-bert/bert-base-cased",
        dataset_name="yelp_review_full",
        dataset_id="yelp_review_full",
        label_names=["1 star", "2 stars"],
        split_sizes={"train": 900, "validation": 100, "test": 100},
        history=[
            {"epoch": 1.0, "step": 10, "train_loss": 0.7, "eval_loss": 0.6, "accuracy": 0.7, "precision": 0.7,
             "recall": 0.7, "f1": 0.69},
            {"epoch": 2.0, "step": 20, "train_loss": 0.5, "eval_loss": 0.5, "accuracy": 0.8, "precision": 0.8,
             "recall": 0.8, "f1": 0.79},
        ],
        scores={
            "validation": {"accuracy": 0.8, "precision": 0.81, "recall": 0.79, "f1": 0.7912, "f1_1 star": 0.8},
            "test": {"accuracy": 0.77, "precision": 0.78, "recall": 0.76, "f1": 0.765},
        },
        confusion_matrices={"test": [[40, 10], [13, 37]]},
        hyperparameters={"learning_rate": 5e-05, "seed": 42},
        framework_versions={"transformers": "5.24.0"},
    )
    facts.update(changes)
    return CardFacts(**facts)


def test_model_card_eval_results_round_trip(tmp_path):
    path = tmp_path / "README.md"
    build_card(_facts()).save(path)
    card = ModelCard.load(path)
    results = {(r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert results[("validation", "f1")] == 0.7912
    assert results[("test", "accuracy")] == 0.77
    assert len(results) == 8
    assert card.data.base_model == "google-bert/bert-base-cased"
    assert card.data.datasets == ["yelp_review_full"]
    assert card.data.eval_results[0].dataset_type == "yelp_review_full"


def test_model_card_text_has_history_table_labels_and_usage():
    text = str(build_card(_facts(repo_id="me/minilm-reviews")))
    assert "| epoch | step | train_loss | eval_loss | accuracy | precision | recall | f1 |" in text
    assert "| 2 | 20 | 0.5000 | 0.5000 | 0.8000 | 0.8000 | 0.8000 | 0.7900 |" in text
    assert "`1 star`, `2 stars`" in text
    assert 'model="me/minilm-reviews"' in text
    assert "| 1 star | 40 | 10 |" in text
    assert "Intended use and limitations" in text


def test_model_card_of_local_data_has_no_dataset_link(tmp_path):
    card = build_card(_facts(dataset_id=None, dataset_name="reviews.csv", base_model_hub_id=None))
    assert card.data.datasets is None and card.data.base_model is None
    assert card.data.eval_results[0].dataset_type == "reviews.csv"


def test_model_card_renders_the_onnx_copy_from_its_facts():
    from finetune.model_card import ONNX_HEADING, with_onnx_section
    from finetune.onnx_export import OnnxCopy

    copy = OnnxCopy(files=["onnx/model.onnx", "onnx/model_quantized.onnx"], reviews_checked=32,
                    max_logit_difference=2e-6, int8_same_label=31, seconds=4.0)
    card = build_card(_facts(repo_id="me/minilm-reviews", onnx_copy=copy))
    assert {"onnx", "transformers.js"} <= set(card.data.tags)
    assert card.text.count(ONNX_HEADING) == 1 and 'REPO = "me/minilm-reviews"' in card.text
    assert "same label as PyTorch on 31 of 32" in card.text
    # The section added to a card written without it (python -m finetune.onnx_export on an older folder) is the same.
    plain = build_card(_facts(repo_id="me/minilm-reviews")).content
    assert ModelCard(with_onnx_section(plain, copy)).text == card.text
    assert ModelCard(with_onnx_section(card.content, None)).text == ModelCard(plain).text


def test_model_card_with_repo_id_renames_every_snippet_and_nothing_else():
    from finetune.model_card import with_repo_id
    from finetune.onnx_export import OnnxCopy

    copy = OnnxCopy(files=["onnx/model.onnx", "onnx/model_quantized.onnx"], reviews_checked=4,
                    max_logit_difference=1e-6, int8_same_label=4, seconds=1.0)
    # a folder name that is also a word of the card (the model's name, the heading)
    text = build_card(_facts(model_name="reviews", repo_id="reviews", onnx_copy=copy)).content
    renamed = with_repo_id(text, "me/reviews")
    assert renamed == build_card(_facts(model_name="reviews", repo_id="me/reviews", onnx_copy=copy)).content
    assert "# reviews\n" in renamed and "`MODEL_ID=me/reviews python app.py`" in renamed
    assert "pipeline('text-classification', 'me/reviews'" in renamed and 'REPO = "me/reviews"' in renamed
    assert with_repo_id(renamed, "me/reviews") == renamed


def _cost(**changes):
    from finetune.energy import RunCost

    cost = dict(wall_seconds=278.4, hardware="Intel(R) Xeon(R) Processor (2 logical CPUs)", energy_kwh=0.00068,
                method="CPU: estimated from CPU time at 4 W per busy logical CPU.",
                source="finetune-reviews finetune/energy.py: estimate from CPU time and rated power", co2_grams=0.323,
                carbon_intensity=475.0, carbon_intensity_source="world average, IEA 2019")
    cost.update(changes)
    return RunCost(**cost)


def test_model_card_training_cost_section_and_co2_metadata_round_trip(tmp_path):
    from finetune.model_card import COST_HEADING

    build_card(_facts(cost=_cost())).save(tmp_path / "README.md")
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.co2_eq_emissions == {
        "emissions": 0.323,
        "source": "finetune-reviews finetune/energy.py: estimate from CPU time and rated power",
        "training_type": "fine-tuning",
        "geographical_location": "unknown (carbon intensity: 475 gCO2eq/kWh, world average, IEA 2019)",
        "hardware_used": "Intel(R) Xeon(R) Processor (2 logical CPUs)",
    }
    assert card.text.count(COST_HEADING) == 1
    assert ("| 4 min 38 s | Intel(R) Xeon(R) Processor (2 logical CPUs) | 0.00068 kWh (0.68 Wh) | 0.323 g |"
            in card.text)
    assert "estimated from CPU time at 4 W per busy logical CPU" in card.text and "475 gCO2eq/kWh" in card.text
    assert card.text.index(COST_HEADING) < card.text.index("## Intended use and limitations")


def test_model_card_without_a_measured_cost_has_no_cost_section():
    card = build_card(_facts())
    assert "co2_eq_emissions" not in card.data.to_dict() and "## Training cost" not in card.text
