"""References for kiln's compile-time weight quantization (kiln compile --quantize int8, int4, fp8).

Run by tools/make_fixtures.py --only quant (inside its venv), after the llama and deepseek fixtures exist. For
each fixture below it writes tests/fixtures/llama/<name>/reference_int8[_head].safetensors:
transformers' logits and greedy tokens for the checkpoint with every decoder-layer nn.Linear (and,
for the _head file, lm_head) replaced by its per-row int8 dequantization, computed by torch:

    scale = W.abs().amax(dim=1) / 127;  q = round(W / scale).clamp(-127, 127);  W' = q * scale

(round half to even, all in float32; a zero row keeps q = 0). The same input_ids and prompt_ids as
reference.safetensors. Also one layer's q (int8) and scale (f32) as torch computes them, for the unit
test of the formula itself (tests/compiler/test_quantize.cpp).

And tests/fixtures/lora/all_linear_r8/reference_int8.safetensors: the same for its base with the
adapter merged by peft (merge_and_unload) first, as kiln merges before it quantizes.

And tests/fixtures/quantized/: pre-quantized checkpoints written by compressed-tensors itself, with
transformers' references for them (compressed_tensors_fixtures below); GPTQ ones written by AutoRound
(gptq_fixtures); FP8 checkpoints in DeepSeek's block layout (fp8_block_fixtures); and the int4 and fp8
references (int4_fixtures, fp8_fixtures).
"""
import os

LLAMA_CASES = [("gqa_f32", False), ("gqa_f32", True), ("bias_f32", False), ("tied_f32", False), ("tied_f32", True),
               ("bf16", False)]
MIN_MARGIN = 1e-3


def quantize_int8(w):
    import torch
    w = w.float()
    scale = w.abs().amax(dim=1) / 127
    q = torch.where(scale[:, None] > 0, torch.round(w / scale[:, None]), torch.zeros_like(w)).clamp(-127, 127)
    return q.to(torch.int8), scale


def greedy_with_margins(model, prompt_ids, n_new):
    import torch
    ids = prompt_ids[None]
    margins = []
    with torch.no_grad():
        for _ in range(n_new):
            logits = model(ids).logits[0, -1].float()
            top = torch.topk(logits, 2).values
            margins.append((top[0] - top[1]).item())
            ids = torch.cat([ids, logits.argmax().view(1, 1)], dim=1)
    return ids[0], margins


def save_greedy_reference(model, ref, out, logits, name, path):
    """Writes out + the fixture's inputs, the quantized model's logits and its greedy tokens (each step's
    top-2 margin at least MIN_MARGIN) to path; returns (greedy ids, margins)."""
    from safetensors.torch import save_file
    n_new = ref["greedy_ids"].numel() - ref["prompt_ids"].numel()
    greedy, margins = greedy_with_margins(model, ref["prompt_ids"], n_new)
    assert min(margins) >= MIN_MARGIN, "%s: greedy margin %.2e too small for an exact comparison" % (
        name, min(margins))
    out.update(input_ids=ref["input_ids"], prompt_ids=ref["prompt_ids"], greedy_ids=greedy.contiguous(),
               logits=logits)
    save_file(out, path)
    return greedy, margins


def main(repo):
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file, save_file
    from transformers import LlamaForCausalLM

    base = os.path.join(repo, "tests", "fixtures", "llama")
    lora = os.path.join(repo, "tests", "fixtures", "lora", "all_linear_r8")
    with open(os.path.join(lora, "base.txt")) as f:
        lora_base = f.read().strip()
    for name, head in LLAMA_CASES + [("lora:all_linear_r8", False)]:
        is_lora = name.startswith("lora:")
        d = lora if is_lora else os.path.join(base, name)
        ref = load_file(os.path.join(d, "reference.safetensors"))
        model = LlamaForCausalLM.from_pretrained(os.path.join(base, lora_base) if is_lora else d,
                                                 dtype=torch.float32).eval()
        if is_lora:
            model = PeftModel.from_pretrained(model, os.path.join(lora, "adapter")).merge_and_unload().eval()
            with torch.no_grad():  # the merge must give the adapter's reference logits before quantizing
                merged = model(ref["input_ids"]).logits.float()
            moved = ((merged - ref["logits"]).norm() / ref["logits"].norm()).item()
            assert moved < 1e-5, "peft merge differs from the fixture's reference: %.2e" % moved
        linears = [m for layer in model.model.layers for m in layer.modules() if isinstance(m, torch.nn.Linear)]
        if head:
            if model.config.tie_word_embeddings:  # kiln quantizes a copy for the head; the embedding keeps its rows
                model.lm_head.weight = torch.nn.Parameter(model.lm_head.weight.detach().clone())
                assert model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr()
            linears.append(model.lm_head)
        out = {}
        with torch.no_grad():
            for i, lin in enumerate(linears):
                q, scale = quantize_int8(lin.weight)
                if i == 0:  # layer 0's q_proj, for the formula's unit test
                    out["check_q"] = q.contiguous()
                    out["check_scale"] = scale.contiguous()
                lin.weight.copy_(q.float() * scale[:, None])
            logits = model(ref["input_ids"]).logits.float().contiguous()
        fname = "reference_int8%s.safetensors" % ("_head" if head else "")
        greedy, margins = save_greedy_reference(model, ref, out, logits, name, os.path.join(d, fname))
        moved = (logits - ref["logits"]).norm() / ref["logits"].norm()
        print("  %s/%s: %d linears quantized, logits moved %.3e rel L2 from the unquantized ones, "
              "min greedy margin %.3e, greedy %s (unquantized %s)"
              % (name if is_lora else "llama/" + name, fname, len(linears), moved.item(), min(margins), greedy.tolist()[ref["prompt_ids"].numel():],
                 ref["greedy_ids"].tolist()[ref["prompt_ids"].numel():]))
    compressed_tensors_fixtures(repo)
    fp8_block_fixtures(repo)
    int4_fixtures(repo)
    int4_asym_fixtures(repo)
    fp8_fixtures(repo)
    gptq_fixtures(repo)


