"""The bot's side of card links: what goes into a signed card token, and the URL around it."""

from __future__ import annotations

from bot.privacy.links import LinkSigner
from bot.privacy.masking import mask_user_id, order_tail
from storage.records import ContactRecord


class SignedCardLinks:
    """Builds ``{public_url}/card/{token}``; the token carries only ids and masked values."""

    def __init__(self, signer: LinkSigner, public_url: str) -> None:
        self._signer = signer
        self._base = public_url.rstrip("/")

    def link_for(self, contact: ContactRecord, order_no: str, user_id: str, remark: str) -> str:
        token = self._signer.sign(
            {"c": contact.id, "o": order_tail(order_no), "u": mask_user_id(user_id), "r": remark}
        )
        return f"{self._base}/card/{token}"
