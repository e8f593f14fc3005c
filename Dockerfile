# Two images, built with the same Make targets as README's Quick start (a test checks this):
#   docker build --target cpu  -t arena:cpu  .   # llama.cpp on the CPU, bundled Gemma and the demo chat model
#   docker build --target cuda -t arena:cuda .   # adds the gpu extra (vLLM) on CUDA
#   docker run -p 8000:8000 -v arena-data:/data arena:cpu
# Both run as the unprivileged user `arena` and listen on 0.0.0.0 inside the container: publish the
# port on loopback (-p 127.0.0.1:8000:8000) or set ARENA_API_KEY and ARENA_ADMIN_TOKEN (README, "Docker").

# The CPU install: llama.cpp compiled once with the Makefile's portable flags, and the static files.
FROM python:3.11-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake git make nodejs npm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /srv/arena
COPY pyproject.toml README.md Makefile ./
COPY app ./app
COPY trainer ./trainer
RUN make install static PYTHON=python3

# The demo chat model, trained once on the CPU (torch from PyTorch's CPU index, not the CUDA build).
# Only its adapter leaves this stage: torch, the checkpoints and the merged weights stay here.
FROM build AS train
ENV ARENA_DEMO_MODEL=/srv/arena-demo PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN make demo-model PYTHON=python3

FROM python:3.11-slim-bookworm AS cpu
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 libstdc++6 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --user-group --uid 10001 --create-home --home-dir /home/arena arena \
 && mkdir /data && chown arena:arena /data
COPY --from=build /srv/arena /srv/arena
COPY --from=train /srv/arena-demo/export.json /srv/arena-demo/adapter.gguf /srv/arena-demo/.demo-key.json /srv/arena-demo/
WORKDIR /srv/arena
ENV PATH=/srv/arena/.venv/bin:$PATH ARENA_HOST=0.0.0.0 ARENA_DB=/data/arena.db ARENA_DEMO_MODEL=/srv/arena-demo
USER arena
VOLUME /data
EXPOSE 8000
CMD ["arena", "serve"]

FROM nvidia/cuda:12.8.1-devel-ubuntu24.04 AS cuda
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-dev build-essential cmake git make nodejs npm \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --user-group --uid 10001 --create-home --home-dir /home/arena arena \
 && mkdir /data && chown arena:arena /data
WORKDIR /srv/arena
COPY pyproject.toml README.md Makefile ./
COPY app ./app
RUN make install-gpu static PYTHON=python3
COPY --from=train /srv/arena-demo/export.json /srv/arena-demo/adapter.gguf /srv/arena-demo/.demo-key.json /srv/arena-demo/
ENV PATH=/srv/arena/.venv/bin:$PATH ARENA_HOST=0.0.0.0 ARENA_DB=/data/arena.db ARENA_DEMO_MODEL=/srv/arena-demo
USER arena
VOLUME /data
EXPOSE 8000
CMD ["arena", "serve"]
