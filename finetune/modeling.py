"""Loading the pretrained checkpoint: tokenizer, config with label names, classifier."""

import logging
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, PretrainedConfig

from finetune import embedded, families
from finetune.config import ModelArguments
from finetune.errors import UsageError

logger = logging.getLogger(__name__)

# Attention dropout goes by different names across architectures.
ATTENTION_DROPOUT_ATTRIBUTES = ("attention_probs_dropout_prob", "attention_dropout")


def resolve_model_path(args: ModelArguments) -> str:
    return args.model_name_or_path or str(embedded.model_path())


def base_model_hub_id(args: ModelArguments) -> str | None:
    """The Hub id the card links as base model (the embedded weights come from one)."""
    name = args.model_name_or_path
    if name is None:
        return embedded.MODEL_HUB_ID
    return None if Path(name).expanduser().exists() else name


def load_pretrained_config(args: ModelArguments, label_names: list[str] | None = None, task=None):
    """Load the checkpoint's config: the cheap check that the model exists, run before the data. With a task
    (finetune/tasks.py), its number of outputs, their names and transformers' problem_type (which picks the loss)."""
    path = resolve_model_path(args)
    extra = {}
    if label_names is not None:
        extra = {
            "num_labels": len(label_names) if task is None else task.num_labels,
            "id2label": dict(enumerate(label_names)),
            "label2id": {name: i for i, name in enumerate(label_names)},
        }
        if task is not None:
            extra["problem_type"] = task.problem_type
    try:
        check_remote_code(args)
        config = AutoConfig.from_pretrained(path, revision=args.model_revision, cache_dir=args.cache_dir,
                                            trust_remote_code=args.trust_remote_code, **extra)
    except (OSError, ValueError) as err:
        raise UsageError(
            f"--model_name_or_path {path}: not a model folder and not loadable from the Hub "
            f"({' '.join(str(err).split())[:300]}). Pass a "
            "folder with config.json, a Hub id you can reach, or leave the flag out for the embedded MiniLM."
        ) from err
    if args.attention_dropout is not None:
        names = [a for a in ATTENTION_DROPOUT_ATTRIBUTES if hasattr(config, a)]
        if not names and args.attention_dropout != 0.0:  # no dropout setting means no dropout: 0 is already true
            raise UsageError(f"--attention_dropout: {config.model_type} models have no attention dropout setting.")
        for attribute in names:
            setattr(config, attribute, args.attention_dropout)
    return config


def check_remote_code(args: ModelArguments) -> None:
    """Refuse, before anything runs, a model whose architecture is code in its repo, unless --trust_remote_code.
    Reads config.json as data (PretrainedConfig.get_config_dict executes nothing)."""
    if args.trust_remote_code:
        return
    path = resolve_model_path(args)
    config_dict, _ = PretrainedConfig.get_config_dict(path, revision=args.model_revision, cache_dir=args.cache_dir)
    if families.needs_remote_code(config_dict):
        raise UsageError(families.remote_code_message(path, config_dict))


def load_tokenizer(args: ModelArguments):
    return AutoTokenizer.from_pretrained(resolve_model_path(args), revision=args.model_revision, cache_dir=args.cache_dir,
                                         trust_remote_code=args.trust_remote_code)


def load_classifier(args: ModelArguments, label_names: list[str], task=None):
    config = load_pretrained_config(args, label_names, task)
    settings = dict(
        config=config,
        revision=args.model_revision,
        cache_dir=args.cache_dir,
        # A checkpoint that already has a head for another number of classes gets a new one.
        ignore_mismatched_sizes=True,
        # fp32 master weights, whatever the checkpoint was saved in: mixed precision (bf16/fp16 flags)
        # is the Trainer's job, and training fp16 weights directly would lose updates.
        dtype=torch.float32,
        trust_remote_code=args.trust_remote_code,
    )
    # Asked for by name, so that the device summary line can say which attention is in use.
    attention = families.attention_implementation(classifier_class(config))
    if attention:
        settings["attn_implementation"] = attention
    if attention == "eager":
        logger.info("%s models have no SDPA attention: using their own (eager)", config.model_type)
    note = families.configure(config, families.family_of(config), args.classifier_pooling)
    if note:
        logger.info("%s", note)
    model = AutoModelForSequenceClassification.from_pretrained(resolve_model_path(args), **settings)
    if args.freeze_word_embeddings:
        frozen = freeze_word_embeddings(model)
        logger.info("word embeddings frozen: %s pretrained weights of the vocabulary's vectors are not trained "
                    "(--freeze_word_embeddings false trains them)", f"{frozen:,}")
    # Saved in every checkpoint's config.json: a resume must train the same parameters, or the optimizer state it
    # loads does not fit (train.check_resume_matches). A checkpoint without it trained them (made before the flag).
    model.config.word_embeddings_frozen = bool(args.freeze_word_embeddings)
    return model


def freeze_word_embeddings(model) -> int:
    """Stop training the vocabulary's vectors (the input embedding matrix): they get no gradient, hence no
    optimizer state and no update. Returns how many weights were frozen."""
    embeddings = model.get_input_embeddings()
    if embeddings is None or getattr(embeddings, "weight", None) is None:
        raise UsageError(f"--freeze_word_embeddings: {type(model).__name__} has no input embedding matrix to freeze.")
    embeddings.weight.requires_grad_(False)
    return embeddings.weight.numel()


def classifier_class(config):
    """The built-in AutoModelForSequenceClassification class of a config; None for remote code."""
    return AutoModelForSequenceClassification._model_mapping.get(type(config), None)


def output_layer(model) -> torch.nn.Linear | None:
    """The last Linear of a classifier's head, whose bias a rating head starts at the mean rating: `classifier`
    (BERT, DistilBERT, DeBERTa, ModernBERT), `classifier.out_proj` (RoBERTa, ELECTRA) or `score`."""
    head = getattr(model, "classifier", None)
    if head is None:
        head = getattr(model, "score", None)
    last = getattr(head, "out_proj", head)
    return last if isinstance(last, torch.nn.Linear) else None
