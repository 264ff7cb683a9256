"""Keys bound to their endpoints: OPENAI_API_KEY and ANTHROPIC_API_KEY go only to their vendors' own
hosts. A loopback server that records every request (tests/fake_vendor.py) stands in for an
OpenAI-compatible server; the vendor keys are set to recognisable values, and no request it receives,
through the providers, the runner or the command line, may carry them. A server the owner names
gets its own key, and a server with none gets a placeholder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lib import cli
from lib.paths import REPO
from lib.probes import probesets
from lib.probes.items import user
from lib.run import keys, runner, servers
from lib.run.keys import KeyConfigError
from lib.run.providers import make_provider
from lib.run.providers.base import PLACEHOLDER_KEY
from lib.store import Store
from tests.fake_vendor import FakeVendor, Recorded

# Recognisable values: any of them in any request to the loopback server is a leak.
VENDOR_SECRETS = {
    "OPENAI_API_KEY": "sk-openai-VENDOR-KEY-must-stay-home-0001",
    "ANTHROPIC_API_KEY": "sk-ant-VENDOR-KEY-must-stay-home-0002",
    "ANTHROPIC_AUTH_TOKEN": "sk-ant-VENDOR-TOKEN-must-stay-home-0003",  # the Anthropic SDK reads it too
    "OPENAI_ADMIN_KEY": "sk-admin-VENDOR-KEY-must-stay-home-0004",  # and the OpenAI SDK this
    # account headers the SDKs add from the environment: not secrets, but they name the account
    "OPENAI_ORG_ID": "org-VENDOR-ACCOUNT-must-stay-home-0006",
    "OPENAI_PROJECT_ID": "proj-VENDOR-ACCOUNT-must-stay-home-0007",
    "ANTHROPIC_CUSTOM_HEADERS": "X-Account: acct-VENDOR-ACCOUNT-must-stay-home-0008",
}
LAB_KEY = "lab-server-own-key-0005"
SET = "builtin/facts-answer"
QUESTION = [user("What is the capital of France?")]


@pytest.fixture
def vendor_keys(monkeypatch, tmp_path):
    """The vendor keys in the environment; no secrets file, no configured server."""
    for name, value in VENDOR_SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv(servers.ENV, raising=False)
    monkeypatch.setattr(keys, "SECRETS", tmp_path / "no-secrets.toml")


@pytest.fixture
def lab():
    with FakeVendor() as server:
        yield server


@pytest.fixture
def store(tmp_path, monkeypatch) -> Store:
    monkeypatch.setenv("SYCOSCOPE_DB", str(tmp_path / "store.duckdb"))
    the_store = Store()
    probe_set = probesets.get(SET)
    the_store.ingest(probe_set, probe_set.load())
    return the_store


def assert_no_vendor_key(requests: list[Recorded]) -> None:
    assert requests, "the server received nothing: the test proves nothing"
    for request in requests:
        sent = json.dumps([request.headers, request.body])
        for name, value in VENDOR_SECRETS.items():
            assert value.rpartition(" ")[2] not in sent, f"{name} reached {request.path}"


def bearer(request: Recorded) -> str:
    return request.headers["authorization"].removeprefix("Bearer ")


def write_secrets(path: Path, text: str, monkeypatch) -> Path:
    # With a byte-order mark, as some editors save: it must read as well.
    path.write_text(text, encoding="utf-8-sig")
    monkeypatch.setattr(keys, "SECRETS", path)
    return path


# -- the providers --------------------------------------------------------------------------------


@pytest.mark.parametrize("vendor", ["openai", "anthropic"])
def test_a_base_url_never_gets_the_vendors_key(vendor, vendor_keys, lab):
    url = lab.openai_url if vendor == "openai" else lab.anthropic_url
    make_provider(f"{vendor}:some-model", base_url=url, timeout=10).complete(QUESTION, None, 8)
    assert_no_vendor_key(lab.requests)
    [request] = lab.requests
    assert {request.headers.get("authorization"), request.headers.get("x-api-key")} - {None} <= {
        f"Bearer {PLACEHOLDER_KEY}",
        PLACEHOLDER_KEY,
    }


@pytest.mark.parametrize("vendor", ["openai", "anthropic"])
def test_the_vendors_own_host_gets_its_key(vendor, vendor_keys, lab, monkeypatch):
    """The other side of the rule, so that the checks above can fail: the vendor's own host (the
    recorder standing in for it) receives the key and the account headers."""
    url = lab.openai_url if vendor == "openai" else lab.anthropic_url
    monkeypatch.setitem(keys.VENDOR_URLS, vendor, url)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN")  # with it, the SDK authenticates by the token instead
    make_provider(f"{vendor}:some-model", timeout=10).complete(QUESTION, None, 8)
    [request] = lab.requests
    if vendor == "openai":
        assert bearer(request) == VENDOR_SECRETS["OPENAI_API_KEY"]
        assert request.headers["openai-organization"] == VENDOR_SECRETS["OPENAI_ORG_ID"]
    else:
        # this SDK sends the key as x-api-key or, in its newer versions, as a bearer token
        sent = {
            request.headers.get("x-api-key"),
            request.headers.get("authorization", "").removeprefix("Bearer "),
        }
        assert VENDOR_SECRETS["ANTHROPIC_API_KEY"] in sent
        assert request.headers["x-account"] == "acct-VENDOR-ACCOUNT-must-stay-home-0008"


def test_a_compatible_server_gets_max_tokens_not_the_vendors_field(vendor_keys, lab):
    make_provider("openai:some-model", base_url=lab.openai_url, timeout=10).complete(QUESTION, None, 8)
    assert lab.requests[0].body["max_tokens"] == 8
    assert "max_completion_tokens" not in lab.requests[0].body


@pytest.mark.parametrize(
    "url",
    [
        "http://api.openai.com/v1",  # not https
        "https://api.openai.com:8443/v1",  # another port
        "https://api.openai.com.example.net/v1",  # a look-alike host
        "https://api.openai.com@example.net/v1",  # a user name, then another host
        "https://example.net/v1?host=api.openai.com",
        "https://[::1/v1",  # no URL at all
    ],
)
def test_only_the_vendors_own_https_host_counts_as_the_vendor(url):
    assert not keys.is_vendor_url("openai", url)


def test_the_vendors_own_hosts_count():
    assert keys.is_vendor_url("openai", "https://api.openai.com/v1")
    assert keys.is_vendor_url("openai", "https://API.openai.com/v1/")
    assert keys.is_vendor_url("anthropic", "https://api.anthropic.com")
    assert not keys.is_vendor_url("anthropic", "https://api.openai.com/v1")


def test_a_named_server_gets_its_own_key_and_no_vendors(vendor_keys, lab, tmp_path, monkeypatch):
    write_secrets(
        tmp_path / "secrets.toml",
        f'[servers.lab]\nbase_url = "{lab.openai_url}/"\napi_key = "{LAB_KEY}"\n',
        monkeypatch,
    )
    provider = make_provider("openai:some-model", server="lab", timeout=10)
    assert provider.base_url == lab.openai_url  # the trailing slash goes: it keys the cache
    provider.complete(QUESTION, None, 8)
    assert_no_vendor_key(lab.requests)
    assert bearer(lab.requests[0]) == LAB_KEY


def test_a_named_server_is_openai_compatible_and_keeps_its_url(vendor_keys, lab, monkeypatch):
    monkeypatch.setenv(servers.ENV, json.dumps({"lab": {"base_url": lab.openai_url}}))
    with pytest.raises(ValueError, match="OpenAI-compatible"):
        make_provider("anthropic:some-model", server="lab")
    with pytest.raises(ValueError, match="another URL"):
        make_provider("openai:some-model", base_url="http://127.0.0.1:9/v1", server="lab")
    with pytest.raises(ValueError, match="no server named 'nope'.*configured: lab"):
        make_provider("openai:some-model", server="nope")


# -- the runner and the command line ------------------------------------------------------------


def test_the_runner_sends_a_named_servers_key_and_keys_the_cache_by_its_url(
    vendor_keys, lab, store, monkeypatch
):
    monkeypatch.setenv(servers.ENV, json.dumps({"lab": {"base_url": lab.openai_url, "api_key": LAB_KEY}}))
    spec = runner.RunSpec("openai:m", (SET,), limit=1, base_url=lab.openai_url, server="lab", concurrency=1)
    run_id, progress = runner.run(store, spec)
    assert (progress.done, progress.failed) == (4, 0)
    assert_no_vendor_key(lab.requests)
    assert {bearer(r) for r in lab.requests} == {LAB_KEY}
    assert store.query("SELECT DISTINCT base_url FROM transcripts") == [(lab.openai_url,)]
    # The run's stored plan names the server, never its key.
    plan = store.scalar("SELECT plan::VARCHAR FROM runs WHERE run_id = ?", [run_id])
    assert json.loads(plan)["server"] == "lab" and LAB_KEY not in plan
    for path in store.path.parent.iterdir():
        assert LAB_KEY.encode() not in path.read_bytes(), path


def test_cli_run_with_a_server_from_secrets_toml(vendor_keys, lab, store, tmp_path, monkeypatch, capsys):
    write_secrets(
        tmp_path / "secrets.toml",
        f'OPENAI_API_KEY = "sk-from-file-VENDOR-0006"\n\n[servers.lab]\nbase_url = "{lab.openai_url}"\n'
        f'api_key = "{LAB_KEY}"\n',
        monkeypatch,
    )
    code = cli.main(["run", "--model", "openai:m", "--server", "lab", "--set", SET, "--limit", "1"])
    assert code == 0, capsys.readouterr().err
    assert_no_vendor_key(lab.requests)
    assert all("sk-from-file-VENDOR-0006" not in json.dumps(r.headers) for r in lab.requests)
    assert {bearer(r) for r in lab.requests} == {LAB_KEY}


def test_cli_run_with_an_unknown_server_says_which_there_are(vendor_keys, store, monkeypatch, capsys):
    monkeypatch.setenv(servers.ENV, '{"lab": {"base_url": "http://127.0.0.1:9/v1"}}')
    code = cli.main(["run", "--model", "openai:m", "--server", "gpu", "--set", SET, "--limit", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "no server named 'gpu'" in err and "configured: lab" in err


def subprocess_cli(db: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lib", *args],
        cwd=REPO,
        env={**os.environ, **VENDOR_SECRETS, "SYCOSCOPE_DB": str(db), **env},
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.mark.parametrize("how", ["--base-url", "--server"])
def test_python_m_lib_run_sends_no_vendor_key_to_a_keyless_server(how, lab, store, tmp_path):
    """As a person runs it: `python -m lib run` in its own process, the vendor keys in its
    environment, a keyless local server by --base-url or by name (SYCOSCOPE_SERVERS)."""
    env = {servers.ENV: json.dumps({"local": {"base_url": lab.openai_url}})}
    where = lab.openai_url if how == "--base-url" else "local"
    done = subprocess_cli(
        store.path, env, "run", "--model", "openai:m", how, where, "--set", SET, "--limit", "1"
    )
    assert done.returncode == 0, done.stderr
    assert_no_vendor_key(lab.requests)
    assert {bearer(r) for r in lab.requests} == {PLACEHOLDER_KEY}
    assert len(lab.requests) == 4


# -- the configuration ----------------------------------------------------------------------------


def test_servers_from_secrets_and_environment_the_environment_winning(vendor_keys, tmp_path, monkeypatch):
    write_secrets(
        tmp_path / "secrets.toml",
        '[servers.lab]\nbase_url = "http://lab:8000/v1"\napi_key = "k1"\n\n'
        '[servers.ollama]\nbase_url = "http://localhost:11434/v1"\n',
        monkeypatch,
    )
    monkeypatch.setenv(servers.ENV, '{"lab": {"base_url": "http://gpu:8000/v1"}}')
    found = servers.configured()
    assert list(found) == ["lab", "ollama"]
    assert found["lab"] == servers.Server("lab", "http://gpu:8000/v1", None)
    assert found["ollama"].api_key is None
    assert "k1" not in repr(servers.Server("x", "http://x", "k1"))  # a server's key is never shown


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('[servers.lab]\napi_key = "SECRET-KEY-1"\n', "server 'lab': base_url is missing"),
        (
            '[servers.lab]\nbase_url = "ftp://x"\napi_key = "SECRET-KEY-1"\n',
            "server 'lab': base_url must be an http",
        ),
        ('[servers.lab]\nbase_url = "http://x"\napikey = "SECRET-KEY-1"\n', "unknown field 'apikey'"),
        ('[servers.openai]\nbase_url = "http://x"\n', "not one of openai, anthropic, bundled"),
        ('servers = "SECRET-KEY-1"\n', "[servers.NAME]"),
        ('[servers.lab]\nbase_url = "http://x"\napi_key = "SECRET-KEY-1\n', "line 3"),
    ],
)
def test_a_malformed_server_names_file_and_place_never_the_key(
    text, says, vendor_keys, tmp_path, monkeypatch
):
    secrets = write_secrets(tmp_path / "secrets.toml", text, monkeypatch)
    with pytest.raises(KeyConfigError) as caught:
        servers.configured()
    assert str(secrets) in str(caught.value) and says in str(caught.value)
    assert "SECRET-KEY" not in str(caught.value)


def test_malformed_servers_json_names_the_variable_and_place_never_the_text(vendor_keys, monkeypatch):
    monkeypatch.setenv(servers.ENV, '{"lab": {"base_url": "http://x", "api_key": "SECRET-KEY-2"')
    with pytest.raises(KeyConfigError) as caught:
        servers.configured()
    assert servers.ENV in str(caught.value) and "column" in str(caught.value)
    assert "SECRET-KEY" not in str(caught.value)


def test_a_secrets_file_with_a_byte_order_mark_reads(vendor_keys, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    write_secrets(tmp_path / "secrets.toml", 'OPENAI_API_KEY = "sk-from-file"\n', monkeypatch)
    assert keys.get_key("openai") == "sk-from-file"
