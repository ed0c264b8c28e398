"""finetune/errors.py: one `error:` printer and one set of exit codes for every command."""

from finetune import errors


def test_exit_codes_each_mean_one_thing_in_every_command():
    from finetune import pretrain, score, space, train

    codes = [errors.EXIT_OK, errors.EXIT_FAILED, errors.EXIT_USAGE, errors.EXIT_HUB_FAILED, errors.EXIT_FINISH_FAILED,
             errors.EXIT_DIVERGED, errors.EXIT_SPACE_FAILED, errors.EXIT_TIMEOUT]
    assert len(set(codes)) == len(codes)
    assert train.EXIT_USAGE == score.EXIT_USAGE == space.EXIT_USAGE == pretrain.EXIT_USAGE == errors.EXIT_USAGE == 2
    # a Hub step that failed, whichever command: the push, the card update, the Space upload
    assert train.EXIT_PUSH_FAILED == score.EXIT_CARD_FAILED == space.EXIT_DEPLOY_FAILED == errors.EXIT_HUB_FAILED
    assert len({train.EXIT_FINISH_FAILED, train.EXIT_DIVERGED, space.EXIT_SPACE_FAILED, space.EXIT_TIMEOUT}) == 4


def test_report_prints_one_error_line_from_the_main_process_only(capsys, monkeypatch):
    monkeypatch.setenv("RANK", "0")
    assert errors.report(errors.UsageError("--flag x: pass y."), errors.EXIT_USAGE) == 2
    assert capsys.readouterr().err == "error: --flag x: pass y.\n"
    monkeypatch.setenv("RANK", "1")
    assert errors.report("the push failed", errors.EXIT_HUB_FAILED) == 3
    assert capsys.readouterr().err == ""


def test_onnx_export_without_a_model_is_a_usage_error(tmp_path, capsys):
    from finetune import onnx_export

    assert onnx_export.main([str(tmp_path / "none")]) == errors.EXIT_USAGE
    assert capsys.readouterr().err.startswith("error: no model in ")
