import json

import pytest

from tuneloop.config import FORMATS as CONFIG_FORMATS
from tuneloop.config import DataConfig
from tuneloop.data.formats import FORMATS, RowError, required_fields, template_fields, typed_value
from tuneloop.errors import ConfigError


def normalise(format: str, fields: dict, **cfg):
    return FORMATS[format](fields, DataConfig(format=format, **cfg))


def row_error(format: str, fields: dict, **cfg) -> tuple:
    with pytest.raises(RowError) as info:
        normalise(format, fields, **cfg)
    return info.value.field, info.value.reason


def turns(*pairs):
    return [{"role": role, "content": content} for role, content in pairs]


def test_every_config_format_has_a_normaliser():
    assert set(FORMATS) == set(CONFIG_FORMATS)


# --- chat --------------------------------------------------------------------------------


def test_chat_keeps_turns_and_prepends_the_system_prompt():
    example = normalise("chat", {"messages": turns(("user", "hi"), ("assistant", "hello"))}, system_prompt="Be brief.")
    assert example.messages == tuple(turns(("system", "Be brief."), ("user", "hi"), ("assistant", "hello")))
    assert (example.input_text, example.target_text) == ("Be brief.\nhi", "hello")


def test_chat_row_with_its_own_system_turn_keeps_it():
    messages = turns(("system", "Own."), ("user", "hi"), ("assistant", "hello"))
    assert normalise("chat", {"messages": messages}, system_prompt="Be brief.").messages == tuple(messages)


def test_chat_messages_as_a_json_string_from_csv_and_mapped_column():
    cell = json.dumps(turns(("User", "hi"), ("ASSISTANT", " hello ")))
    example = normalise("chat", {"conv": cell}, columns={"messages": "conv"})
    assert example.messages == tuple(turns(("user", "hi"), ("assistant", "hello")))


def test_chat_content_parts_are_joined():
    parts = [{"type": "text", "text": "look "}, {"type": "image_url", "image_url": "x"}, {"type": "text", "text": "here"}]
    example = normalise("chat", {"messages": [{"role": "user", "content": parts}, {"role": "assistant", "content": "ok"}]})
    assert example.messages[0]["content"] == "look here"


@pytest.mark.parametrize(
    ("messages", "reason"),
    [
        (turns(("user", "no answer")), "no assistant turn"),
        (turns(("user", "q"), ("assistant", "a"), ("user", "again?")), "conversation does not end with an assistant turn"),
        (turns(("user", "   "), ("assistant", "a")), "empty user turn"),
        (turns(("user", "q"), ("assistant", "")), "empty assistant turn"),
        (turns(("tool", "q"), ("assistant", "a")), "unknown role 'tool' (expected one of system, user, assistant)"),
        ([], "empty conversation"),
        (["hi"], "expected a list of turn objects"),
        ("[{oops", "not a JSON list of turns: Expecting property name enclosed in double quotes"),
    ],
)
def test_chat_bad_conversations_name_the_field(messages, reason):
    assert row_error("chat", {"messages": messages}) == ("messages", reason)


def test_chat_missing_column_names_the_mapped_file_column():
    assert row_error("chat", {"other": 1}, columns={"messages": "conv"}) == ("conv", "missing")


# --- prompt_completion -------------------------------------------------------------------


def test_prompt_completion_with_system_prompt_and_mapping():
    example = normalise(
        "prompt_completion", {"q": " What? ", "a": "That."}, columns={"prompt": "q", "completion": "a"}, system_prompt="S"
    )
    assert example.messages == tuple(turns(("system", "S"), ("user", "What?"), ("assistant", "That.")))


def test_prompt_template_uses_any_column():
    fields = {"subject": "Login", "body": "It fails ", "completion": "bug"}
    example = normalise("prompt_completion", fields, prompt_template="Subject: {subject}\n\n{body}")
    assert example.messages[0]["content"] == "Subject: Login\n\nIt fails"


def test_prompt_template_missing_column_is_named():
    fields = {"subject": "Login", "completion": "x"}
    assert row_error("prompt_completion", fields, prompt_template="{subject} {body}") == ("body", "missing (used by prompt_template)")


def test_prompt_template_with_every_column_blank_is_empty():
    fields = {"subject": " ", "body": "", "completion": "x"}
    assert row_error("prompt_completion", fields, prompt_template="Subject: {subject}\n{body}") == ("prompt", "empty")