# kiln compile --quantize int4 --group-size G: symmetric group-wise int4 as AutoRound's round-to-nearest
# computes it (auto_round.data_type.int.quant_tensor_rtn_sym, whose scale choice is llama.cpp's Q4_0's: the group's
# value of the larger magnitude, the positive one on a tie, is q = -8, so scale = that value / -8, negative
# when it is positive, and q = clamp(round(w / scale), -8, 7)); its scales in f32 (scale_dtype) and
# unclamped (q_scale_thresh 0: kiln gives a group of zeros scale 0, no group here is). Checked against
# the formula kiln documents, exactly. (compressed-tensors' absmax / 7.5, kiln's formula until 2026-12-05,
# leaves the largest value half a step off; on SmolLM2 its perplexity rise was 1.2-1.9x this one's in
# five of six cases, 0.8x in the sixth.)
# For each case, tests/fixtures/<family>/<name>/reference_int4_g<G>[_head].safetensors: transformers'
# logits and greedy tokens with every decoder-layer nn.Linear (and lm_head for _head) replaced by that
# dequantization, every weight whose rows are whole groups (with G = 64, the down projections' 160
# are not: kiln leaves them unquantized, and so does the reference); and layer 0's q_proj scales and
# q (int8, -8..7) for the formula's unit test.
# Group 0 is kiln's default (no --group-size): per weight, the largest of 128, 96, 64 and 32 that
# divides its rows (64 for the 64-wide ones, 32 for the down projections' 160): reference_int4_default.
# (name, head, group, lora)
INT4_CASES = [("gqa_f32", False, 32, False), ("gqa_f32", True, 32, False), ("gqa_f32", False, 64, False),
              ("gqa_f32", False, 0, False),
              ("tied_f32", True, 32, False), ("bf16", False, 32, False), ("all_linear_r8", False, 32, True)]


