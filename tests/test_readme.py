"""The README links nowhere outside the repository: a reader offline, or in a network that
blocks those sites, finds everything here. Addresses of this machine in examples are fine."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
WEB_ADDRESS = re.compile(r"https?://[^\s)`'\"<>|]+", re.IGNORECASE)
MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)[^)]*\)")


def outside_addresses(text: str) -> list[str]:
    """http(s) addresses whose host is not this machine: a host name without a dot (the
    nginx example's upstream `billbot`) names nothing on the internet either."""
    found = []
    for address in WEB_ADDRESS.findall(text):
        host = urlsplit(address).hostname or ""
        if host not in LOCAL_HOSTS and "." in host and not host.startswith("127."):
            found.append(address)
    return found


def test_the_readme_has_no_address_outside_this_machine() -> None:
    assert outside_addresses(README.read_text(encoding="utf-8")) == []
    assert not re.search(r"\bwww\.", README.read_text(encoding="utf-8"))


def test_the_readmes_own_links_lead_to_files_in_the_repository() -> None:
    for target in MARKDOWN_LINK.findall(README.read_text(encoding="utf-8")):
        path = target.split("#", 1)[0]
        assert not re.match(r"[a-z][a-z0-9+.-]*:", path, re.IGNORECASE), target
        assert not path or (ROOT / path).exists(), target


def test_the_check_sees_outside_addresses() -> None:
    text = (
        "see https://u.wechat.com/abc, [docs](https://example.com/x) and http://10.0.0.5:80/;"
        " not http://127.0.0.1:8080/console, http://localhost:8090/orders, http://[::1]:9/"
        " or proxy_pass http://billbot;"
    )
    assert outside_addresses(text) == [
        "https://u.wechat.com/abc,",
        "https://example.com/x",
        "http://10.0.0.5:80/;",
    ]
