import numpy as np
import pytest
import torch

from flamesync.net.infer import LoadedModel
from flamesync.net.model import FlameSyncNet, ModelConfig
from net_standin import torch_single_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("torch_single_thread")

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def test_onnx_matches_torch(tmp_path):
    from flamesync.net.onnx_export import check_onnx, export_onnx

    torch.manual_seed(0)
    net = FlameSyncNet(ModelConfig())  # the default architecture
    for blk in net.blocks:
        torch.nn.init.normal_(blk.attn.rel_bias)
    model = LoadedModel(net, {})
    rep = export_onnx(model, tmp_path / "m.onnx")
    assert rep["max_abs_diff"] < 1e-4
    assert (tmp_path / "m.onnx.json").is_file()
    # Dynamic length, including one shorter than an attention block.
    assert check_onnx(model, tmp_path / "m.onnx", seconds=0.3, seed=1) < 1e-4


def test_onnx_cli_without_default_model_is_one_line(tmp_path, monkeypatch, capsys):
    import flamesync.net.infer as infer
    from flamesync.cli import main

    monkeypatch.delenv("FLAMESYNC_MODEL", raising=False)
    monkeypatch.setattr(infer, "DEFAULT_CHECKPOINT", tmp_path / "nothing")
    assert main(["export-onnx", "-o", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("flamesync: error:") and "\n" not in err


def test_wrong_suffix(tmp_path):
    from flamesync.errors import InputError
    from flamesync.net.onnx_export import export_onnx

    with pytest.raises(InputError):
        export_onnx(LoadedModel(FlameSyncNet(ModelConfig(dim=16, heads=2, layers=1, attn_future=(0,))), {}),
                    tmp_path / "m.bin")
