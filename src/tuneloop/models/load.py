"""One loader for every way a user names a model.

``name`` may be a built-in offline name (see :mod:`tuneloop.models.builtin`), a ``.gguf``
file, a local folder in Hugging Face layout, or a hub id. GGUF weights are dequantised once
and cached as safetensors under ``$TUNELOOP_HOME/models`` so every later load takes seconds.
Pickle checkpoints (``.bin``/``.pt``) can execute code when loaded, so they are refused unless
the caller passes ``allow_pickle=True``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from tuneloop.atomic import staged_dir
from tuneloop.errors import ModelError
from tuneloop.models.builtin import BUILTIN_MODELS, builtin_model_path
from tuneloop.paths import tuneloop_home
from tuneloop.progress import status

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


@dataclass(frozen=True)
class ModelSource:
    """Where ``from_pretrained`` should look, and whether pickle weights are acceptable."""

    location: str  # local folder or hub id
    use_safetensors: bool | None


def resolve_model(name: str, allow_pickle: bool = False) -> ModelSource:
    """Turn a user's model name into a loadable location (converting GGUF once)."""
    if name in BUILTIN_MODELS:
        path = builtin_model_path(name)
        return ModelSource(str(_gguf_cache(path, name) if path.suffix == ".gguf" else path), True)
    path = Path(name).expanduser()
    if path.exists():
        return _resolve_local(path, allow_pickle)
    if _looks_like_path(name):
        raise ModelError(f"model path does not exist: {name}")
    return ModelSource(name, None if allow_pickle else True)


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or name.endswith((".gguf", ".safetensors", *PICKLE_SUFFIXES)) or name.count("/") > 1


def _resolve_local(path: Path, allow_pickle: bool) -> ModelSource:
    if path.is_file() and path.suffix == ".gguf":
        return ModelSource(str(_gguf_cache(path, path.stem)), True)
    if path.is_file() and path.suffix in PICKLE_SUFFIXES:
        _refuse_pickle(path, allow_pickle)
        return ModelSource(str(path.parent), False)
    if not path.is_dir():
        raise ModelError(f"not a model folder or .gguf file: {path}")
    has_safetensors = any(path.glob("*.safetensors"))
    pickles = [p for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES]
    if not has_safetensors and pickles:
        _refuse_pickle(pickles[0], allow_pickle)
        return ModelSource(str(path), False)
    if not has_safetensors and not (path / "config.json").exists():
        raise ModelError(f"{path} holds no model: no config.json and no *.safetensors weights")
    return ModelSource(str(path), True)


def _refuse_pickle(path: Path, allow_pickle: bool) -> None:
    if not allow_pickle:
        raise ModelError(
            f"{path} is a pickle checkpoint, which can run arbitrary code when loaded; "
            "convert it to safetensors, or pass --allow-pickle if you trust its source"
        )


def _gguf_cache(gguf: Path, label: str) -> Path:
    """Dequantise a GGUF file once into a safetensors folder and return that folder."""
    stat = gguf.stat()
    digest = hashlib.sha256(f"{gguf.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    folder = tuneloop_home() / "models" / f"{label}-{digest}"
    if (folder / "config.json").exists():
        return folder
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with status(f"Converting {gguf.name} to safetensors (once; cached in {folder})"):
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        _forget_gguf_quantisation(model)
        with staged_dir(folder) as tmp:
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
    return folder


def _forget_gguf_quantisation(model) -> None:
    # transformers marks GGUF-loaded models as quantised and refuses to save them, although
    # the weights are already dequantised to float tensors.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def load_tokenizer(name: str, allow_pickle: bool = False, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    source = resolve_model(name, allow_pickle)
    tokenizer = _from_pretrained(AutoTokenizer, source, trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def attention_kernel(requested: str = "auto") -> str:
    """flash_attention_2 where it exists (CUDA + flash-attn), else SDPA; packed rows work with both."""
    if requested != "auto":
        return requested
    import importlib.util

    import torch

    if torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def load_causal_lm(name: str, allow_pickle: bool = False, trust_remote_code: bool = False, dtype=None, attention: str = "auto"):
    """Load a causal LM and its tokenizer.

    >>> model, tokenizer = load_causal_lm("smollm2-135m-instruct")  # doctest: +SKIP
    """
    import torch
    from transformers import AutoModelForCausalLM

    source = resolve_model(name, allow_pickle)
    model = _from_pretrained(
        AutoModelForCausalLM, source, trust_remote_code, dtype=dtype or torch.float32, attn_implementation=attention_kernel(attention)
    )
    tokenizer = load_tokenizer(name, allow_pickle, trust_remote_code)
    if model.generation_config is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def load_pretrained(auto_class, model_config, **kwargs):
    """Any transformers auto class (sequence classifier, encoder-decoder ...) from a user's model name, in fp32."""
    import torch

    source = resolve_model(model_config.name, model_config.allow_pickle)
    return _from_pretrained(auto_class, source, model_config.trust_remote_code, dtype=torch.float32, **kwargs)


def _from_pretrained(auto_class, source: ModelSource, trust_remote_code: bool, **kwargs):
    try:
        return auto_class.from_pretrained(
            source.location,
            trust_remote_code=trust_remote_code,
            use_safetensors=source.use_safetensors,
            **kwargs,
        )
    except (OSError, ValueError) as err:
        if not Path(source.location).exists():
            raise ModelError(
                f"model {source.location!r} is not a local file or folder, and loading it as a hub id failed: "
                f"{str(err).splitlines()[0]}"
            ) from None
        raise ModelError(f"could not load model {source.location!r}: {err}") from None
