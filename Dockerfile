# K/Mg Sentinel worker image: `docker build -t kmg-sentinel .`, or `docker compose up`.
#
# The code runs from /app as an editable install because streams/ reads config/ at a path
# relative to the package (/app/streams -> /app/config); a plain `pip install .` would put
# the packages in site-packages, away from config/.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    KMG_DATA_DIR=/data \
    KMG_WEB_HOST=0.0.0.0 \
    KMG_WEB_PORT=6066

WORKDIR /app

# Dependencies first, from pyproject.toml alone, so editing code does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY alerts/ ./alerts/
COPY streams/ ./streams/
COPY config/ ./config/
# Compiled now because the runtime user cannot write __pycache__ under /app.
RUN pip install --no-deps -e . \
    && python -m compileall -q alerts streams \
    && kmg --help > /dev/null

# A fixed uid/gid so a bind-mounted data directory can be chowned to match from the host.
RUN groupadd --system --gid 10001 kmg \
    && useradd --system --uid 10001 --gid kmg --home-dir /data --no-create-home kmg \
    && mkdir -p /data \
    && chown kmg:kmg /data
USER kmg

# RocksDB tables and local state; a named volume keeps them across restarts. The web server
# listens on all interfaces (KMG_WEB_HOST) because a loopback bind is unreachable from
# outside the container.
VOLUME ["/data"]
EXPOSE 6066

ENTRYPOINT ["kmg"]
CMD ["worker"]
