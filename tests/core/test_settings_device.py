from __future__ import annotations

import pytest
import torch

from core.device import attention_implementation, resolve_device, resolve_dtype
from core.errors import InvalidInputError
from core.settings import Settings


def test_settings_read_the_mmsearch_prefix(monkeypatch):
    monkeypatch.setenv("MMSEARCH_RERANKER_MODEL", "/models/local-reranker")
    monkeypatch.setenv("MMSEARCH_RERANK_BATCH_TOKENS", "4096")
    monkeypatch.setenv("MMSEARCH_ALLOW_REMOTE_MEDIA", "false")
    monkeypatch.setenv("MMSEARCH_REMOTE_MEDIA_HOSTS", '["images.example.org"]')
    settings = Settings()
    assert settings.reranker_model == "/models/local-reranker"
    assert settings.rerank_batch_tokens == 4096
    policy = settings.media_policy(allow_local_files=False)
    assert policy.allow_remote is False and policy.allow_local_files is False
    assert policy.allowed_hosts == ("images.example.org",)


def test_settings_defaults_follow_the_released_model():
    settings = Settings(_env_file=None)
    assert settings.reranker_model == "Qwen/Qwen3-VL-Reranker-2B"
    assert settings.rerank_max_length == 10240
    assert (settings.image_min_pixels, settings.image_max_pixels) == (4 * 1024, 1800 * 1024)
    assert (settings.video_fps, settings.video_max_frames) == (1.0, 64)


def test_settings_reject_nonsense(monkeypatch):
    monkeypatch.setenv("MMSEARCH_RERANK_BATCH_TOKENS", "-5")
    with pytest.raises(ValueError):
        Settings()


def test_device_and_dtype_choice_on_cpu():
    cpu = resolve_device("cpu")
    assert cpu.type == "cpu"
    assert resolve_dtype(cpu) == torch.float32
    assert resolve_dtype(cpu, "bf16") == torch.bfloat16
    assert resolve_dtype(cpu, torch.float16) == torch.float16
    assert attention_implementation(cpu, torch.float32) == "sdpa"
    assert attention_implementation(cpu, torch.float32, "eager") == "eager"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(None).type == expected


def test_bad_device_and_dtype_are_clear_errors():
    with pytest.raises(InvalidInputError, match="unknown dtype"):
        resolve_dtype(torch.device("cpu"), "float8-ish")
    with pytest.raises(InvalidInputError, match="unknown device"):
        resolve_device("tpu-please")
    if not torch.cuda.is_available():
        with pytest.raises(InvalidInputError, match="CUDA is not available"):
            resolve_device("cuda")


def test_empty_environment_values_mean_unset(monkeypatch):
    # docker compose passes `MMSEARCH_API_KEY: ${MMSEARCH_API_KEY:-}` as an empty string when unset.
    from core.settings import Settings

    for name in (
        "MMSEARCH_API_KEY",
        "MMSEARCH_DEVICE",
        "MMSEARCH_QDRANT_SHARD_NUMBER",
        "MMSEARCH_UI_API_URL",
    ):
        monkeypatch.setenv(name, "")
    settings = Settings(_env_file=None)
    assert settings.api_key is None and settings.device is None
    assert settings.qdrant_shard_number is None and settings.ui_api_url is None


def test_the_ui_finds_the_api_on_this_machine_unless_told():
    from core.settings import Settings

    assert Settings(_env_file=None, host="0.0.0.0", port=9000).api_base_url() == "http://127.0.0.1:9000"
    assert Settings(_env_file=None, host="10.0.0.5").api_base_url() == "http://10.0.0.5:8000"
    told = Settings(_env_file=None, ui_api_url="http://api:8000/")
    assert told.api_base_url() == "http://api:8000"


def test_read_consistency_is_checked():
    import pydantic

    from core.settings import Settings

    assert Settings(_env_file=None, qdrant_read_consistency="2").qdrant_read_consistency == "2"
    with pytest.raises(pydantic.ValidationError):
        Settings(_env_file=None, qdrant_read_consistency="most")
