"""Tool calls and per-turn weights from the source formats to every export target, configs that run as
written (steps from the exported size, template from --base-model), validation-size warnings, --relative-paths
and one copy of identical data files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from conftest import invoke
from itkit.errors import ConversionError, Location, SchemaError
from itkit.formats import get_format
from itkit.formats.base import LoadContext

SAMPLES = Path(__file__).resolve().parent.parent / "data_samples"
CTX = LoadContext(Location("t.jsonl", line=1), "r0")
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Current weather",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]


@pytest.fixture(autouse=True)
def _tiktoken_cache(monkeypatch):
    shared = Path(__file__).resolve().parent.parent.parent / "shared" / "tiktoken"
    if shared.is_dir():
        monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(shared))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def tool_row(i: int, weight: int | None = None) -> dict:
    final = {"role": "assistant", "content": f"It is {i} degrees in town {i}."}
    if weight is not None:
        final["weight"] = weight
    return {
        "id": f"tool-{i}",
        "messages": [
            {"role": "system", "content": "You can call tools."},
            {"role": "user", "content": f"Weather in town number {i} today?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": f"call_{i}", "type": "function", "function": {"name": "get_weather", "arguments": json.dumps({"city": f"T{i}"})}}]},
            {"role": "tool", "tool_call_id": f"call_{i}", "content": json.dumps({"temp_c": i})},
            final,
        ],
        "tools": TOOLS,
    }


def plain_row(i: int, weights: tuple[int | None, ...] = ()) -> dict:
    messages = [{"role": "user", "content": f"Question {i}: what is {i} plus {i + 7}, and why?"},
                {"role": "assistant", "content": f"{i} plus {i + 7} is {2 * i + 7}, counting up from {i}."}]
    if len(weights) == 2:
        messages += [{"role": "user", "content": f"And times two for {i}?"},
                     {"role": "assistant", "content": f"That gives {2 * (2 * i + 7)} for item {i}."}]
    for message, weight in zip((m for m in messages if m["role"] == "assistant"), weights):
        if weight is not None:
            message["weight"] = weight
    return {"id": f"r{i}", "messages": messages}


def write(tmp_path: Path, rows: list[dict]) -> Path:
    src = tmp_path / "src.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return src


# ---------------------------------------------------------------- formats


def test_openai_tool_calls_round_trip_and_convert_to_llama_factory_sharegpt():
    messages, sharegpt = get_format("messages"), get_format("sharegpt")
    row = tool_row(3, weight=0)
    record = messages.load(row, CTX)
    assert [t.role for t in record.turns] == ["user", "assistant", "tool", "assistant"]
    assert record.turns[1].tool_calls[0]["function"]["arguments"] == '{"city": "T3"}'
    assert record.turns[2].tool_call_id == "call_3" and record.turns[3].weight == 0 and record.tools == TOOLS
    assert messages.dump(record) == row
    sg = sharegpt.dump(record)
    assert [t["from"] for t in sg["conversations"]] == ["human", "function_call", "observation", "gpt"]
    assert json.loads(sg["conversations"][1]["value"]) == {"name": "get_weather", "arguments": {"city": "T3"}}
    assert sg["conversations"][3]["weight"] == 0
    assert json.loads(sg["tools"]) == [TOOLS[0]["function"]]
    again = sharegpt.load(sg, CTX)
    assert sharegpt.dump(again) == sg and again.tools == TOOLS and again.turns[3].weight == 0


def test_sharegpt_cannot_hold_text_beside_a_call_and_alpaca_no_tools():
    row = tool_row(1)
    row["messages"][2]["content"] = "Let me look that up."
    record = get_format("messages").load(row, CTX)
    with pytest.raises(ConversionError, match="both text and tool calls"):
        get_format("sharegpt").dump(record)
    with pytest.raises(ConversionError, match="uses tools"):
        get_format("alpaca").dump(record)


@pytest.mark.parametrize(
    "change, field, reason",
    [
        (lambda m: m[2]["tool_calls"][0]["function"].pop("name"), "messages[2].tool_calls[0].function.name", "non-empty string"),
        (lambda m: m[2]["tool_calls"][0]["function"].update(arguments=5), "messages[2].tool_calls[0].function.arguments", "JSON string"),
        (lambda m: m.pop(3), "messages", "the tool results must follow"),
        (lambda m: m.insert(2, {"role": "tool", "content": "x"}), "messages", "must follow an assistant turn that calls tools"),
    ],
)
def test_bad_tool_calls_name_their_field(change, field, reason):
    row = tool_row(2)
    change(row["messages"])
    with pytest.raises(SchemaError) as info:
        get_format("messages").load(row, CTX)
    assert info.value.field == field and reason in info.value.reason


# ---------------------------------------------------------------- export


def test_tool_calls_in_each_targets_convention(runner, tmp_path):
    src = write(tmp_path, [tool_row(i) for i in range(6)] + [plain_row(i) for i in range(14)])
    out = tmp_path / "out"
    result = invoke(runner, "export", src, "-o", out, "--mode", "sft", "--val-size", "2", "--quiet",
                    "--target", "trl,llama-factory,axolotl,sharegpt")
    assert result.exit_code == 0, result.stderr
    rows = {t: {r["id"]: r for r in read_jsonl(out / "sft" / t / "train.jsonl") + read_jsonl(out / "sft" / t / "val.jsonl")}
            for t in ("trl", "llama-factory", "axolotl", "sharegpt")}
    trl = rows["trl"]["tool-0"]
    assert trl["tools"] == TOOLS and rows["trl"]["r0"]["tools"] is None
    assert trl["messages"][2]["tool_calls"][0]["function"]["arguments"] == {"city": "T0"}  # objects, for HF templates
    assert trl["messages"][3] == {"role": "tool", "content": '{"temp_c": 0}', "tool_call_id": "call_0"}
    lf = rows["llama-factory"]["tool-0"]
    assert [m["role"] for m in lf["messages"]] == ["system", "user", "function_call", "tool", "assistant"]
    assert json.loads(lf["messages"][2]["content"]) == {"name": "get_weather", "arguments": {"city": "T0"}}
    assert json.loads(lf["tools"]) == [TOOLS[0]["function"]] and rows["llama-factory"]["r0"]["tools"] == ""
    info = json.loads((out / "sft" / "llama-factory" / "dataset_info.json").read_text())["itkit_sft_train"]
    assert info["columns"] == {"messages": "messages", "tools": "tools"}
    assert (info["tags"]["function_tag"], info["tags"]["observation_tag"]) == ("function_call", "tool")
    ax = rows["axolotl"]["tool-0"]
    assert ax["messages"][2]["tool_calls"][0]["function"]["arguments"] == '{"city": "T0"}'
    assert json.loads(ax["tools"][0]["function"]["parameters"]) == TOOLS[0]["function"]["parameters"]
    config = yaml.safe_load((out / "sft" / "axolotl" / "axolotl_full.yaml").read_text())
    assert config["datasets"][0]["field_tools"] == "tools"
    sg = rows["sharegpt"]["tool-0"]
    assert [t["from"] for t in sg["conversations"]] == ["human", "function_call", "observation", "gpt"]
    refused = invoke(runner, "export", src, "-o", tmp_path / "alp", "--target", "alpaca", "--quiet")
    assert refused.exit_code == 2 and "--target alpaca cannot hold record 'tool-0'" in refused.stderr
    assert not (tmp_path / "alp").exists()
    bad = tool_row(9)
    bad["messages"][2]["tool_calls"][0]["function"]["arguments"] = "city=Paris"
    refused = invoke(runner, "export", write(tmp_path, [bad] + [plain_row(i) for i in range(5)]), "-o", tmp_path / "ax",
                     "--target", "trl,axolotl", "--quiet")
    assert refused.exit_code == 2 and "arguments that are not JSON" in refused.stderr and not (tmp_path / "ax").exists()


def test_weights_are_written_where_the_target_honours_them(runner, tmp_path):
    rows = [plain_row(i, (0, 1)) for i in range(8)] + [plain_row(i + 8, (1, 0)) for i in range(4)]
    rows += [plain_row(i + 12) for i in range(8)]
    out = tmp_path / "out"
    result = invoke(runner, "export", write(tmp_path, rows), "-o", out, "--mode", "sft", "--val-size", "0",
                    "--target", "axolotl,llama-factory,trl", "--quiet")
    assert result.exit_code == 0, result.stderr
    ax = {r["id"]: r for r in read_jsonl(out / "sft" / "axolotl" / "train.jsonl")}
    assert [m.get("weight") for m in ax["r0"]["messages"] if m["role"] == "assistant"] == [0, 1]
    assert all("weight" not in m for m in ax["r12"]["messages"])
    config = yaml.safe_load((out / "sft" / "axolotl" / "axolotl_full.yaml").read_text())
    assert config["datasets"][0]["message_field_training"] == "weight"
    lf = yaml.safe_load((out / "sft" / "llama-factory" / "train_full.yaml").read_text())
    assert "mask_history" not in lf  # r8..r11 train their first turn only: mask_history cannot say that
    card = (out / "README.md").read_text()
    assert "LLaMA-Factory trains every assistant turn" in card and "TRL has no per-turn weight" in card

    last_only = [plain_row(i, (0, 1)) for i in range(8)] + [plain_row(i + 8) for i in range(8)]
    out2 = tmp_path / "out2"
    result = invoke(runner, "export", write(tmp_path, last_only), "-o", out2, "--mode", "sft", "--val-size", "0",
                    "--target", "llama-factory", "--quiet")
    assert result.exit_code == 0, result.stderr
    assert yaml.safe_load((out2 / "sft" / "llama-factory" / "train_full.yaml").read_text())["mask_history"] is True


def test_a_record_with_nothing_to_train_on_is_counted_out(runner, tmp_path):
    out = tmp_path / "out"
    result = invoke(runner, "export", SAMPLES / "messages.jsonl", "-o", out, "--mode", "sft", "--target", "axolotl",
                    "--val-size", "0", "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["source"]["dropped_no_trained_turn"] == 1  # line 18: its only reply has weight 0
    texts = [m["content"] for r in read_jsonl(out / "sft" / "axolotl" / "train.jsonl") for m in r["messages"]]
    assert "Give me a random number between 1 and 10." not in texts


def test_configs_have_steps_from_the_exported_size_and_the_models_template(runner, tmp_path):
    out = tmp_path / "out"
    result = invoke(runner, "export", write(tmp_path, [plain_row(i) for i in range(120)]), "-o", out, "--mode", "sft",
                    "--val-size", "12", "--base-model", "meta-llama/Meta-Llama-3-8B-Instruct", "--quiet")
    assert result.exit_code == 0, result.stderr
    train = len(read_jsonl(out / "sft" / "trl" / "train.jsonl"))
    steps = math.ceil(math.ceil(train / 8) * 3)
    lf = yaml.safe_load((out / "sft" / "llama-factory" / "train_full.yaml").read_text())
    assert lf["template"] == "llama3" and "warmup_ratio" not in lf
    assert lf["eval_steps"] == lf["save_steps"] == steps // 10 and lf["warmup_steps"] == math.ceil(0.1 * steps)
    ax = yaml.safe_load((out / "sft" / "axolotl" / "axolotl_full.yaml").read_text())
    assert ax["eval_steps"] == steps // 10 and ax["warmup_steps"] == math.ceil(0.1 * steps)
    # estimated lengths: the sequence length leaves the margin over the longest record
    longest = json.loads((out / "manifest.json").read_text())["modes"]["sft"]["tokens"]["all"]["max"]
    assert ax["sequence_len"] >= 2048 and ax["sequence_len"] >= longest * 1.25
    unknown = invoke(runner, "export", write(tmp_path, [plain_row(i) for i in range(20)]), "-o", tmp_path / "o2",
                     "--mode", "sft", "--base-model", "acme/own-model", "--target", "llama-factory", "--quiet")
    assert unknown.exit_code == 0
    text = (tmp_path / "o2" / "sft" / "llama-factory" / "train_full.yaml").read_text()
    assert "template:" not in text.split("\n#")[-1] and "uses the tokenizer's own chat template" in text


def test_small_validation_sets_are_warned_about(runner, tmp_path):
    rows = [plain_row(i) for i in range(30)]
    out = tmp_path / "out"
    result = invoke(runner, "export", write(tmp_path, rows), "-o", out, "--mode", "sft", "--val-size", "20",
                    "--target", "trl", "--quiet")
    assert result.exit_code == 0
    assert "warning: sft: the validation set (20) is larger than the training set (10)" in result.stderr
    assert "is larger than the training set" in (out / "README.md").read_text()
    dup = [{"id": f"d{i}", "messages": [{"role": "user", "content": "The same question every time?"},
                                        {"role": "assistant", "content": f"Answer {i}."}]} for i in range(20)]
    result = invoke(runner, "export", write(tmp_path, dup + rows[:4]), "-o", tmp_path / "o2", "--mode", "sft",
                    "--val-size", "12", "--target", "trl", "--quiet")
    assert "under half of the 12 asked" in result.stderr


def test_relative_paths_and_one_copy_of_identical_files(runner, tmp_path):
    out = tmp_path / "out"
    result = invoke(runner, "export", write(tmp_path, [plain_row(i) for i in range(20)]), "-o", out, "--mode", "sft",
                    "--val-size", "2", "--relative-paths", "--quiet")
    assert result.exit_code == 0, result.stderr
    ax = yaml.safe_load((out / "sft" / "axolotl" / "axolotl_full.yaml").read_text())
    assert ax["datasets"][0]["path"] == "train.jsonl" and ax["test_datasets"][0]["path"] == "val.jsonl"
    lf = yaml.safe_load((out / "sft" / "llama-factory" / "train_full.yaml").read_text())
    assert lf["dataset_dir"] == "."
    assert str(tmp_path) not in "".join(p.read_text() for p in out.rglob("*.yaml"))
    trl, lf_file, ax_file = (out / "sft" / t / "train.jsonl" for t in ("trl", "llama-factory", "axolotl"))
    assert trl.stat().st_ino == lf_file.stat().st_ino == ax_file.stat().st_ino
    assert "hard links" in (out / "README.md").read_text()
    moved = tmp_path / "elsewhere"
    out.rename(moved)
    assert (moved / "sft" / "axolotl" / ax["datasets"][0]["path"]).is_file()
