"""Masks for identifiers shown to people: enough to recognise, never enough to reuse.

Every mask uses a fixed run of four stars, so the mask does not leak the original length.
"""

from __future__ import annotations

import re
import unicodedata

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


# What a transcript line can hold that identifies someone, looked for on NFKC text (so
# full-width digits and letters are plain ones). Order matters: links and e-mail addresses
# first, then dates (a card's last four digits travel with the transaction date), amounts,
# then any run of letters and digits (separators inside allowed) holding 5+ digits: order,
# card, phone, ID-card, QQ and tracking numbers however they were typed.
_CARD_LINK = re.compile(r"https?://\S+/card/\S+")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_DATE = re.compile(
    r"(?<!\d)(?:\d{4}\s*[-/.年]\s*)?\d{1,2}\s*[-/.月]\s*\d{1,2}(?:\s*[日号])?(?!\d)"
    r"|\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+\d{1,2}\b",
    re.IGNORECASE,
)
_AMOUNT = re.compile(
    r"[¥$]\s*-?\d[\d,]*(?:\.\d+)?"
    r"|-?\d[\d,]*(?:\.\d+)?\s*(?:元|块|角|毛|yuan|rmb|cny)"
    r"|(?:金额|付款|支付|实付|付了|花了|总共|共计|amount|paid|total)\s*[:：]?\s*-?\d[\d,]*(?:\.\d+)?"
    r"|(?<![\w.])-?\d+\.\d{1,2}(?![\w.])",
    re.IGNORECASE,
)
_NUMBER_RUN = re.compile(r"(?<![0-9A-Za-z])\+?[0-9A-Za-z](?:[0-9A-Za-z \-.()]*[0-9A-Za-z])?")
_FOUR_DIGITS = re.compile(r"(?<![0-9A-Za-z*])\d{4}(?![0-9A-Za-z])")
LINK_LABEL = "[名片链接 card link]"
EMAIL_LABEL = "[邮箱 email]"
DATE_LABEL = "[日期 date]"
AMOUNT_LABEL = "[金额 amount]"


def _plain_form(text: str) -> str:
    """NFKC for what can spell a number or an address (full-width ０-９, Ａ-Ｚ, ＋, ＠…); the
    customer's own punctuation (，？！) stays as typed."""
    out = []
    for ch in text:
        if ch.isascii():
            out.append(ch)
            continue
        folded = unicodedata.normalize("NFKC", ch)
        out.append(folded if folded.isascii() and (folded.isalnum() or folded in "+-.@()_") else ch)
    return "".join(out)


def _mask_number(match: re.Match[str]) -> str:
    run = match.group(0)
    if sum(c.isdigit() for c in run) < 5:
        return run
    compact = re.sub(r"[^0-9A-Za-z]", "", run)
    return STARS + compact[-4:]


def mask_links(text: str) -> str:
    """The bot's own words already mask what they show; only the card link is hidden."""
    return _CARD_LINK.sub(LINK_LABEL, text)


def mask_text(text: str) -> str:
    """A transcript line as an agent sees it by default: whatever identifies, masked.

    Works on the NFKC form of digits, letters and the signs inside numbers and addresses
    (full-width ones become plain). Card links, e-mail
    addresses, dates and amounts are replaced by a label; a run of 5 or more digits keeps
    only its last four characters; a lone group of four digits (a card's last four) goes.
    No run of more than four characters of such a value survives, whatever surrounds it.
    """
    text = _plain_form(text)
    text = _CARD_LINK.sub(LINK_LABEL, text)
    text = _EMAIL.sub(EMAIL_LABEL, text)
    text = _DATE.sub(DATE_LABEL, text)
    text = _AMOUNT.sub(AMOUNT_LABEL, text)
    text = _NUMBER_RUN.sub(_mask_number, text)
    return _FOUR_DIGITS.sub(STARS, text)
