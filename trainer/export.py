"""Put a finished training run back into the arena: a GGUF beside its Hugging Face checkpoint,
a model card, and the models-file entry that serves it.

GGUF kinds (``--gguf``):
- ``lora``: the LoRA adapter alone as a GGUF, applied by llama.cpp over the base GGUF (a few MB;
  the base must have come from a GGUF, such as ``bundled:gemma-3-270m``);
- ``q8_0`` / ``f16``: the merged model;
- ``q4_k_m``: the merged model quantized by llama.cpp, kept only when a check shows that the
  training survived: on held-out answers, the Q4_K_M file must keep at least ``KEEP`` of the loss
  drop the f16 file has over the base. Small fine-tunes can round back onto the base's Q4 grid;
  when it fails, the export falls back to q8_0 and says so;
- ``none``: the card only (the transformers engine serves ``hf/``).
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

from trainer.bases import BUNDLED_PREFIX, bundled_gguf
from trainer.errors import TrainError
from trainer.runinfo import ADAPTER, FINAL, git_revision, now, read_info

KINDS = ("lora", "q8_0", "f16", "q4_k_m", "none")
KEEP = 0.7  # share of the fine-tune's loss drop a Q4_K_M file must keep
CHECK_SAMPLES = 24
CARD = "README.md"
EXPORT_INFO = "export.json"


def base_gguf_path(spec: str) -> str:
    """The base GGUF as a file path ('' when the base was a plain Hugging Face folder)."""
    if not spec:
        return ""
    if spec.startswith(BUNDLED_PREFIX):
        return str(bundled_gguf(spec[len(BUNDLED_PREFIX) :]))
    return spec


def export_run(run: Path, gguf: str = "q8_0", *, name: str = "", tokenizer_pre: str = "") -> dict[str, Any]:
    """Write the GGUF, ``export.json`` and the model card into the run folder; returns export.json."""
    if gguf not in KINDS:
        raise TrainError(f"unknown --gguf {gguf!r}; choose one of {', '.join(KINDS)}")
    info = read_info(run)
    if info.get("status") != "done" or not (run / FINAL / "config.json").is_file():
        raise TrainError(f"{run}: the training run has not finished ({info.get('status', 'no status')})")
    from trainer import convert

    base = info["base"]
    vocab = base_gguf_path(base.get("gguf", ""))
    result: dict[str, Any] = {"gguf_kind": gguf, "exported": now(), "git_revision": git_revision()}
    if gguf == "lora":
        if info.get("method") != "lora" or not (run / ADAPTER).is_dir():
            raise TrainError(f"{run}: --gguf lora needs a run trained with --lora")
        if not vocab:
            raise TrainError(f"{run}: --gguf lora needs a base that came from a GGUF; use --gguf q8_0")
        target = run / "adapter.gguf"
        result["convert_seconds"] = round(convert.convert_lora(run / ADAPTER, Path(base["hf"]), target), 1)
        result.update(gguf=target.name, base_gguf=base["gguf"])
    elif gguf in ("q8_0", "f16"):
        target = run / f"model-{gguf}.gguf"
        seconds = convert.convert_model(run / FINAL, target, gguf, vocab_gguf=vocab, tokenizer_pre=tokenizer_pre)
        result.update(gguf=target.name, convert_seconds=round(seconds, 1))
    elif gguf == "q4_k_m":
        result.update(_q4_with_check(run, info, vocab, tokenizer_pre))
    if result.get("gguf"):
        result["gguf_mb"] = round((run / result["gguf"]).stat().st_size / 2**20, 1)
    result["models_entry"] = models_entry(run, info, result, name=name)
    (run / EXPORT_INFO).write_text(json.dumps(result, indent=2) + "\n")
    (run / CARD).write_text(model_card(run, info, result))
    return result


def _q4_with_check(run: Path, info: dict[str, Any], vocab: str, tokenizer_pre: str) -> dict[str, Any]:
    from trainer import convert

    with tempfile.TemporaryDirectory(dir=run) as tmp:
        f16 = Path(tmp) / "model-f16.gguf"
        seconds = convert.convert_model(run / FINAL, f16, "f16", vocab_gguf=vocab, tokenizer_pre=tokenizer_pre)
        q4 = run / "model-q4_k_m.gguf"
        quant_seconds = convert.quantize(f16, q4, "Q4_K_M")
        base = vocab or str(Path(tmp) / "base-f16.gguf")
        if not vocab:
            convert.convert_model(Path(info["base"]["hf"]), Path(base), "f16", tokenizer_pre=tokenizer_pre)
        check = survival_check(run, info, base=base, f16=f16, q4=q4)
        out: dict[str, Any] = {"convert_seconds": round(seconds, 1), "quantize_seconds": round(quant_seconds, 1)}
        out["q4_check"] = check
        if check["survived"]:
            out["gguf"] = q4.name
            return out
        q4.unlink()
        print(f"Q4_K_M kept {check['kept']:.0%} of the fine-tune (< {KEEP:.0%}): exporting q8_0 instead", flush=True)
        q8 = run / "model-q8_0.gguf"
        out["convert_seconds"] += round(
            convert.convert_model(run / FINAL, q8, "q8_0", vocab_gguf=vocab, tokenizer_pre=tokenizer_pre), 1
        )
        out.update(gguf=q8.name, gguf_kind="q8_0")
        return out


def survival_check(run: Path, info: dict[str, Any], *, base: str, f16: Path, q4: Path) -> dict[str, Any]:
    """How much of the fine-tune's drop in answer loss (base -> f16) the Q4_K_M file keeps."""
    from trainer import data as d
    from trainer.bases import resolve_base
    from trainer.checks import answer_loss
    from trainer.modeling import load_tokenizer

    trained = resolve_base(str(run))
    tokenizer = load_tokenizer(trained)
    settings = info["settings"]
    conversations = d.load_conversations(info["data"]["spec"]) if info["kind"] == "sft" else []
    train, held = d.split(conversations, settings.get("eval_fraction", 0.05), settings.get("seed", 0))
    sample = [c.messages for c in (held or train)][:CHECK_SAMPLES]
    if not sample:
        return {"survived": False, "kept": 0.0, "why": "no conversations to check with (DPO runs export q8_0)"}
    losses = {
        k: answer_loss(p, tokenizer, trained.chat_template, sample)
        for k, p in (("base", base), ("f16", f16), ("q4_k_m", q4))
    }
    drop = losses["base"] - losses["f16"]
    kept = (losses["base"] - losses["q4_k_m"]) / drop if drop > 0 else 0.0
    return {
        "losses": losses,
        "kept": kept,
        "survived": bool(math.isfinite(kept) and kept >= KEEP),
        "samples": len(sample),
    }