def quantize_int4(w, group):
    """AutoRound's symmetric round-to-nearest group int4 of w (rows, k): (q as int8, scale (rows, k // group), w')."""
    import torch
    from auto_round.data_type.int import quant_tensor_rtn_sym
    w = w.float()
    rows, k = w.shape
    deq, scale, maxq = quant_tensor_rtn_sym(w, bits=4, group_size=group, q_scale_thresh=0.0,
                                            scale_dtype=torch.float32)
    assert maxq == 8
    scale = scale.reshape(rows, k // group)
    # The same by the formula kiln documents (compiler/passes/quantize.h), exactly.
    g = w.reshape(rows, k // group, group)
    lo, hi = g.amin(dim=2).clamp(max=0), g.amax(dim=2).clamp(min=0)
    s = torch.where(-lo > hi, lo, hi) / -8
    q = torch.where(s[..., None] != 0, torch.round(g / s[..., None]), torch.zeros_like(g)).clamp(-8, 7)
    assert torch.equal(scale, s), "AutoRound's int4 scale moved"
    assert torch.equal(deq, (q * s[..., None]).reshape(rows, k)), "AutoRound's int4 round-to-nearest moved"
    assert (s < 0).any() and (s > 0).any(), "expected scales of both signs"
    return q.reshape(rows, k).to(torch.int8), s, deq


def int4_fixtures(repo):
    def quantize(w, group):
        k = w.shape[1]
        g = group or next(gs for gs in (128, 96, 64, 32) if k % gs == 0)
        return None if k % g else quantize_int4(w, g)  # not whole groups: kiln keeps it in the plan dtype

    dequantized_fixtures(repo, INT4_CASES, quantize,
                         lambda group, head: "reference_int4_%s%s.safetensors" % (
                             "g%d" % group if group else "default", "_head" if head else ""))


def dequantized_fixtures(repo, cases, quantize, fname_of, extra=None):
    """For each (name, head, group, lora) case: transformers' logits and greedy tokens with every decoder
    nn.Linear (and lm_head with head) replaced by quantize(weight, group)'s dequantization (None: left
    as it is), and layer 0's q_proj q and scale, saved to <fixture>/fname_of(group, head)."""
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import LlamaForCausalLM

    base = os.path.join(repo, "tests", "fixtures", "llama")
    lora = os.path.join(repo, "tests", "fixtures", "lora", "all_linear_r8")
    with open(os.path.join(lora, "base.txt")) as f:
        lora_base = f.read().strip()
    for name, head, group, is_lora in cases:
        d = lora if is_lora else os.path.join(base, name)
        ref = load_file(os.path.join(d, "reference.safetensors"))
        model = LlamaForCausalLM.from_pretrained(os.path.join(base, lora_base) if is_lora else d,
                                                 dtype=torch.float32).eval()
        if is_lora:  # merged first, as kiln merges before it quantizes
            model = PeftModel.from_pretrained(model, os.path.join(lora, "adapter")).merge_and_unload().eval()
        linears = [m for layer in model.model.layers for m in layer.modules() if isinstance(m, torch.nn.Linear)]
        if head:
            if model.config.tie_word_embeddings:  # kiln quantizes a copy for the head; the embedding keeps its rows
                model.lm_head.weight = torch.nn.Parameter(model.lm_head.weight.detach().clone())
            linears.append(model.lm_head)
        out, n = {}, 0
        with torch.no_grad():
            for i, lin in enumerate(linears):
                qd = quantize(lin.weight, group)
                if qd is None:
                    continue
                q, scale, deq = qd
                if i == 0:
                    out["check_q"] = q.contiguous()
                    out["check_scale"] = scale.contiguous()
                lin.weight.copy_(deq)
                n += 1
            logits = model(ref["input_ids"]).logits.float().contiguous()
        if extra:
            out.update(extra())
        fname = fname_of(group, head)
        _, margins = save_greedy_reference(model, ref, out, logits, name, os.path.join(d, fname))
        moved = (logits - ref["logits"]).norm() / ref["logits"].norm()
        print("  %s/%s: %d linears quantized, logits moved %.3e rel L2 from the unquantized ones, "
              "min greedy margin %.3e" % (name, fname, n, moved.item(), min(margins)))


# kiln compile --quantize int4 --asymmetric: compressed-tensors' asymmetric group int4
# (QuantizationArgs(num_bits=4, type="int", symmetric=False, strategy="group")): over each group's
# [lo, hi] = [min(w, 0), max(w, 0)], calculate_qparams gives scale = (hi - lo) / 15 and zero point
# zp = round(clamp(-8 - lo / scale, -8, 7)), and fake_quantize (q = round(clamp(w / scale + zp, -8, 7)))
# gives (q - zp) * scale. reference_int4a_g<G>[_head].safetensors: as the int4 ones, plus layer 0's
# q_proj zero points (check_zero, int8). Checked against the torch formula itself, exactly.
INT4_ASYM_CASES = [("gqa_f32", False, 32, False), ("gqa_f32", True, 32, False), ("bf16", False, 64, False)]


def quantize_int4_asym(w, group):
    """compressed-tensors' asymmetric group int4 of w (rows, k): (q as int8, scale, w', zp as int8)."""
    import torch
    from compressed_tensors.quantization import QuantizationArgs
    from compressed_tensors.quantization.lifecycle.forward import fake_quantize
    from compressed_tensors.quantization.utils import calculate_qparams
    args = QuantizationArgs(num_bits=4, type="int", symmetric=False, strategy="group", group_size=group)
    w = w.float()
    rows, k = w.shape
    g = w.reshape(rows, k // group, group)
    scale, zp = calculate_qparams(g.amin(dim=2), g.amax(dim=2), args)
    deq = fake_quantize(w, scale, zp, args)
    # The same by the formula kiln documents (compiler/passes/quantize.h), exactly.
    lo = torch.clamp(g.amin(dim=2), max=0)
    hi = torch.clamp(g.amax(dim=2), min=0)
    s = (hi - lo) / 15
    z = torch.round(torch.clamp(-8 - lo / s, -8, 7))
    q = torch.round(torch.clamp(g / s[..., None] + z[..., None], -8, 7))
    assert (s > 0).all(), "a group of zeros: kiln's scale 0 and compressed-tensors' eps differ in form"
    assert torch.equal(scale, s) and torch.equal(zp.float(), z), "compressed-tensors' asymmetric int4 moved"
    assert torch.equal(deq, ((q - z[..., None]) * s[..., None]).reshape(rows, k)), "fake_quantize moved"
    return q.reshape(rows, k).to(torch.int8), s, deq, z.to(torch.int8)


def int4_asym_fixtures(repo):
    zeros = {}  # the first quantized weight's (layer 0's q_proj, as check_q)

    def quantize_keep_zero(w, group):
        if w.shape[1] % group:
            return None
        q, s, deq, z = quantize_int4_asym(w, group)
        zeros.setdefault("first", z)
        return q, s, deq

    dequantized_fixtures(repo, INT4_ASYM_CASES, quantize_keep_zero,
                         lambda group, head: "reference_int4a_g%d%s.safetensors" % (group, "_head" if head else ""),
                         extra=lambda: {"check_zero": zeros.pop("first").contiguous()})


# kiln compile --quantize fp8: per-channel FP8 (e4m3) as compressed-tensors computes it
# (QuantizationArgs(num_bits=8, type="float", symmetric=True, strategy="channel"): calculate_qparams on
# each row's min and max gives scale = absmax / 448, and fake_quantize gives
# float8_e4m3fn(clamp(w / scale, -448, 448)) * scale). For each case,
# tests/fixtures/<family>/<name>/reference_fp8[_head].safetensors: transformers' logits and greedy tokens
# with every decoder-layer nn.Linear (and lm_head for _head) replaced by that dequantization; and layer
# 0's q_proj codes (uint8, the float8_e4m3fn bits) and scales (rows, 1) for the formula's unit test.
# Checked against the torch formula itself, exactly. (name, head, group (unused), lora)
FP8_CHANNEL_CASES = [("gqa_f32", False, 0, False), ("gqa_f32", True, 0, False), ("tied_f32", True, 0, False),
                     ("bf16", False, 0, False), ("all_linear_r8", False, 0, True)]


def quantize_fp8(w, group=0):
    """compressed-tensors' per-channel FP8 of w (rows, k): (codes as uint8, scale (rows, 1), w')."""
    import torch
    from compressed_tensors.quantization import QuantizationArgs
    from compressed_tensors.quantization.lifecycle.forward import fake_quantize
    from compressed_tensors.quantization.utils import calculate_qparams
    args = QuantizationArgs(num_bits=8, type="float", symmetric=True, strategy="channel")
    w = w.float()
    scale, zp = calculate_qparams(w.amin(dim=1, keepdim=True), w.amax(dim=1, keepdim=True), args)
    deq = fake_quantize(w, scale, zp, args)
    # The same by the formula kiln documents (compiler/passes/quantize.h), exactly.
    s = w.abs().amax(dim=1, keepdim=True) / 448
    f8 = torch.where(s > 0, (w / s).clamp(-448, 448), torch.zeros_like(w)).to(torch.float8_e4m3fn)
    assert torch.equal(scale, s) and torch.equal(zp, torch.zeros_like(zp)), "compressed-tensors' fp8 scale moved"
    assert torch.equal(deq, f8.float() * s), "compressed-tensors' fp8 fake_quantize moved"
    return f8.view(torch.uint8), s, deq


def fp8_fixtures(repo):
    dequantized_fixtures(repo, FP8_CHANNEL_CASES, quantize_fp8,
                         lambda group, head: "reference_fp8%s.safetensors" % ("_head" if head else ""))


# Pre-quantized checkpoints as llm-compressor writes them (compressed-tensors), for kiln's reader:
# tests/fixtures/quantized/<name>/ holds the compressed checkpoint (config.json with its
# quantization_config, model.safetensors with X.weight_packed / X.weight_scale / X.weight_shape) and
# reference.safetensors: transformers' logits and greedy tokens for that folder as transformers loads
# it (compressed-tensors decompresses each weight to q * scale). The base is llama/gqa_f32; every
# decoder nn.Linear is quantized (lm_head ignored, as llm-compressor's W8A16 recipe does), the scales
# from compressed-tensors' own calculate_qparams on each row's min and max (what llm-compressor's
# default weight observer computes), so q covers [-128, 127] and scale = absmax / 127.5.
# The W4A16 cases (llm-compressor's W4A16 recipe: 4-bit symmetric groups along each row) the same with
# num_bits 4 and strategy "group": a scale per group of 32 values, q in [-8, 7], scale = absmax / 7.5.
# The asymmetric W4A16 case: the same with symmetric False, a zero point per group (X.weight_zero_point,
# packed along the rows), q = round(clamp(w / scale + zp, -8, 7)), the value (q - zp) * scale.
# The FP8 cases (llm-compressor's FP8 weight-only schemes, format "float-quantized"): 8-bit "float"
# weights stored as float8_e4m3fn X.weight with X.weight_scale, one scale a row (strategy "channel"), one
# for the tensor ("tensor") or one per block ("block", block_structure [32, 32]); scale = absmax / 448.
# (name, base fixture, the dtype the base is quantized in: its scales are stored in it, bits, group
# size or 0 for one scale a row, or for FP8 "tensor" or a block (rows, cols), type)
CT_CASES = [("ct_w8a16_f32", "gqa_f32", "float32", 8, 0, "int"), ("ct_w8a16_bf16", "bf16", "bfloat16", 8, 0, "int"),
            ("ct_w4a16_g32_f32", "gqa_f32", "float32", 4, 32, "int"),
            ("ct_w4a16_g32_bf16", "bf16", "bfloat16", 4, 32, "int"),
            ("ct_fp8_channel_f32", "gqa_f32", "float32", 8, 0, "float"),
            ("ct_fp8_channel_bf16", "bf16", "bfloat16", 8, 0, "float"),
            ("ct_fp8_tensor_f32", "gqa_f32", "float32", 8, "tensor", "float"),
            ("ct_fp8_block_f32", "gqa_f32", "float32", 8, (32, 32), "float"),
            ("ct_w4a16_asym_g32_f32", "gqa_f32", "float32", 4, 32, "int-asym")]
# The same recipes on the DeepSeek-V2 fixture (MLA without q_lora: q_proj, kv_a_proj_with_mqa, kv_b_proj,
# o_proj; the dense MLP and the shared experts). transformers 5 holds the routed experts as one 3-D
# parameter, not nn.Linear modules, so llm-compressor's "Linear" target leaves them (and the router)
# unquantized here, where hub checkpoints written with per-expert modules have them quantized too.
DS_CT_CASES = [("ds_ct_w4a16_g32_f32", "v2_greedy_yarn", "float32", 4, 32, "int"),
               ("ds_ct_w8a16_f32", "v2_greedy_yarn", "float32", 8, 0, "int"),
               ("ds_ct_fp8_channel_f32", "v2_greedy_yarn", "float32", 8, 0, "float")]


def compressed_tensors_fixtures(repo, only=None):
    import json
    import shutil
    import torch
    from compressed_tensors.compressors import ModelCompressor
    from compressed_tensors.quantization import (QuantizationArgs, QuantizationConfig, QuantizationScheme,
                                                 QuantizationStatus, apply_quantization_config)
    from compressed_tensors.quantization.utils import calculate_qparams
    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForCausalLM, CompressedTensorsConfig, LlamaForCausalLM

    for (name, base_name, dtype, bits, group, kind), family in (
            [(c, "llama") for c in CT_CASES] + [(c, "deepseek") for c in DS_CT_CASES]):
        if only and name not in only:
            continue
        fp8 = kind == "float"
        symmetric = kind != "int-asym"
        strategy = ("block" if isinstance(group, tuple) else "tensor" if group == "tensor" else "channel") if fp8 \
            else "group" if group else "channel"
        base = os.path.join(repo, "tests", "fixtures", family, base_name)
        out = os.path.join(repo, "tests", "fixtures", "quantized", name)
        ref = load_file(os.path.join(base, "reference.safetensors"))
        model_class = LlamaForCausalLM if family == "llama" else AutoModelForCausalLM
        model = model_class.from_pretrained(base, dtype=getattr(torch, dtype)).eval()
        qcfg = QuantizationConfig(
            config_groups={"group_0": QuantizationScheme(
                targets=["Linear"], weights=QuantizationArgs(
                    num_bits=bits, type="float" if fp8 else "int", symmetric=symmetric, strategy=strategy,
                    group_size=group if strategy == "group" else None,
                    block_structure=list(group) if strategy == "block" else None, dynamic=False))},
            ignore=["lm_head"], quantization_status=QuantizationStatus.FROZEN)
        apply_quantization_config(model, qcfg)
        expected = {}  # module name -> q * scale, as the checkpoint will hold it
        with torch.no_grad():
            for mname, m in model.named_modules():
                if getattr(m, "quantization_scheme", None) is None:
                    continue
                w = m.weight
                rows, k = w.shape
                if strategy == "block":  # (row blocks, col blocks, values of a block)
                    br, bc = group
                    g = w.reshape(rows // br, br, k // bc, bc).permute(0, 2, 1, 3).reshape(rows // br, k // bc, -1)
                elif strategy == "tensor":
                    g = w.reshape(1, 1, rows * k)
                else:
                    g = w.reshape(rows, k // group, group) if strategy == "group" else w.reshape(rows, 1, k)
                scale, zp = calculate_qparams(g.amin(dim=2), g.amax(dim=2), m.quantization_scheme.weights)
                m.weight_scale.data.copy_(scale.reshape(m.weight_scale.shape))
                if hasattr(m, "weight_zero_point"):
                    m.weight_zero_point.data.copy_(zp.reshape(m.weight_zero_point.shape))
                if fp8:  # compressed-tensors' float quantization: clamp, cast to e4m3, back in the scale's dtype
                    q = torch.clamp(g / scale[..., None], -448, 448).to(torch.float8_e4m3fn).to(scale.dtype)
                elif not symmetric:  # compressed-tensors' order: divide, add the zero point, clamp, round
                    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
                    q = torch.round(torch.clamp(g / scale[..., None] + zp[..., None].float(), lo, hi))
                    q = q - zp[..., None].float()
                else:
                    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
                    q = torch.clamp(torch.round(g / scale[..., None]), lo, hi)
                deq = q * scale[..., None]
                if strategy == "block":
                    deq = deq.reshape(rows // br, k // bc, br, bc).permute(0, 2, 1, 3)
                expected[mname] = deq.reshape(rows, k)
        fmt = "float-quantized" if fp8 else "pack-quantized"
        comp = ModelCompressor.from_pretrained_model(model, quantization_format=fmt)
        comp.compress_model(model)
        if os.path.isdir(out):
            shutil.rmtree(out)
        model.save_pretrained(out)
        comp.update_config(out)
        gen = os.path.join(out, "generation_config.json")
        if os.path.exists(gen):
            os.remove(gen)
        with open(os.path.join(out, "config.json")) as f:
            cfg = json.load(f)
        qc = cfg["quantization_config"]
        assert qc["quant_method"] == "compressed-tensors" and qc["format"] == fmt, qc
        if family == "llama":
            # The reference: the folder as transformers loads it, decompressed by compressed-tensors at load.
            loaded = AutoModelForCausalLM.from_pretrained(
                out, dtype=torch.float32, quantization_config=CompressedTensorsConfig(run_compressed=False)).eval()
        else:
            # transformers 5 cannot load this folder (its MoE expert fusion and compressed-tensors' loading
            # conflict), so the reference is the compressed model in memory, which holds exactly the
            # tensors the folder does (asserted), decompressed by compressed-tensors' own code.
            saved = load_file(os.path.join(out, "model.safetensors"))
            n_checked = 0
            for mname in expected:
                m = model.get_submodule(mname)
                for pname, t in list(m.named_parameters(recurse=False)) + list(m.named_buffers(recurse=False)):
                    key = mname + "." + pname
                    if key in saved:
                        assert torch.equal(saved[key], t.detach()), "%s differs from the folder's" % key
                        n_checked += 1
                assert mname + (".weight" if fp8 else ".weight_packed") in saved, mname
            assert n_checked >= 2 * len(expected), n_checked
            comp.decompress_model(model)
            loaded = model.float().eval()
        with torch.no_grad():
            for mname, w in expected.items():
                got = loaded.get_submodule(mname).weight.float()
                assert torch.equal(got, w.float()), "%s: transformers' decompression is not q * scale" % mname
            logits = loaded(ref["input_ids"]).logits.float().contiguous()
        n_new = ref["greedy_ids"].numel() - ref["prompt_ids"].numel()
        greedy, margins = greedy_with_margins(loaded, ref["prompt_ids"], n_new)
        assert min(margins) >= MIN_MARGIN, "%s: greedy margin %.2e too small" % (name, min(margins))
        save_file({"input_ids": ref["input_ids"], "prompt_ids": ref["prompt_ids"], "greedy_ids": greedy.contiguous(),
                   "logits": logits}, os.path.join(out, "reference.safetensors"))
        moved = (logits - ref["logits"]).norm() / ref["logits"].norm()
        print("  quantized/%s: %d linears as compressed-tensors %s%d (%s, %s), logits moved "
              "%.3e rel L2 from %s, min greedy margin %.3e" % (name, len(expected), kind, bits, fmt, strategy,
                                                               moved.item(), base_name, min(margins)))


# DeepSeek-V3/R1's FP8 layout as its authors ship it: every projection weight (attention, dense MLP,
# routed and shared experts; not embeddings, norms, routers or lm_head) stored as float8_e4m3fn
# with X.weight_scale_inv, one f32 scale per weight_block_size block (rounded up at the edges: a
# partial block as kv_a_proj_with_mqa's [576, 7168] has on the real model), and a quantization_config
# {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic", "weight_block_size"}.
# The tiny V3 fixture's dims are far under 128, so its blocks are 32 × 32 (16 left a greedy margin too
# small to compare; kv_a_proj_with_mqa is [40, 64]: a grid of [2, 2] whose last row of blocks is
# partial). The reference is transformers running the checkpoint with each weight replaced by
# DeepSeek's block formula w = fp8 · scale_inv[i // 32, j // 32], in f32; transformers' own FP8 loader
# derives the block size as rows // scale_rows, which mis-reads partial blocks, so it is not used.
# (name, family, base fixture, block size). The LLaMA one (48 × 48 blocks on 64-wide weights, all
# partial at the edges) stands for the same layout in LLaMA-family releases (e.g. Qwen3's FP8 ones).
# MiniMax-M2's FP8 release has the same layout (its attention's q/k/v/o and its experts' w1/w3/w2, 128 × 128 blocks)
# under its own quantization_config: "fmt": "float8_e4m3fn" and modules_to_not_convert naming the router, the
# correction bias and the head; its fixture keeps those.
FP8_CASES = [("ds_v3_fp8_b32", "deepseek", "v3_noaux", (32, 32)), ("llama_fp8_b48", "llama", "gqa_f32", (48, 48)),
             ("llama_fp8_b48x16", "llama", "gqa_f32", (48, 16)),  # non-square: rows and columns not swapped
             ("minimax_m2_fp8_b32", "minimax_m2", "hub_f32", (32, 32))]


def fp8_block_fixtures(repo):
    import json
    import shutil
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import DeepseekV3ForCausalLM, LlamaForCausalLM, MiniMaxM2ForCausalLM

    for name, family, base_name, (br, bc) in FP8_CASES:
        base = os.path.join(repo, "tests", "fixtures", family, base_name)
        out = os.path.join(repo, "tests", "fixtures", "quantized", name)
        ref = load_file(os.path.join(base, "reference.safetensors"))
        tensors = load_file(os.path.join(base, "model.safetensors"))
        model_cls = {"deepseek": DeepseekV3ForCausalLM, "minimax_m2": MiniMaxM2ForCausalLM}.get(family, LlamaForCausalLM)
        model = model_cls.from_pretrained(base, dtype=torch.float32).eval()
        params = dict(model.named_parameters())
        quantized = 0
        partial = 0
        with torch.no_grad():
            for key in sorted(tensors):
                expert_w = ".block_sparse_moe.experts." in key and key.rsplit(".", 2)[1] in ("w1", "w2", "w3")
                if not (key.endswith("_proj.weight") or key.endswith("_proj_with_mqa.weight") or expert_w) or \
                        ".layers." not in key:
                    continue
                w = tensors[key].float()
                rows, cols = w.shape
                gr, gc = (rows + br - 1) // br, (cols + bc - 1) // bc
                partial += (rows % br != 0) or (cols % bc != 0)
                scale = torch.empty(gr, gc, dtype=torch.float32)
                for bi in range(gr):
                    for bj in range(gc):
                        blk = w[bi * br:(bi + 1) * br, bj * bc:(bj + 1) * bc]
                        scale[bi, bj] = blk.abs().amax().clamp(min=1e-12) / 448.0
                full = scale.repeat_interleave(br, 0)[:rows].repeat_interleave(bc, 1)[:, :cols]
                q = (w / full).to(torch.float8_e4m3fn)
                deq = q.float() * full  # DeepSeek's weight_dequant: the block formula
                tensors[key] = q.contiguous()
                tensors[key[:-len("weight")] + "weight_scale_inv"] = scale.contiguous()
                layer = int(key.split(".layers.")[1].split(".")[0])
                if layer >= model.config.num_hidden_layers:
                    pass  # the multi-token-prediction layer: in the checkpoint, unused by transformers (and kiln)
                elif key in params:  # the per-expert tensors the HF model holds as fused experts are set below
                    params[key].copy_(deq)
                else:
                    # (MiniMax-M2's hub names: block_sparse_moe and w1/w3/w2, transformers' mlp and gate/up/down)
                    experts = model.get_submodule(key.split(".experts.")[0].replace(".block_sparse_moe", ".mlp") +
                                                  ".experts")
                    e = int(key.split(".experts.")[1].split(".")[0])
                    kind = key.rsplit(".", 2)[1]
                    kind = {"w1": "gate_proj", "w3": "up_proj", "w2": "down_proj"}.get(kind, kind)
                    if kind == "down_proj":
                        experts.down_proj.data[e].copy_(deq)
                    else:
                        inter = deq.shape[0]
                        sl = slice(0, inter) if kind == "gate_proj" else slice(inter, 2 * inter)
                        experts.gate_up_proj.data[e, sl].copy_(deq)
                quantized += 1
            logits = model(ref["input_ids"]).logits.float().contiguous()
        n_new = ref["greedy_ids"].numel() - ref["prompt_ids"].numel()
        greedy, margins = greedy_with_margins(model, ref["prompt_ids"], n_new)
        assert min(margins) >= MIN_MARGIN, "%s: greedy margin %.2e too small" % (name, min(margins))
        assert partial > 0, "no partial blocks: the fixture would not test them"
        if os.path.isdir(out):
            shutil.rmtree(out)
        os.makedirs(out)
        save_file(tensors, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
        with open(os.path.join(base, "config.json")) as f:
            cfg = json.load(f)
        cfg["quantization_config"] = {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                                      "weight_block_size": [br, bc]}
        if family == "minimax_m2":  # (MiniMax-M2's own)
            cfg["quantization_config"].update(fmt="float8_e4m3fn",
                                              modules_to_not_convert=["gate", "e_score_correction_bias", "lm_head"])
        with open(os.path.join(out, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2, sort_keys=True)
        save_file({"input_ids": ref["input_ids"], "prompt_ids": ref["prompt_ids"], "greedy_ids": greedy.contiguous(),
                   "logits": logits}, os.path.join(out, "reference.safetensors"))
        moved = (logits - ref["logits"]).norm() / ref["logits"].norm()
        print("  quantized/%s: %d weights as FP8 e4m3 with %dx%d block scales (%d with partial blocks), logits "
              "moved %.3e rel L2 from %s, min greedy margin %.3e" % (name, quantized, br, bc, partial,
                                                                     moved.item(), base_name, min(margins)))


# GPTQ checkpoints (quant_method "gptq", the int32-packed format AutoGPTQ introduced and GPTQModel and
# vLLM read) written by AutoRound (the PyPI package auto-round; RTN: iters 0, no calibration data), its
# export format "auto_gptq": per quantized nn.Linear X.qweight (I32 [in * bits / 32, out]: each word
# 32 / bits values of consecutive inputs, the low bits first), X.qzeros (I32 [groups, out * bits / 32]:
# each zero point minus one, packed likewise along the outputs), X.scales (F16 [groups, out]) and
# X.g_idx (I32 [in], i // group_size: no act-order). The reference: every quantized module rebuilt as
# AutoRound's own GPTQ layer (auto_round_extension's QuantLinear for this format, the one its CPU
# backend runs) from those tensors, its dequantized weight read back through its forward on the
# identity (weight = scale * (q - (zero + 1)) in float16, as it computes), loaded into transformers'
# LlamaForCausalLM in float32 with the checkpoint's other tensors; logits and greedy tokens. (The
# layer's plain path, without g_idx: its g_idx path slices the scales by the input count, right only
# for square weights; the g_idx AutoRound writes is checked to be the groups in order.)
# (name, bits, group_size, sym)
GPTQ_CASES = [("gptq_w4g32_f32", 4, 32, True), ("gptq_w4g32_asym_f32", 4, 32, False), ("gptq_w8_f32", 8, -1, True)]
# The same on the DeepSeek-V2 fixture: AutoRound splits transformers' fused routed experts into per-expert
# Linear modules and quantizes them too (the router stays), and leaves kv_a_proj_with_mqa (40 outputs)
# unquantized, saying so in its config's "dynamic" as "-:<pattern>": {} exclusions. The reference loads the
# dequantized weights (hub layout) into transformers, which fuses the experts again.
DS_GPTQ_CASES = [("ds_gptq_w4g32_f32", 4, 32, True), ("ds_gptq_w4g32_asym_f32", 4, 32, False)]
# The same on GPT-NeoX's Pythia-layout fixture: query_key_value (each head's q, k and v rows together), dense and
# the MLP quantized as shipped under GPT-NeoX's names; the reference loads the dequantized weights likewise.
NEOX_GPTQ_CASES = [("neox_gptq_w4g32_asym_f32", 4, 32, False)]
# The same on StarCoder's layout (GPT-BigCode, multi_query: c_attn every q row, then k, then v) and BLOOM's
# (query_key_value by head, the embedding's LayerNorm and ALiBi), as the hub's GPTQ StarCoder and BLOOMZ ship.
BIGCODE_GPTQ_CASES = [("bigcode_gptq_w4g32_f32", 4, 32, True)]
BLOOM_GPTQ_CASES = [("bloom_gptq_w4g32_asym_f32", 4, 32, False)]
# and for this one reference_lora.safetensors: the same with the LoRA fixture all_linear_r8 (made for the
# base, gqa_f32) merged by peft into the dequantized weights
LORA_GPTQ_CASE = "gptq_w4g32_asym_f32"


def gptq_fixtures(repo, only=None):
    import glob
    import json
    import shutil
    import tempfile
    import torch
    from auto_round import AutoRound
    from auto_round_extension.torch.qlinear_torch_zp import QuantLinear
    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    for (name, bits, group, sym), family in ([(c, "llama") for c in GPTQ_CASES] +
                                             [(c, "deepseek") for c in DS_GPTQ_CASES] +
                                             [(c, "gpt_neox") for c in NEOX_GPTQ_CASES] +
                                             [(c, "gpt_bigcode") for c in BIGCODE_GPTQ_CASES] +
                                             [(c, "bloom") for c in BLOOM_GPTQ_CASES]):
        if only and name not in only:
            continue
        base_name = {"llama": "gqa_f32", "deepseek": "v2_greedy_yarn", "gpt_neox": "pythia_f32",
                     "gpt_bigcode": "starcoder_f32", "bloom": "hub_f32"}[family]
        base = os.path.join(repo, "tests", "fixtures", family, base_name)
        ref = load_file(os.path.join(base, "reference.safetensors"))
        out = os.path.join(repo, "tests", "fixtures", "quantized", name)
        model_class = LlamaForCausalLM if family == "llama" else AutoModelForCausalLM
        model = model_class.from_pretrained(base, dtype=torch.float32).eval()
        # (AutoRound wants a tokenizer even for RTN, which reads no text: the demo model's)
        tok = AutoTokenizer.from_pretrained(os.path.join(repo, "models", "kjv-tiny"))
        with tempfile.TemporaryDirectory() as tmp:
            ar = AutoRound(model, tokenizer=tok, bits=bits, group_size=group, sym=sym, iters=0, disable_opt_rtn=True)
            ar.quantize_and_save(output_dir=tmp, format="auto_gptq")
            (saved,) = [os.path.dirname(p) for p in glob.glob(os.path.join(tmp, "**", "config.json"), recursive=True)]
            if os.path.isdir(out):
                shutil.rmtree(out)
            os.makedirs(out)
            # the checkpoint as AutoRound writes it, less the tokenizer and generation config it copies
            for f in ("config.json", "quantization_config.json", "model.safetensors"):
                shutil.copy(os.path.join(saved, f), os.path.join(out, f))
        with open(os.path.join(out, "config.json")) as f:
            cfg = json.load(f)
        qc = cfg["quantization_config"]
        assert qc["quant_method"] == "gptq" and qc["bits"] == bits and qc["group_size"] == group, qc
        assert qc["sym"] == sym and qc["desc_act"] is False, qc
        # only exclusions ("-:"), which kiln reads, and none on the LLaMA fixture
        assert all(k.startswith("-:") and v == {} for k, v in (qc.get("dynamic") or {}).items()), qc
        assert family != "llama" or not qc.get("dynamic"), qc
        tensors = load_file(os.path.join(out, "model.safetensors"))
        ref_model = LlamaForCausalLM(LlamaConfig.from_pretrained(base)).eval() if family == "llama" else None
        state = {k: v.float() for k, v in tensors.items() if not k.endswith((".qweight", ".qzeros", ".scales", ".g_idx"))}
        n = 0
        with torch.no_grad():
            for k in [k for k in tensors if k.endswith(".qweight")]:
                m = k[: -len(".qweight")]
                out_f = tensors[m + ".scales"].shape[1]
                in_f = tensors[k].shape[0] * 32 // bits
                # (its g_idx path slices the scales by the input count, so it only holds for square weights:
                # the groups in order, checked here, are its plain path's)
                gs = group if group > 0 else in_f
                assert torch.equal(tensors[m + ".g_idx"], torch.arange(in_f, dtype=torch.int32) // gs), m
                ql = QuantLinear(bits, group, in_f, out_f, bias=False, g_idx=False)
                ql.load_state_dict({p: tensors[m + "." + p] for p in ("qweight", "qzeros", "scales")})
                w = ql(torch.eye(in_f, dtype=torch.float32)).t().contiguous()  # x @ weight: the identity's rows
                # the format's formula, checked against the library on every weight
                qw = tensors[k].view(torch.int32)
                shifts = torch.arange(0, 32, bits, dtype=torch.int32)
                q = ((qw[:, None, :] >> shifts[None, :, None]) & ((1 << bits) - 1)).reshape(in_f, out_f)
                z = ((tensors[m + ".qzeros"][:, :, None] >> shifts[None, None, :]) & ((1 << bits) - 1))
                z = z.reshape(z.shape[0], out_f) + 1
                s = tensors[m + ".scales"]
                expect = (s.repeat_interleave(gs, 0) * (q - z.repeat_interleave(gs, 0))).float().t()
                assert torch.equal(w, expect), "%s: AutoRound's dequantization is not scale * (q - (qzeros + 1))" % m
                state[m + ".weight"] = w
                n += 1
        if family == "llama":
            missing, unexpected = ref_model.load_state_dict(state, strict=False)
            assert not unexpected and all(k.endswith("rotary_emb.inv_freq") for k in missing), (missing, unexpected)
        else:  # the dequantized weights as a hub checkpoint, which transformers loads (fusing the experts)
            with tempfile.TemporaryDirectory() as dq:
                shutil.copy(os.path.join(base, "config.json"), os.path.join(dq, "config.json"))
                save_file({k: v.contiguous() for k, v in state.items()}, os.path.join(dq, "model.safetensors"))
                ref_model, info = AutoModelForCausalLM.from_pretrained(dq, dtype=torch.float32,
                                                                       output_loading_info=True)
                ref_model = ref_model.eval()
            assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
        with torch.no_grad():
            logits = ref_model(ref["input_ids"]).logits.float().contiguous()
        # LoRA on the GPTQ checkpoint (the all_linear_r8 adapter, trained for the same base): peft merging
        # it into the dequantized weights, as kiln merges into them
        if name == LORA_GPTQ_CASE:
            from peft import PeftModel
            import copy
            lora_dir = os.path.join(repo, "tests", "fixtures", "lora", "all_linear_r8", "adapter")
            merged = PeftModel.from_pretrained(copy.deepcopy(ref_model), lora_dir).merge_and_unload().eval()
            with torch.no_grad():
                lora_logits = merged(ref["input_ids"]).logits.float().contiguous()
            save_greedy_reference(merged, ref, {}, lora_logits, name + " + LoRA",
                                  os.path.join(out, "reference_lora.safetensors"))
        greedy, margins = save_greedy_reference(ref_model, ref, {}, logits, name,
                                                os.path.join(out, "reference.safetensors"))
        moved = (logits - ref["logits"]).norm() / ref["logits"].norm()
        print("  quantized/%s: %d linears as GPTQ %d-bit (group_size %d, sym %s) by AutoRound, logits moved "
              "%.3e rel L2 from %s, min greedy margin %.3e" % (name, n, bits, group, sym, moved.item(), base_name,
                                                              min(margins)))
