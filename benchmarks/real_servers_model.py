"""Build a tiny random Llama model (HF folder + GGUF) to try itkit against real servers on CPU.

Manual trial, not a test: needs torch, transformers, tokenizers (and gguf for the GGUF file), none of
which are itkit dependencies. See benchmarks/real_servers.md.

    python benchmarks/real_servers_model.py OUT_DIR [--context 128]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

TEXT = (
    "Write a short story about a cat. Give three tips for staying healthy. What is the capital of France? "
    "Explain photosynthesis simply. Rewrite the sentence in plain words. The answer is yes. Summarize the text. "
    "Translate into French. List the steps to bake bread. Describe the water cycle. Solve the math problem. "
) * 40

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def build(out: Path, context: int) -> None:
    try:
        import torch
        from tokenizers import Tokenizer, models, pre_tokenizers, trainers, decoders
        from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    except ImportError as exc:
        sys.exit(f"skipped: {exc.name} is not installed (see benchmarks/real_servers.md)")
    torch.manual_seed(0)
    out.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    special = ["<unk>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>"]
    tok.train_from_iterator([TEXT], trainers.BpeTrainer(vocab_size=512, special_tokens=special,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                   pad_token="</s>", model_max_length=context)
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out / "hf")
    config = LlamaConfig(vocab_size=len(fast), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=context,
                         bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id, tie_word_embeddings=False)
    model = LlamaForCausalLM(config)
    model.generation_config.max_length = context
    model.save_pretrained(out / "hf")
    (out / "hf" / "chat_template.jinja").write_text(CHAT_TEMPLATE)
    write_gguf(out / "tiny.gguf", model, fast, context)
    print(json.dumps({"hf": str(out / "hf"), "gguf": str(out / "tiny.gguf"), "context": context}))


def write_gguf(path: Path, model, fast, context: int) -> None:
    try:
        import gguf
    except ImportError:
        print("gguf not installed: no GGUF written", file=sys.stderr)
        return
    import numpy as np
    cfg = model.config
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny-llama")
    w.add_context_length(context)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    vocab = fast.get_vocab()
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    merges = [" ".join(m) if isinstance(m, (list, tuple)) else m
              for m in json.loads(fast.backend_tokenizer.to_str())["model"]["merges"]]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    types = [gguf.TokenType.CONTROL if t in fast.all_special_tokens else gguf.TokenType.NORMAL for t in tokens]
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(fast.bos_token_id)
    w.add_eos_token_id(fast.eos_token_id)
    w.add_chat_template(CHAT_TEMPLATE)
    sd = {k: v.float().numpy() for k, v in model.state_dict().items()}
    heads = cfg.num_attention_heads

    def permute(x: "np.ndarray", n_head: int) -> "np.ndarray":
        # HF rotates halves; GGUF llama expects interleaved pairs (as convert_hf_to_gguf.py does)
        return x.reshape(n_head, 2, x.shape[0] // n_head // 2, *x.shape[1:]).swapaxes(1, 2).reshape(x.shape)

    w.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"])
    w.add_tensor("output_norm.weight", sd["model.norm.weight"])
    w.add_tensor("output.weight", sd["lm_head.weight"])
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        w.add_tensor(f"blk.{i}.attn_norm.weight", sd[p + "input_layernorm.weight"])
        w.add_tensor(f"blk.{i}.attn_q.weight", permute(sd[p + "self_attn.q_proj.weight"], heads))
        w.add_tensor(f"blk.{i}.attn_k.weight", permute(sd[p + "self_attn.k_proj.weight"], cfg.num_key_value_heads))
        w.add_tensor(f"blk.{i}.attn_v.weight", sd[p + "self_attn.v_proj.weight"])
        w.add_tensor(f"blk.{i}.attn_output.weight", sd[p + "self_attn.o_proj.weight"])
        w.add_tensor(f"blk.{i}.ffn_norm.weight", sd[p + "post_attention_layernorm.weight"])
        w.add_tensor(f"blk.{i}.ffn_gate.weight", sd[p + "mlp.gate_proj.weight"])
        w.add_tensor(f"blk.{i}.ffn_up.weight", sd[p + "mlp.up_proj.weight"])
        w.add_tensor(f"blk.{i}.ffn_down.weight", sd[p + "mlp.down_proj.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--context", type=int, default=128)
    a = ap.parse_args()
    build(a.out, a.context)
