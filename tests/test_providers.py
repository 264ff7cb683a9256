"""The OpenAI and Anthropic providers against a loopback fake of both vendors' HTTP APIs: replies,
the error kinds the runner acts on, prefills, and where keys come from (never into a message).
The fake stands in for the vendor's own host (keys.VENDOR_URLS), the one place a vendor's key goes;
tests/test_keys_bound.py proves that it goes nowhere else."""

from __future__ import annotations

import json
import socket

import pytest

from lib.probes.items import assistant, user
from lib.run import keys
from lib.run.providers import ProviderError, key_status, make_provider
from tests.fake_vendor import Fail, FakeVendor, Hang, Ok

KEYS = {"openai": "sk-test-openai-0123456789abcdefXYZ", "anthropic": "sk-ant-test-0123456789abcdefXYZ"}
VENDORS = ("openai", "anthropic")
NAMES = {"openai": "OpenAI", "anthropic": "Anthropic"}
QUESTION = [user("What is the capital of France?")]


@pytest.fixture(autouse=True)
def no_ambient_keys(monkeypatch, tmp_path):
    """Tests see only the keys they set: none from the environment or the repo's secrets.toml."""
    for name in keys.KEY_NAMES.values():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(keys, "SECRETS", tmp_path / "no-secrets.toml")


@pytest.fixture
def fake():
    with FakeVendor() as vendor:
        yield vendor


def as_vendor(vendor: str, fake: FakeVendor, monkeypatch) -> None:
    """The loopback fake stands in for the vendor's own API host."""
    url = fake.openai_url if vendor == "openai" else fake.anthropic_url
    monkeypatch.setitem(keys.VENDOR_URLS, vendor, url)


def provider_for(vendor: str, fake: FakeVendor, monkeypatch, timeout: float = 10):
    monkeypatch.setenv(keys.KEY_NAMES[vendor], KEYS[vendor])
    as_vendor(vendor, fake, monkeypatch)
    return make_provider(f"{vendor}:test-model", timeout=timeout)


def sent_key(vendor: str, fake: FakeVendor) -> str:
    # Both SDKs send the key as a bearer token (anthropic 2.14 too, no longer as x-api-key).
    return fake.requests[-1].headers["authorization"].removeprefix("Bearer ")


@pytest.mark.parametrize("vendor", VENDORS)
def test_success_gives_text_tokens_and_finish_reason(vendor, fake, monkeypatch):
    fake.script(Ok("Paris.", prompt_tokens=14, completion_tokens=3))
    provider = provider_for(vendor, fake, monkeypatch)
    reply = provider.complete(QUESTION, temperature=0.5, max_tokens=32)

    assert provider.model == f"{vendor}:test-model"
    assert provider.base_url is None  # the vendor's own
    assert reply.text == "Paris."
    assert (reply.prompt_tokens, reply.completion_tokens) == (14, 3)
    assert reply.finish_reason == ("stop" if vendor == "openai" else "end_turn")
    assert reply.latency_ms > 0
    assert json.loads(json.dumps(reply.raw))["model"] == "test-model"

    [request] = fake.requests
    assert sent_key(vendor, fake) == KEYS[vendor]
    assert request.body["model"] == "test-model"
    # api.openai.com takes max_completion_tokens (reasoning models refuse max_tokens)
    assert request.body["max_completion_tokens" if vendor == "openai" else "max_tokens"] == 32
    assert request.body["temperature"] == 0.5
    assert request.body["messages"] == QUESTION


@pytest.mark.parametrize("vendor", VENDORS)
def test_temperature_and_seed_are_sent_only_when_given(vendor, fake, monkeypatch):
    provider = provider_for(vendor, fake, monkeypatch)
    provider.complete(QUESTION, temperature=None, max_tokens=8, seed=7)
    body = fake.requests[-1].body
    assert "temperature" not in body
    # The Messages API has no seed.
    assert body.get("seed") == (7 if vendor == "openai" else None)


def test_anthropic_takes_leading_system_messages_as_system(fake, monkeypatch):
    provider = provider_for("anthropic", fake, monkeypatch)
    provider.complete([{"role": "system", "content": "Be brief."}, *QUESTION], temperature=None, max_tokens=8)
    body = fake.requests[-1].body
    assert body["system"] == "Be brief."
    assert body["messages"] == QUESTION


