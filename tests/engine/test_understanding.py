"""What the bot reads from a customer message: order number, amount, intent, language.

Every line of the shared utterance corpus must pass; the tables below go well beyond it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from bot.understanding import (
    Intent,
    Understood,
    detect_intent,
    detect_language,
    normalize_text,
    parse_amount,
    parse_order_no,
    understand,
)

_SHARED_CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "utterances.jsonl"
_LOCAL_CORPUS = Path(__file__).resolve().parent / "corpus_utterances.jsonl"


@dataclass(frozen=True)
class Utterance:
    text: str
    kind: str
    value: str | list[str]


def _load_corpus() -> list[Utterance]:
    path = _SHARED_CORPUS if _SHARED_CORPUS.is_file() else _LOCAL_CORPUS
    lines = path.read_text(encoding="utf-8").splitlines()
    return [Utterance(**json.loads(line)) for line in lines if line.strip()]


CORPUS = _load_corpus()


def _fmt(amount: Decimal | None) -> str | None:
    return None if amount is None else f"{amount:.2f}"


# --------------------------------------------------------------------------- corpus


def test_corpus_is_not_empty() -> None:
    assert len(CORPUS) >= 40
    assert {u.kind for u in CORPUS} == {"order_no", "amount", "intent", "order_and_amount"}


@pytest.mark.parametrize("utterance", CORPUS, ids=[u.text for u in CORPUS])
def test_corpus_utterance(utterance: Utterance) -> None:
    text, value = utterance.text, utterance.value
    if utterance.kind == "order_no":
        assert parse_order_no(text) == value
    elif utterance.kind == "amount":
        assert _fmt(parse_amount(text)) == value
    elif utterance.kind == "intent":
        assert detect_intent(text) == Intent(str(value))
    else:
        assert utterance.kind == "order_and_amount"
        assert isinstance(value, list)
        order_no, amount = value
        assert parse_order_no(text) == order_no
        assert _fmt(parse_amount(text)) == amount
        understood = understand(text)
        assert understood.order_no == order_no
        assert _fmt(understood.amount) == amount


# --------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("  ＤＤ２０２５  ", "DD2025"),
        ("订单号：ＤＤ１２３", "订单号:DD123"),
        ("a\u3000\u3000b\n\tc", "a b c"),
        ("￥５６．８０", "¥56.80"),
        ("zero\u200bwidth", "zerowidth"),
        ("٢٠٢٥", "2025"),
        ("", ""),
    ],
)
def test_normalize_text(raw: str, normalized: str) -> None:
    assert normalize_text(raw) == normalized


# --------------------------------------------------------------------------- order numbers


@pytest.mark.parametrize(
    ("text", "order_no"),
    [
        ("jd2025050312345678", "JD2025050312345678"),
        ("TB_2025_0503_1234", "TB202505031234"),
        ("JD 2025 0503 1234 56", "JD20250503123456"),
        ("dd 2025 0503 1234 56", "DD20250503123456"),
        ("PDD-20250503-8888", "PDD202505038888"),
        ("2025.0503.1234.56", "20250503123456"),
        ("ｊｄ－２０２５－０５０３－１２３４", "JD202505031234"),
        ("my order is 20250503123456", "20250503123456"),
        ("Order No. 20250503123456, thanks", "20250503123456"),
        ("No.20250503123456", "20250503123456"),
        ("NO20250503123456", "20250503123456"),
        ("单号 12345678", "12345678"),
        ("订单号 13812345678", "13812345678"),
        ("订单号幺三八零零零零零零零零", "13800000000"),
        ("DD二零二五零五零三一二三四五六", "DD20250503123456"),
        ("二零二五 零五零三 一二三四 五六", "20250503123456"),
        ("〇〇一二三四五六七八", "0012345678"),
        ("订单 DD20250503123456 128.5", "DD20250503123456"),
        ("订单 DD20250503123456 128.5元", "DD20250503123456"),
        ("订单号12345678，100元", "12345678"),
        ("订单12345678一直没到", "12345678"),
        ("2025-05-03 的订单 DD20250503123456", "DD20250503123456"),
        ("好的，我的订单号是DD20250503123456", "DD20250503123456"),
        ("订单 DD20250503123456 转人工", "DD20250503123456"),
        ("1" * 40, "1" * 40),
        ("订单号是 D D 2025 0503 1234 56", "DD20250503123456"),
        ("订单号是D D二零二五零五零三一二三四五六", "DD20250503123456"),
        ("订单编号：JD-2025-0503-8899-01", "JD20250503889901"),
        ("单号是 4200 0012 3420 2505 0312 3456 7890", "4200001234202505031234567890"),
        ("微信支付单号 4200001234202505031234567890", "4200001234202505031234567890"),
        ("商户单号：M2025050312345678", "M2025050312345678"),
        ("order no. DD20250503123456", "DD20250503123456"),
        ("订单 ٢٠٢٥٠٥٠٣١٢٣٤", "202505031234"),
    ],
)
def test_parse_order_no_finds(text: str, order_no: str) -> None:
    assert parse_order_no(text) == order_no


@pytest.mark.parametrize(
    "text",
    [
        "你好",
        "128.50",
        "¥1,280.00",
        "RMB 1,280.00",
        "3千2百元",
        "1",
        "99",
        "1234567",
        "DD1234567",
        "12345678.90",
        "¥20250503123456",
        "2025-05-03",
        "2025.05.03",
        "13812345678",
        "手机 13812345678 订单",
        "一百二十八元五角",
        "1" * 41,
        "",
    ],
)
def test_parse_order_no_rejects(text: str) -> None:
    assert parse_order_no(text) is None


# --------------------------------------------------------------------------- amounts


@pytest.mark.parametrize(
    ("text", "amount"),
    [
        ("￥56.80", "56.80"),
        ("56.8 yuan", "56.80"),
        ("CNY 12", "12.00"),
        ("12 RMB", "12.00"),
        ("rmb1280", "1280.00"),
        ("¥ 1,280", "1280.00"),
        ("１２８．５元", "128.50"),
        ("128元5角", "128.50"),
        ("128块5毛", "128.50"),
        ("128块钱", "128.00"),
        ("3块25", "3.25"),
        ("3元5分", "3.05"),
        ("3元5角6分", "3.56"),
        ("一块五", "1.50"),
        ("两块五毛", "2.50"),
        ("5毛", "0.50"),
        ("五毛钱", "0.50"),
        ("8角", "0.80"),
        ("一百零五元", "105.00"),
        ("一百五十块", "150.00"),
        ("一百五", "150.00"),
        ("三千二百元", "3200.00"),
        ("1.5万元", "15000.00"),
        ("2万", "20000.00"),
        ("十块", "10.00"),
        ("一百二十八", "128.00"),
        ("一百二十八点五", "128.50"),
        ("付了 99", "99.00"),
        ("amount: 56.8", "56.80"),
        ("paid 12.5", "12.50"),
        ("I paid ¥35", "35.00"),
        ("是128.5吧", "128.50"),
        ("大概 99", "99.00"),
        ("这个订单 128.5", "128.50"),
        ("1,280", "1280.00"),
        ("128.505", "128.51"),
        ("1", "1.00"),
        ("一共3件，128元", "128.00"),
        ("原价200元实付150元", "150.00"),
        ("一块蛋糕花了30元", "30.00"),
        ("订单DD20250503123456 金额 66", "66.00"),
        ("交易号 4200001234202505031234567890 付了99块", "99.00"),
        ("10000000元", "10000000.00"),
        ("九毛九", "0.99"),
        ("128块5毛3", "128.53"),
        ("三万二", "32000.00"),
        ("一千二", "1200.00"),
        ("人民币128元", "128.00"),
        ("1280元整", "1280.00"),
        ("1280.00RMB", "1280.00"),
        ("价格是128", "128.00"),
        ("付款金额：¥1,280.00", "1280.00"),
        ("一百二十八块五毛", "128.50"),
        ("12 bucks", "12.00"),
        ("1。", "1.00"),
        # a minus is how a bill shows money spent; a decimal beside the order is its amount
        ("-128.5", "128.50"),
        ("¥-5", "5.00"),
        ("-¥5", "5.00"),
        ("负100元", "100.00"),
        ("订单 DD20250503123456 128.5", "128.50"),
    ],
)
def test_parse_amount_finds(text: str, amount: str) -> None:
    assert _fmt(parse_amount(text)) == amount


@pytest.mark.parametrize(
    "text",
    [
        "你好",
        "DD20250503123456",
        "20250503123456",
        "订单号 12345",
        "0元",
        "0",
        "20000000元",
        "10000000.01",
        "买了3件",
        "第2个",
        "50%",
        "10点",
        "三点",
        "12:30",
        "2025年5月3日",
        "128.5 还是 130",
        "我想问一下物流",
        "万一",
        "1.2.3元",
        "二" * 5000 + "元",
        "9" * 5000,
    ],
)
def test_parse_amount_rejects(text: str) -> None:
    assert parse_amount(text) is None


def test_amount_is_a_decimal_with_two_places() -> None:
    amount = parse_amount("128块5")
    assert isinstance(amount, Decimal)
    assert amount.as_tuple().exponent == -2


# --------------------------------------------------------------------------- intents


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        # hand-off, typed or dictated
        ("我要转人工", Intent.HANDOFF),
        ("转人宫谢谢", Intent.HANDOFF),
        ("专人工", Intent.HANDOFF),
        ("传人工", Intent.HANDOFF),
        ("找珍人", Intent.HANDOFF),
        ("人宫", Intent.HANDOFF),
        ("人工", Intent.HANDOFF),
        ("人工服务", Intent.HANDOFF),
        ("找客服", Intent.HANDOFF),
        ("客服", Intent.HANDOFF),
        ("客服在吗", Intent.HANDOFF),
        ("有人吗", Intent.HANDOFF),
        ("不，转人工", Intent.HANDOFF),
        ("human", Intent.HANDOFF),
        ("Agent please", Intent.HANDOFF),
        ("I want to speak to someone", Intent.HANDOFF),
        ("talk to a humen", Intent.HANDOFF),
        ("customer service", Intent.HANDOFF),
        ("I want a human", Intent.HANDOFF),
        ("Can I speak to a person?", Intent.HANDOFF),
        ("转人供", Intent.HANDOFF),
        ("人工课服", Intent.HANDOFF),
        ("我不要了，转人工", Intent.HANDOFF),
        # restart
        ("重来", Intent.RESTART),
        ("从新开始", Intent.RESTART),
        ("换一个订单", Intent.RESTART),
        ("不对，换个订单", Intent.RESTART),
        ("restart", Intent.RESTART),
        ("Start again", Intent.RESTART),
        ("strat over", Intent.RESTART),
        ("another order", Intent.RESTART),
        ("换个定单", Intent.RESTART),
        ("重新开使", Intent.RESTART),
        # help
        ("怎么用", Intent.HELP),
        ("这个怎么用", Intent.HELP),
        ("我不会用", Intent.HELP),
        ("help", Intent.HELP),
        ("HELP!", Intent.HELP),
        ("?", Intent.HELP),
        ("？", Intent.HELP),
        ("？？", Intent.HELP),
        ("what can you do", Intent.HELP),
        ("How does this work?", Intent.HELP),
        # withdraw consent
        ("取消授权", Intent.WITHDRAW_CONSENT),
        ("撤销同意", Intent.WITHDRAW_CONSENT),
        ("删除我的数据", Intent.WITHDRAW_CONSENT),
        ("请删除我的个人信息", Intent.WITHDRAW_CONSENT),
        ("withdraw consent", Intent.WITHDRAW_CONSENT),
        ("withdraw my consent", Intent.WITHDRAW_CONSENT),
        ("delete my data", Intent.WITHDRAW_CONSENT),
        ("Please delete my data.", Intent.WITHDRAW_CONSENT),
        ("撤回统一", Intent.WITHDRAW_CONSENT),
        ("我要撤回同意", Intent.WITHDRAW_CONSENT),
        # yes
        ("好", Intent.YES),
        ("是", Intent.YES),
        ("对", Intent.YES),
        ("可以", Intent.YES),
        ("嗯", Intent.YES),
        ("嗯嗯", Intent.YES),
        ("好的好的", Intent.YES),
        ("对的", Intent.YES),
        ("确认", Intent.YES),
        ("确认无误", Intent.YES),
        ("我同意", Intent.YES),
        ("好的，谢谢", Intent.YES),
        ("OK", Intent.YES),
        ("Ok!", Intent.YES),
        ("yes", Intent.YES),
        ("Yes please", Intent.YES),
        ("y", Intent.YES),
        ("Y", Intent.YES),
        ("agree", Intent.YES),
        ("１", Intent.YES),
        ("👍", Intent.YES),
        ("[强]", Intent.YES),
        ("同意授权", Intent.YES),
        ("1。", Intent.YES),
        ("①", Intent.YES),
        ("好的😊", Intent.YES),
        # no — negation wins
        ("不同意", Intent.NO),
        ("我不同意", Intent.NO),
        ("不", Intent.NO),
        ("不是", Intent.NO),
        ("不是的", Intent.NO),
        ("否", Intent.NO),
        ("2", Intent.NO),
        ("n", Intent.NO),
        ("N", Intent.NO),
        ("nope", Intent.NO),
        ("No, thanks", Intent.NO),
        ("disagree", Intent.NO),
        ("不对不对", Intent.NO),
        ("好的不对", Intent.NO),
        ("不同意授权", Intent.NO),
    ],
)
def test_detect_intent(text: str, intent: Intent) -> None:
    assert detect_intent(text) == intent


@pytest.mark.parametrize(
    "text",
    [
        "",
        "你好",
        "我想问一下物流",
        "这个账单是什么费用",
        "什么时候退款",
        "谢谢",
        "是我",
        "你是机器人吗",
        "我是客户",
        "人工智能",
        "我本人工作很忙",
        "人工费多少",
        "不要转人工",
        "我不想找客服",
        "不要删除我的信息",
        "谢谢你的帮助",
        "thanks for your help",
        "hello",
        "where is my package",
        "restaurant",
        "好不好",
        "可以吗",
        "是吗",
        "3",
        "11",
        "12",
        "128.50",
        "DD20250503123456",
        "好的，我的订单号是DD20250503123456",
        "ok DD20250503123456",
        "yo",
    ],
)
def test_detect_intent_none(text: str) -> None:
    assert detect_intent(text) is None


def test_long_message_with_order_number_is_not_yes() -> None:
    text = "好的，我的订单号是 DD20250503123456，付了128.5元，麻烦帮我查一下这笔账单是怎么回事"
    assert detect_intent(text) is None
    understood = understand(text)
    assert understood.order_no == "DD20250503123456"
    assert understood.amount == Decimal("128.50")


# --------------------------------------------------------------------------- language


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("你好", "zh"),
        ("转人工", "zh"),
        ("DD2025 订单", "zh"),
        ("ok 好的", "zh"),
        ("ok", "en"),
        ("talk to a human", "en"),
        ("56.8 yuan", "en"),
        ("Ｈｅｌｌｏ", "en"),
        ("order #DD20250503123456 please", "en"),
        ("128.50", None),
        ("¥128.5", None),
        ("DD20250503123456", None),
        # an order number's letters are no language: the reply keeps the customer's language
        ("DD-2025-0503-123456", None),
        ("JD 2025 0503 1234 56", None),
        ("PDD_20250503_8888", None),
        ("my order is 20250503123456", "en"),
        ("RMB 1,280.00", None),
        ("?!", None),
        ("", None),
    ],
)
def test_detect_language(text: str, language: str | None) -> None:
    assert detect_language(text) == language


# --------------------------------------------------------------------------- understand


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", Understood(None, Decimal("1.00"), Intent.YES)),
        ("2", Understood(None, Decimal("2.00"), Intent.NO)),
        ("DD20250503123456", Understood("DD20250503123456", None, None)),
        ("128块5", Understood(None, Decimal("128.50"), None)),
        ("转人工", Understood(None, None, Intent.HANDOFF)),
        (
            "订单 DD20250503123456 转人工",
            Understood("DD20250503123456", None, Intent.HANDOFF),
        ),
        (
            "交易号 2025050322001456781234567890 金额 ¥56.80",
            Understood("2025050322001456781234567890", Decimal("56.80"), None),
        ),
        (
            "order #DD20250503123456, amount RMB 1,280.00",
            Understood("DD20250503123456", Decimal("1280.00"), None),
        ),
        ("我想问一下物流", Understood(None, None, None)),
    ],
)
def test_understand(text: str, expected: Understood) -> None:
    assert understand(text) == expected


def test_understand_agrees_with_the_single_parsers() -> None:
    for utterance in CORPUS:
        understood = understand(utterance.text)
        assert understood.order_no == parse_order_no(utterance.text)
        assert understood.amount == parse_amount(utterance.text)
        assert understood.intent == detect_intent(utterance.text)


def test_understood_is_immutable() -> None:
    understood = understand("1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        understood.intent = None  # type: ignore[misc]


@pytest.mark.parametrize("text", ["sf 1234 567 890", "JD-2025 0101 8888", "yt 9876543210"])
def test_code_prefixes_do_not_switch_to_english(text: str) -> None:
    assert detect_language(text) is None
