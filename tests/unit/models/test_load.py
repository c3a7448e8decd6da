import pytest
import torch

from tuneloop.errors import ModelError
from tuneloop.models.load import load_causal_lm, resolve_model


def test_missing_model_path_is_named():
    with pytest.raises(ModelError, match="model path does not exist: ./no/such/model"):
        resolve_model("./no/such/model")


def test_pickle_checkpoint_refused_without_allow_pickle(tmp_path, tiny_model_dir):
    import shutil

    model, _ = load_causal_lm(str(tiny_model_dir))
    folder = tmp_path / "pickled"
    folder.mkdir()
    shutil.copy(tiny_model_dir / "config.json", folder)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    assert (folder / "pytorch_model.bin").exists() and not list(folder.glob("*.safetensors"))
    with pytest.raises(ModelError, match=r"pytorch_model.bin is a pickle checkpoint.*--allow-pickle"):
        resolve_model(str(folder))
    with pytest.raises(ModelError, match="pickle checkpoint"):
        resolve_model(str(folder / "pytorch_model.bin"))
    assert resolve_model(str(folder), allow_pickle=True).use_safetensors is False


def test_folder_without_model_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ModelError, match="holds no model"):
        resolve_model(str(tmp_path))


def test_local_folder_loads_with_safetensors(tiny_model_dir):
    source = resolve_model(str(tiny_model_dir))
    assert source.use_safetensors is True
    model, tokenizer = load_causal_lm(str(tiny_model_dir))
    assert tokenizer.pad_token is not None
    assert model.dtype == torch.float32