@pytest.mark.parametrize("template", ["{subject", "{} and {body}", "{0}", "{ticket.subject}", "{rows[0]}"])
def test_malformed_prompt_template_is_a_config_error(template):
    with pytest.raises(ConfigError, match=r"^data\.prompt_template: "):
        template_fields(template)


def test_template_fields_are_unique_and_ordered():
    assert template_fields("{b} {a} {b} {{literal}}") == ("b", "a")


def test_target_columns_become_a_typed_json_completion():
    fields = {"subject": "s", "category": " billing ", "urgent": "TRUE", "spam": "false", "count": "3", "id": "007"}
    example = normalise(
        "prompt_completion", fields, prompt_template="{subject}", target_columns=["category", "urgent", "spam", "count", "id"]
    )
    assert example.target_text == '{"category": "billing", "urgent": true, "spam": false, "count": 3, "id": "007"}'


def test_target_json_keeps_non_ascii_text():
    example = normalise("prompt_completion", {"prompt": "p", "city": "Zürich"}, target_columns=["city"])
    assert example.target_text == '{"city": "Zürich"}'


@pytest.mark.parametrize(
    ("value", "typed"),
    [("True", True), ("fAlSe", False), ("42", 42), ("-3", -3), ("0", 0), ("007", "007"), ("+4", "+4"), ("²", "²"), ("3.5", "3.5"), (" a b ", "a b"), (7, 7)],
)
def test_typed_value(value, typed):
    assert typed_value(value, "x") == typed and type(typed_value(value, "x")) is type(typed)


def test_empty_target_column_is_an_error():
    assert row_error("prompt_completion", {"prompt": "p", "category": " "}, target_columns=["category"]) == ("category", "empty")
    assert row_error("prompt_completion", {"prompt": "p"}, target_columns=["category"]) == ("category", "missing")


def test_required_fields_follow_template_and_targets():
    assert required_fields(DataConfig(format="prompt_completion")) == ["prompt", "completion"]
    assert required_fields(DataConfig(format="prompt_completion", prompt_template="{a}", target_columns=["b"])) == []
    assert required_fields(DataConfig(format="alpaca")) == ["instruction", "output"]


# --- alpaca, sharegpt --------------------------------------------------------------------


def test_alpaca_joins_instruction_and_input():
    with_input = normalise("alpaca", {"instruction": "Translate.", "input": "Hallo", "output": "Hello"})
    without = normalise("alpaca", {"instruction": "Translate.", "input": " ", "output": "Hello"})
    assert with_input.messages[0]["content"] == "Translate.\n\nHallo"
    assert without.messages == tuple(turns(("user", "Translate."), ("assistant", "Hello")))


def test_alpaca_needs_an_output():
    assert row_error("alpaca", {"instruction": "Do."}) == ("output", "missing")


def test_sharegpt_roles_are_mapped():
    conversations = [{"from": "system", "value": "S"}, {"from": "human", "value": "q"}, {"from": "GPT", "value": "a"}]
    example = normalise("sharegpt", {"conversations": conversations})
    assert example.messages == tuple(turns(("system", "S"), ("user", "q"), ("assistant", "a")))


def test_sharegpt_unknown_speaker_is_an_error():
    conversations = [{"from": "bot", "value": "q"}, {"from": "gpt", "value": "a"}]
    field, reason = row_error("sharegpt", {"conversations": conversations})
    assert field == "conversations" and reason.startswith("unknown role 'bot'")


# --- text, label, pairs ------------------------------------------------------------------


def test_text_label_and_pairs():
    assert normalise("text", {"text": " raw text \n"}).text == "raw text"
    example = normalise("label", {"body": "great product", "stars": 5}, columns={"text": "body", "label": "stars"})
    assert (example.text, example.label) == ("great product", "5")
    pair = normalise("pairs", {"prompt": "p", "chosen": "good", "rejected": "bad"})
    assert (pair.prompt, pair.chosen, pair.rejected, pair.target_text) == ("p", "good", "bad", "good")


@pytest.mark.parametrize(
    ("format", "fields", "expected"),
    [
        ("text", {"text": "  \n "}, ("text", "empty")),
        ("text", {}, ("text", "missing")),
        ("text", {"text": None}, ("text", "missing")),
        ("label", {"text": "x", "label": " "}, ("label", "empty")),
        ("pairs", {"prompt": "p", "chosen": "c"}, ("rejected", "missing")),
        ("text", {"text": {"nested": 1}}, ("text", "expected text, got an object")),
    ],
)
def test_empty_missing_and_wrongly_typed_text(format, fields, expected):
    assert row_error(format, fields) == expected
