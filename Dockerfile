# inferd container image: multi-stage, Debian 12, non-root, HEALTHCHECK on /healthz.
#
#   docker build -t inferd .
#   docker run --rm -p 8080:8080 -v inferd-data:/var/lib/inferd/data inferd
#
# Stage 1 builds ./inferd with the same script developers use; stage 2 carries
# only the binary, the shipped models, the config and the shared libraries the
# binary links (tests/integration/test_deploy.sh checks that list against ldd).

# ---- build --------------------------------------------------------------------
FROM debian:bookworm AS build
WORKDIR /src
# Dependencies first, so this layer is cached until the package list changes.
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN bash scripts/install-deps.sh --build-only \
 && rm -rf /var/lib/apt/lists/*
COPY . .
# The Makefile builds for baseline x86-64 (the image runs on any x86-64 host);
# the matmul kernels pick AVX2 / AVX-512 at run time (INFERD_CPU=generic|avx2|avx512
# lowers the choice). To build for one CPU family only, e.g.
#   docker build --build-arg OPT="-O2 -march=x86-64-v4" .
ARG OPT
RUN make -j"$(nproc)" ${OPT:+"OPT=$OPT"} \
 && ./inferd --version

# ---- runtime ------------------------------------------------------------------
FROM debian:bookworm-slim
# Runtime shared libraries only (libc6, libgcc-s1 and bash are in the base image).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libmicrohttpd12 libjansson4 libuv1 libopenblas0-pthread \
      libpng16-16 libjpeg62-turbo zlib1g libsentencepiece0 libarchive13 libnettle8 \
 && rm -rf /var/lib/apt/lists/*

# A fixed, unprivileged system user; the data directory is the only thing it owns.
# Fixed ids (10001) so a mounted data volume's ownership is predictable.
RUN groupadd --system --gid 10001 inferd \
 && useradd --system --uid 10001 --gid inferd --no-create-home \
      --home-dir /var/lib/inferd --shell /usr/sbin/nologin inferd \
 && install -d -o root -g root -m 0755 /var/lib/inferd /etc/inferd \
 && install -d -o inferd -g inferd -m 0750 /var/lib/inferd/data

COPY --from=build /src/inferd /usr/local/bin/inferd
COPY --from=build /src/models/ /var/lib/inferd/models/
COPY --from=build /src/conf/inferd.conf /etc/inferd/inferd.conf

# Uploaded files, training jobs and checkpoints survive the container.
VOLUME ["/var/lib/inferd/data"]
EXPOSE 8080
USER inferd
WORKDIR /var/lib/inferd

# No curl in the image: bash's /dev/tcp sends one request and checks for a 200.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /healthz HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nConnection: close\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]

# SIGTERM (docker stop) drains in-flight requests and exits 0.
STOPSIGNAL SIGTERM
CMD ["inferd", "serve", "--config", "/etc/inferd/inferd.conf", "--host", "0.0.0.0", \
     "--models", "/var/lib/inferd/models", "--data-dir", "/var/lib/inferd/data"]
