"""Intents: a person, restart, help, withdraw/delete, yes, no, my orders — patterns, pinyin
for voice homophones, fuzzy English, and the scope of a person or deletion request."""

from __future__ import annotations

import re
from enum import StrEnum
from functools import lru_cache

from rapidfuzz import fuzz, process

from bot.understanding.normalize import _SPACE_RE
from bot.understanding.pinyin import char_pinyin, run_pinyin
from bot.understanding.prefilter import hint
from bot.understanding.scope import Verdict, in_scope, person_verdict, withdraw_verdict


class Intent(StrEnum):
    """What a message asks the bot to do, besides giving it an order number or an amount."""

    HANDOFF = "handoff"
    RESTART = "restart"
    HELP = "help"
    WITHDRAW_CONSENT = "withdraw_consent"
    YES = "yes"
    NO = "no"
    MY_ORDERS = "my_orders"  # 查订单: list the orders this WeChat paid for


_NEGATED_RE = re.compile(
    r"(?:不要|不用|不需要|不想|无需|不必|别|不|don'?t|do not|no need to|never|not)"
    r"\s*(?:转|找|要|接|叫|联系|呼叫|跟|和|与|去)?\s*$",
    re.IGNORECASE,
)
_STRONG_PATTERNS: tuple[tuple[Intent, re.Pattern[str]], ...] = (
    (
        Intent.WITHDRAW_CONSENT,
        re.compile(
            r"(?:撤回|撤销|取消|收回|撤掉)(?:我的|对)?(?:隐私)?(?:同意|授权)|不再同意"
            r"|(?:删除|删掉|清除|清空|抹掉|销毁)掉?(?:我的|我)?(?:所有|全部)?的?(?:个人)?"
            r"(?:信息|数据|资料|隐私)"
            r"|\b(?:withdraw|revoke|cancel|retract|take\s+back)\s+(?:my\s+|the\s+)?"
            r"(?:consent|agreement|authori[sz]ation|permission)\b"
            r"|\b(?:delete|erase|remove|wipe|clear)\s+(?:all\s+)?(?:of\s+)?my\s+(?:personal\s+)?"
            r"(?:data|info|information|details|records?)\b|\bforget\s+me\b",
            re.IGNORECASE,
        ),
    ),
    (
        Intent.HANDOFF,
        re.compile(
            r"(?<!本)人工(?!智能|作|资|费|成本|湖|合成|降雨)|真人(?!秀)|活人|有人吗|有没有人"
            r"|(?:找|转|要|联系|接|叫|呼叫)(?:一下|个)?客服|客服(?:人员)?(?:在吗|在不在)"
            r"|\b(?:humans?|real\s+person|live\s+person|agent|operator|representative"
            r"|customer\s+(?:service|support)|someone\s+real)\b"
            r"|\b(?:talk|speak|chat)\s+(?:to|with)\s+(?:someone|somebody|anyone|staff"
            r"|(?:a\s+)?(?:person|manager|real\s+person))\b",
            re.IGNORECASE,
        ),
    ),
    (
        Intent.RESTART,
        re.compile(
            r"重新开始|重新来|重来|从头(?:开始|来|再来)|重头来|重新(?:查|输入|填|发)|换(?:一个|个|一)?(?:订单|单)"
            r"|再来一(?:次|遍)|返回首页|回到(?:开始|开头|第一步)|从第一步|(?:还有|另外|另)(?:一个|一笔|一单)"
            r"(?:订单|单子|账单)?(?:要查)?|(?:查|看)(?:一下)?(?:别的|另外的?|其他的?)(?:订单|单子|账单)"
            r"|另外一个单子|\b(?:new|one\s+more|next)\s+order\b"
            r"|换一笔|再查一(?:个|单|笔)|查另一|另(?:外)?一个订单|重置"
            r"|\bstart\s+(?:over|again|afresh)\b|\brestart\b|\breset\b|\bbegin\s+again\b"
            r"|\bstart\s+from\s+(?:the\s+)?(?:beginning|scratch)\b"
            r"|\b(?:another|different|other)\s+order\b",
            re.IGNORECASE,
        ),
    ),
    (
        Intent.MY_ORDERS,
        re.compile(
            r"^(?:请|请帮我|帮我|麻烦|我要|我想|想)?(?:查|看|找|查询|查看|查找)(?:一下|下)?"
            r"(?:我的|我)?(?:最近的?)?(?:订单|账单|单子)(?:列表)?[吧呢啊呀哦嘛]?$"
            r"|^(?:我的|最近的?)(?:订单|账单)(?:列表)?$|^订单(?:查询|列表)$"
            r"|^(?:(?:check|show|see|list|find)\s+)?(?:me\s+)?my\s+(?:recent\s+)?orders$",
            re.IGNORECASE,
        ),
    ),
    (
        Intent.HELP,
        re.compile(
            r"帮助|怎么用|咋用|怎样用|如何用|怎么使用|如何使用|怎样使用|怎么操作|如何操作|不会用"
            r"|怎么弄|咋弄|咋整|怎么搞|怎么做|该怎么办|怎么办|下一步|做啥|干啥|干嘛用|干什么用|不会弄"
            r"|(?:该|要|需要)发(?:什么|啥)|发(?:什么|啥)给你|(?:在)?哪(?:里|儿)?(?:看|找|查)|什么是"
            r"|看不懂|不懂|不知道(?:怎么|咋|该)|说明书|指南|介绍|能帮我(?:做|干)(?:什么|啥)"
            r"|\b(?:how\s+do\s+i|what\s+do\s+i|where\s+(?:do|can)\s+i|what\s+is\s+(?:a|an|the)?)\b"
            r"|使用说明|使用方法|操作说明|用法|能做什么|能干什么|能干嘛|可以做什么|有什么功能"
            r"|\bhelp\b|\bhow\s+(?:do|does|can|should)\s+(?:i|you|it|this|we)\s+(?:use|work)\b"
            r"|\bhow\s+to\s+use\b|\bwhat\s+can\s+you\s+do\b|\binstructions?\b|\busage\b|\bmenu\b",
            re.IGNORECASE,
        ),
    ),
)
_THANKS_FOR_HELP_RE = re.compile(
    r"(?:谢谢|感谢|多谢).{0,6}帮助|thank(?:s|\s+you)\b.{0,20}\bhelp\b", re.IGNORECASE
)
# Whole-message phrases: too short or too common to look for inside a sentence.
_WHOLE_PHRASES: dict[str, Intent] = {
    "客服": Intent.HANDOFF,
    "人工": Intent.HANDOFF,
    "说明": Intent.HELP,
    "菜单": Intent.HELP,
    "指南": Intent.HELP,
    "教程": Intent.HELP,
    "求助": Intent.HELP,
    "帮帮我": Intent.HELP,
    "帮忙": Intent.HELP,
    "功能": Intent.HELP,
    "再来": Intent.RESTART,
    "换一个": Intent.RESTART,
    "换个": Intent.RESTART,
    "注销": Intent.WITHDRAW_CONSENT,
}
_QUESTION_ONLY_RE = re.compile(r"[?¿]+")
_WHOLE_FILLER_RE = re.compile(
    r"^(?:我要|我想|我需要|请|请帮我|帮我|给我|麻烦|麻烦你)+|(?:啊|呀|吧|呢|哦|啦|了|嘛|在吗|谢谢)+$"
)
_WHOLE_FILLER_HINT = hint(_WHOLE_FILLER_RE)

