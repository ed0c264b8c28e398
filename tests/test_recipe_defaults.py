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


def test_a_checkpoint_resumes_only_training_the_parameters_it_trained(tiny_bert, review_files, tmp_path, capsys):
    """A checkpoint's optimizer state fits the parameters it trained: a resume that freezes what it trained (or
    trains what it froze) is refused before any work, naming the flag; the same choice resumes."""
    runs = {}
    for frozen in (True, False):
        runs[frozen] = tmp_path / f"frozen-{frozen}"
        assert main(tiny_run_args(tiny_bert, review_files, runs[frozen], "--num_train_epochs", "1",
                                  "--freeze_word_embeddings", str(frozen).lower())) == 0
    capsys.readouterr()
    for frozen, folder in runs.items():
        checkpoint = artifacts.checkpoints(folder)[-1]
        other = tmp_path / f"other-{frozen}"
        assert main(tiny_run_args(tiny_bert, review_files, other, "--num_train_epochs", "2",
                                  "--resume_from_checkpoint", str(checkpoint),
                                  "--freeze_word_embeddings", str(not frozen).lower())) == 2
        message = capsys.readouterr().err
        assert f"that checkpoint {'froze' if frozen else 'trained'} its word embeddings" in message
        assert f"Resume with --freeze_word_embeddings {str(frozen).lower()}" in message
        assert not other.exists()
    # the same choice resumes and finishes the second epoch
    resumed = tmp_path / "resumed"
    assert main(tiny_run_args(tiny_bert, review_files, resumed, "--num_train_epochs", "2", "--freeze_word_embeddings",
                              "true", "--resume_from_checkpoint", str(artifacts.checkpoints(runs[True])[-1]))) == 0
    assert _weights(resumed)[WORDS].equal(_weights(tiny_bert)[WORDS])