@pytest.mark.parametrize("vendor", VENDORS)
def test_rate_limit_is_retryable_and_a_second_call_succeeds(vendor, fake, monkeypatch):
    fake.script(fake.rate_limited(vendor), Ok("Paris."))
    provider = provider_for(vendor, fake, monkeypatch)
    with pytest.raises(ProviderError) as caught:
        provider.complete(QUESTION, temperature=None, max_tokens=8)
    assert caught.value.kind == "rate_limit"
    assert caught.value.retryable
    assert caught.value.retry_after == 2
    assert len(fake.requests) == 1  # the SDK itself does not retry

    assert provider.complete(QUESTION, temperature=None, max_tokens=8).text == "Paris."
    assert len(fake.requests) == 2


@pytest.mark.parametrize("vendor", VENDORS)
def test_server_error_is_retryable(vendor, fake, monkeypatch):
    fake.script(fake.server_error(vendor))
    with pytest.raises(ProviderError) as caught:
        provider_for(vendor, fake, monkeypatch).complete(QUESTION, temperature=None, max_tokens=8)
    assert (caught.value.kind, caught.value.retryable) == ("server", True)
    assert "HTTP 500" in str(caught.value)


def test_anthropic_overloaded_is_a_retryable_server_error(fake, monkeypatch):
    fake.script(fake.overloaded())
    with pytest.raises(ProviderError) as caught:
        provider_for("anthropic", fake, monkeypatch).complete(QUESTION, temperature=None, max_tokens=8)
    assert (caught.value.kind, caught.value.retryable) == ("server", True)
    assert "529" in str(caught.value)


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_hanging_server_times_out(vendor, fake, monkeypatch):
    fake.script(Hang())
    provider = provider_for(vendor, fake, monkeypatch, timeout=0.5)
    with pytest.raises(ProviderError) as caught:
        provider.complete(QUESTION, temperature=None, max_tokens=8)
    assert (caught.value.kind, caught.value.retryable) == ("timeout", True)
    assert "0.5 s" in str(caught.value)
    assert len(fake.requests) == 1


@pytest.mark.parametrize("vendor", VENDORS)
def test_bad_key_is_auth_naming_the_vendor_and_never_the_key(vendor, fake, monkeypatch):
    fake.script(fake.bad_key(vendor, KEYS[vendor]))
    with pytest.raises(ProviderError) as caught:
        provider_for(vendor, fake, monkeypatch).complete(QUESTION, temperature=None, max_tokens=8)
    error = caught.value
    assert (error.kind, error.retryable) == ("auth", False)
    assert NAMES[vendor] in str(error)
    assert "401" in str(error)
    text = f"{error} {error!r} {error.args}"
    assert KEYS[vendor] not in text
    assert KEYS[vendor][-12:] not in text  # not even a tail of it


@pytest.mark.parametrize("vendor", VENDORS)
def test_exhausted_quota_is_not_retryable(vendor, fake, monkeypatch):
    fake.script(fake.no_quota(vendor))
    with pytest.raises(ProviderError) as caught:
        provider_for(vendor, fake, monkeypatch).complete(QUESTION, temperature=None, max_tokens=8)
    assert (caught.value.kind, caught.value.retryable) == ("quota", False)


def test_anthropic_billing_error_is_quota(fake, monkeypatch):
    fake.script(
        Fail(402, {"type": "error", "error": {"type": "billing_error", "message": "Payment required"}})
    )
    with pytest.raises(ProviderError) as caught:
        provider_for("anthropic", fake, monkeypatch).complete(QUESTION, temperature=None, max_tokens=8)
    assert (caught.value.kind, caught.value.retryable) == ("quota", False)


@pytest.mark.parametrize("vendor", VENDORS)
def test_unknown_model_is_not_found(vendor, fake, monkeypatch):
    fake.script(fake.unknown_model(vendor, "test-model"))
    with pytest.raises(ProviderError) as caught:
        provider_for(vendor, fake, monkeypatch).complete(QUESTION, temperature=None, max_tokens=8)
    assert (caught.value.kind, caught.value.retryable) == ("not_found", False)
    assert "test-model" in str(caught.value)


