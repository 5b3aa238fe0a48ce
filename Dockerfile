# syntax=docker/dockerfile:1
# datastory in a container: `docker build -t datastory .`; see "Deployment" in README.md.
#
# Stage 1 builds a virtual environment holding the project (a regular install, as in the README's quick start);
# stage 2 copies it into a slim image that runs as an unprivileged user (uid 10001), serves HTTP on port 3000 and
# reports its health from GET /healthz.
#
# The local sandbox (DATASTORY_SANDBOX=local) runs each kernel in a pod of its own: new user, network, mount and pid
# namespaces, and a subordinate uid per kernel mapped by newuidmap (the image installs `uidmap` and gives the user
# subordinate ids). Docker's default seccomp and AppArmor profiles refuse those namespaces and its masked /proc
# keeps a new /proc from being mounted, so by default the strict sandbox refuses to start, saying so. Give it
#   docker run --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
#              --security-opt systempaths=unconfined ...
# (no --security-opt no-new-privileges and no dropping SETUID/SETGID: newuidmap needs them), on a host that allows
# unprivileged user namespaces. See "The local sandbox's security model" in README.md. The hosted sandbox
# (DATASTORY_SANDBOX=openai, the default) needs none of this.

ARG PYTHON_IMAGE=python:3.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/datastory
COPY pyproject.toml README.md LICENSE ./
COPY bot/ bot/
COPY handlers/ handlers/
RUN /opt/datastory/bin/pip install --no-cache-dir . \
    && /opt/datastory/bin/datastory --version

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="datastory" \
      org.opencontainers.image.description="A Slack bot that turns a CSV into an analysis in its thread." \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/datastory/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DATASTORY_DATABASE_URL=sqlite:////var/lib/datastory/datastory.db \
    DATASTORY_LOG_FORMAT=json
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends uidmap \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 datastory \
    && useradd --system --uid 10001 --gid datastory --home-dir /var/lib/datastory --create-home \
       --shell /usr/sbin/nologin datastory \
    && usermod --add-subuids 100000-165535 --add-subgids 100000-165535 datastory
COPY --from=build /opt/datastory /opt/datastory
USER 10001:10001
WORKDIR /var/lib/datastory
VOLUME ["/var/lib/datastory"]
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:3000/healthz', timeout=4).status != 200)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["datastory"]
CMD ["run", "--http", "--host", "0.0.0.0", "--port", "3000"]
