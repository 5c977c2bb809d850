"""Masks for identifiers shown to people: enough to recognise, never enough to reuse.

Every mask uses a fixed run of four stars, so the mask does not leak the original length.
"""

from __future__ import annotations

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
