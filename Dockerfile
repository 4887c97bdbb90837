# polymon: the Faust worker, the topic tool and the rest of the `polymon` CLI.
#
#   docker build -t polymon .
#   docker run --rm -e POLYMON_KAFKA_BOOTSTRAP=kafka:9092 polymon topics create
#   docker run --rm -e POLYMON_KAFKA_BOOTSTRAP=kafka:9092 -p 6066:6066 \
#       -e POLYMON_WEB_HOST=0.0.0.0 polymon            # a worker (the default command)
#
# docker-compose.yml builds this image for its topic init and worker services.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    POLYMON_STATE_DIR=/var/lib/polymon

WORKDIR /src

# Only what the package is built from (there is no .dockerignore: copying the whole
# repo would drag in .venv/ and .state/). streams/schemas and streams/topics.toml are
# symlinks to ../schemas and ../ops/topics.toml, so both targets are copied too; a
# non-editable install then ships them as package data. The smoke check runs from / so
# it imports the installed package, not the copied source. (README.md is pyproject's
# readme; the wildcard keeps the build working in a checkout without one.)
# requirements.lock pins every dependency to the versions the framework patches were
# written for (a worker refuses to start on others: streams/framework/gate.py).
# gcc builds the compiled parts (setup.py: the C decoder of input records, and the hot
# path's modules through Cython) and is removed in the same layer.
COPY pyproject.toml setup.py requirements.lock README.md* ./
COPY schemas/ schemas/
COPY ops/topics.toml ops/topics.toml
COPY streams/ streams/
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && pip install --no-cache-dir -c requirements.lock . \
    && apt-get purge -y --auto-remove gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/* \
    && cd / \
    && polymon --help > /dev/null \
    && python -c "from streams.topics import load_topic_specs; assert load_topic_specs()" \
    && python -c "from streams.framework import gate; gate.check()" \
    && python -c "from streams import avrodecode; assert avrodecode.available(), avrodecode.status" \
    && python -c "from streams import compiled as c; m = c.read_manifest(); assert m and all(m.values()), m"

# Run unprivileged; the state dir (worker data dirs) is the only place it writes.
RUN groupadd --system polymon \
    && useradd --system --gid polymon --home-dir /var/lib/polymon --shell /usr/sbin/nologin polymon \
    && mkdir -p /var/lib/polymon \
    && chown polymon:polymon /var/lib/polymon
USER polymon
WORKDIR /var/lib/polymon

# Worker HTTP server: /healthz, /metrics, /api/*. Set POLYMON_WEB_HOST=0.0.0.0 so it is
# reachable from outside the container (the default binds 127.0.0.1).
EXPOSE 6066

ENTRYPOINT ["polymon"]
CMD ["worker"]
