# inferd container: a build stage with the -dev packages, and a slim runtime
# stage with only the shared libraries, a non-root user and the demo model.
#   docker build -t inferd .
#   docker run -p 8000:8000 -e PORT=8000 inferd
FROM debian:12 AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
        build-essential pkg-config libmicrohttpd-dev libcjson-dev \
        libproc2-dev libtorch-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile memory_config.h ./
COPY include include
COPY src src
RUN make all

FROM debian:12-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
        libmicrohttpd12 libcjson1 libproc2-0 libtorch1.13 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /app inferd
WORKDIR /app
COPY --from=build /src/build/inferd /src/build/libinferd_torch.so /app/
COPY models/demo.pt /app/models/demo.pt
USER inferd
# Render and most hosts set PORT; MODEL_PATH can point at a mounted model.
ENV PORT=8000 HOST=0.0.0.0 MODEL_PATH=/app/models/demo.pt \
    ENVIRONMENT=production LAZY_LOADING=true
EXPOSE 8000
# SIGTERM drains in-flight requests (SHUTDOWN_TIMEOUT_SECONDS, 25 s by
# default), inside the 30 s most hosts wait before SIGKILL.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/app/inferd"]