# Voice recognition writes homophones (转人宫, 从新开始): compare by toneless pinyin.
_PINYIN_PHRASES: dict[str, Intent] = {
    "转人工": Intent.HANDOFF,
    "人工客服": Intent.HANDOFF,
    "人工服务": Intent.HANDOFF,
    "找人工": Intent.HANDOFF,
    "要人工": Intent.HANDOFF,
    "找真人": Intent.HANDOFF,
    "真人客服": Intent.HANDOFF,
    "转客服": Intent.HANDOFF,
    "找客服": Intent.HANDOFF,
    "联系客服": Intent.HANDOFF,
    "重新开始": Intent.RESTART,
    "换个订单": Intent.RESTART,
    "换一个订单": Intent.RESTART,
    "从头开始": Intent.RESTART,
    "使用说明": Intent.HELP,
    "撤回同意": Intent.WITHDRAW_CONSENT,
    "撤销同意": Intent.WITHDRAW_CONSENT,
    "取消同意": Intent.WITHDRAW_CONSENT,
    "撤回授权": Intent.WITHDRAW_CONSENT,
    "取消授权": Intent.WITHDRAW_CONSENT,
    "删除我的信息": Intent.WITHDRAW_CONSENT,
    "删除我的数据": Intent.WITHDRAW_CONSENT,
}
# Two-syllable phrases match by sound only when they are (nearly) the whole message.
_PINYIN_SHORT_PHRASES: dict[str, Intent] = {
    "人工": Intent.HANDOFF,
    "真人": Intent.HANDOFF,
    "客服": Intent.HANDOFF,
    "帮助": Intent.HELP,
    "重来": Intent.RESTART,
}
_SHORT_PHRASE_MAX_CJK = 4
_PINYIN_MAX_CJK = 20
_FUZZY_MAX_CJK = 8
_FUZZY_CUTOFF = 88.0
_FUZZY_NEGATORS = frozenset("不别没无")
_HAN_RUN_RE = re.compile(r"[\u4e00-\u9fff]+")
_DIGIT_RE = re.compile(r"\d")

