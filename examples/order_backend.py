"""A minimal order API for billbot (``BILLBOT_ORDER_API_URL``), serving orders from a CSV file.

    python examples/order_backend.py --port 8090 --csv orders.csv
    BILLBOT_ORDER_API_URL=http://127.0.0.1:8090/orders billbot serve

It shows what a merchant's backend has to do: ``GET /orders?order_no=…`` answers 200 with the
order as JSON (the orders CSV's fields, ``amount`` a decimal string in yuan, ``paid_at`` ISO 8601
or null) or 404 when there is no such order. A real backend reads its own system instead.
The CSV is the orders import format: ``order_no,amount`` required; ``currency,paid_at,store,
contact,payer_openid,card_last4,tracking_no,status`` optional; Chinese headers accepted.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from aiohttp import web

Order = dict[str, str | None]
FIELDS = (
    "order_no",
    "amount",
    "currency",
    "paid_at",
    "store",
    "contact",
    "payer_openid",
    "card_last4",
    "tracking_no",
    "status",
)
CHINESE = {
    "订单号": "order_no",
    "金额": "amount",
    "币种": "currency",
    "支付时间": "paid_at",
    "门店": "store",
    "客服": "contact",
    "付款人": "payer_openid",
    "卡号后四位": "card_last4",
    "快递单号": "tracking_no",
    "状态": "status",
}
ORDERS = web.AppKey("orders", dict[str, Order])


def order_key(order_no: str) -> str:
    """billbot asks with the number upper-cased and without separators: index it the same way."""
    return re.sub(r"[\s\-_]", "", order_no).upper()


def order_from(row: dict[str, str]) -> Order:
    """One CSV row as the API's JSON object; ValueError if the amount or date cannot be read."""
    cells = {CHINESE.get(k.strip(), k.strip()): (v or "").strip() for k, v in row.items() if k}
    order: Order = {name: cells.get(name) or None for name in FIELDS}
    if not order["order_no"]:
        raise ValueError("order_no is empty")
    try:
        order["amount"] = f"{Decimal((order['amount'] or '').replace(',', '')):.2f}"
    except InvalidOperation:
        raise ValueError("amount is not a decimal in yuan") from None
    if order["paid_at"]:
        try:
            order["paid_at"] = datetime.fromisoformat(order["paid_at"]).isoformat()
        except ValueError:
            raise ValueError("paid_at is not ISO 8601 (e.g. 2026-05-03T14:30:00+08:00)") from None
    order["currency"] = order["currency"] or "CNY"
    return order


def load_orders(path: Path) -> dict[str, Order]:
    """The CSV's orders by key; unreadable rows are skipped with a note on stderr."""
    orders: dict[str, Order] = {}
    with path.open(encoding="utf-8-sig", newline="") as file:
        for line, row in enumerate(csv.DictReader(file), start=2):
            try:
                order = order_from(row)
            except ValueError as exc:
                print(f"{path}:{line}: skipped: {exc}", file=sys.stderr)
                continue
            orders[order_key(order["order_no"] or "")] = order
    return orders


async def find_order(request: web.Request) -> web.Response:
    order_no = request.query.get("order_no", "").strip()
    if not order_no:
        return web.json_response({"error": "order_no is required"}, status=400)
    order = request.app[ORDERS].get(order_key(order_no))
    if order is None:
        return web.json_response({"error": "no such order"}, status=404)
    return web.json_response(order)


def make_app(orders: dict[str, Order]) -> web.Application:
    app = web.Application()
    app[ORDERS] = orders
    app.router.add_get("/orders", find_order)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--csv", type=Path, required=True, help="orders in the import format")
    args = parser.parse_args(argv)
    orders = load_orders(args.csv)
    print(f"{len(orders)} orders; BILLBOT_ORDER_API_URL=http://{args.host}:{args.port}/orders")
    # No access log: its lines would hold order numbers (they are in the query string).
    web.run_app(make_app(orders), host=args.host, port=args.port, access_log=None)


if __name__ == "__main__":
    main()
