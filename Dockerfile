# Two images, built with the same Make targets as README's Quick start (a test checks this):
#   docker build --target cpu  -t arena:cpu  .   # llama.cpp on the CPU, bundled Gemma model
#   docker build --target cuda -t arena:cuda .   # adds the gpu extra (vLLM) on CUDA
#   docker run -p 8000:8000 -v arena-data:/data arena:cpu

FROM python:3.11-slim-bookworm AS cpu
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake git make nodejs npm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /srv/arena
COPY pyproject.toml README.md Makefile ./
COPY app ./app
RUN make install static PYTHON=python3
ENV PATH=/srv/arena/.venv/bin:$PATH ARENA_HOST=0.0.0.0 ARENA_DB=/data/arena.db
VOLUME /data
EXPOSE 8000
CMD ["arena", "serve"]

FROM nvidia/cuda:12.8.1-devel-ubuntu24.04 AS cuda
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-dev build-essential cmake git make nodejs npm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /srv/arena
COPY pyproject.toml README.md Makefile ./
COPY app ./app
RUN make install-gpu static PYTHON=python3
ENV PATH=/srv/arena/.venv/bin:$PATH ARENA_HOST=0.0.0.0 ARENA_DB=/data/arena.db
VOLUME /data
EXPOSE 8000
CMD ["arena", "serve"]
