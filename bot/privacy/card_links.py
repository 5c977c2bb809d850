"""The bot's side of card links: what goes into a signed card token, and the URL around it."""

from __future__ import annotations

from bot.privacy.links import LinkSigner
from bot.privacy.masking import mask_user_id, order_tail
from storage.records import ContactRecord

# What a card token carries: ids and masked values only (it is signed, not encrypted).
CONTACT_FIELD = "c"  # contact id
ORDER_TAIL_FIELD = "o"  # last four characters of the order number
USER_FIELD = "u"  # the customer's masked id, for the watermark
REMARK_FIELD = "r"  # the suggested remark, e.g. 订单尾号3456
JOURNEY_FIELD = "j"  # the funnel's random journey id, to count the first opening
CARD_FIELD = "k"  # the card's id: its WeCom contact way, if it has one


class SignedCardLinks:
    """Builds ``{public_url}/card/{token}``; the token carries only ids and masked values."""

    def __init__(self, signer: LinkSigner, public_url: str) -> None:
        self._signer = signer
        self._base = public_url.rstrip("/")

    def link_for(
        self,
        contact: ContactRecord,
        order_no: str,
        user_id: str,
        remark: str,
        journey: str = "",
        card_id: int = 0,
    ) -> str:
        payload: dict[str, str | int] = {
            CONTACT_FIELD: contact.id,
            ORDER_TAIL_FIELD: order_tail(order_no),
            USER_FIELD: mask_user_id(user_id),
            REMARK_FIELD: remark,
        }
        if journey:
            payload[JOURNEY_FIELD] = journey
        if card_id:
            payload[CARD_FIELD] = card_id
        token = self._signer.sign(payload)
        return f"{self._base}/card/{token}"
