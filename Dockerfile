# Percept on a GPU node: the pinned Ray image with CUDA, the CUDA build of torch, the project.
# docker build -t percept:latest . && docker run --gpus all -p 8000:8000 percept:latest
FROM rayproject/ray:2.60.0-py311-gpu

USER root
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      tesseract-ocr tesseract-ocr-eng ffmpeg espeak-ng sox fonts-dejavu-core \
 && rm -rf /var/lib/apt/lists/*
USER ray
WORKDIR /home/ray/percept

# The GPU path: torch built for CUDA 12.8 (the CPU pin in pyproject is the CI/laptop choice).
# torchvision (its matching 0.28.0) is for the [card] extra's easyocr and open-clip-torch.
RUN pip install --no-cache-dir "torch==2.13.0" "torchvision==0.28.0" --index-url https://download.pytorch.org/whl/cu128

COPY --chown=ray:users pyproject.toml README.md ./
COPY --chown=ray:users percept percept
COPY --chown=ray:users deployments deployments
COPY --chown=ray:users pipelines pipelines
# [card]: openai-whisper, easyocr, open-clip-torch (optional plugins / CLIP loader; weights in /models)
RUN pip install --no-cache-dir -e ".[card]"
COPY --chown=ray:users plugins plugins
COPY --chown=ray:users serve_config.yaml ./
COPY --chown=ray:users cluster cluster

ENV PERCEPT_MODELS_PATH=/models PERCEPT_DATA_DIR=/data HF_HOME=/models/huggingface
VOLUME ["/models", "/data"]
EXPOSE 8000 8265
CMD ["serve", "run", "serve_config.yaml"]
