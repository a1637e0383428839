"""itkit export end to end: every target's files load with `datasets`, registration files and configs point at
them with the right mappings, the card and manifest are right, OUTDIR is written atomically."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from conftest import invoke

TARGETS = ("trl", "llama-factory", "axolotl", "alpaca", "sharegpt")
ROLES = {"system", "user", "assistant"}


@pytest.fixture(autouse=True)
def _tiktoken_cache(monkeypatch):
    shared = Path(__file__).resolve().parent.parent.parent / "shared" / "tiktoken"
    if shared.is_dir():
        monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(shared))


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def mixed_messages(n: int = 40) -> list[dict]:
    """OpenAI-messages rows: some with a system prompt, some multi-turn, non-ASCII and '/' in the text."""
    rows = []
    for i in range(n):
        messages = []
        if i % 3 == 0:
            messages.append({"role": "system", "content": f"You are a careful assistant № {i}."})
        messages.append({"role": "user", "content": f"Question {i}: how do I convert {i} km/h to m/s? Réponds en détail."})
        messages.append({"role": "assistant", "content": f"Divide by 3.6: {i} km/h is {i / 3.6:.2f} m/s. Voilà, c'est simple — 完了."})
        if i % 4 == 1:
            messages.append({"role": "user", "content": f"And {i * 2} km/h, topic {i}?"})
            messages.append({"role": "assistant", "content": f"That is {i * 2 / 3.6:.2f} m/s, twice the speed for item {i}."})
        rows.append({"id": f"rec-{i}", "messages": messages})
    return rows


def export(runner, src: Path, out: Path, *args: str):
    return invoke(runner, "export", src, "-o", out, "--quiet", *args)


def load_json_dataset(path: Path, tmp_path: Path):
    import datasets

    datasets.disable_progress_bars()
    return datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=str(tmp_path / "hf-cache"))


def check_messages(messages: list[dict]) -> None:
    assert all(set(m) == {"role", "content"} for m in messages)
    assert all(isinstance(m["content"], str) and isinstance(m["role"], str) for m in messages)
    assert {m["role"] for m in messages} <= ROLES
    roles = [m["role"] for m in messages]
    if roles[0] == "system":
        roles = roles[1:]
    assert "system" not in roles
    # LLaMA-Factory's rule: user at odd positions, assistant at even ones, an even number of turns
    assert len(roles) % 2 == 0 and len(roles) >= 2
    assert roles == ["user", "assistant"] * (len(roles) // 2)


@pytest.fixture
def mixed_export(runner, tmp_path):
    src = write_jsonl(tmp_path / "mixed.jsonl", mixed_messages())
    out = tmp_path / "out"
    result = export(runner, src, out, "--lft-size", "20", "--val-ratio", "0.2", "--max-length", "300", "--seed", "3")
    assert result.exit_code == 0, result.stderr
    return out


def test_every_target_loads_with_datasets_with_consistent_types(mixed_export, tmp_path):
    out = mixed_export
    for mode in ("lft", "sft"):
        for target in TARGETS:
            for split in ("train", "val"):
                path = out / mode / target / f"{split}.jsonl"
                assert path.is_file(), path
                raw = path.read_text(encoding="utf-8")
                assert "km/h" in raw and "\\/" not in raw  # "/" not escaped
                assert "完了" in raw and "\\u" not in raw  # UTF-8, not \u escapes
                rows = read_jsonl(path)
                assert len({tuple(r) for r in rows}) == 1, f"{path}: rows have different keys"
                ds = load_json_dataset(path, tmp_path)
                assert ds.num_rows == len(rows)
                assert ds.features["id"].dtype == "string"
                assert all(isinstance(r["id"], str) for r in rows)
                if target in ("trl", "llama-factory", "axolotl"):
                    feature = ds.features["messages"]
                    inner = feature.feature if hasattr(feature, "feature") else feature[0]
                    assert inner["role"].dtype == "string" and inner["content"].dtype == "string"
                    for r in rows:
                        check_messages(r["messages"])
                elif target == "alpaca":
                    for name in ("instruction", "input", "output", "system"):
                        assert ds.features[name].dtype == "string"
                    assert all(isinstance(p, str) for r in rows for pair in r["history"] for p in pair)
                    assert all(len(pair) == 2 for r in rows for pair in r["history"])
                else:  # sharegpt
                    assert ds.features["system"].dtype == "string"
                    for r in rows:
                        tags = [t["from"] for t in r["conversations"]]
                        assert tags == ["human", "gpt"] * (len(tags) // 2) and tags
                        assert all(set(t) == {"from", "value"} and isinstance(t["value"], str) for t in r["conversations"])


def test_the_same_records_in_every_target(mixed_export):
    out = mixed_export
    for mode in ("lft", "sft"):
        for split in ("train", "val"):
            ids = {t: [r["id"] for r in read_jsonl(out / mode / t / f"{split}.jsonl")] for t in TARGETS}
            assert len({tuple(v) for v in ids.values()}) == 1
    trl = {r["id"]: r for r in read_jsonl(out / "sft" / "trl" / "train.jsonl")}
    for row in read_jsonl(out / "sft" / "alpaca" / "train.jsonl"):
        messages = trl[row["id"]]["messages"]
        assert messages[-1]["content"] == row["output"]
        assert (messages[0]["content"] if messages[0]["role"] == "system" else "") == row["system"]
        assert len(row["history"]) == (len(messages) - (messages[0]["role"] == "system")) // 2 - 1


def test_llama_factory_dataset_info_and_config_point_at_the_files(mixed_export):
    for mode, config_name, ftype, lr in (("lft", "train_lora.yaml", "lora", 1e-4), ("sft", "train_full.yaml", "full", 1e-5)):
        folder = mixed_export / mode / "llama-factory"
        info = json.loads((folder / "dataset_info.json").read_text(encoding="utf-8"))
        assert set(info) == {f"itkit_{mode}_train", f"itkit_{mode}_val"}
        for name, entry in info.items():
            data = folder / entry["file_name"]
            assert data.is_file() and data.name == ("train.jsonl" if name.endswith("train") else "val.jsonl")
            assert entry["formatting"] == "sharegpt"
            assert entry["columns"] == {"messages": "messages"}
            tags = entry["tags"]
            assert (tags["role_tag"], tags["content_tag"]) == ("role", "content")
            assert (tags["user_tag"], tags["assistant_tag"], tags["system_tag"]) == ("user", "assistant", "system")
            for row in read_jsonl(data):
                msgs = row[entry["columns"]["messages"]]
                assert {m[tags["role_tag"]] for m in msgs} <= {tags["user_tag"], tags["assistant_tag"], tags["system_tag"]}
                check_messages(msgs)
        config = yaml.safe_load((folder / config_name).read_text(encoding="utf-8"))
        assert config["finetuning_type"] == ftype
        assert config["learning_rate"] == pytest.approx(lr)
        assert config["cutoff_len"] == 300  # --max-length
        assert config["stage"] == "sft" and config["do_train"] is True
        assert Path(config["dataset_dir"]) == folder.resolve()
        assert config["dataset"] in info and config["eval_dataset"] in info
        assert ("lora_rank" in config) == (mode == "lft")


def test_axolotl_fragment_points_at_the_files_with_the_right_mappings(mixed_export):
    for mode, name, lr in (("lft", "axolotl_lora.yaml", 1e-4), ("sft", "axolotl_full.yaml", 1e-5)):
        folder = mixed_export / mode / "axolotl"
        config = yaml.safe_load((folder / name).read_text(encoding="utf-8"))
        (train,) = config["datasets"]
        (test,) = config["test_datasets"]
        assert Path(train["path"]) == (folder / "train.jsonl").resolve()
        assert Path(test["path"]) == (folder / "val.jsonl").resolve()
        assert test["split"] == "train" and "val_set_size" not in config
        for entry in (train, test):
            assert entry["type"] == "chat_template" and entry["ds_type"] == "json"
            assert entry["field_messages"] == "messages"
            mapping = entry["message_property_mappings"]
            assert mapping == {"role": "role", "content": "content"}
            for row in read_jsonl(Path(entry["path"])):
                for m in row[entry["field_messages"]]:
                    assert mapping["role"] in m and mapping["content"] in m
        assert config["learning_rate"] == pytest.approx(lr)
        assert config["sequence_len"] == 300
        assert (config.get("adapter") == "lora") == (mode == "lft")


def test_trl_prompt_completion(runner, tmp_path):
    src = write_jsonl(tmp_path / "mixed.jsonl", mixed_messages(24))
    out = tmp_path / "out"
    result = export(runner, src, out, "--target", "trl", "--mode", "sft", "--trl-format", "prompt-completion", "--val-size", "4")
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(out / "sft" / "trl" / "train.jsonl")
    assert len(rows) == 20
    for row in rows:
        assert set(row) == {"id", "prompt", "completion"}
        assert row["prompt"][-1]["role"] == "user"
        assert [m["role"] for m in row["completion"]] == ["assistant"]
        check_messages(row["prompt"] + row["completion"])
    ds = load_json_dataset(out / "sft" / "trl" / "val.jsonl", tmp_path)
    assert ds.num_rows == 4 and set(ds.column_names) == {"id", "prompt", "completion"}
    assert not (out / "lft").exists() and not (out / "sft" / "alpaca").exists()


def test_realdata_sharegpt_exports_to_every_target(runner, tmp_path, realdata):
    src = realdata / "sharegpt_fastchat_sample.json"
    out = tmp_path / "out"
    result = invoke(runner, "export", src, "-o", out, "--lft-size", "100", "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["source"]["rows"] == 500
    lft, sft = summary["modes"]["lft"], summary["modes"]["sft"]
    assert lft["records"] == 100 and lft["train"] + lft["val"] == 100
    assert sft["train"] + sft["val"] == sft["records"] == 500
    for mode in ("lft", "sft"):
        for target in TARGETS:
            for split in ("train", "val"):
                path = out / mode / target / f"{split}.jsonl"
                ds = load_json_dataset(path, tmp_path)
                assert ds.num_rows == summary["modes"][mode][split]
        for row in read_jsonl(out / mode / "trl" / "train.jsonl"):
            check_messages(row["messages"])


def test_card_and_manifest(mixed_export):
    out = mixed_export
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    files = {f["path"]: f for f in manifest["files"]}
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} - {"manifest.json"}
    assert set(files) == on_disk
    for rel, entry in files.items():
        data = (out / rel).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["bytes"] == len(data)
        if rel.endswith(".jsonl"):
            assert entry["rows"] == len(data.splitlines())
    assert manifest["seed"] == 3 and manifest["settings"]["max_tokens"] == 300
    assert manifest["source"]["sha256"] and manifest["source"]["rows"] == 40
    for mode in ("lft", "sft"):
        m = manifest["modes"][mode]
        assert files[f"{mode}/trl/train.jsonl"]["rows"] == m["train"]
        assert files[f"{mode}/trl/val.jsonl"]["rows"] == m["val"]
    card = (out / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\n")
    front = yaml.safe_load(card.split("---\n")[1])
    assert {c["config_name"] for c in front["configs"]} == {f"{m}-{t}" for m in ("lft", "sft") for t in TARGETS}
    for section in ("## Files", "## How it was built", "## Token lengths", "## Coverage", "## Lineage", "## Reproduce"):
        assert section in card
    assert manifest["command"] in card
    assert f"| lft train | {manifest['modes']['lft']['train']} |" in card
    assert "mixed.jsonl" in card  # lineage: the source


def test_reproduce_command_gives_identical_output(runner, tmp_path, mixed_export):
    manifest = json.loads((mixed_export / "manifest.json").read_text(encoding="utf-8"))
    import shlex

    args = shlex.split(manifest["command"])
    assert args[:2] == ["itkit", "export"] and "--overwrite" not in args
    result = invoke(runner, *args[1:], "--overwrite", "--quiet")
    assert result.exit_code == 0, result.stderr
    again = json.loads((mixed_export / "manifest.json").read_text(encoding="utf-8"))
    data = lambda m: {f["path"]: f["sha256"] for f in m["files"] if f["path"] != "README.md"}  # noqa: E731
    assert data(again) == data(manifest)


def test_outdir_is_refused_replaced_only_when_safe_and_never_partial(runner, tmp_path):
    src = write_jsonl(tmp_path / "mixed.jsonl", mixed_messages(12))
    out = tmp_path / "out"
    assert export(runner, src, out, "--target", "trl").exit_code == 0
    before = (out / "manifest.json").read_bytes()

    result = export(runner, src, out, "--target", "trl")
    assert result.exit_code == 1 and "already exists; pass --overwrite" in result.stderr
    assert (out / "manifest.json").read_bytes() == before

    result = export(runner, src, out, "--target", "alpaca", "--overwrite")
    assert result.exit_code == 0
    assert (out / "sft" / "alpaca" / "train.jsonl").is_file() and not (out / "sft" / "trl").exists()

    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    result = export(runner, src, precious, "--overwrite")
    assert result.exit_code == 1 and "not an itkit export" in result.stderr
    assert (precious / "notes.txt").read_text() == "keep me"

    empty = tmp_path / "empty"
    empty.mkdir()
    assert export(runner, src, empty, "--target", "trl").exit_code == 0

    bad = write_jsonl(tmp_path / "bad.jsonl", mixed_messages(5) + [{"id": "x", "messages": [{"role": "user", "content": 3}]}])
    result = export(runner, bad, tmp_path / "never")
    assert result.exit_code == 1
    assert "bad.jsonl, line 6" in result.stderr and "content" in result.stderr
    assert not (tmp_path / "never").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary folders left behind"


def test_on_error_skip_keeps_rejects_in_outdir(runner, tmp_path):
    rows = mixed_messages(10) + [{"id": "bad", "messages": [{"role": "user", "content": ["x"]}]}]
    src = write_jsonl(tmp_path / "some_bad.jsonl", rows)
    out = tmp_path / "out"
    result = invoke(runner, "export", src, "-o", out, "--on-error", "skip", "--target", "sharegpt")
    assert result.exit_code == 3
    assert "1 rejected" in result.stderr
    rejected = read_jsonl(out / "rejected.jsonl")
    assert len(rejected) == 1 and rejected[0]["line"] == 11
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"]["rejected"] == 1 and manifest["modes"]["sft"]["records"] == 10


def test_records_ending_with_the_user_lose_that_turn(runner, tmp_path):
    rows = [
        {"id": "a", "conversations": [{"from": "human", "value": "Hi there"}, {"from": "gpt", "value": "Hello, how can I help?"}, {"from": "human", "value": "Thanks"}]},
        {"id": "b", "conversations": [{"from": "human", "value": "Only a question"}]},
        {"id": "c", "conversations": [{"from": "human", "value": "What is 2+2?"}, {"from": "gpt", "value": "It is 4."}]},
    ]
    src = tmp_path / "chats.json"
    src.write_text(json.dumps(rows))
    out = tmp_path / "out"
    result = invoke(runner, "export", src, "-o", out, "--mode", "sft", "--val-size", "0", "--target", "sharegpt", "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)["source"]
    assert summary["trimmed_trailing_user_turn"] == 1 and summary["dropped_no_exchange"] == 1
    got = {r["id"]: [t["from"] for t in r["conversations"]] for r in read_jsonl(out / "sft" / "sharegpt" / "train.jsonl")}
    assert got == {"a": ["human", "gpt"], "c": ["human", "gpt"]}
    assert not (out / "sft" / "sharegpt" / "val.jsonl").exists()
    info_free = yaml.safe_load((out / "README.md").read_text().split("---\n")[1])
    assert info_free["configs"][0]["data_files"] == [{"split": "train", "path": "sft/sharegpt/train.jsonl"}]


def test_prefer_simplified(runner, tmp_path):
    rows = [
        {
            "id": f"s{i}",
            "instruction": f"Explain topic number {i} in a few words please",
            "input": "",
            "output": f"Short simple answer {i} here.",
            "original_output": f"A much longer original answer for topic {i}, with many details and caveats included.",
        }
        for i in range(10)
    ] + [{"id": "plain", "instruction": "Say hello to the whole team", "input": "", "output": "Hello, everyone on the team!"}]
    src = write_jsonl(tmp_path / "simplified.jsonl", rows)

    def outputs(out: Path, mode: str) -> dict[str, str]:
        return {r["id"]: r["output"] for r in read_jsonl(out / mode / "alpaca" / "train.jsonl")}

    common = ("--target", "alpaca", "--val-size", "0", "--lft-size", "20")
    default = tmp_path / "default"
    assert export(runner, src, default, *common).exit_code == 0
    preferred = tmp_path / "preferred"
    assert export(runner, src, preferred, *common, "--prefer-simplified").exit_code == 0

    lft_default, lft_preferred = outputs(default, "lft"), outputs(preferred, "lft")
    assert all(lft_default[f"s{i}"].startswith("A much longer original") for i in range(10))
    assert all(lft_preferred[f"s{i}"] == f"Short simple answer {i} here." for i in range(10))
    assert lft_default["plain"] == lft_preferred["plain"] == "Hello, everyone on the team!"
    for out in (default, preferred):  # SFT always trains on the simplified responses
        assert all(outputs(out, "sft")[f"s{i}"].startswith("Short simple") for i in range(10))
    m_default = json.loads((default / "manifest.json").read_text())
    m_preferred = json.loads((preferred / "manifest.json").read_text())
    assert m_default["source"]["with_simplified_and_original"] == 10
    assert m_default["modes"]["lft"]["responses"] == {"original": 10, "single": 1}
    assert m_preferred["modes"]["lft"]["responses"] == {"simplified": 10, "single": 1}
    assert m_default["modes"]["sft"]["responses"] == {"simplified": 10, "single": 1}
    lineage = {r["id"]: r["response"] for r in read_jsonl(default / "lft" / "lineage.jsonl")}
    assert lineage["s0"] == "original" and lineage["plain"] == "single"


def test_usage_errors(runner, tmp_path):
    src = write_jsonl(tmp_path / "mixed.jsonl", mixed_messages(5))
    cases = [
        (("--target", "unsloth"), "unknown target 'unsloth'"),
        (("--val-ratio", "0.1", "--val-size", "3"), "not both"),
        (("--split-long",), "--split-long needs --max-length"),
        (("--tokenizer", str(tmp_path), "--encoding", "cl100k_base"), "not both"),
        (("--lft-size", "0"), "--lft-size must be at least 1"),
        (("--lft-rules", "empty,shiny"), "unknown rule 'shiny'"),
        (("--lft-min-response", "50", "--lft-max-response", "10"), "min_response (50) is greater than max_response (10)"),
    ]
    for args, message in cases:
        result = export(runner, src, tmp_path / "out", *args)
        assert result.exit_code == 2, (args, result.stderr)
        assert message in result.stderr
        assert not (tmp_path / "out").exists()


def test_summary_shows_counts_and_coverage(runner, tmp_path):
    src = write_jsonl(tmp_path / "mixed.jsonl", mixed_messages(30))
    result = invoke(runner, "export", src, "-o", tmp_path / "out", "--lft-size", "10", "--target", "trl")
    assert result.exit_code == 0
    err = result.stderr
    assert "candidates" in err and "moved to train" in err
    assert "LFT coverage by cluster" in err and "entropy" in err
    assert result.stdout == ""


def test_nothing_left_for_a_set_is_an_error_and_writes_nothing(runner, tmp_path):
    src = write_jsonl(tmp_path / "mixed.jsonl", mixed_messages(6))
    result = export(runner, src, tmp_path / "out", "--max-length", "5")
    assert result.exit_code == 1
    assert "no record is left for the LFT set (6 usable, 6 over --max-length" in result.stderr
    assert not (tmp_path / "out").exists()


def test_the_typed_command_is_recorded(runner, tmp_path, monkeypatch):
    src = write_jsonl(tmp_path / "mixed.jsonl", mixed_messages(6))
    out = tmp_path / "out dir"
    monkeypatch.setattr("sys.argv", ["/usr/bin/itkit", "export", str(src), "-o", str(out), "-t", "trl"])
    assert export(runner, src, out, "-t", "trl").exit_code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["invoked_as"] == f"itkit export {src} -o '{out}' -t trl"
    card = (out / "README.md").read_text()
    assert "Command as run:" in card and manifest["invoked_as"] in card and manifest["command"] in card


def test_lineage_and_categories_from_fields_the_format_keeps_as_extra(runner, tmp_path):
    step = {"method": "simplify", "model": "m-1", "template": "simplify/simplify", "parent_id": "x"}
    rows = [
        {"id": f"r{i}", "instruction": f"Question number {i} about apples", "input": "", "output": f"Answer {i} about apples.",
         "category": "open_qa" if i % 2 else "brainstorming", "provenance": [{**step, "parent_id": f"r{i}"}] if i < 4 else []}
        for i in range(10)
    ]
    src = write_jsonl(tmp_path / "rewritten.jsonl", rows)
    out = tmp_path / "out"
    result = invoke(runner, "export", src, "-o", out, "--target", "alpaca", "--lft-size", "4", "--val-size", "0", "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    sft = summary["modes"]["sft"]
    assert sft["lineage"]["rewritten_records"] == 4
    assert sft["lineage"]["steps"] == [{"method": "simplify", "operation": "", "model": "m-1", "records": 4}]
    assert sft["lineage"]["sources"] == {"rewritten.jsonl": 10}
    assert sft["categories"] == {"brainstorming": 5, "open_qa": 5}
    assert summary["modes"]["lft"]["coverage"]["kind"] == "category"
    card = (out / "README.md").read_text()
    assert "| simplify | - | m-1 | 4 |" in card
    assert "Categories of the SFT set" in card and "| open_qa | 5 |" in card
    lineage = {r["id"]: r for r in read_jsonl(out / "sft" / "lineage.jsonl")}
    assert lineage["r1"]["provenance"][0]["method"] == "simplify" and lineage["r1"]["category"] == "open_qa"