_ENGLISH_FUZZY_PHRASES: dict[str, Intent] = {
    "talk to a human": Intent.HANDOFF,
    "speak to someone": Intent.HANDOFF,
    "talk to someone": Intent.HANDOFF,
    "real person": Intent.HANDOFF,
    "customer service": Intent.HANDOFF,
    "restart": Intent.RESTART,
    "start over": Intent.RESTART,
    "start again": Intent.RESTART,
    "withdraw consent": Intent.WITHDRAW_CONSENT,
    "delete my data": Intent.WITHDRAW_CONSENT,
}
_ENGLISH_FUZZY_MIN_LEN = 6


_PinyinKey = tuple[tuple[str, ...], str, Intent]  # folded syllables, the phrase, its intent


_KeyIndex = dict[str, tuple[_PinyinKey, ...]]  # first syllable → keys starting with it


@lru_cache(maxsize=1)
def _pinyin_keys() -> tuple[_KeyIndex, _KeyIndex, dict[str, Intent]]:
    """(long keys, long and short keys, joined long keys for fuzzy scoring), built on first use."""

    def variants(phrases: dict[str, Intent]) -> list[_PinyinKey]:
        keys: dict[tuple[str, ...], _PinyinKey] = {}
        for phrase, intent in phrases.items():
            for syllables in (run_pinyin(phrase), tuple(char_pinyin(ch) for ch in phrase)):
                keys.setdefault(syllables, (syllables, phrase, intent))
        return list(keys.values())

    def index(keys: list[_PinyinKey]) -> _KeyIndex:
        by_first: dict[str, list[_PinyinKey]] = {}
        for key in keys:
            by_first.setdefault(key[0][0], []).append(key)
        return {first: tuple(group) for first, group in by_first.items()}

    long_keys = variants(_PINYIN_PHRASES)
    short_keys = variants(_PINYIN_SHORT_PHRASES)
    joined = {"".join(syllables): intent for syllables, _, intent in long_keys}
    return index(long_keys), index(long_keys + short_keys), joined


def _is_negated(text: str, start: int) -> bool:
    return _NEGATED_RE.search(text[max(0, start - 12) : start]) is not None


_STRONG_HINT = hint(*(pattern for _, pattern in _STRONG_PATTERNS))
_STRONG_HINTS = tuple(hint(pattern) for _, pattern in _STRONG_PATTERNS)


def _pattern_intent(text: str) -> Intent | None:
    if not _STRONG_HINT.found_in(text):
        return None  # none can match: one quick search instead of five
    for (intent, pattern), pattern_hint in zip(_STRONG_PATTERNS, _STRONG_HINTS, strict=True):
        if not pattern_hint.found_in(text):
            continue  # cannot match: a quick search instead of the whole pattern
        for match in pattern.finditer(text):
            if _is_negated(text, match.start()):
                continue
            if intent is Intent.HELP and _THANKS_FOR_HELP_RE.search(text):
                continue
            return intent
    return None


