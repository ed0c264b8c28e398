"""The --bf16 default: on for CPU training where the CPU has native bf16, and what a bf16 run records."""

import pytest
from conftest import tiny_run_args

from finetune import artifacts
from finetune.config import auto_bf16, cpu_has_native_bf16, parse_config
from finetune.train import main

ZEN4 = "flags\t\t: fpu avx2 avx512f avx512bw avx512_bf16 avx512_vnni\n"
ICELAKE = "flags\t\t: fpu avx2 avx512f avx512bw avx512_vnni\n"
SAPPHIRE_RAPIDS = "flags\t\t: fpu avx2 avx512f amx_bf16 amx_tile amx_int8\n"


def test_native_bf16_is_read_from_the_cpu_flags():
    assert cpu_has_native_bf16(ZEN4) and cpu_has_native_bf16(SAPPHIRE_RAPIDS)
    assert not cpu_has_native_bf16(ICELAKE)  # AVX-512 without bf16 would emulate it: slower than fp32


@pytest.mark.parametrize("values, env, expected", [
    ({"use_cpu": True}, None, True),
    ({"use_cpu": False}, None, False),  # GPUs: the user chooses (--bf16 true or accelerate's --mixed_precision)
    ({"use_cpu": True, "fp16": True}, None, False),
    ({"use_cpu": True}, "fp16", False),  # accelerate launch --mixed_precision fp16
    ({"use_cpu": True}, "no", True),
])
def test_auto_bf16(values, env, expected, monkeypatch):
    if env is None:
        monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    else:
        monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", env)
    assert auto_bf16(values, ZEN4) is expected
    assert auto_bf16(values, ICELAKE) is False


def test_an_explicit_choice_wins(monkeypatch):
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    assert parse_config(["--bf16", "false"]).training.mixed_precision == "no"
    assert parse_config(["--bf16", "true"]).training.mixed_precision == "bf16"
    assert parse_config([]).training.bf16 is cpu_has_native_bf16()  # this machine's default


def test_a_bf16_run_trains_and_says_so(tiny_bert, review_files, tmp_path):
    out = tmp_path / "bf16"
    assert main(tiny_run_args(tiny_bert, review_files, out, "--bf16", "true", "--num_train_epochs", "6")) == 0
    assert "mixed_precision: bf16" in (out / "README.md").read_text()
    assert "bf16: true" in (out / artifacts.CONFIG_FILE).read_text()
    # bf16 arithmetic still learns the task (weights stay fp32; tests/test_distributed.py: 6 epochs learn it).
    assert artifacts.read_json(out, artifacts.RESULTS_FILE)["scores"]["validation"]["accuracy"] >= 0.8
