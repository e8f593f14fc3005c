"""Images for the llama.cpp engine: a multimodal projector (``mmproj`` GGUF) through libmtmd.

llama-cpp-python's multimodal chat handlers (``MTMDChatHandler``, ``Llava15ChatHandler``...) drive
libmtmd for its high-level ``Llama`` object. Our engine works on the low-level bindings (shared
weights, a context per stream), so it calls the same libmtmd functions those handlers call:

- :meth:`Projector.tokenize`: the rendered prompt, with one media marker per image, plus the
  images' bytes, become "chunks" (text tokens and image patches), counted before any work;
- :meth:`Projector.evaluate`: the chunks are encoded (the vision tower) and decoded into a
  stream's context, after which sampling goes on as for text.

A projector is loaded once per weights file and shared; libmtmd's context is not thread-safe, so
one lock serialises its use (only the image encoding: the token loop runs in parallel).
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.engines.base import ChatMessage, EngineError
from app.errors import Invalid


def _mtmd() -> Any:
    from llama_cpp import mtmd_cpp  # heavy: imported only when a projector loads

    return mtmd_cpp


def _quiet(mtmd: Any) -> None:
    """libmtmd logs every image step to stderr; route it through llama-cpp-python's logger, which
    the engine keeps at errors only."""
    from llama_cpp import _logger

    mtmd.mtmd_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))
    mtmd.mtmd_helper_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))


@dataclass
class Media:
    """A tokenized prompt with images: libmtmd's chunks (freed once evaluated) and their size."""

    chunks: Any
    n_tokens: int


class Projector:
    """An ``mmproj`` GGUF loaded over a text model (``llama_model`` pointer)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.name = os.path.basename(path)
        self._ctx: Any = None
        self._lock = threading.Lock()
        self.marker = ""

    def load(self, model: Any, threads: int) -> None:
        """Load the projector (blocking). :class:`EngineError` naming the file when it is not one."""
        if not os.path.isfile(self.path):
            raise EngineError(f"the projector file (mmproj) {self.path} does not exist")
        mtmd = _mtmd()
        _quiet(mtmd)
        params = mtmd.mtmd_context_params_default()
        params.use_gpu = False
        params.n_threads = max(1, threads)
        params.print_timings = False
        params.warmup = False
        ctx = mtmd.mtmd_init_from_file(self.path.encode(), model, params)
        if not ctx:
            raise EngineError(
                f"could not load the projector {self.name} (mmproj): not a multimodal projector GGUF "
                "that fits these weights"
            )
        if not mtmd.mtmd_support_vision(ctx):
            mtmd.mtmd_free(ctx)
            raise EngineError(f"the projector {self.name} (mmproj) has no vision encoder")
        self._ctx = ctx
        self.marker = mtmd.mtmd_default_marker().decode()

    @property
    def loaded(self) -> bool:
        return self._ctx is not None

    def messages(self, messages: Sequence[ChatMessage]) -> list[ChatMessage]:
        """The messages with one media marker per image in front of the text, for the chat format.
        The marker is removed from every message's own text first: there it would ask for an
        image nobody sent, and libmtmd would refuse the prompt."""
        return [
            ChatMessage(m.role, "".join(self.marker + "\n" for _ in m.images) + m.content.replace(self.marker, ""))
            for m in messages
        ]

    def tokenize(self, text: str, images: Sequence[bytes]) -> Media:
        """Text with markers plus the images (PNG/JPEG bytes) -> chunks, counted (blocking)."""
        mtmd = _mtmd()
        bitmaps: list[Any] = []
        chunks = mtmd.mtmd_input_chunks_init()
        try:
            with self._lock:
                for data in images:
                    buffer = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
                    bitmap = mtmd.mtmd_helper_bitmap_init_from_buf(self._ctx, buffer, len(data), False)
                    if not bitmap:
                        raise EngineError("llama.cpp could not read an image")
                    bitmaps.append(bitmap)
                raw = text.encode()
                prompt = mtmd.mtmd_input_text(raw, len(raw), True, True)
                array = (mtmd.mtmd_bitmap_p_ctypes * len(bitmaps))(*bitmaps)
                if mtmd.mtmd_tokenize(self._ctx, chunks, ctypes.byref(prompt), array, len(bitmaps)) != 0:
                    raise Invalid(
                        "The prompt could not be matched to its images; leave media markers out of the text.",
                        param="messages",
                    )
            return Media(chunks, int(mtmd.mtmd_helper_get_n_tokens(chunks)))
        except BaseException:
            mtmd.mtmd_input_chunks_free(chunks)
            raise
        finally:
            for bitmap in bitmaps:
                mtmd.mtmd_bitmap_free(bitmap)

    def evaluate(self, lctx: Any, media: Media, n_batch: int) -> int:
        """Encode the images and decode every chunk into ``lctx`` from position 0; the new position."""
        import llama_cpp

        mtmd = _mtmd()
        n_past = llama_cpp.llama_pos(0)
        with self._lock:
            rc = mtmd.mtmd_helper_eval_chunks(self._ctx, lctx, media.chunks, 0, 0, n_batch, True, ctypes.byref(n_past))
        if rc != 0:
            raise EngineError(f"llama.cpp could not evaluate the image (error {rc})")
        return int(n_past.value)

    def free(self, media: Media) -> None:
        if media.chunks:
            _mtmd().mtmd_input_chunks_free(media.chunks)
            media.chunks = None

    def close(self) -> None:
        with self._lock:
            if self._ctx is not None:
                _mtmd().mtmd_free(self._ctx)
                self._ctx = None