def _pinyin_intent(text: str) -> Intent | None:
    runs: list[str] = _HAN_RUN_RE.findall(text)
    cjk_count = sum(map(len, runs))
    if not cjk_count or cjk_count > _PINYIN_MAX_CJK:
        return None
    long_keys, all_keys, joined_keys = _pinyin_keys()
    keys = all_keys if cjk_count <= _SHORT_PHRASE_MAX_CJK else long_keys
    starts: list[int] = []  # where each run starts, found when a key is
    for number, run in enumerate(runs):
        syllables = run_pinyin(run)
        # each key is looked up through its first syllable
        for index, first in enumerate(syllables):
            for key, phrase, intent in keys.get(first, ()):
                if syllables[index : index + len(key)] != key:
                    continue
                starts = starts or [found.start() for found in _HAN_RUN_RE.finditer(text)]
                at = starts[number] + index
                # The literal phrase was already judged by the patterns (人工智能 is not 人工).
                if text.startswith(phrase, at) or _is_negated(text, at):
                    continue
                return intent
    if cjk_count > _FUZZY_MAX_CJK or _FUZZY_NEGATORS & set(text) or _DIGIT_RE.search(text):
        return None
    spoken = "".join("".join(run_pinyin(run)) for run in runs)
    near = _keys_near_in_length().get(len(spoken))
    if not near:
        return None  # too short or too long to be near any key
    best = process.extractOne(spoken, near, scorer=fuzz.ratio, score_cutoff=_FUZZY_CUTOFF)
    return joined_keys[best[0]] if best else None


@lru_cache(maxsize=1)
def _keys_near_in_length() -> dict[int, tuple[str, ...]]:
    """For a length of spoken text, the joined keys it could score ``_FUZZY_CUTOFF`` against
    (in their order): fuzz.ratio is at most 100·(1 − |a − b| / (a + b)) for lengths a and b,
    so the others cannot, and extractOne's answer is the same without them."""
    joined = list(_pinyin_keys()[2])
    near: dict[int, tuple[str, ...]] = {}
    for length in range(3 * max(map(len, joined)) + 1):
        keys = tuple(
            key
            for key in joined
            if 100 * (length + len(key) - abs(length - len(key)))
            >= _FUZZY_CUTOFF * (length + len(key))
        )
        if keys:
            near[length] = keys
    return near


def _english_fuzzy_intent(words: str) -> Intent | None:
    if len(words) < _ENGLISH_FUZZY_MIN_LEN or not words.isascii():
        return None
    best = process.extractOne(
        words, _ENGLISH_FUZZY_PHRASES.keys(), scorer=fuzz.ratio, score_cutoff=_FUZZY_CUTOFF
    )
    return _ENGLISH_FUZZY_PHRASES[best[0]] if best else None


# fmt: off
_YES_TOKENS = (
    "同意", "我同意", "好", "好的", "好滴", "好哒", "好嘞", "好吧", "好呀", "行", "行的",
    "可以", "可以的", "是", "是的", "是滴", "没错", "对", "对的", "对滴", "我可以", "我确认",
    "我愿意", "我接受", "对头", "嗯", "恩", "嗯呢", "确认", "确认无误", "无误", "确定", "正确",
    "没问题", "就是", "就是这个", "是这个", "接受", "愿意", "当然", "当然可以", "授权", "允许",
    "就是它", "是我的", "中", "thats mine", "its mine", "mine",
    "ok", "okay", "okey", "okk", "kk", "yes", "y", "yeah", "yep", "yup", "ya", "sure", "agree",
    "i agree", "agreed", "correct", "right", "thats right", "that is right", "confirm", "confirmed",
    "fine", "alright", "of course", "absolutely", "i do", "sounds good", "go ahead",
    "yes please",
)
_NO_TOKENS = (
    "不", "不对", "不是", "不是的", "不是这个", "不同意", "我不同意", "否", "不要", "不用",
    "不用了", "不行", "不可以", "不好", "不愿意", "不接受", "错", "错了", "不正确", "拒绝",
    "不是我的", "不不不", "不不", "没有的事", "否认", "并不是", "搞错了", "弄错了", "你弄错了",
    "我没买过这个", "没买过", "我不认识这个订单", "不认识", "thats not it", "not it",
    "thats not mine", "not mine",
    "算了", "取消", "没有", "不需要", "不了", "别", "no", "n", "nope", "nah", "not", "disagree",
    "i disagree", "dont", "do not", "wrong", "incorrect", "cancel", "decline", "refuse",
    "reject", "not this", "not this one", "no thanks", "not right", "not correct",
)
_FILLER_TOKENS = (
    "的", "啊", "呀", "吧", "呢", "哦", "噢", "喔", "哈", "啦", "了", "嘛", "呐", "哎", "这个",
    "那个", "这个订单", "这单", "这笔", "订单", "谢谢", "谢啦", "多谢", "谢谢你", "please",
    "pls", "plz", "thanks", "thank you", "thx", "ty", "it", "is", "this", "one", "that", "the",
    "order", "its", "这", "单子", "这单子", "这个单子",
)
# fmt: on
_YES_NO_KIND: dict[str, Intent | None] = {
    **dict.fromkeys(_FILLER_TOKENS),
    **dict.fromkeys(_YES_TOKENS, Intent.YES),
    **dict.fromkeys(_NO_TOKENS, Intent.NO),
}
# Longest first, so 不同意 is read before 不; an ASCII word must end at a word boundary ("y" is
# not the start of "yo").
_YES_NO_TOKEN_RE = re.compile(
    r" *("
    + "|".join(
        re.escape(token) + (r"(?![a-z0-9])" if token.isascii() else "")
        for token in sorted(_YES_NO_KIND, key=len, reverse=True)
    )
    + r") *"
)
_YES_NO_FIRST_CHARS = frozenset(token[0] for token in _YES_NO_KIND)
_YES_NO_MAX_LEN = 24
_A_NOT_A_RE = re.compile(r"(?<!不)([^不])不\1")  # 好不好, 对不对: a question, neither yes nor no
_EMOJI_WORDS = {
    "[强]": " 好 ",
    "[ok]": " ok ",
    "[弱]": " 不 ",
    "👍": " 好 ",
    "👌": " ok ",
    "✅": " 好 ",
    "👎": " 不 ",
    "❌": " 不 ",
    "🙅": " 不 ",
}
_EMOJI_RE = re.compile("|".join(re.escape(e) for e in _EMOJI_WORDS))
_EMOJI_HINT = hint(_EMOJI_RE)
_PUNCT_RE = re.compile(r"[^\w\s]|_")


