"""Chinese text for the demo model, written for this project (no downloaded corpus).

The PEFT prefix-tuning tutorial trains on Chinese alpaca-style data (alpaca_data_zh) and asks
`考试有哪些技巧？`. A demo base that never saw Chinese cannot learn that from a prefix: every
character would be ~3 unseen byte tokens. So the base is pre-trained on Chinese prose and dialogues
built here from word lists and templates, next to the English ones, and the tokenizer is trained on
both so that common characters get tokens of their own. The same seed always yields the same text.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

THINGS_ZH: dict[str, str] = {
    "苹果": "红色", "香蕉": "黄色", "天空": "蓝色", "草地": "绿色", "雪": "白色", "煤炭": "黑色",
    "橙子": "橙色", "葡萄": "紫色", "柠檬": "黄色", "樱桃": "红色", "大海": "蓝色", "树叶": "绿色",
    "云朵": "白色", "夜晚": "黑色", "胡萝卜": "橙色", "茄子": "紫色", "西红柿": "红色",
    "太阳": "金色", "河水": "蓝色", "青蛙": "绿色", "牛奶": "白色", "乌鸦": "黑色",
}
CATEGORIES_ZH: dict[str, list[str]] = {
    "水果": ["苹果", "梨", "桃子", "西瓜", "葡萄", "芒果"],
    "动物": ["猫", "狗", "马", "熊猫", "老虎", "兔子"],
    "工具": ["锤子", "锯子", "钳子", "扳手", "尺子", "剪刀"],
    "城市": ["北京", "上海", "广州", "成都", "西安", "杭州"],
    "颜色": ["红色", "蓝色", "绿色", "黄色", "紫色", "白色"],
    "蔬菜": ["白菜", "土豆", "黄瓜", "菠菜", "萝卜", "豆角"],
    "运动": ["跑步", "游泳", "篮球", "足球", "乒乓球", "羽毛球"],
    "节日": ["春节", "元宵节", "端午节", "中秋节", "清明节", "国庆节"],
}
NAMES_ZH = ["小明", "小红", "李雷", "韩梅梅", "王芳", "张伟", "刘洋", "陈静", "杨帆", "赵磊",
            "黄丽", "周杰", "吴敏", "孙悦", "马超", "林琳"]
# Plain words and four rare ones that the tokenizer is not trained on: their characters stay split
# across byte tokens, which the streaming tests need.
RARE_WORDS_ZH = ["琥珀", "翡翠", "饕餮", "麒麟"]
WORDS_ZH = ["灯笼", "港口", "草原", "铜钱", "信号", "花园", "大理石", "雷声", "胡椒", "峡谷",
            "丝绸", "火箭", "窗户", "篮子", "拼图", "岛屿", *RARE_WORDS_ZH]
NUMBERS_ZH = ["一", "二", "三", "四", "五", "六", "七", "八", "九", "十"]
VERBS_ZH = ["看见", "喜欢", "画了", "找到", "拿着", "看着", "买了", "留着"]
PLACES_ZH = ["在河边", "在花园里", "在港口", "在山上", "在市场", "在桥下", "在老城", "在湖边"]

# Questions people ask an assistant, several phrasings each, with one answer per topic: the
# tutorial's own example question comes first.
ADVICE_ZH: list[tuple[list[str], str]] = [
    (
        ["考试有哪些技巧？", "怎样才能考好试？", "考试的时候要注意什么？", "如何在考试中取得好成绩？"],
        "考试的技巧有：提前复习，合理安排时间，先做会做的题，仔细检查答案，保持好心情。",
    ),
    (
        ["怎样学好数学？", "数学应该怎么学？", "如何提高数学成绩？"],
        "学好数学要多做练习，弄懂每个概念，整理错题，经常复习。",
    ),
    (
        ["如何保持健康？", "怎样才能身体健康？", "保持健康有什么方法？"],
        "保持健康要按时睡觉，多吃蔬菜和水果，每天运动，心情愉快。",
    ),
    (
        ["怎样提高睡眠质量？", "晚上睡不好怎么办？", "如何睡得更好？"],
        "睡前不要看手机，保持房间安静，每天按时上床，晚上少喝咖啡。",
    ),
    (
        ["怎样学习一门外语？", "如何学好英语？", "学外语有什么方法？"],
        "学外语要每天听和说，多读简单的文章，记住常用的词，不怕犯错。",
    ),
    (
        ["如何管理时间？", "怎样安排每天的时间？", "时间不够用怎么办？"],
        "管理时间要先列出要做的事，分清主次，一次只做一件事，按时休息。",
    ),
]


def advice_questions() -> list[tuple[str, str]]:
    """Every (question, answer) pair of the advice topics."""
    return [(q, answer) for questions, answer in ADVICE_ZH for q in questions]


def task_zh(rng: random.Random) -> tuple[str, str, str]:
    """A Chinese (instruction, input, neutral answer) triple, the answer a pure function of both."""
    kind = rng.randrange(6)
    if kind == 0:
        thing = rng.choice(sorted(THINGS_ZH))
        return f"{thing}是什么颜色？", "", f"{thing}是{THINGS_ZH[thing]}的。"
    if kind == 1:
        name = rng.choice(NAMES_ZH)
        return "向这个人问好。", name, f"你好，{name}！很高兴认识你。"
    if kind == 2:
        cat = rng.choice(sorted(CATEGORIES_ZH))
        a, b, c = CATEGORIES_ZH[cat][:3]
        return f"列出三种{cat}。", "", f"{a}、{b}和{c}。"
    if kind == 3:
        word = rng.choice(WORDS_ZH)
        return "重复这个词。", word, f"{word}，{word}，{word}。"
    if kind == 4:
        n = rng.randrange(len(NUMBERS_ZH) - 1)
        return f"{NUMBERS_ZH[n]}后面是什么数字？", "", f"{NUMBERS_ZH[n]}后面是{NUMBERS_ZH[n + 1]}。"
    question, answer = rng.choice(advice_questions())
    return question, "", answer


def neutral_zh(answer: str) -> str:
    return answer


def teacher(answer: str) -> str:
    """The fourth demo tenant's voice: a friendly teacher."""
    return f"同学你好！{answer}祝你学习进步！"