def models_entry(run: Path, info: dict[str, Any], result: dict[str, Any], *, name: str = "") -> str:
    """A ``[[models]]`` table serving the export (TOML)."""
    model_id = name or run.resolve().name
    fmt = info.get("chat_format", "gemma")
    lines = ["[[models]]", f'id = "{model_id}"', f'name = "{model_id} ({info["kind"]}, {info["method"]})"']
    if result["gguf_kind"] == "lora":
        lines += [
            'engine = "llama.cpp"',
            f'weights = "{result["base_gguf"]}"',
            f'lora = "{run.resolve() / result["gguf"]}"',
        ]
    elif result.get("gguf"):
        lines += ['engine = "llama.cpp"', f'weights = "{run.resolve() / result["gguf"]}"']
    else:
        lines += ['engine = "transformers"', f'weights = "{run.resolve() / FINAL}"']
    lines += [
        f'chat_format = "{fmt if fmt != "template" else "gemma"}"',
        "defaults = { temperature = 0.0, max_tokens = 256 }",
    ]
    return "\n".join(lines) + "\n"


def model_card(run: Path, info: dict[str, Any], result: dict[str, Any]) -> str:
    data = info["data"]
    rows = [
        ("Base", f"`{info['base']['spec']}`"),
        ("Training", f"{info['kind'].upper()}, {info['method']}"),
        ("Data", f"`{data['spec']}` (sha256 `{data['sha256'][:16]}...`)"),
        ("Steps", str(info.get("steps"))),
        (
            "Train loss (first -> last logged)",
            _loss(info.get("train_loss_first")) + " -> " + _loss(info.get("train_loss_last")),
        ),
        ("Eval loss (before -> after)", _loss(info.get("eval_loss_before")) + " -> " + _loss(info.get("eval_loss"))),
        ("Git revision (training)", f"`{info.get('git_revision') or 'unknown'}`"),
        ("GGUF", f"`{result.get('gguf', '')}` ({result['gguf_kind']})"),
        ("Hugging Face checkpoint", f"`{FINAL}/`"),
    ]
    if "q4_check" in result:
        rows.append(("Q4_K_M check", f"kept {result['q4_check']['kept']:.0%} of the loss drop (needs {KEEP:.0%})"))
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    settings = json.dumps(info["settings"], indent=2)
    return (
        f"# {run.resolve().name}\n\nTrained with Arena's trainer (`arena train {info['kind']}`).\n\n"
        f"| | |\n|---|---|\n{table}\n\n## Serve it in the arena\n\nAdd to the models file:\n\n"
        f"```toml\n{result['models_entry']}```\n\n## Settings\n\n```json\n{settings}\n```\n"
    )


def _loss(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "n/a"