def _yes_no_intent(words: str) -> Intent | None:
    """YES or NO when the message is nothing but yes/no words (and politeness); NO wins."""
    if not words or words[0] not in _YES_NO_FIRST_CHARS:
        return None  # no token starts here (words has no leading space)
    if len(words) > _YES_NO_MAX_LEN or _A_NOT_A_RE.search(words):
        return None
    yes = no = False  # (two flags: hashing an Intent costs a Python call)
    pos = 0
    while pos < len(words):
        match = _YES_NO_TOKEN_RE.match(words, pos)
        if match is None:
            return None
        kind = _YES_NO_KIND[match.group(1)]
        yes, no = yes or kind is Intent.YES, no or kind is Intent.NO
        pos = match.end()
    if no:
        return Intent.NO
    return Intent.YES if yes else None


def _intent_words(text: str) -> str:
    """Lower-case, emoji mapped to words, punctuation dropped, apostrophes glued (don't)."""
    text = text.lower()
    if _EMOJI_HINT.found_in(text):
        text = _EMOJI_RE.sub(lambda m: _EMOJI_WORDS[m.group()], text)
    text = text.replace("'", "").replace("’", "")
    return _SPACE_RE.sub(" ", _PUNCT_RE.sub(" ", text)).strip()


def _detect_intent(text: str) -> Intent | None:
    if not text:
        return None
    if in_scope(text):
        person, withdraw = person_verdict(text), withdraw_verdict(text)
    else:  # neither a person nor a deletion mentioned
        person = withdraw = Verdict.ABSENT
    intent = _detect_intent_unscoped(text, person, withdraw)
    if intent is Intent.HANDOFF and person is Verdict.REFUSED:
        return None  # a person mentioned, refused or reported on: not asked for
    if intent is Intent.WITHDRAW_CONSENT and withdraw is Verdict.REFUSED:
        return None
    return intent


def _detect_intent_unscoped(text: str, person: Verdict, withdraw: Verdict) -> Intent | None:
    if text[0] in "?¿" and _QUESTION_ONLY_RE.fullmatch(text):
        return Intent.HELP
    words = _intent_words(text)
    if words in ("1", "2"):
        return Intent.YES if words == "1" else Intent.NO
    if withdraw is Verdict.ASKED:
        return Intent.WITHDRAW_CONSENT
    if person is Verdict.ASKED:
        return Intent.HANDOFF
    lowered = text.lower()
    if intent := _pattern_intent(lowered):
        return intent
    core = words.replace(" ", "")
    if _WHOLE_FILLER_HINT.found_in(core):
        core = _WHOLE_FILLER_RE.sub("", core)
    if intent := _WHOLE_PHRASES.get(core):
        return intent
    if intent := _pinyin_intent(lowered):
        return intent
    if intent := _yes_no_intent(words):
        return intent
    return _english_fuzzy_intent(words)
