# syntax=docker/dockerfile:1
# The usersigd image: a Release build on Debian 12 (bookworm), run as an unprivileged user.
# It holds no PostgreSQL server: give it one with USERSIGD_DATABASE_URL (docker-compose.yml does).
#
#   docker build -t usersigd .

# ---- build: compilers and -dev packages, thrown away afterwards ----
FROM debian:12 AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        build-essential cmake pkg-config \
        libssl-dev zlib1g-dev libevent-dev libjansson-dev libpq-dev libcurl4-openssl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# What goes in is filtered by .dockerignore (no build trees, secrets, .git or node_modules).
COPY . .
# Installed as `cmake --install` lays it out (bin/, share/usersigd/migrations/), so usersigd
# finds its migrations beside itself (<bindir>/../share/usersigd/migrations) in the image too.
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr/local \
        -DUSERSIGD_TESTS=OFF \
    && cmake --build /build -j"$(nproc)" \
    && DESTDIR=/install cmake --install /build --strip

# ---- runtime: the shared libraries only ----
FROM debian:12 AS runtime
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libssl3 zlib1g libevent-2.1-7 libevent-pthreads-2.1-7 libevent-openssl-2.1-7 \
        libjansson4 libpq5 libcurl4 ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 usersigd \
    && useradd --system --uid 10001 --gid usersigd --home-dir /var/lib/usersigd \
        --no-create-home --shell /usr/sbin/nologin usersigd \
    && install -d -o usersigd -g usersigd -m 0700 /var/lib/usersigd

# The programs and their data only (they link libusersig statically: no library, header or
# pkg-config file is needed at run time).
COPY --from=build /install/usr/local/bin/ /usr/local/bin/
COPY --from=build /install/usr/local/share/usersigd/ /usr/local/share/usersigd/
# Fails the build if a runtime library is missing from the list above.
RUN if ldd /usr/local/bin/usersigd /usr/local/bin/usersig | grep 'not found'; then exit 1; fi

# No USERSIGD_MIGRATIONS_DIR: /usr/local/bin/usersigd reads /usr/local/share/usersigd/migrations.
RUN test -f /usr/local/share/usersigd/migrations/0001_init.sql
# Plain HTTP on every address is refused unless allowed: in a container the port is published
# by the runtime (docker-compose.yml publishes it on 127.0.0.1 only); give tls_cert_file and
# tls_key_file to serve HTTPS instead.
ENV USERSIGD_DATA_DIR=/var/lib/usersigd \
    USERSIGD_LISTEN=0.0.0.0:8080 \
    USERSIGD_ALLOW_PLAIN_HTTP=true

# Numeric, so that "run as non-root" policies can check it without reading /etc/passwd.
USER 10001:10001
WORKDIR /var/lib/usersigd
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/healthz"]
CMD ["usersigd", "serve"]
