# floatover image: a stripped release binary on a distroless base (glibc, CA certificates,
# a nonroot user, no shell). A small image is part of recovery time when a pod is
# rescheduled onto a node that has never pulled it.
#
# No container engine runs on the machines this project is developed on, so this file is
# checked statically (tests/dockerfile.rs), not built, in CI.

# --- build ----------------------------------------------------------------------------
FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, so that source edits do not rebuild them.
COPY Cargo.toml Cargo.lock ./
COPY devkit/Cargo.toml devkit/Cargo.toml
RUN mkdir -p src devkit/src bench examples/demo \
 && echo 'fn main() {}' > src/main.rs && touch src/lib.rs devkit/src/lib.rs \
 && echo 'fn main() {}' > bench/main.rs && echo 'fn main() {}' > examples/demo/main.rs \
 && cargo build --release --locked --bin floatover || true
COPY . .
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --bin floatover \
 && strip target/release/floatover \
 && ./target/release/floatover --version

# --- run ------------------------------------------------------------------------------
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/floatover /usr/local/bin/floatover
USER 65532:65532
EXPOSE 9090
ENTRYPOINT ["/usr/local/bin/floatover"]
CMD ["run", "--config", "/etc/floatover/floatover.yaml"]
