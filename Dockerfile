# neosens-central in a container: the static musl binary that cross/build makes (dashboard
# embedded), on a distroless base with nothing else — no shell, no package manager, non-root.
# Built without the embedded broker (it enforces no topic ACLs): it needs a broker URL.
#
#   docker build -t neosens-central .
#   docker run -p 8080:8080 -e NEOSENS_MQTT_URL=mqtt://neosens-central:…@mosquitto:1883 \
#     -v neosens-data:/var/lib/neosens neosens-central
#
# Multi-arch: `docker buildx build --platform linux/amd64,linux/arm64 .` (TARGETARCH picks the
# musl target). A Compose example with Mosquitto and Prometheus: deploy/compose.yaml.
#
# Development image (`--target dev`): Debian 12 with a shell, both binaries (central with its
# embedded broker, and edge),
# curl, jq, mosquitto-clients, and an ssh server for root by key only, the key given at run time:
#
#   docker build --target dev -t neosens-dev .
#   docker run -e SSH_AUTHORIZED_KEY="$(cat ~/.ssh/id_ed25519.pub)" -p 2222:22 -p 8080:8080 neosens-dev
#   ssh -p 2222 root@localhost
#
# The production image is the last stage, the default of `docker build`.

FROM rust:1.95-bookworm AS build
# The git revision `--version` and /healthz report: the build context has no .git, so pass it
# (`docker build --build-arg NEOSENS_GIT_REVISION=$(git rev-parse --short HEAD) .`).
ARG NEOSENS_GIT_REVISION=unknown
# Node and npm build the dashboard; the cross compilers and qemu come with cross/build's own
# dependency step (scripts/install-deps --cross). Versions: Debian 12's, as on the CI machine.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends nodejs npm file \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
ARG TARGETARCH=amd64
RUN case "$TARGETARCH" in \
      amd64) target=x86_64 triple=x86_64-unknown-linux-musl ;; \
      arm64) target=aarch64 triple=aarch64-unknown-linux-musl ;; \
      arm) target=armv7 triple=armv7-unknown-linux-musleabihf ;; \
      *) echo "unsupported TARGETARCH $TARGETARCH" >&2; exit 1 ;; \
    esac \
    && scripts/build-dashboard \
    && cross/build --target "$target" --bin central --no-embedded-broker \
    && cp "target/$triple/min-size/neosens-central" /neosens-central \
    && echo "$target $triple" > /cross-target \
    && mkdir -p /data

# For the development image only: central with the embedded broker (zero setup), and the gateway
# agent (the production image is central alone).
FROM build AS build-dev
RUN read -r target triple < /cross-target \
    && cross/build --target "$target" --bin all \
    && cp "target/$triple/min-size/neosens-central" /neosens-central-dev \
    && cp "target/$triple/min-size/neosens-edge" /neosens-edge

# Development and testing: a shell and the tools, ssh as root (key only). Not for production.
FROM debian:bookworm-slim AS dev
# The host keys the package made are removed: each container makes its own at start
# (dev-entrypoint), none is shared through the image.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl jq mosquitto-clients \
       openssh-server procps iproute2 less \
    && rm -rf /var/lib/apt/lists/* \
    && rm -f /etc/ssh/ssh_host_* \
    && mkdir -p /run/sshd /root/.ssh /var/lib/neosens \
    && chmod 700 /root/.ssh \
    && printf 'PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n' \
       > /etc/ssh/sshd_config.d/neosens-dev.conf
COPY --from=build-dev /neosens-central-dev /usr/local/bin/neosens-central
COPY --from=build-dev /neosens-edge /usr/local/bin/neosens-edge
COPY dist/container/dev-entrypoint /usr/local/bin/dev-entrypoint
ENV NEOSENS_DATA_DIR=/var/lib/neosens \
    NEOSENS_HTTP_BIND=0.0.0.0:8080 \
    NEOSENS_EMBEDDED_MQTT_BIND=0.0.0.0:1883
EXPOSE 22 8080 1883
ENTRYPOINT ["/usr/local/bin/dev-entrypoint"]
CMD ["neosens-central"]

FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="neosens-central" \
      org.opencontainers.image.description="Registry, legacy sensOCampus API, broker auth, metrics and dashboard of a campus IoT fleet" \
      org.opencontainers.image.source="https://github.com/neocampus/neosens"
COPY --from=build /neosens-central /usr/local/bin/neosens-central
# Owned by the service user, so a new named volume mounted there starts writable.
COPY --from=build --chown=65532:65532 /data /var/lib/neosens
# Data (redb file and key files) in a volume; HTTP on every interface; the broker is Mosquitto,
# named by NEOSENS_MQTT_URL (deploy/compose.yaml).
ENV NEOSENS_DATA_DIR=/var/lib/neosens \
    NEOSENS_HTTP_BIND=0.0.0.0:8080 \
    NEOSENS_LOG_FORMAT=json
VOLUME ["/var/lib/neosens"]
EXPOSE 8080
# distroless "nonroot" is uid/gid 65532.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/neosens-central"]
