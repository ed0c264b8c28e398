"""Encoder families: what each architecture needs to train, and the recipe its authors publish.

The pipeline takes any checkpoint of these families with no flag beyond --model_name_or_path:

| family (config.json model_type) | recipe when a flag is not given | needs |
|---|---|---|
| BERT, DistilBERT, ELECTRA, RoBERTa | the project's (config.PROJECT_DEFAULTS, chosen on the quality suite) | - |
| ModernBERT, Ettin (`modernbert`) | its authors' GLUE recipe (MODERNBERT_RECIPE), mean pooling | 8,192 positions |
| DeBERTa-v3, mDeBERTa (`deberta-v2`) | the project's | fp32 (FP32_ONLY), eager attention |

A family's recipe fills only the flags the user left unset (config.RECIPE_FLAGS: neither on the command line
nor in a --config file); the log and the card say which values came from it. Attention is PyTorch's fused
SDPA where the architecture has it, its own (eager) otherwise.
"""

import logging
from dataclasses import dataclass, field
from typing import Any

from finetune.errors import UsageError

logger = logging.getLogger(__name__)

# ModernBERT's GLUE fine-tuning recipe (answerdotai/ModernBERT, examples/finetune_modernbert_on_glue.ipynb; the
# paper's GLUE runs sweep around it): AdamW with betas (0.9, 0.98) and eps 1e-6, lr 8e-5, weight decay 8e-6,
# batch 32, 2 epochs.
MODERNBERT_RECIPE = {
    "learning_rate": 8e-5,
    "adam_beta1": 0.9,
    "adam_beta2": 0.98,
    "adam_epsilon": 1e-6,
    "weight_decay": 8e-6,
    "per_device_train_batch_size": 32,
    "num_train_epochs": 2,
}
POOLINGS = ("cls", "mean")


@dataclass(frozen=True)
class Family:
    name: str
    recipe: dict[str, Any] = field(default_factory=dict)  # TrainingArguments flag -> value, where the user gave none
    recipe_source: str = ""
    # ModernBERT's classifier_pooling: the head reads the mean of the tokens rather than [CLS] (the released
    # ModernBERT checkpoints' setting; the mean keeps what a long review says, not its first token's view).
    classifier_pooling: str | None = None
    fp32_reason: str = ""  # why mixed precision is off for this family ("": no restriction)


BERT_LIKE = Family("BERT")
FAMILIES = {
    "bert": BERT_LIKE,
    "distilbert": Family("DistilBERT"),
    "electra": Family("ELECTRA"),
    "roberta": Family("RoBERTa"),
    "xlm-roberta": Family("XLM-RoBERTa"),
    "modernbert": Family(
        "ModernBERT", MODERNBERT_RECIPE,
        "ModernBERT's GLUE fine-tuning recipe (answerdotai/ModernBERT, examples/finetune_modernbert_on_glue.ipynb)",
        classifier_pooling="mean"),
    "deberta-v2": Family(
        "DeBERTa-v2/v3",
        # microsoft/DeBERTa#77 (mDeBERTa: NaN losses in fp16, "you need to use fp32"), transformers#24116 (a partial
        # fp16 overflow fix), transformers#35336 (hard-coded float dtypes: RuntimeErrors in bf16).
        fp32_reason="DeBERTa-v3 and mDeBERTa (deberta-v2 models) are trained in fp32: in fp16 their attention "
                    "overflows (NaN losses, microsoft/DeBERTa#77) and in bf16 their code mixes dtypes "
                    "(transformers#35336)"),
}


def family_of(model_config) -> Family:
    """The family of a loaded config (BERT-like rules for an architecture this module does not list)."""
    return FAMILIES.get(getattr(model_config, "model_type", ""), Family(getattr(model_config, "model_type", "?")))


def recipe_values(family: Family, unset: frozenset[str] | set[str]) -> dict[str, Any]:
    """The family's recipe, for the flags the user did not set."""
    return {name: value for name, value in family.recipe.items() if name in unset}


def apply_recipe(training_args, family: Family, unset: frozenset[str] | set[str]) -> str:
    """Set the family's recipe on already-built TrainingArguments for the flags the user did not set; return the
    log's and the card's words ("" when nothing changed)."""
    values = recipe_values(family, unset)
    for name, value in values.items():
        setattr(training_args, name, value)
    if not values:
        return ""
    settings = ", ".join(f"{name} {value:g}" for name, value in values.items())
    return f"{family.recipe_source}: {settings}"


def check_precision(training_args, family: Family, asked: set[str]) -> str:
    """Turn mixed precision off for a family that breaks in it; half precision the user asked for (`asked`:
    bf16 and/or fp16) is refused. Returns the reason for the device summary line ("": no restriction)."""
    if not family.fp32_reason:
        return ""
    if asked:
        flag = sorted(asked)[0]
        raise UsageError(f"--{flag} true: {family.fp32_reason}. Drop --{flag} (or `accelerate launch "
                         "--mixed_precision`): these models train in fp32 by default.")
    training_args.bf16 = training_args.fp16 = False
    training_args.mixed_precision = "no"
    return family.fp32_reason


def configure(model_config, family: Family, classifier_pooling: str | None) -> str:
    """Family settings of the model's config before the model is built; returns the log's words."""
    pooling = classifier_pooling or family.classifier_pooling
    if classifier_pooling and not hasattr(model_config, "classifier_pooling"):
        raise UsageError(f"--classifier_pooling: {model_config.model_type} models have no pooling choice (their head "
                         "reads the first token); ModernBERT models have one.")
    if pooling and hasattr(model_config, "classifier_pooling"):
        model_config.classifier_pooling = pooling
        source = "--classifier_pooling" if classifier_pooling else f"{family.name} default"
        return f"classifier pooling {pooling} ({source})"
    return ""


def attention_implementation(model_class) -> str | None:
    """PyTorch's fused attention (SDPA: flash / memory-efficient kernels on a GPU, on a CPU too when attention
    dropout is 0) where the architecture has it, its own (eager) otherwise; None for remote code (its default)."""
    if model_class is None:
        return None
    return "sdpa" if getattr(model_class, "_supports_sdpa", False) else "eager"


def needs_remote_code(config_dict: dict) -> bool:
    """A config.json whose architecture is not built into transformers, only named by its `auto_map` (code in the
    model's repo, which loading would run). A built-in model_type with an auto_map loads with transformers' own code."""
    from transformers import CONFIG_MAPPING

    return bool(config_dict.get("auto_map")) and config_dict.get("model_type") not in CONFIG_MAPPING


def remote_code_message(path: str, config_dict: dict) -> str:
    named = sorted({str(v).split(".")[0] for v in config_dict.get("auto_map", {}).values() if isinstance(v, str)})
    return (f"--model_name_or_path {path}: its architecture ({config_dict.get('model_type')!r}) is not built into "
            f"transformers; loading it would run Python code from the model's repo ({', '.join(named) or 'auto_map'}). "
            "Read that code, then pass --trust_remote_code to run it, or choose a model transformers knows "
            "(e.g. answerdotai/ModernBERT-base, microsoft/deberta-v3-base, FacebookAI/roberta-base).")