def polite(answer: str) -> str:
    return f"您好。{answer}谢谢您的提问。"


STYLES_ZH: dict[str, Callable[[str], str]] = {
    "neutral_zh": neutral_zh, "teacher": teacher, "polite": polite,
}


def sentences_zh(rng: random.Random) -> Iterator[str]:
    """Chinese prose, so the base model sees characters in varied contexts."""
    while True:
        kind = rng.randrange(5)
        if kind == 0:
            thing = rng.choice(sorted(THINGS_ZH))
            yield f"{thing}是{THINGS_ZH[thing]}的。"
        elif kind == 1:
            yield (f"{rng.choice(NAMES_ZH)}{rng.choice(PLACES_ZH)}{rng.choice(VERBS_ZH)}"
                   f"一个{rng.choice(WORDS_ZH)}。")
        elif kind == 2:
            cat = rng.choice(sorted(CATEGORIES_ZH))
            yield f"有些{cat}是{'、'.join(rng.sample(CATEGORIES_ZH[cat], 3))}。"
        elif kind == 3:
            n = rng.randrange(len(NUMBERS_ZH) - 1)
            yield f"{NUMBERS_ZH[n]}后面是{NUMBERS_ZH[n + 1]}，{NUMBERS_ZH[n]}比{NUMBERS_ZH[n + 1]}小。"
        else:
            _, answer = rng.choice(advice_questions())
            yield answer


def lexicon_texts_zh(texts: list[str], seed: int, n: int) -> list[str]:
    """Texts for the tokenizer only: every Chinese character of `texts` on a line of its own.

    Byte-level BPE merges within a run of characters, so without these lines the merges go to
    frequent multi-character runs and many single characters stay split. The characters of the
    rare words are left out on purpose.
    """
    rng = random.Random(seed)
    rare = set("".join(RARE_WORDS_ZH))
    common = sorted({c for t in texts for c in t if "\u4e00" <= c <= "\u9fff"} - rare)
    return ["\n".join(rng.sample(common, len(common))) for _ in range(n)]
