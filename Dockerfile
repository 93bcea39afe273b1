# syntax=docker/dockerfile:1
# Build a wheel, then install its dependencies (a layer of their own) and the wheel into a slim
# runtime image.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
RUN pip install --no-cache-dir build==1.2.2
# The dependency list alone, so that the runtime image installs the dependencies in a layer that
# a change of the code does not rebuild (only a change of pyproject.toml does).
COPY pyproject.toml ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" > /requirements.txt
COPY README.md ./
COPY consent ./consent
COPY migrations ./migrations
COPY policies ./policies
RUN python -m build --wheel --outdir /dist

FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="consent" \
      org.opencontainers.image.description="Privacy-first consent and preference service" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONFAULTHANDLER=1 \
    CONSENT_HOST=0.0.0.0 \
    CONSENT_DATA_DIR=/var/lib/consent \
    CONSENT_ENVIRONMENT=production
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 65532 consent \
 && useradd --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin consent \
 && install -d -o 65532 -g 65532 -m 0700 /var/lib/consent
COPY --from=build /requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir -r /tmp/requirements.txt \
 && pip install --no-cache-dir --ignore-requires-python opa-golib-python-bindings==0.4.4 \
 && rm /tmp/requirements.txt
COPY --from=build /dist/*.whl /tmp/
RUN pip install --no-cache-dir --no-deps /tmp/*.whl && rm /tmp/*.whl
USER 65532:65532
EXPOSE 8000
# Keys are mounted, never baked in, readable by uid 65532: CONSENT_KEYS_DIR=/run/secrets/consent
# (lookup.key, signing.ed25519, and kek/ unless CONSENT_KEK_FILE gives the KEK); the database
# comes from CONSENT_DATABASE_URL(_FILE).
# Liveness on the port the service listens on (CONSENT_PORT); start-up (migrations) gets 30 s.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health/live' % os.environ.get('CONSENT_PORT', '8000'), timeout=2)" || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--", "consent"]
CMD ["serve"]
