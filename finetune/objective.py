"""What training optimizes, beyond the Trainer's defaults: class weights and layer-wise learning rates.

- `--class_weights balanced`: cross-entropy with each class weighted n / (k x n_c) (n reviews in train,
  k classes in train, n_c of the class), the weighting scikit-learn calls "balanced". The weighted sum is
  divided by the batch's rows, not by its sum of weights, so a batch run in pieces
  (finetune/batching.py) adds up to the whole batch's loss exactly; over train the weights average 1.
- `--layerwise_lr_decay F` (Sun et al. 2019): the head (classifier, pooler) trains at the base rate,
  the top encoder layer at F x base, each lower layer F times the one above, the embeddings lowest.
"""

import re
from collections import Counter

import torch

LAYER_INDEX = re.compile(r"\.(?:layer|layers|block|blocks)\.(\d+)\.")  # bert/roberta/deberta, distilbert, ...


def balanced_weights(labels: list[int], num_labels: int) -> list[float]:
    """n / (k x n_c) per class id, k the classes train has (so that the weights average 1 over train); a class
    train lacks gets weight 0 (it never occurs as a target)."""
    counts = Counter(labels)
    present = sum(1 for c in range(num_labels) if counts[c])
    return [len(labels) / (present * counts[c]) if counts[c] else 0.0 for c in range(num_labels)]


def weighted_cross_entropy(weights: list[float]):
    """A Trainer `compute_loss_func`: mean over the batch's rows of each row's weighted cross-entropy."""
    table = torch.tensor(weights, dtype=torch.float32)

    def loss(outputs, labels, num_items_in_batch=None):
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        per_row = torch.nn.functional.cross_entropy(logits.float(), labels, reduction="none")
        return (per_row * table.to(logits.device)[labels]).sum() / labels.numel()

    return loss


def layer_depth(name: str, layers: int) -> int:
    """0 for the embeddings, 1..layers for the encoder layers from the bottom, layers + 1 for the rest (head)."""
    if "embeddings" in name:
        return 0
    found = LAYER_INDEX.search(name)
    return int(found.group(1)) + 1 if found else layers + 1


def layerwise_groups(model, base_lr: float, decay: float, weight_decay: float,
                     decay_names: set[str]) -> list[dict]:
    """Optimizer parameter groups, one per (depth, with weight decay or not), each with its rate:
    base_lr x decay ** (head depth - depth). The head's come first: the Trainer logs the first group's rate."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    indices = [int(m.group(1)) for n, _ in named if (m := LAYER_INDEX.search(n)) and "embeddings" not in n]
    layers = max(indices) + 1 if indices else 0
    groups: dict[tuple[int, bool], dict] = {}
    for name, parameter in named:
        depth = layer_depth(name, layers)
        decayed = name in decay_names
        group = groups.setdefault((depth, decayed), {
            "params": [], "weight_decay": weight_decay if decayed else 0.0,
            "lr": base_lr * decay ** (layers + 1 - depth), "depth": depth,
        })
        group["params"].append(parameter)
    return [groups[key] for key in sorted(groups, key=lambda key: (-key[0], key[1]))]


def describe_rates(groups: list[dict], layers_name: str = "layer") -> str:
    """One line for the log: each depth's rate, bottom to top."""
    rates = {}
    top = max(group["depth"] for group in groups)
    for group in groups:
        depth = group["depth"]
        label = "embeddings" if depth == 0 else "head" if depth == top else f"{layers_name} {depth - 1}"
        rates[depth] = f"{label} {group['lr']:.3g}"
    return ", ".join(rates[d] for d in sorted(rates))
