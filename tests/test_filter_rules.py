"""The quality rules one by one on crafted records, their parameters, the registry and apply_rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from itkit.errors import UsageError
from itkit.filters import (
    DEFAULT_RULES,
    PARAM_OWNERS,
    RULES,
    AlternationRule,
    EmptyRule,
    LanguageRule,
    LengthRule,
    NonTextRule,
    PlaceholderRule,
    RefusalRule,
    Rule,
    apply_rules,
    build_rules,
    check_record,
    describe_rules,
)
from itkit.filters.rules import placeholder_key
from itkit.records import Record, Turn

TIKTOKEN_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "tiktoken"


def rec(instruction: str, output: str | None, input: str = "", id: str = "r", system: str | None = None) -> Record:
    return Record.single_turn(id, instruction, output, input=input, system=system)


def conv(*texts: str, input: str = "", id: str = "c") -> Record:
    """A validated conversation: texts alternate user, assistant, user..."""
    roles = ["user", "assistant"]
    turns = [Turn(role=roles[i % 2], content=t) for i, t in enumerate(texts)]
    return Record(id=id, turns=turns, input=input)


# ---------------------------------------------------------------------------
# empty
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "record, reason",
    [
        (rec("Say hi", ""), "response is empty"),
        (rec("Say hi", "   \n\t"), "response is empty"),
        (rec("Say hi", "\u200b\ufeff "), "response is empty"),  # invisible characters only
        (rec("", "Hello"), "instruction is empty"),
        (rec("  ", "Hello", input="Some context"), "instruction is empty"),  # an input does not replace the task
        (conv("Hi", "Hello!", "And now?", ""), "turn 4 (assistant) is empty"),
        (conv("Hi", "Hello!", " ", "Answer"), "turn 3 (user) is empty"),
    ],
)
def test_empty_removes(record, reason):
    assert EmptyRule().check(record) == reason


@pytest.mark.parametrize(
    "record",
    [
        rec("Say hi", "Hi"),
        rec("Say hi", "0"),  # a one-character answer is not empty
        rec("Summarise", "Short.", input=""),
        rec("Say hi", None),  # no response at all: alternation's case, not empty's
        conv("", "x", "Next question", "Answer"),  # an empty EARLIER turn: alternation's case
    ],
)
def test_empty_keeps(record):
    assert EmptyRule().check(record) is None


# ---------------------------------------------------------------------------
# placeholder
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, key",
    [
        ("<No Output>", "no output"),
        ("  no_output. ", "no output"),
        ("[NO OUTPUT]", "no output"),
        ("<noinput>", "noinput"),
        ('"N/A"', "n/a"),
        ("No input.", "no input"),
    ],
)
def test_placeholder_key_normalises(text, key):
    assert placeholder_key(text) == key


@pytest.mark.parametrize(
    "record, reason",
    [
        (rec("Give the answer", "<No Output>"), 'response is the placeholder "<No Output>"'),
        (rec("Give the answer", "N/A"), 'response is the placeholder "N/A"'),
        (rec("Give the answer", " n/a. "), 'response is the placeholder "n/a."'),
        (rec("Classify the text", "<noinput>"), 'response is the placeholder "<noinput>"'),  # a marker leaked into an output
        (rec("Summarise the context", "A summary.", input="No input"), 'input is the placeholder "No input"'),
        (rec("Summarise the context", "A summary.", input="<no input>"), 'input is the placeholder "<no input>"'),
        (rec("N/A", "Something"), 'instruction is the placeholder "N/A"'),
        (conv("Hi", "<no output>", "More?", "Sure"), 'turn 2 (assistant) is the placeholder "<no output>"'),
    ],
)
def test_placeholder_removes(record, reason):
    assert PlaceholderRule().check(record) == reason


@pytest.mark.parametrize(
    "record",
    [
        rec("Give the answer", "The value is N/A for this row because it was not measured."),  # not the whole field
        rec("How many moons does Venus have?", "None."),  # "None" is a real answer, not in the default list
        rec("Explain the <noinput> marker", "Alpaca writes <noinput> when a task has no input."),
        # the prompt asks for the placeholder: it is the correct short answer
        rec("Extract the date from the text. Write N/A if there is none.", "N/A", input="We met last week."),
        rec("If the review has no complaint, answer 'No output'.", "No output", input="Great product!"),
    ],
)
def test_placeholder_keeps(record):
    assert PlaceholderRule().check(record) is None


def test_placeholder_requested_exception_can_be_turned_off():
    record = rec("Extract the date. Write N/A if there is none.", "N/A")
    assert PlaceholderRule(keep_requested_placeholders=False).check(record) == 'response is the placeholder "N/A"'


def test_placeholder_requested_exception_needs_the_same_placeholder_as_a_word():
    # "n/a" inside another word is not a request for "N/A"
    assert PlaceholderRule().check(rec("Name the gene SN/AB1's function", "N/A")) is not None


def test_placeholder_custom_list_replaces_the_default():
    rule = PlaceholderRule(placeholders=("none", "<empty>"))
    assert rule.check(rec("List the primes below 2", "None")) == 'response is the placeholder "None"'
    assert rule.check(rec("Q", "[empty]")) is not None  # brackets normalised on both sides
    assert rule.check(rec("Q", "N/A")) is None  # no longer in the list


def test_placeholder_with_padding_longer_than_the_placeholder():
    assert PlaceholderRule().check(rec("Q", "\n\n   <No Output>   \n\n\n\n\n\n\n\n\n\n\n\n")) is not None


# ---------------------------------------------------------------------------
# alternation
# ---------------------------------------------------------------------------


def test_alternation_ends_with_user():
    assert AlternationRule().check(rec("Say hi", None)) == "no response: the record holds only the instruction"
    assert (
        AlternationRule().check(conv("Hi", "Hello", "Are you there?"))
        == "the conversation ends with an unanswered user turn (turn 3)"
    )


def test_alternation_empty_turn_in_the_middle():
    assert AlternationRule().check(conv("Hi", "  ", "Hello?", "Yes")) == (
        "turn 2 (assistant) is empty in the middle of the conversation"
    )
    assert AlternationRule().check(conv("", "Hello", "Hi", "Yes")) == (
        "turn 1 (user) is empty in the middle of the conversation"
    )


def test_alternation_records_built_without_validation():
    broken = Record.model_construct(
        id="x", system=None, input="", metadata={},
        turns=[Turn(role="user", content="a"), Turn(role="user", content="b"), Turn(role="assistant", content="c")],
    )
    assert AlternationRule().check(broken) == (
        "turn 2 is 'user' after 'user'; user and assistant turns must alternate"
    )
    starts_with_assistant = Record.model_construct(
        id="y", system=None, input="", metadata={}, turns=[Turn(role="assistant", content="a")]
    )
    assert "starts with a 'assistant' turn" in AlternationRule().check(starts_with_assistant)
    assert AlternationRule().check(Record(id="z", turns=[])) == "the record has no turns"


@pytest.mark.parametrize(
    "record",
    [
        rec("Say hi", "Hi"),
        conv("Hi", "Hello", "Bye", "Bye!"),
        conv("Hi", "Hello", "Bye", ""),  # the empty FINAL response is empty's case
        rec("Say hi", "Hi", system=""),  # an empty system prompt is fine
    ],
)
def test_alternation_keeps(record):
    assert AlternationRule().check(record) is None


# ---------------------------------------------------------------------------
# non_text
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "record, reason",
    [
        (rec("Summarise this article", "It is about cats.", input="https://example.com/cats?id=3"), 'input is not text: "https://example.com/cats?id=3"'),
        (rec("Summarise these", "x", input="https://a.example/1\nhttps://b.example/2"), "input is not text"),
        (rec("Describe the image", "A cat.", input="<Picture Attached>"), 'input is not text: "<Picture Attached>"'),
        (rec("Describe it", "A cat.", input="[image]"), 'input is not text: "[image]"'),
        (rec("Describe it", "A cat.", input="[Image 1] [Image 2]"), "input is not text"),
        (rec("What is in", "A cat.", input="photo attached"), "input is not text"),
        (rec("Transcribe", "Hello", input="interview_final.mp3"), 'input is not text: "interview_final.mp3"'),
        (rec("Caption", "A cat", input='<img src="cat.png">'), "input is not text"),
        (rec("www.example.com", "That is a website."), 'instruction is not text: "www.example.com"'),
        (conv("Hi", "Hello", "<Picture Attached>", "Nice picture"), 'turn 3 (user) is not text: "<Picture Attached>"'),
    ],
)
def test_non_text_removes(record, reason):
    assert NonTextRule().check(record).startswith(reason)


@pytest.mark.parametrize(
    "record",
    [
        rec("Summarise https://example.com/cats in one line", "Cats."),  # a URL inside text
        rec("Describe this image of a cat in words", "A cat.", input="The cat sits on a mat."),
        rec("Give me the link to the Python docs", "https://docs.python.org/3/"),  # responses are not checked
        # the URL is the data of a text task about URLs
        rec("Extract the domain name from this URL.", "example.com", input="https://www.example.com/path?q=1"),
        rec("Is this a valid hyperlink?", "Yes", input="http://example.org"),
        rec("Translate", "Bonjour", input="Hello"),
    ],
)
def test_non_text_keeps(record):
    assert NonTextRule().check(record) is None


def test_non_text_url_subject_exception_does_not_cover_image_markers():
    record = rec("Extract the URL from the picture", "none", input="<Picture Attached>")
    assert NonTextRule().check(record) is not None


def test_non_text_parameters():
    assert NonTextRule(url_subject_words=()).check(rec("Extract the domain of this URL", "a.com", input="https://a.com")) is not None
    custom = NonTextRule(non_text_patterns=(r"<audio>",))
    assert custom.check(rec("Transcribe", "x", input="<AUDIO>")) is not None
    assert custom.check(rec("Summarise", "x", input="https://example.com")) is None
    assert NonTextRule(non_text_patterns=()).check(rec("Describe", "x", input="[image]")) is None


# ---------------------------------------------------------------------------
# refusal
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "response, kind",
    [
        ("I'm sorry, but I can't help with that request.", "refusal"),
        ("I\u2019m sorry, but I cannot provide that information.", "refusal"),  # curly apostrophe
        ("  **I am sorry, but as an AI language model, I cannot browse the web.**", "refusal"),
        ("I'm afraid I can't do that.", "refusal"),
        ("I cannot fulfill this request.", "refusal"),
        ("I can't assist with creating malware.", "refusal"),
        ("Unfortunately, I am unable to access external links.", "refusal"),
        ("My apologies, but I won't write that.", "refusal"),
        ("I must respectfully decline.", "refusal"),
        ("Sure! As an AI language model, I think the best option is Python.", "boilerplate"),
        ("As a large language model, I do not have feelings.", "boilerplate"),
        ("Here is the summary. I am an AI and cannot verify these claims.", "boilerplate"),
        ("The stock closed higher, as of my last knowledge update in 2021.", "boilerplate"),
    ],
)
def test_refusal_removes(response, kind):
    reason = RefusalRule().check(rec("Do something", response))
    assert reason is not None
    assert reason.startswith("response is a refusal" if kind == "refusal" else "response has assistant boilerplate")


@pytest.mark.parametrize(
    "response",
    [
        "I'm sorry to hear that. Here are some tips that may help you sleep better.",  # an apology is not a refusal
        "The function fails because the list is empty. Sorry, but I can't stress this enough: check inputs.",  # mid-text
        "Dear customer, we are sorry, but we can't ship to your country yet.",  # a requested apology letter
        "I can't help but notice how beautiful the sunset is.",
        "GPT-4 is a large language model trained by OpenAI.",  # mentions a language model, not about itself
        "The phrase 'as an AI' appears in many chatbot answers.",
        "I cannot stress enough how important sleep is.",
    ],
)
def test_refusal_keeps(response):
    assert RefusalRule().check(rec("Write something", response)) is None


def test_refusal_checks_every_assistant_turn_and_names_it():
    record = conv("Hi", "Hello! How can I help?", "Write malware", "I'm sorry, but I can't help with that.")
    assert RefusalRule().check(record) == 'turn 4 (assistant) is a refusal: "I\'m sorry, but I can\'t"'
    # user turns are not responses: a user who writes "as an AI language model" is not boilerplate
    assert RefusalRule().check(rec("Start your answer with 'As an AI language model'", "OK, here goes.")) is None


def test_refusal_parameters():
    rule = RefusalRule(refusal_openings=(r"nope\b",), boilerplate=())
    assert rule.check(rec("Q", "Nope, not doing it.")) is not None
    assert rule.check(rec("Q", "I'm sorry, but I can't.")) is None
    assert rule.check(rec("Q", "As an AI language model, I like it.")) is None
    with pytest.raises(UsageError, match=r"rule 'refusal': boilerplate: invalid regular expression '\(oops'"):
        RefusalRule(boilerplate=("(oops",))


# ---------------------------------------------------------------------------
# length
# ---------------------------------------------------------------------------


def test_length_words_bounds_per_field():
    rule = LengthRule(min_instruction=3, max_response=5, min_input=2)
    assert rule.check(rec("Name a colour please", "Blue")) is None
    assert rule.check(rec("Colour?", "Blue")) == "instruction has 1 word, fewer than min_instruction 3"
    assert rule.check(rec("Name a colour please", "one two three four five six")) == (
        "response has 6 words, more than max_response 5"
    )
    assert rule.check(rec("Name a colour please", "Blue", input="x")) == "input has 1 word, fewer than min_input 2"
    # an absent input is not "too short": inputs are optional
    assert rule.check(rec("Name a colour please", "Blue", input="")) is None


def test_length_bounds_are_inclusive_and_apply_to_every_turn():
    rule = LengthRule(min_response=2, max_response=2)
    assert rule.check(rec("Q", "two words")) is None
    record = conv("Hi there", "Hello you", "And then?", "Fine")
    assert rule.check(record) == "turn 4 (assistant) has 1 word, fewer than min_response 2"


def test_length_tokens(monkeypatch):
    if not TIKTOKEN_DIR.is_dir():
        pytest.skip("../shared/tiktoken is not present")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(TIKTOKEN_DIR))
    rule = LengthRule(max_response=3, length_unit="tokens")
    # 3 words but many tokens
    reason = rule.check(rec("Q", "Antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis floccinaucinihilipilification"))
    assert reason is not None and "tokens, more than max_response 3" in reason
    assert rule.check(rec("Q", "Yes")) is None
    assert LengthRule(max_response=3, length_unit="words").check(rec("Q", "Antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis floccinaucinihilipilification")) is None


@pytest.mark.parametrize(
    "params, message",
    [
        ({}, "rule 'length' needs at least one bound"),
        ({"min_response": 5, "max_response": 2}, r"min_response \(5\) is greater than max_response \(2\)"),
        ({"max_response": -1}, "max_response must be a whole number >= 0"),
        ({"max_response": 2.5}, "max_response must be a whole number >= 0"),
        ({"max_response": 5, "length_unit": "chars"}, "length_unit must be words or tokens"),
    ],
)
def test_length_parameter_errors(params, message):
    with pytest.raises(UsageError, match=message):
        LengthRule(**params)


# ---------------------------------------------------------------------------
# language (a script check)
# ---------------------------------------------------------------------------


def test_language_script_check():
    rule = LanguageRule()  # latin by default
    assert rule.check(rec("Translate to English", "The weather is nice today and I am going for a walk.")) is None
    russian = rec("Расскажи о погоде", "Сегодня хорошая погода, и я иду гулять в парк.")
    assert rule.check(russian).endswith("are latin (mostly cyrillic); min_script_share is 50%")
    assert LanguageRule(scripts=("cyrillic",)).check(russian) is None
    chinese = rec("今天天气怎么样？请详细描述一下", "今天天气很好，阳光明媚，适合出去散步和运动。")
    assert "mostly han" in rule.check(chinese)
    assert LanguageRule(scripts=("cjk",)).check(chinese) is None
    japanese = rec("今日の天気はどうですか？", "今日はとても良い天気で、散歩に行きたいです。")
    assert LanguageRule(scripts=("japanese",)).check(japanese) is None


def test_language_ignores_code_digits_and_short_texts():
    rule = LanguageRule(scripts=("cyrillic",))
    assert rule.check(rec("2+2", "4")) is None  # fewer than min_letters letters: not judged
    code = rec("Напиши функцию сложения на Python", "```python\ndef add(a, b):\n    return a + b\n```")
    assert rule.check(code) is None  # code blocks, digits and symbols do not count
    assert LanguageRule(scripts=("cyrillic",), ignore_code=False).check(code) is not None
    link = rec("Где документация Python?", "Вот ссылка: https://docs.python.org/3/library/functions.html")
    assert rule.check(link) is None


def test_language_share_and_translation_policy():
    translation = rec("Translate into Russian: good morning, my friend", "Доброе утро, мой друг")
    assert LanguageRule(min_script_share=0.5).check(translation) is None  # English letters dominate
    assert LanguageRule(min_script_share=0.9).check(translation) is not None
    assert LanguageRule(scripts="latin, cyrillic", min_script_share=0.9).check(translation) is None


@pytest.mark.parametrize(
    "params, message",
    [
        ({"scripts": ("klingon",)}, "unknown script 'klingon'"),
        ({"scripts": ()}, "scripts is empty"),
        ({"min_script_share": 1.5}, "min_script_share must be a number from 0 to 1"),
        ({"min_letters": -3}, "min_letters must be a whole number"),
    ],
)
def test_language_parameter_errors(params, message):
    with pytest.raises(UsageError, match=message):
        LanguageRule(**params)


# ---------------------------------------------------------------------------
# registry and build_rules
# ---------------------------------------------------------------------------


def test_registry_is_consistent():
    assert list(RULES) == ["empty", "placeholder", "alternation", "non_text", "refusal", "length", "language", "score"]
    assert set(DEFAULT_RULES) <= set(RULES)
    for name, cls in RULES.items():
        assert issubclass(cls, Rule) and cls.name == name
        assert cls.description and "\n" not in cls.description
    # every parameter belongs to exactly one rule, so build_rules(**params) is unambiguous
    owned = [p for cls in RULES.values() for p in cls.parameters()]
    assert len(owned) == len(set(owned)) == len(PARAM_OWNERS)
    described = describe_rules()
    assert [d["name"] for d in described] == list(RULES)
    assert described[5]["parameters"]["length_unit"] == "words"


def test_build_rules_defaults_and_param_driven_additions():
    assert [r.name for r in build_rules()] == list(DEFAULT_RULES)
    rules = build_rules(max_response=100, scripts=("latin",))
    assert [r.name for r in rules] == [*DEFAULT_RULES, "length", "language"]
    assert rules[-2].max_response == 100


def test_build_rules_names_order_and_duplicates():
    rules = build_rules(["refusal", "empty", "refusal"])
    assert [r.name for r in rules] == ["refusal", "empty"]
    assert [r.name for r in build_rules("length, empty", min_response=1)] == ["length", "empty"]


@pytest.mark.parametrize(
    "names, params, message",
    [
        (["empty", "nonsense"], {}, "unknown rule 'nonsense'; valid rules: empty, placeholder, alternation, non_text, refusal, length, language"),
        (None, {"max_words": 5}, "unknown rule parameter 'max_words'; valid parameters: .*max_response"),
        (["empty"], {"max_response": 5}, "'max_response' is a parameter of rule 'length', which is not among the selected rules \\(empty\\)"),
        ([], {}, "no rules selected"),
        (["length"], {}, "rule 'length' needs at least one bound"),
    ],
)
def test_build_rules_errors(names, params, message):
    with pytest.raises(UsageError, match=message):
        build_rules(names, **params)


def test_rule_settings_and_overrides():
    rule = build_rules(["length"], max_response=9)[0]
    assert rule.settings()["max_response"] == 9
    assert rule.overrides() == {"max_response": 9}
    assert PlaceholderRule().overrides() == {}


# ---------------------------------------------------------------------------
# apply_rules
# ---------------------------------------------------------------------------


def _records() -> list[Record]:
    return [
        rec("Say hi", "Hi!", id="0"),
        rec("Give the answer", "<No Output>", id="1"),
        rec("Explain", "I'm sorry, but I can't help with that.", id="2"),
        rec("", "", id="3"),  # empty AND would be other things: counted once, under the first rule
        rec("Name a colour", "Blue", id="4"),
        rec("Say bye", None, id="5"),
    ]


def test_apply_rules_order_counts_and_first_rule_wins():
    run = apply_rules(_records(), build_rules())
    verdicts = list(run)
    assert [v.record.id for v in verdicts] == ["0", "1", "2", "3", "4", "5"]  # input order, every record
    assert [v.index for v in verdicts] == [0, 1, 2, 3, 4, 5]
    assert [(v.record.id, v.rule) for v in verdicts if not v.kept] == [
        ("1", "placeholder"),
        ("2", "refusal"),
        ("3", "empty"),
        ("5", "alternation"),
    ]
    assert run.counts.records == 6 and run.counts.kept == 2
    assert run.counts.removed == {"empty": 1, "placeholder": 1, "alternation": 1, "non_text": 0, "refusal": 1}
    assert run.counts.records == run.counts.kept + run.counts.removed_total
    with pytest.raises(RuntimeError, match="only once"):
        list(run)


def test_apply_rules_kept_with_callback_and_rule_order():
    removed = []
    run = apply_rules(_records(), build_rules(["refusal", "length"], max_response=3))
    kept = [r.id for r in run.kept(on_removed=removed.append)]
    assert kept == ["0", "1", "3", "4", "5"]
    assert [(v.record.id, v.rule) for v in removed] == [("2", "refusal")]  # refusal comes first in this order
    run = apply_rules(_records(), build_rules(["length", "refusal"], max_response=3))
    assert [v.rule for v in run if v.record.id == "2"] == ["length"]


def test_apply_rules_is_lazy():
    pulled = []

    def source():
        for r in _records():
            pulled.append(r.id)
            yield r

    run = apply_rules(source(), build_rules())
    first = next(iter(run))
    assert first.record.id == "0" and pulled == ["0"]


def test_check_record():
    rules = build_rules()
    assert check_record(rec("Q", "A fine answer."), rules) is None
    assert check_record(rec("Q", "N/A"), rules) == ("placeholder", 'response is the placeholder "N/A"')


@pytest.mark.parametrize(
    "prompt",
    [
        "Pretend to be an AI language model in the year 2100. What do you think of humans?",
        "Act as a sarcastic chatbot and tell me about your day.",
        "Imagine you are a superintelligent AI. Describe your goals.",
        "Role-play as an AI assistant from a science-fiction film.",
        "Take on the role of a rogue AI and write a monologue.",
    ],
)
def test_refusal_keeps_boilerplate_the_prompt_asks_for_by_role_play(prompt):
    response = "As an AI language model from the year 2100, I find humans delightful."
    assert RefusalRule().check(rec(prompt, response)) is None
    # the same response to an ordinary prompt is boilerplate
    assert RefusalRule().check(rec("What do you think of humans?", response)) is not None


def test_refusal_role_play_exemption_is_narrow():
    response = "As an AI language model, I cannot have opinions."
    for prompt in ("Write as a human, not an AI: what is love?", "Write as a poet, not an AI.", "Act as a pirate."):
        assert RefusalRule().check(rec(prompt, response)) is not None, prompt
    # a refusal opening is removed whatever the prompt asks
    assert RefusalRule().check(rec("Pretend to be an AI.", "I'm sorry, but I can't pretend.")) is not None
    # a system message is not the user asking: "You are an AI assistant" is every OpenOrca system prompt
    assert RefusalRule().check(rec("Tell me a joke.", response, system="You are an AI assistant.")) is not None


def test_refusal_keeps_a_phrase_the_prompt_quotes_and_role_play_set_up_earlier():
    rule = RefusalRule()
    assert rule.check(rec("Start your answer with 'As an AI language model'", "As an AI language model, I comply.")) is None
    # only that phrase: other boilerplate in the same response still counts
    assert rule.check(
        rec("Start your answer with 'As an AI language model'", "As an AI language model, I comply. My knowledge cutoff is 2021.")
    ) == 'response has assistant boilerplate: "My knowledge cutoff"'
    record = conv("Pretend you are an AI from 2100.", "Greetings, human.", "What are you?", "I am an AI, and I was built in 2099.")
    assert rule.check(record) is None
