# imi validator image: `imi node start` over a node directory mounted at /node.
#
#   docker build -t imi:latest .
#   docker run -v /srv/imi/v0:/node -e IMI_LISTEN=0.0.0.0:7000 -e IMI_API=0.0.0.0:7001 \
#              -p 7000:7000 -p 7001:7001 imi:latest
#
# The node directory (node.json, consensus_key.jwk, tls_key.pem, tls_cert.pem, genesis.json,
# certs/) comes from `imi node init` or `imi genesis new` and must be readable by uid 10001.
# Ledger data (LevelDB + WAL) goes to /node/data unless IMI_DATA points elsewhere (compose: /data).
# Ports are those of node.json (listen, api), overridable by IMI_LISTEN / IMI_API; 7000/7001
# below are the defaults of deploy/make-consortium.sh's first validator.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/imi
COPY pyproject.toml README.md ./
COPY ledger ./ledger
COPY node ./node
COPY identity ./identity
COPY cli ./cli
COPY bench ./bench
RUN pip install --no-cache-dir . \
 && rm -rf /root/.cache
COPY deploy/healthcheck.py /opt/imi/healthcheck.py

RUN groupadd --system --gid 10001 imi \
 && useradd --system --uid 10001 --gid imi --home-dir /node --no-create-home --shell /usr/sbin/nologin imi \
 && mkdir -p /node /data \
 && chown imi:imi /node /data

USER imi:imi
VOLUME ["/node", "/data"]
# validator transport (mutual TLS), REST API
EXPOSE 7000 7001

HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/opt/imi/healthcheck.py", "/node"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["imi", "node", "start"]
CMD ["--dir", "/node"]
