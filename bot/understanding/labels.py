"""Words that label a number in a bill or a message as an order number (订单号, 交易单号,
order #…): shared by the order-number and amount readers."""

from __future__ import annotations

import re

_ORDER_LABEL_RE = re.compile(r"订单|单号|交易号|流水号|编号|order|transaction|txn", re.IGNORECASE)
_ORDER_LABEL_BEFORE_RE = re.compile(
    r"(?:订单号?|单号|交易号|流水号|编号|order|transaction|txn|no|number|ref)"
    r"\s*(?:号码|是|为|:|#|\.)*\s*$",
    re.IGNORECASE,
)
