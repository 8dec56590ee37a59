# Swarm's image: one image for every process (web, worker, beat, super-peer); the command
# picks the process (compose.yaml, docs/deploy.md). The browser's npm packages are vendored
# at build time in a Node stage; the runtime has Python and the project only: no Node, no
# compilers, no test or lint tools, and it runs as an unprivileged user.

FROM node:20-bookworm-slim AS vendor
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error
COPY scripts/vendor.mjs scripts/
RUN node scripts/vendor.mjs

FROM python:3.11-slim-bookworm AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SWARM_VAR_DIR=/var/lib/swarm \
    SWARM_HOST=0.0.0.0 \
    SWARM_PORT=8000
WORKDIR /app
COPY requirements.txt ./
COPY deploy/dev-only.txt deploy/
COPY scripts/runtime_requirements.py scripts/
RUN python scripts/runtime_requirements.py > /tmp/runtime.txt \
 && pip install --no-deps -r /tmp/runtime.txt \
 && rm /tmp/runtime.txt
COPY . .
COPY --from=vendor /src/static/vendor static/vendor
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin swarm \
 && mkdir -p "$SWARM_VAR_DIR" && chown swarm:swarm "$SWARM_VAR_DIR"
USER swarm
VOLUME ["/var/lib/swarm"]
EXPOSE 8000
ENTRYPOINT ["deploy/entrypoint.sh"]
CMD ["web"]
