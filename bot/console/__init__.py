"""The agent console: logins (``auth``), the API's description (``openapi``), the page and assets.

The HTTP side lives in ``bot.handlers.console``; the queue work in ``bot.handoff.queue``.
"""

from __future__ import annotations

from pathlib import Path

CONSOLE_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = CONSOLE_DIR / "templates"
STATIC_DIR = CONSOLE_DIR / "static"
