"""A handoff's status and reason in words, Chinese and English, for people to read (the CLI's
queue listing; the stored values stay machine words)."""

from __future__ import annotations

from collections.abc import Mapping

from bot.flows.base import HandoffReason
from storage.records import HandoffStatus

STATUS_WORDS: Mapping[HandoffStatus, tuple[str, str]] = {
    HandoffStatus.WAITING: ("等待中", "waiting"),
    HandoffStatus.CLAIMED: ("处理中", "in progress"),
    HandoffStatus.WAITING_CUSTOMER: ("等待客户回复", "waiting for the customer"),
    HandoffStatus.RESOLVED: ("已结束", "resolved"),
    HandoffStatus.RETURNED: ("已交还机器人", "handed back to the bot"),
    HandoffStatus.CANCELLED: ("已取消", "cancelled"),
    HandoffStatus.EXPIRED: ("已过期", "expired"),
}

# {n}: how many times the check failed
REASON_WORDS: Mapping[HandoffReason, tuple[str, str]] = {
    HandoffReason.ASKED: ("客户要求人工", "asked for a person"),
    HandoffReason.VERIFY_FAILED: ("核对失败 {n} 次", "verification failed {n} times"),
    HandoffReason.NOT_UNDERSTOOD: ("机器人未能理解", "the bot did not understand"),
    HandoffReason.ORDER_NOT_FOUND: ("找不到订单", "order not found"),
    HandoffReason.ORDER_NOT_SYNCED: ("订单迟迟未同步", "the order never synced"),
    HandoffReason.NO_CONTACT: ("没有可分配的客服", "no contact to assign"),
    HandoffReason.NO_WAY_TO_ADD: ("客服无法被扫码添加", "the contact cannot be added"),
    HandoffReason.CANNOT_VERIFY: ("订单缺少核对所需信息", "the order cannot be verified"),
}


def say_status(status: str) -> tuple[str, str]:
    """``(zh, en)`` for a stored status; an unknown one is shown as stored."""
    try:
        return STATUS_WORDS[HandoffStatus(status)]
    except ValueError:
        return status, status


def say_reason(reason: str, failures: int = 0) -> tuple[str, str]:
    """``(zh, en)`` for a stored reason; an unknown one is shown as stored."""
    try:
        zh, en = REASON_WORDS[HandoffReason(reason)]
    except ValueError:
        return reason, reason
    return zh.format(n=failures), en.format(n=failures)
