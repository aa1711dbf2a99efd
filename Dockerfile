# syntax=docker/dockerfile:1.7
# One image for every service and the operator CLI:
#   python -m services.webhook_gateway | services.sync_worker | services.provisioner | services.reconciler
#   autotask-sync migrate | topics ensure | connections ... | provision ... | sweep ...
# Build:
#   docker build --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" \
#     -t REGISTRY/autotask-sync:0.1.0 .
#
# The services' health is checked by Kubernetes probes on /healthz and /readyz; the same image
# also runs one-shot commands (migrate, sweep), for which an image HEALTHCHECK would be wrong.
# checkov:skip=CKV_DOCKER_2: health is probed by Kubernetes (/healthz, /readyz), and the image also runs one-shot CLI commands

ARG PYTHON_VERSION=3.12
ARG UV_VERSION=0.13.9

FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

# --- build: resolve the locked dependencies, then install the product's wheel -------------------
FROM python:${PYTHON_VERSION}-slim-trixie AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3 \
    UV_PROJECT_ENVIRONMENT=/opt/autotask-sync
WORKDIR /src

# Dependencies first: this layer is rebuilt only when the lock file changes.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-install-project --no-editable --compile-bytecode

# Then the product itself, installed as a wheel (packages shared, services, cli; no tools/).
COPY README.md ./
COPY shared ./shared
COPY services ./services
COPY cli ./cli
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable --compile-bytecode

# --- runtime: the interpreter and the virtual environment, nothing to build with ----------------
FROM python:${PYTHON_VERSION}-slim-trixie AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="autotask-sync" \
      org.opencontainers.image.description="Event-driven sync of Autotask PSA into Kafka and PostgreSQL" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.documentation="deploy/README.md"

# A fixed, non-root user (the Kubernetes manifests run as 10001:10001), and no pip: nothing is
# installed at run time.
RUN groupadd --system --gid 10001 autotask-sync \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin autotask-sync \
 && rm -rf /usr/local/bin/pip* /usr/local/lib/python*/site-packages/pip \
      /usr/local/lib/python*/site-packages/pip-*.dist-info

COPY --from=build /opt/autotask-sync /opt/autotask-sync

# Bytecode was compiled at build time; the root filesystem is read-only at run time.
ENV PATH="/opt/autotask-sync/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    AUTOTASK_SYNC_LOG_FORMAT=json
WORKDIR /tmp
USER 10001:10001
EXPOSE 8080

# No ENTRYPOINT: the command names the service or the CLI command (see the top of this file).
CMD ["autotask-sync", "--help"]
