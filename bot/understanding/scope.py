"""Requests with their scope: is the customer *asking* for a person, or for their data to be
deleted — or only mentioning one, refusing one, or telling what one did?

Each clause (split at punctuation) is read on its own: a request word counts when nothing in
its clause negates it (不用转人工, no need for an agent) or reports on it (人工客服刚才说…,
the agent already fixed it). A complaint or a manager asked for is a request for a person;
so is giving up on the bot (机器人听不懂). Pure functions over normalised text.
"""

from __future__ import annotations

import re
from enum import Enum

from bot.understanding.prefilter import Hint, hint

_CLAUSE_RE = re.compile(r"[，。,.!?！？;；\n~～…]+|\s+(?:but|and|because)\s+|但是|不过|因为")


class Verdict(Enum):
    ASKED = "asked"  # the customer asks for it
    REFUSED = "refused"  # mentioned, and refused or only reported: certainly not a request
    ABSENT = "absent"  # not mentioned


# -- a person --------------------------------------------------------------------------------

_PERSON = (
    r"(?<!本)人工(?!智能|作|资|费|成本|湖|合成|降雨)|真人(?!秀)|活人|工作人员|服务人员|客服(?:人员|同志|小姐|小姐姐|妹妹)?"
    r"|人来|个人(?:来|出来|过来|跟我|处理|帮)|人(?:出来|过来)|主管|经理|领导|负责人|上级|老板|店长"
    r"|rengong|ren\s*gong|kefu|ke\s*fu"
    r"|(?<![a-z])(?:humans?|real\s+person|live\s+person|person|agent|operator|representative|rep"
    r"|manager|supervisor|someone|somebody|staff|customer\s+(?:service|support))(?![a-z])"
)
_PERSON_RE = re.compile(_PERSON, re.IGNORECASE)
_COMPLAINT_RE = re.compile(
    r"投诉|举报|12315|(?<![a-z])(?:complain(?:t|ts)?|file\s+a\s+complaint)(?![a-z])", re.IGNORECASE
)
# giving up on the bot: 机器人听不懂, 不想跟机器说话, stop the bot
_BOT_RE = re.compile(r"机器人?|智能客服|自动回复|(?<![a-z])(?:bot|robot)(?![a-z])", re.IGNORECASE)
_BOT_FED_UP_RE = re.compile(
    r"听不懂|没用|太笨|不想|不要|别|扯|废话|不行|搞不定|答非所问|useless|stupid|not\s+helping"
    r"|don'?t\s+want|stop",
    re.IGNORECASE,
)
_NEGATION_RE = re.compile(
    r"不要|不用|不需要|不想|不必|无需|用不着|别|甭|没说|没要|取消|千万别|不|没"
    r"|bu\s*yong|bu\s*yao|bu\s*xu\s*yao|bie(?![a-z])"
    r"|(?<![a-z])(?:no|not|don'?t|do\s+not|never|without|cancel)(?![a-z])",
    re.IGNORECASE,
)
_NEGATION_AFTER_RE = re.compile(
    r"^[^，。,.!?！？]{0,6}?(?:就?不用|就?不要|不需要|不必|算了|免了|就算了|不用了)"
    r"|^\s*(?:is\s+)?(?:not\s+needed|needed?\s+not|unnecessary)|^\s*needed",
    re.IGNORECASE,
)
_REPORT_RE = re.compile(
    r"刚才|刚刚|已经|上次|之前|昨天|前面|说(?!话)|回复|告诉我|态度|表扬|叫什么|名字|加上了|聊过|弄好|搞定|讲的|说的"
    r"|(?<![a-z])(?:already|told|said|says|mean|meant|earlier|was|were|fixed|helped|replied)(?![a-z])",
    re.IGNORECASE,
)
_ASK_RE = re.compile(
    r"要|找|转|叫|让|请|联系|接|换|来|需要|想|麻烦|能不能|可不可以|可以|帮我|给我|出来|过来|跟我|处理|吗|呢"
    r"|有没有|在吗|在不在|zhuan|zhao|yao(?![a-z])|jiao(?![a-z])"
    r"|(?<![a-z])(?:please|pls|want|need|get|let|talk|speak|connect|transfer|put\s+me|can\s+i"
    r"|may\s+i|could|would|like)(?![a-z])",
    re.IGNORECASE,
)
_BARE_PERSON_RE = re.compile(
    r"^(?:人工|真人|客服|人工客服|rengong|kefu|human|agent|manager|supervisor|operator)"
    r"(?:please|pls|吧|啊|呢|!|！)?$",
    re.IGNORECASE,
)


def _clauses(text: str) -> list[str]:
    return [c.strip() for c in _CLAUSE_RE.split(text) if c and c.strip()]


_A_NOT_A_RE = re.compile(r"(.)[不没]\1")  # 能不能, 有没有, 可不可以: a question, not a no


def _negated_before(clause: str, start: int) -> bool:
    window = _A_NOT_A_RE.sub("", clause[max(0, start - 16) : start])
    return _NEGATION_RE.search(window) is not None


# Nothing that could make a clause ASKED or REFUSED anywhere: ABSENT without reading clauses.
_PERSON_HINT = hint(_PERSON_RE, _COMPLAINT_RE, _BOT_RE, _BARE_PERSON_RE)


def _hinted(found: Hint, text: str) -> bool:
    """``found`` in the text as written or with its spaces taken out: a bare request for a
    person is read without spaces ("hu man", "客 服")."""
    return found.found_in(text) or (" " in text and found.found_in(text.replace(" ", "")))


