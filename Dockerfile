# syntax=docker/dockerfile:1
# The operator's image: `portfolio-operator` alone on distroless `cc` (glibc,
# libgcc; no shell), run as the non-root user 65532.
#
#   docker build -t portfolio-operator:0.1.0 .
#
# The chart's and deploy/manifests' default image is portfolio-operator:<version>;
# push it to your registry and set image.repository (or manifests --image).
# Without a container engine, scripts/build-image builds an image of the same
# runtime contents with umoci, and scripts/check-image-rootfs runs it (a test
# does).

# The builder: rust-toolchain.toml's Rust (a test checks the tag) on Debian 12,
# the Debian of the runtime image, so the binary links the glibc it finds there.
FROM docker.io/library/rust:1.95.0-bookworm AS builder
WORKDIR /src
# The toolchain file's components and the wasm32-wasip2 target the built-in
# plugins are compiled for (build.rs builds plugins/ and embeds them).
COPY rust-toolchain.toml ./
RUN rustup toolchain install && rustup target list --installed | grep -qx wasm32-wasip2
COPY . .
# Both workspaces exactly as locked: the nested plugin build that build.rs
# runs has no --locked of its own, so plugins/Cargo.lock is checked first.
# The caches keep downloads and the target directory between builds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    (cd plugins && cargo fetch --locked) \
    && cargo build --release --locked -p portfolio-operator \
    && install -D -m 0755 target/release/portfolio-operator /out/portfolio-operator

# The runtime: Debian 12's glibc and libgcc_s, what `ldd` names for the binary.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/portfolio-operator /usr/local/bin/portfolio-operator
# distroless' nonroot user, the Deployment's runAsUser.
USER 65532:65532
# /metrics, /healthz and /readyz.
EXPOSE 8080
LABEL org.opencontainers.image.title="portfolio-operator" \
      org.opencontainers.image.description="A Kubernetes operator whose reconcile logic lives in sandboxed WebAssembly plugins." \
      org.opencontainers.image.licenses="Apache-2.0"
ENTRYPOINT ["/usr/local/bin/portfolio-operator"]
CMD ["run"]