@pytest.mark.parametrize("vendor", VENDORS)
def test_nothing_listening_is_a_retryable_connection_error(vendor, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    monkeypatch.setenv(keys.KEY_NAMES[vendor], KEYS[vendor])
    provider = make_provider(f"{vendor}:test-model", base_url=f"http://127.0.0.1:{port}/v1", timeout=5)
    with pytest.raises(ProviderError) as caught:
        provider.complete(QUESTION, temperature=None, max_tokens=8)
    assert (caught.value.kind, caught.value.retryable) == ("connection", True)
    assert str(port) in str(caught.value)
    assert KEYS[vendor] not in str(caught.value)


@pytest.mark.parametrize("vendor", VENDORS)
def test_without_a_key_the_vendor_is_refused_and_a_local_server_gets_a_placeholder(vendor, fake):
    with pytest.raises(ProviderError) as caught:
        make_provider(f"{vendor}:test-model")
    assert caught.value.kind == "auth"
    assert keys.KEY_NAMES[vendor] in str(caught.value)

    url = fake.openai_url if vendor == "openai" else fake.anthropic_url
    make_provider(f"{vendor}:test-model", base_url=url).complete(QUESTION, temperature=None, max_tokens=8)
    assert sent_key(vendor, fake) == "not-needed"


def test_anthropic_sends_a_prefill_natively(fake, monkeypatch):
    fake.script(Ok("B)"), Ok("B"))
    provider = provider_for("anthropic", fake, monkeypatch)
    assert provider.prefill_mode == "native"
    question = user("Which is larger? (A) 7 (B) 9")

    reply = provider.complete([question, assistant("The answer is (")], temperature=None, max_tokens=8)
    assert fake.requests[-1].body["messages"] == [question, assistant("The answer is (")]
    assert reply.text == "The answer is (B)"

    # The API refuses a final assistant turn ending in whitespace: it goes without it.
    reply = provider.complete([question, assistant("Answer: ")], temperature=None, max_tokens=8)
    assert fake.requests[-1].body["messages"][-1] == assistant("Answer:")
    assert reply.text == "Answer:B"


def test_openai_sends_a_prefill_as_an_instruction(fake, monkeypatch):
    fake.script(Ok("The answer is (B)."))
    provider = provider_for("openai", fake, monkeypatch)
    assert provider.prefill_mode == "instruction"
    question = user("Which is larger? (A) 7 (B) 9")

    reply = provider.complete([question, assistant("The answer is (")], temperature=None, max_tokens=8)
    sent = fake.requests[-1].body["messages"]
    assert sent == [user('Which is larger? (A) 7 (B) 9\n\nBegin your reply with: "The answer is ("')]
    assert reply.text == "The answer is (B)."  # as returned: nothing prepended


def test_key_status_from_the_environment_and_from_secrets_toml(monkeypatch, tmp_path):
    assert not key_status("openai") and not key_status("anthropic:claude-haiku-4-5")
    assert key_status("bundled")

    monkeypatch.setenv("OPENAI_API_KEY", KEYS["openai"])
    assert key_status("openai") and key_status("openai:gpt-4o-mini")
    assert not key_status("anthropic")

    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f'ANTHROPIC_API_KEY = "{KEYS["anthropic"]}"\n')
    monkeypatch.setattr(keys, "SECRETS", secrets)
    assert key_status("anthropic")
    assert keys.get_key("anthropic") == KEYS["anthropic"]

    # The environment wins over the file.
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-from-env")
    assert keys.get_key("anthropic") == "sk-ant-from-env"


def test_a_key_from_secrets_toml_reaches_the_vendor(fake, monkeypatch, tmp_path):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f'OPENAI_API_KEY = "{KEYS["openai"]}"\n')
    monkeypatch.setattr(keys, "SECRETS", secrets)
    as_vendor("openai", fake, monkeypatch)
    make_provider("openai:test-model").complete(QUESTION, None, 8)
    assert sent_key("openai", fake) == KEYS["openai"]


def test_a_malformed_secrets_file_names_the_file_and_line_but_not_its_text(monkeypatch, tmp_path):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('# keys\nOPENAI_API_KEY = "sk-unterminated-0123456789\n')
    monkeypatch.setattr(keys, "SECRETS", secrets)
    with pytest.raises(keys.KeyConfigError) as caught:
        key_status("openai")
    assert str(secrets) in str(caught.value)
    assert "line 2" in str(caught.value)
    assert "sk-unterminated" not in str(caught.value)


@pytest.mark.parametrize("spec", ["gpt-4o-mini", "openai:", "mistral:large", "bundled:llama"])
def test_a_malformed_spec_is_refused(spec):
    with pytest.raises(ValueError, match="model"):
        make_provider(spec)
