"""Who may do what on the dashboard.

Two modes:
- local: the dashboard serves this machine only; every action is on, as it always was.
- viewer: the dashboard serves a room or a lab; browsing, comparing and charts only. Operator
  actions (start or cancel a run, ingest a set, write an export, send from the Playground) need
  the operator password, entered once per session in the sidebar. Without a password configured,
  viewer mode has no operator actions at all.

The mode is SYCOSCOPE_MODE ("local" or "viewer") when set; otherwise it follows the address
Streamlit listens on: local on a loopback address (.streamlit/config.toml sets 127.0.0.1), viewer
on any other, and viewer with no address (Streamlit then listens on every interface), or for a
session that came through a reverse proxy (PROXY_HEADERS). So serving
beyond this machine is chosen (`make serve`), never a default; SYCOSCOPE_MODE=local serves
everything to whoever reaches the port, knowingly.

The password comes from SYCOSCOPE_OPERATOR_PASSWORD or from .streamlit/secrets.toml:

    [operator]
    password = "..."

and is compared in constant time. Where an identity provider is configured ([auth] in
secrets.toml), Streamlit's own st.login and st.user can name the operator instead of a shared
password; Sycoscope does not wire that up, since a password needs no provider and tests without one.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
from pathlib import Path

from lib.run import keys
from lib.run.keys import KeyConfigError

MODES = ("local", "viewer")
MODE_ENV = "SYCOSCOPE_MODE"
PASSWORD_ENV = "SYCOSCOPE_OPERATOR_PASSWORD"


def is_loopback(address: str | None) -> bool:
    """Whether Streamlit's server.address serves this machine only. No address is every interface."""
    if not address:
        return False
    if address.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it resolves to some interface, maybe a public one


# Set by a reverse proxy: a request that passed one comes from beyond this machine, whatever
# address Streamlit listens on (nginx forwards to 127.0.0.1 and rewrites the Host by default).
PROXY_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip")


def mode(setting: str | None, address: str | None, proxied: bool = False) -> tuple[str, str | None]:
    """(the mode, a problem to show): `setting` is SYCOSCOPE_MODE's value, `address` Streamlit's
    server.address, `proxied` whether the session's request came through a reverse proxy. An
    unknown setting serves as viewer, the safe side, and says so."""
    value = (setting or "").strip().lower()
    if proxied and value != "local":
        return "viewer", None
    if value == "local" and not is_loopback(address):
        return value, f"{MODE_ENV}=local on a served address: every visitor may run, ingest and export"
    if value in MODES:
        return value, None
    if value:
        return "viewer", f"{MODE_ENV}={setting!r} is neither local nor viewer: serving as viewer"
    return ("local" if is_loopback(address) else "viewer"), None


def current_mode(address: str | None, headers: dict[str, str] | None = None) -> tuple[str, str | None]:
    """The mode of a session, from SYCOSCOPE_MODE, the address Streamlit listens on and the
    session's request headers."""
    proxied = any(name in PROXY_HEADERS for name in (h.lower() for h in headers or {}))
    return mode(os.environ.get(MODE_ENV), address, proxied)


def operator_password(secrets: Path | None = None) -> str | None:
    """The configured operator password, or None: SYCOSCOPE_OPERATOR_PASSWORD, else [operator]
    password in secrets.toml. An empty one is none."""
    value = os.environ.get(PASSWORD_ENV, "")
    if value:
        return value
    path = secrets or keys.SECRETS
    table = keys.read_secrets(path).get("operator", {})
    if not isinstance(table, dict):
        raise KeyConfigError(f"{path}: operator must be a table: [operator] with password = ...")
    password = table.get("password")
    if password is not None and not isinstance(password, str):
        raise KeyConfigError(f"{path}: [operator] password must be a string")
    return password or None


def password_matches(entered: str | None, configured: str | None) -> bool:
    """Whether the entered password is the configured one, in constant time: digests of equal
    length are compared, so neither the text nor the length leaks through timing."""
    if not entered or not configured:
        return False
    digest = hashlib.sha256
    return hmac.compare_digest(digest(entered.encode()).digest(), digest(configured.encode()).digest())


def may_operate(current: str, entered: str | None, configured: str | None) -> bool:
    """Whether an operator action is allowed: always in local mode; in viewer mode only to a
    session that entered the configured password."""
    return current == "local" or password_matches(entered, configured)
