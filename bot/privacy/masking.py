"""Masks for identifiers shown to people: enough to recognise, never enough to reuse.

Every mask uses a fixed run of four stars, so the mask does not leak the original length.
"""

from __future__ import annotations

import re

STARS = "****"
WECHAT_PREFIX = "wx_"

# Below these lengths, the first-and-last rule would reveal more than half of the id,
# so only its first character is kept.
_WECHAT_BODY_MIN_FOR_BOTH_ENDS = 8
_USER_ID_MIN_FOR_BOTH_ENDS = 12


def mask_wechat_id(wid: str) -> str:
    """``wx_ab12cd89`` → ``wx_ab****89``: at most four original characters besides ``wx_``.

    Short ids (fewer than 8 characters after the prefix) keep only their first character.
    """
    wid = wid.strip()
    prefix = ""
    if wid.startswith(WECHAT_PREFIX):
        prefix, wid = WECHAT_PREFIX, wid[len(WECHAT_PREFIX) :]
    if len(wid) >= _WECHAT_BODY_MIN_FOR_BOTH_ENDS:
        return f"{prefix}{wid[:2]}{STARS}{wid[-2:]}"
    return f"{prefix}{wid[:1]}{STARS}"


def order_tail(no: str) -> str:
    """The last four characters of an order number: what the customer and agent quote."""
    return no.strip()[-4:]


def mask_order_no(no: str) -> str:
    """``202605031234563456`` → ``****3456``.

    An order number of eight characters or fewer shows at most half of itself, so a short
    number is never shown whole.
    """
    no = no.strip()
    shown = min(4, len(no) // 2)
    return STARS + (no[-shown:] if shown else "")


def mask_user_id(openid: str) -> str:
    """``oAbCdEfGhIjKlMnOpQrStUvWxYz12`` → ``oAbC****12``: the customer's id in watermarks.

    Ids shorter than 12 characters keep only their first character.
    """
    openid = openid.strip()
    if len(openid) >= _USER_ID_MIN_FOR_BOTH_ENDS:
        return f"{openid[:4]}{STARS}{openid[-2:]}"
    return f"{openid[:1]}{STARS}"


# Runs of letters/digits (spaces and dashes inside allowed) holding 6+ digits: order, card,
# phone and tracking numbers, however the customer typed them.
_LONG_NUMBER = re.compile(r"(?<![0-9A-Za-z])[0-9A-Za-z](?:[0-9A-Za-z \-]*[0-9A-Za-z])?")
_CARD_LINK = re.compile(r"https?://\S+/card/\S+")
_AMOUNT = re.compile(
    r"[¥￥]\s*\d[\d,]*(?:\.\d+)?|\d[\d,]*(?:\.\d+)?\s*(?:元|块|yuan|rmb|cny)|\b\d+\.\d{1,2}\b",
    re.IGNORECASE,
)


def _mask_number(match: re.Match[str]) -> str:
    run = match.group(0)
    if sum(c.isdigit() for c in run) < 6:
        return run
    compact = re.sub(r"[ \-]", "", run)
    return STARS + compact[-4:]


def mask_links(text: str) -> str:
    """The bot's own words already mask what they show; only the card link is hidden."""
    return _CARD_LINK.sub("[名片链接 card link]", text)


def mask_text(text: str) -> str:
    """A transcript line as an agent sees it by default: numbers that identify, masked.

    Long numbers keep their last four characters; card links and amounts are hidden.
    """
    text = _CARD_LINK.sub("[名片链接 card link]", text)
    text = _AMOUNT.sub("[金额 amount]", text)
    return _LONG_NUMBER.sub(_mask_number, text)
