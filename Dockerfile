# syntax=docker/dockerfile:1
# The rollwise operator image: a wheel built from this checkout, installed into a venv that is
# the only thing the runtime stage copies (no compiler, no pip cache, no source tree).
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/rollwise
# The dependencies first, in a layer of their own: it is rebuilt only when pyproject.toml
# changes, not on every change to the code (the kind test stage builds this image every run).
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" >/requirements.txt \
 && /opt/rollwise/bin/pip install -r /requirements.txt
# Only what the wheel is built from (see .dockerignore).
COPY README.md ./
COPY operator/ operator/
RUN /opt/rollwise/bin/pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/rollwise/bin/pip install --no-deps /wheels/rollwise-*.whl \
 && /opt/rollwise/bin/rollwise --help >/dev/null

# Same base as the builder: the venv's interpreter is a symlink to /usr/local/bin/python3.11.
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="rollwise" \
      org.opencontainers.image.description="Progressive delivery operator for Kubernetes" \
      org.opencontainers.image.licenses="Apache-2.0"
# The root filesystem is read-only in the cluster: write no bytecode, buffer no logs.
ENV PATH=/opt/rollwise/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=builder /opt/rollwise /opt/rollwise
# Numeric, so Kubernetes can verify runAsNonRoot without an /etc/passwd entry.
USER 65532:65532
ENTRYPOINT ["rollwise"]
CMD ["run", "--all-namespaces"]