def person_verdict(text: str) -> Verdict:
    """Whether the message asks for a person (an agent, a manager, or with a complaint)."""
    if not _hinted(_PERSON_HINT, text):
        return Verdict.ABSENT
    seen = False
    for clause in _clauses(text):
        if _BARE_PERSON_RE.match(clause.replace(" ", "")):
            return Verdict.ASKED
        complaint = _COMPLAINT_RE.search(clause)
        if (
            complaint is not None
            and not _negated_before(clause, complaint.start())
            and not _REPORT_RE.search(clause[: complaint.start()])
        ):
            return Verdict.ASKED
        if _BOT_RE.search(clause) and _BOT_FED_UP_RE.search(clause):
            return Verdict.ASKED
        for person in _PERSON_RE.finditer(clause):
            seen = True
            if _negated_before(clause, person.start()):
                continue
            if _NEGATION_AFTER_RE.search(clause[person.end() :]):
                continue
            before = clause[: person.start()]
            after = clause[person.end() :]
            if _REPORT_RE.search(clause) and not _ASK_RE.search(before):
                continue
            rest = _PERSON_RE.sub("", before + after).strip()
            if _ASK_RE.search(before) or _ASK_RE.search(after) or len(rest) <= 4:
                return Verdict.ASKED  # 人工服务, 找人工: the request is (nearly) all there is
    return Verdict.REFUSED if seen else Verdict.ABSENT


# -- deleting my data --------------------------------------------------------------------------

_DATA = r"(?:个人)?(?:信息|资料|数据|记录|隐私|手机号|号码|账户|账号|东西|档案)"
_DELETE = r"(?:删除|删掉|删了|删|清除|清掉|清空|抹掉|销毁|移除|注销|去掉)"
_WITHDRAW_PATTERNS = (
    rf"{_DELETE}[^，。,.]{{0,8}}{_DATA}",
    rf"{_DATA}[^，。,.]{{0,12}}(?:{_DELETE}|不要留|别留|不要存)",
    rf"把我[^，。,.]{{0,10}}{_DELETE}|{_DELETE}我(?:的)?(?:数据|信息|资料)?$",
    rf"(?:不想|不要|别|不让|不同意|不允许|不准)[^，。,.]{{0,6}}(?:再)?"
    rf"(?:保存|留着|留|存|使用|用|收集|保留)[^，。,.]{{0,6}}{_DATA}",
    rf"(?:不想|不要|别|不让)[^，。,.]{{0,8}}{_DATA}[^，。,.]{{0,4}}(?:留|存|保存|保留)",
    rf"(?:帮我|给我)[^，。,.]{{0,4}}{_DELETE}了?吧?$",
    r"(?:撤回|撤销|收回|取消|撤掉)[^，。,.]{0,8}(?:同意|授权)|不再同意|不授权了|不同意了|反悔了",
    r"(?<![a-z])(?:no\s+longer\s+consent|withdraw\s+(?:my\s+)?consent|revoke"
    r"|delete\s+(?:everything|all|my)|erase\s+(?:everything|all|my)|forget\s+me"
    r"|stop\s+(?:using|storing|keeping)\s+my)(?![a-z])",
)
_WITHDRAW_RE = re.compile("|".join(f"(?:{p})" for p in _WITHDRAW_PATTERNS), re.IGNORECASE)
# 不要删除我的信息: a negated deletion is the opposite of a request to delete
_NEGATED_DELETE_RE = re.compile(
    rf"(?:不要|不用|别|不想|不能|千万别|没有?|不)(?:想|要)?(?:{_DELETE}|撤销|撤回|取消|收回)"
    r"|(?<![a-z])(?:don'?t|do\s+not|never|not)\s+(?:delete|erase|remove|revoke|withdraw)",
    re.IGNORECASE,
)
_ORDER_WORD_RE = re.compile(r"订单|单子|消息|聊天记录(?!和)|商品|购物车|地址")
# not ours to delete, or not a request: 商家把我删了, 删除的记录, 我注销了淘宝账号, 会删掉吗
_NOT_A_DELETE_REQUEST_RE = re.compile(
    rf"(?:商家|客服|卖家|店家|他|她|对方|好友)[^，。,.]{{0,3}}把我|{_DELETE}的"
    r"|淘宝|京东|支付宝|拼多多|美团|抖音|会[^，。,.]{0,10}吗|会不会"
)


_WITHDRAW_HINT = hint(_WITHDRAW_RE)


def withdraw_verdict(text: str) -> Verdict:
    """Whether the customer withdraws consent or asks for their data to be deleted."""
    if not _WITHDRAW_HINT.found_in(text):
        return Verdict.ABSENT
    for clause in _clauses(text):
        match = _WITHDRAW_RE.search(clause)
        if match is None:
            continue
        if _NEGATED_DELETE_RE.search(clause):
            return Verdict.REFUSED
        if _NOT_A_DELETE_REQUEST_RE.search(clause):
            continue
        if _ORDER_WORD_RE.search(clause) and not re.search(_DATA, clause):
            continue  # 我把订单删了怎么办: about an order, not their data
        return Verdict.ASKED
    return Verdict.ABSENT


# Either verdict can be other than ABSENT only where this is found.
_SCOPE_HINT = hint(_PERSON_RE, _COMPLAINT_RE, _BOT_RE, _BARE_PERSON_RE, _WITHDRAW_RE)


def in_scope(text: str) -> bool:
    """False when neither verdict can be other than ABSENT: one quick search instead of two."""
    return _hinted(_SCOPE_HINT, text)
