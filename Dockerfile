# Roundtable: the API, signalling and browser-client server. Usage: README.md, "Running with Docker Compose".
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A Unicode font for the PDFs of the record (certificates, consent evidence): names come in every script.
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*

# The source stays in /opt/roundtable and is installed in place: server/web.py serves web/ from beside the
# `server` package, so the two must stay together (a plain `pip install .` would leave web/ behind).
COPY . /opt/roundtable
RUN pip install -e /opt/roundtable

# The service runs as an unprivileged user; /app/var (ROUNDTABLE_DATA_DIR, ./var from /app) is the only place it
# writes to.
RUN useradd --system --uid 10001 --user-group --home-dir /app --no-create-home roundtable \
    && mkdir -p /app/var \
    && chown -R roundtable:roundtable /app
WORKDIR /app
USER roundtable

ENV ROUNDTABLE_HOST=0.0.0.0 \
    ROUNDTABLE_PORT=8080
EXPOSE 8080

# aiohttp stops on SIGTERM: WebSockets are closed with 1001 and pending attendance is flushed.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "server"]
