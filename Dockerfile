# One image for every linesync process: ingress, worker, beat and the operator CLI.
#   docker build -t linesync .
#   docker run --env-file .env -p 8080:8080 linesync                     # ingress
#   docker run --env-file .env linesync linesync worker
#   docker build --build-arg PYTHON_IMAGE=... -t linesync .   # another Python 3.11+ base image with
#                                                              # `python` and `pip` on PATH
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}

# Where pip finds packages: PyPI unless set, e.g. --build-arg PIP_INDEX_URL=<your mirror>, or an
# offline wheelhouse (--build-arg PIP_NO_INDEX=1 --build-arg PIP_FIND_LINKS=/wheels with the directory
# mounted at build time; tests/test_image.py does this). The hashes in the lock are checked either way.
ARG PIP_INDEX_URL
ARG PIP_NO_INDEX
ARG PIP_FIND_LINKS

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
# 8080: LINE's webhook (publish it). 9080: the admin surface (/metrics, /v1/... with its token,
# /status), on every interface of the container so that Prometheus reaches it on the container or
# pod network (127.0.0.1 would be the container's own loopback); never publish it to the internet.
EXPOSE 8080 9080
CMD ["linesync", "ingress", "--bind", "0.0.0.0:8080", "--admin-bind", "0.0.0.0:9080"]
