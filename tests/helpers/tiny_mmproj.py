"""Build a tiny random-weight Gemma 3 multimodal projector (``mmproj`` GGUF) that fits the bundled
Gemma 3 270M text model (640-wide embeddings), with llama.cpp's own converter (``--mmproj``).

No projector for the bundled model is installable here, so the test makes one: a SigLIP vision
tower of one layer on 64x64 images (16 patches, pooled to 4 image tokens) and the Gemma 3
projector, random weights. libmtmd loads it like any Gemma 3 mmproj; the answers are nonsense,
but every step of the image path (preprocess, encode, decode into the context) is real.

Needs the converter (``make trainer-tools``).
"""

from __future__ import annotations

import json
from pathlib import Path

TEXT_WIDTH = 640  # the bundled Gemma 3 270M's n_embd
IMAGE_SIZE = 64
IMAGE_TOKENS = 4


def build_tiny_mmproj(folder: str | Path, *, seed: int = 0) -> Path:
    """Write ``folder/mmproj-tiny-gemma3.gguf`` (and the checkpoint it came from) and return its path."""
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3TextConfig, SiglipVisionConfig

    from trainer.convert import _run

    out = Path(folder)
    hf = out / "tiny-gemma3-vision"
    torch.manual_seed(seed)
    config = Gemma3Config(
        text_config=Gemma3TextConfig(
            vocab_size=256,
            hidden_size=TEXT_WIDTH,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=32,
            max_position_embeddings=128,
        ),
        vision_config=SiglipVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=IMAGE_SIZE,
            patch_size=16,
        ),
        mm_tokens_per_image=IMAGE_TOKENS,
    )
    model = Gemma3ForConditionalGeneration(config)
    with torch.no_grad():  # transformers starts the projection at zero: give it weights, so pixels count
        model.model.multi_modal_projector.mm_input_projection_weight.normal_(0.0, 1.0)
    model.save_pretrained(hf)
    preprocessor = {
        "image_processor_type": "Gemma3ImageProcessor",
        "image_seq_length": IMAGE_TOKENS,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE},
    }
    (hf / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    # transformers 5 saves the tower as ``vision_tower.*``; the converter maps the hub's
    # ``vision_tower.vision_model.*`` names, and skips SigLIP's pooling head.
    tensors = load_file(hf / "model.safetensors")
    renamed = {
        ("vision_tower.vision_model." + k.removeprefix("vision_tower.") if k.startswith("vision_tower.") else k): v
        for k, v in tensors.items()
        if not k.startswith("vision_tower.head.")
    }
    save_file({k: v.contiguous() for k, v in renamed.items()}, hf / "model.safetensors", metadata={"format": "pt"})
    target = out / "mmproj-tiny-gemma3.gguf"
    _run("convert_hf_to_gguf.py", [str(hf), "--mmproj", "--outfile", str(target), "--outtype", "f32"])
    return target
