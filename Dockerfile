# One image for every linesync process: ingress, worker, beat and the operator CLI.
#   docker build -t linesync .
#   docker run --env-file .env -p 8080:8080 linesync                     # ingress
#   docker run --env-file .env linesync linesync worker
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The pinned dependencies first (requirements.lock, made by `python3 dev.py lock`),
# so this layer is cached until the lock file changes (a code change rebuilds only
# the last layers). --require-hashes: every downloaded file must match the lock's
# sha256; --no-deps: exactly the lock, nothing resolved at build time.
COPY requirements.lock ./
RUN pip install --require-hashes --no-deps --requirement requirements.lock

# pip check: the lock satisfies linesync's requirements (pyproject.toml) and its own.
COPY . .
RUN pip install --no-deps . \
    && pip check \
    && useradd --system --uid 10001 --no-create-home linesync

USER linesync
EXPOSE 8080
CMD ["linesync", "ingress", "--bind", "0.0.0.0:8080"]
