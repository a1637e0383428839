"""Exact lengths from the model's own chat template: four real-style templates (ChatML with tools, Llama-3,
Mistral, a Gemma-style one that refuses system prompts) rendered as transformers renders them, counts checked
against the `tokenizers` library on a small tokenizer built here, trained-token masks, and export end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import invoke
from itkit.export.chat_template import TemplateCounter, TemplateRenderError
from itkit.export.length import make_counter
from itkit.records import Record, Turn

tokenizers = pytest.importorskip("tokenizers")

CHATML = (
    "{%- if tools %}{{- '<|im_start|>system\\n' }}{%- if messages[0].role == 'system' %}"
    "{{- messages[0].content + '\\n\\n' }}{%- endif %}{{- 'Tools:\\n' }}"
    "{%- for tool in tools %}{{- tool | tojson + '\\n' }}{%- endfor %}{{- '<|im_end|>\\n' }}"
    "{%- elif messages[0].role == 'system' %}{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message.role == 'system' %}{%- continue %}{%- endif %}"
    "{%- if message.role == 'assistant' %}{{- '<|im_start|>assistant\\n' }}{% generation %}{{- message.content }}"
    "{%- for call in message.tool_calls or [] %}{{- '<tool_call>' + call.function | tojson + '</tool_call>' }}{%- endfor %}"
    "{{- '<|im_end|>' }}{% endgeneration %}{{- '\\n' }}"
    "{%- elif message.role == 'tool' %}{{- '<|im_start|>tool\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
LLAMA3 = (
    "{{- bos_token }}{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)
MISTRAL = (
    "{{- bos_token }}{%- if messages[0]['role'] == 'system' %}{%- set system = messages[0]['content'] %}"
    "{%- set loop_messages = messages[1:] %}{%- else %}{%- set system = none %}{%- set loop_messages = messages %}{%- endif %}"
    "{%- for message in loop_messages %}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{- raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{%- endif %}"
    "{%- if message['role'] == 'user' %}{%- if loop.first and system %}"
    "{{- '[INST] ' + system + '\\n\\n' + message['content'] + ' [/INST]' }}"
    "{%- else %}{{- '[INST] ' + message['content'] + ' [/INST]' }}{%- endif %}"
    "{%- else %}{{- ' ' + message['content'] + eos_token }}{%- endif %}{%- endfor %}"
)
# multi-line with indented blocks, as Gemma's is: trim_blocks and lstrip_blocks decide its whitespace
GEMMA = """{{ bos_token }}{% if messages[0]['role'] == 'system' %}
    {{ raise_exception('System role not supported') }}
{% endif %}
{% for message in messages %}
    {% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
        {{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}
    {% endif %}
    {% if message['role'] == 'assistant' %}
        {% set role = 'model' %}
    {% else %}
        {% set role = message['role'] %}
    {% endif %}
    {{- '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' -}}
{% endfor %}
{% if add_generation_prompt %}
    {{- '<start_of_turn>model\n' -}}
{% endif %}
"""
SPECIAL = ["<|im_start|>", "<|im_end|>", "<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
           "<|eot_id|>", "<s>", "</s>", "[INST]", "[/INST]", "<bos>", "<start_of_turn>", "<end_of_turn>"]
TOKENS = {
    "chatml": {"eos_token": "<|im_end|>"},
    "llama3": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "mistral": {"bos_token": {"content": "<s>", "__type": "AddedToken"}, "eos_token": "</s>"},
    "gemma": {"bos_token": "<bos>", "eos_token": "<end_of_turn>"},
}
TEMPLATES = {"chatml": CHATML, "llama3": LLAMA3, "mistral": MISTRAL, "gemma": GEMMA}
CORPUS = [
    "What is the capital of France? The capital of France is Paris.",
    "Be brief. And of Italy? Rome. weather temperature city Paris tool call arguments name",
    "system user assistant model tool\n\n [INST] [/INST] {\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}",
]


def build_tokenizer(folder: Path, name: str) -> "tokenizers.Tokenizer":
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS * 20, trainer)
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    config = {"chat_template": TEMPLATES[name], **TOKENS[name]}
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return tok


def record(system: str | None = "Be brief.") -> Record:
    turns = [
        Turn(role="user", content="What is the capital of France?"),
        Turn(role="assistant", content="Paris."),
        Turn(role="user", content="And of Italy?"),
        Turn(role="assistant", content="Rome."),
    ]
    return Record(id="r1", system=system, turns=turns)


def tool_record() -> Record:
    call = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    turns = [
        Turn(role="user", content="Weather in Paris?"),
        Turn(role="assistant", content="", tool_calls=[call]),
        Turn(role="tool", content='{"temp": 18}', tool_call_id="c1"),
        Turn(role="assistant", content="18 degrees."),
    ]
    return Record(id="t1", turns=turns, tools=tools)


EXPECTED = {
    "chatml": "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
    "<|im_start|>assistant\nParis.<|im_end|>\n<|im_start|>user\nAnd of Italy?<|im_end|>\n<|im_start|>assistant\nRome.<|im_end|>\n",
    "llama3": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\nWhat is the capital of France?<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\nParis.<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\nAnd of Italy?<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\nRome.<|eot_id|>",
    "mistral": "<s>[INST] Be brief.\n\nWhat is the capital of France? [/INST] Paris.</s>[INST] And of Italy? [/INST] Rome.</s>",
    "gemma": "<bos><start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n<start_of_turn>model\nParis.<end_of_turn>\n"
    "<start_of_turn>user\nAnd of Italy?<end_of_turn>\n<start_of_turn>model\nRome.<end_of_turn>\n",
}


@pytest.mark.parametrize("name", list(TEMPLATES))
def test_templates_render_as_transformers_and_count_exactly(tmp_path, name):
    tok = build_tokenizer(tmp_path / name, name)
    counter = make_counter(tokenizer=str(tmp_path / name))
    assert isinstance(counter, TemplateCounter)
    sample = record(system=None) if name == "gemma" else record()
    text = counter.render(sample)
    assert text == EXPECTED[name]
    expected_ids = tok.encode(EXPECTED[name], add_special_tokens=False).ids
    assert counter.count_record(sample) == len(expected_ids)
    # the markers are single special tokens: the end-of-turn token is counted once per assistant turn
    eos = TOKENS[name]["eos_token"]
    assert expected_ids.count(tok.token_to_id(eos)) == EXPECTED[name].count(eos)


def test_templates_that_refuse_a_record_say_why(tmp_path):
    build_tokenizer(tmp_path / "gemma", "gemma")
    build_tokenizer(tmp_path / "mistral", "mistral")
    gemma = make_counter(tokenizer=str(tmp_path / "gemma"))
    with pytest.raises(TemplateRenderError, match="System role not supported"):
        gemma.count_record(record())
    mistral = make_counter(tokenizer=str(tmp_path / "mistral"))
    (refused,) = mistral.count_records([tool_record()])
    assert refused == "Conversation roles must alternate user/assistant/user/assistant/..."


def test_tool_calls_reach_the_template_with_object_arguments(tmp_path):
    build_tokenizer(tmp_path / "chatml", "chatml")
    counter = make_counter(tokenizer=str(tmp_path / "chatml"))
    text = counter.render(tool_record())
    assert text == (
        '<|im_start|>system\nTools:\n{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}\n'
        "<|im_end|>\n<|im_start|>user\nWeather in Paris?<|im_end|>\n"
        '<|im_start|>assistant\n<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call><|im_end|>\n'
        '<|im_start|>tool\n{"temp": 18}<|im_end|>\n<|im_start|>assistant\n18 degrees.<|im_end|>\n'
    )


def test_trained_mask_covers_the_weighted_assistant_turns(tmp_path):
    tok = build_tokenizer(tmp_path / "chatml", "chatml")
    counter = make_counter(tokenizer=str(tmp_path / "chatml"))
    sample = record()
    ids = tok.encode(counter.render(sample), add_special_tokens=False).ids

    def trained_text(r: Record) -> str:
        mask = counter.trained_mask(r)
        return tok.decode([i for i, m in zip(ids, mask) if m], skip_special_tokens=False)

    # ChatML here has {% generation %} around the reply and its end token: the span TRL's assistant mask trains
    assert trained_text(sample) == "Paris.<|im_end|>Rome.<|im_end|>"
    first_untrained = sample.model_copy(update={"turns": [*sample.turns[:1], sample.turns[1].replace(weight=0), *sample.turns[2:]]})
    assert trained_text(first_untrained) == "Rome.<|im_end|>"


def test_trained_mask_without_generation_tag_is_each_turn_after_its_prompt(tmp_path):
    tok = build_tokenizer(tmp_path / "llama3", "llama3")
    counter = make_counter(tokenizer=str(tmp_path / "llama3"))
    sample = record()
    ids = tok.encode(counter.render(sample), add_special_tokens=False).ids
    mask = counter.trained_mask(sample)
    assert tok.decode([i for i, m in zip(ids, mask) if m], skip_special_tokens=False) == "Paris.<|eot_id|>Rome.<|eot_id|>"


def test_export_with_the_models_template_drops_none_the_trainer_would(runner, tmp_path):
    tok = build_tokenizer(tmp_path / "gemma", "gemma")
    rows = [
        {"id": f"q{i}", "messages": [{"role": "user", "content": f"Item {i} {'zz' * i}: " + "What is the capital of France? " * (1 + i % 5)},
                                     {"role": "assistant", "content": "Paris. " * (1 + i % 7)}]}
        for i in range(30)
    ]
    rows.append({"id": "sys", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                                           {"role": "assistant", "content": "Hello"}]})
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "out"
    result = invoke(runner, "export", src, "-o", out, "--mode", "sft", "--target", "axolotl,llama-factory",
                    "--tokenizer", tmp_path / "gemma", "--max-length", "60", "--val-size", "3", "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["exact_lengths"] is True
    length = summary["modes"]["sft"]["length"]
    assert length["not_rendered"] == 1 and "System role not supported" in length["not_rendered_examples"]["sys"]
    assert "chat template cannot render them" in result.stderr
    axolotl = yaml.safe_load((out / "sft" / "axolotl" / "axolotl_full.yaml").read_text())
    assert axolotl["sequence_len"] == 60  # exact counts: the budget is the trainer's length as is
    kept = 0
    for name in ("train.jsonl", "val.jsonl"):
        for line in (out / "sft" / "axolotl" / name).read_text().splitlines():
            messages = json.loads(line)["messages"]
            text = "<bos>" + "".join(
                f"<start_of_turn>{'model' if m['role'] == 'assistant' else m['role']}\n{m['content'].strip()}<end_of_turn>\n"
                for m in messages
            )
            assert len(tok.encode(text, add_special_tokens=False).ids) <= 60
            kept += 1
    assert kept == length["kept"] and length["kept"] + length["dropped"] + 1 == 31
    card = (out / "README.md").read_text()
    assert "Exact tokens per record" in card and "cannot render 1 records" in card
