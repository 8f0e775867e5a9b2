# syntax=docker/dockerfile:1
# Build: docker build -t proxmox-exporter .
# Run:   docker run -p 8080:8080 -e PROXMOX_EXPORTER_PROXMOX_ENDPOINTS=https://pve1:8006/ \
#          -e PROXMOX_EXPORTER_PROXMOX_TOKEN_ID='monitoring@pve!exporter' \
#          -e PROXMOX_EXPORTER_PROXMOX_TOKEN_FILE=/run/secrets/proxmox-token proxmox-exporter

FROM docker.io/library/rust:1.89-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY schema schema
COPY src src
COPY benches benches
# The `dist` profile: fat LTO, one codegen unit (BENCHMARKS.md, "Build profiles").
RUN cargo build --profile dist --locked --bin proxmox-exporter \
    && strip target/dist/proxmox-exporter

# glibc and libgcc only (TLS is rustls on ring): distroless "cc", as a non-root user.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/dist/proxmox-exporter /usr/local/bin/proxmox-exporter
# 65532 is distroless's "nonroot" user.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/proxmox-exporter"]
