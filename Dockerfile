# syntax=docker/dockerfile:1
# mmsearch: one image for the API (`mmsearch serve`), the UI (`mmsearch ui`) and bulk ingestion
# (`mmsearch ingest`). Settings come from the environment at run time (MMSEARCH_*); nothing secret is
# baked in.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/cache/huggingface \
    MMSEARCH_DATA_DIR=/data \
    MMSEARCH_HOST=0.0.0.0 \
    MMSEARCH_UI_HOST=0.0.0.0

RUN useradd --create-home --uid 10001 mmsearch \
    && mkdir -p /data /cache/huggingface /app \
    && chown mmsearch:mmsearch /data /cache/huggingface

# System libraries: OpenCV (under the OCR engine) needs libGL and GLib at import; LibreOffice
# (headless: Writer, Impress, Calc) turns office documents into PDF pages. No recommended extras.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
        libreoffice-core libreoffice-writer libreoffice-impress libreoffice-calc \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# 1. torch and torchvision, a matching pair (the CUDA builds also run on a CPU; a CPU-only image
#    can pass TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu to be much smaller).
ARG TORCH_PACKAGES="torch==2.13.0 torchvision==0.28.0"
ARG TORCH_INDEX_URL=""
RUN pip install ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} $TORCH_PACKAGES

# 2. The dependencies, from pyproject.toml alone: this layer is rebuilt only when they change.
COPY pyproject.toml ./
RUN python - <<'PY' > /tmp/requirements.txt && pip install -r /tmp/requirements.txt && rm /tmp/requirements.txt
import tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
extras = project["optional-dependencies"]
print("\n".join(project["dependencies"] + extras["server"] + extras["index"] + extras["ui"]))
PY

# 3. The code.
COPY README.md ./
COPY core core
COPY reranker reranker
COPY indexer indexer
COPY retriever retriever
COPY app app
COPY ui ui
RUN pip install --no-deps .

USER mmsearch
EXPOSE 8000 8501
ENTRYPOINT ["mmsearch"]
CMD ["serve", "--no-ui"]
