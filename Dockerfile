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

# Dependencies are installed from pyproject.toml alone first, so this layer is
# cached until pyproject.toml changes (a code change rebuilds only the last layers).
COPY pyproject.toml ./
RUN python -c "import subprocess, sys, tomllib; \
deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; \
subprocess.check_call([sys.executable, '-m', 'pip', 'install', *deps])"

COPY . .
RUN pip install --no-deps . \
    && useradd --system --uid 10001 --no-create-home linesync

USER linesync
EXPOSE 8080
CMD ["linesync", "ingress", "--bind", "0.0.0.0:8080"]
