"""Optional login: when ``.streamlit/secrets.toml`` has an ``[auth]`` section (Streamlit's
OIDC settings), every page first requires ``st.login``; without it the UI is open to whoever
reaches the port, which is why ``vitrieve ui`` listens on 127.0.0.1 by default.

An OIDC provider such as Google lets *any* of its accounts log in, so an allow-list can be set
too: ``[vitrieve] allowed_emails = ["me@example.org"]``. See docs/security.md.
"""

from __future__ import annotations

import logging

import streamlit as st
from streamlit.errors import StreamlitSecretNotFoundError

log = logging.getLogger(__name__)


def _secrets_section(name: str) -> dict | None:
    """A section of secrets.toml, or None when there is no such section or no secrets file."""
    try:
        return dict(st.secrets[name]) if name in st.secrets else None
    except (StreamlitSecretNotFoundError, FileNotFoundError):
        return None


def auth_configured() -> bool:
    return _secrets_section("auth") is not None


def allowed_emails() -> set[str] | None:
    """The allow-list of ``[vitrieve] allowed_emails`` (lower-cased), None when not set."""
    section = _secrets_section("vitrieve") or {}
    emails = section.get("allowed_emails")
    return {str(e).strip().lower() for e in emails} if emails else None


def require_login() -> None:
    """With ``[auth]`` configured: a login screen and ``st.stop()`` until the user is logged in
    (and on the allow-list, if there is one). Without it: nothing."""
    if not auth_configured():
        return
    if not st.user.is_logged_in:
        st.title("vitrieve")
        st.write("Log in to search this photo library.")
        st.button("Log in", icon=":material/login:", type="primary", on_click=st.login)
        st.stop()
    allowed = allowed_emails()
    email = str(st.user.get("email") or "").lower()
    if allowed is not None and email not in allowed:
        log.warning("refused login of %s (not in allowed_emails)", email or "an account")
        st.error(f"{email or 'This account'} may not use this library.", icon=":material/block:")
        st.button("Log out", icon=":material/logout:", on_click=st.logout)
        st.stop()
    with st.sidebar:
        st.button("Log out", icon=":material/logout:", on_click=st.logout, type="tertiary")
