"""Issue 25's recipe lever: frozen word embeddings (a faster, lighter training step)."""

import torch
from conftest import tiny_run_args
from safetensors.torch import load_file

from finetune import artifacts
from finetune.train import main

WORDS = "embeddings.word_embeddings.weight"


def _weights(folder) -> dict[str, torch.Tensor]:
    """The encoder's weights by name without the `bert.` prefix (the pretrained folder holds a bare BertModel)."""
    return {name.removeprefix("bert."): tensor for name, tensor in load_file(str(folder / "model.safetensors")).items()}


def test_frozen_word_embeddings_keep_their_pretrained_values_while_the_rest_trains(tiny_bert, review_files, tmp_path):
    frozen, trained = tmp_path / "frozen", tmp_path / "trained"
    assert main(tiny_run_args(tiny_bert, review_files, frozen, "--freeze_word_embeddings", "true")) == 0
    assert main(tiny_run_args(tiny_bert, review_files, trained, "--freeze_word_embeddings", "false")) == 0
    pretrained, after_frozen, after_trained = _weights(tiny_bert), _weights(frozen), _weights(trained)
    assert torch.equal(after_frozen[WORDS], pretrained[WORDS])
    assert not torch.equal(after_trained[WORDS], pretrained[WORDS])  # the same run, unfrozen, moves them
    layer = "encoder.layer.0.attention.self.query.weight"
    for after in (after_frozen, after_trained):  # the encoder trains either way
        assert not torch.equal(after[layer], pretrained[layer])
        assert not torch.equal(after["embeddings.position_embeddings.weight"],
                               pretrained["embeddings.position_embeddings.weight"])
    # no optimizer state for the frozen matrix: one tensor fewer in the checkpoint's AdamW state
    states = {}
    for name, folder in (("frozen", frozen), ("trained", trained)):
        checkpoint = artifacts.checkpoints(folder)[-1]
        states[name] = len(torch.load(checkpoint / "optimizer.pt", weights_only=True)["state"])
    assert states["frozen"] == states["trained"] - 1
    card = (frozen / "README.md").read_text()
    assert "- word_embeddings: frozen" in card
    assert "- word_embeddings: trained" in (trained / "README.md").read_text()
