# syntax=docker/dockerfile:1
#
# slq container image. Multi-stage; everything is Debian 12 ("bookworm") so the runtime has
# exactly the shared libraries the build linked against (gRPC, protobuf, absl, ...). Why not
# nvidia/cuda:*-devel-ubuntu*: slq's dependencies are Debian 12 packages (scripts/install-
# deps.sh), and binaries built against Ubuntu's gRPC/absl would not match Debian's at run time.
# The CUDA toolkit comes from NVIDIA's apt repository for Debian 12 instead (build arg
# CUDA_VERSION); the GPU driver (libcuda.so) is injected by the NVIDIA container runtime.
#
# Targets:
#   runtime-cuda (default, last stage)  GPU image:  docker build -t slq:cuda .
#   runtime-cpu                         CPU image:  docker build --target runtime-cpu \
#                                                     --build-arg SLQ_CUDA=OFF -t slq:cpu .
# Build args: CUDA_VERSION (13.0), SLQ_CUDA_ARCH (90 = H100/H200; "80;90" for several),
#             SLQ_CUDA (ON/OFF/AUTO), SLQ_JOBS (parallel compile jobs).
# The build steps are scripts/docker-build-steps.sh, which CI also runs outside Docker.

ARG CUDA_VERSION=13.0

# ---- cuda-repo: NVIDIA's apt repository for Debian 12 -------------------------------------
FROM debian:12 AS cuda-repo
ARG CUDA_KEYRING_URL=https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/cuda-keyring_1.1-1_all.deb
ADD ${CUDA_KEYRING_URL} /tmp/cuda-keyring.deb

# ---- build: toolchain + dependencies + CUDA toolkit, then the build steps -----------------
FROM debian:12 AS build
ARG CUDA_VERSION
ARG SLQ_CUDA=ON
ARG SLQ_CUDA_ARCH=90
ARG SLQ_JOBS=4
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
COPY --from=cuda-repo /tmp/cuda-keyring.deb /tmp/cuda-keyring.deb
# CUDA compiler and the headers/libraries the kernels link (cudart, cuBLAS/cuBLASLt).
RUN v="${CUDA_VERSION/./-}"; \
    if [ "${SLQ_CUDA}" = "OFF" ]; then rm -f /tmp/cuda-keyring.deb; exit 0; fi; \
    dpkg -i /tmp/cuda-keyring.deb && \
    apt-get update && apt-get install -y --no-install-recommends "cuda-nvcc-${v}" "cuda-cudart-dev-${v}" "libcublas-dev-${v}" "cuda-nvrtc-dev-${v}" && \
    rm -rf /var/lib/apt/lists/* /tmp/cuda-keyring.deb
ENV PATH=/usr/local/cuda/bin:/usr/local/cuda-${CUDA_VERSION}/bin:${PATH}
WORKDIR /src
# Dependencies first, so the layer is cached while only sources change.
COPY scripts/install-deps.sh scripts/docker-build-steps.sh scripts/
RUN bash scripts/install-deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
RUN SLQ_SKIP_DEPS=1 SLQ_CUDA="${SLQ_CUDA}" SLQ_CUDA_ARCH="${SLQ_CUDA_ARCH}" SLQ_JOBS="${SLQ_JOBS}" \
    SLQ_PREFIX=/opt/slq SLQ_BUILD_DIR=/tmp/slq-build \
    bash scripts/docker-build-steps.sh configure build install runtime-packages

# ---- runtime-cpu: Debian slim, only the runtime libraries the binaries load ---------------
FROM debian:12-slim AS runtime-cpu
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
COPY --from=build /opt/slq /opt/slq
# runtime-packages.txt lists the Debian packages owning the libraries the binaries load;
# sqlite3 is the CLI for online backups of jobs.db (docs/OPERATIONS.md).
RUN mapfile -t pkgs < <(grep -v -E '^(cuda-|libcublas|libnvjitlink|libnvrtc)' /opt/slq/share/slq/runtime-packages.txt) && \
    apt-get update && apt-get install -y --no-install-recommends ca-certificates sqlite3 "${pkgs[@]}" && \
    rm -rf /var/lib/apt/lists/* && \
    groupadd --system --gid 10001 slq && \
    useradd --system --uid 10001 --gid slq --home-dir /var/lib/slq --shell /usr/sbin/nologin slq && \
    mkdir -p /var/lib/slq/artifacts /var/lib/slq/models /etc/slq && \
    chown -R slq:slq /var/lib/slq
ENV PATH=/opt/slq/bin:${PATH} \
    SLQ_DATA_DIR=/var/lib/slq \
    SLQ_MODEL_CACHE_DIR=/var/lib/slq/models
USER 10001:10001
WORKDIR /var/lib/slq
VOLUME ["/var/lib/slq"]
# 7070 gRPC (JobService, InferenceService, health, reflection); 9090 server /metrics;
# 9091 worker /metrics; 8080 the OpenAI-compatible HTTP API when --http-port 8080 is set
# (deploy/slq.yaml sets it).
EXPOSE 7070 8080 9090 9091
# Loading --serve-models can take minutes: give the check room (compose/k8s set their own).
HEALTHCHECK --interval=30s --timeout=5s --retries=10 \
  CMD ["slqctl", "--server", "127.0.0.1:7070", "health"]
ENTRYPOINT ["slq-server"]
CMD ["--listen", "0.0.0.0:7070", "--metrics-listen", "0.0.0.0:9090"]

# ---- runtime-cuda: the CPU runtime plus NVIDIA's CUDA runtime libraries (default) --------
FROM runtime-cpu AS runtime-cuda
ARG CUDA_VERSION
USER root
COPY --from=cuda-repo /tmp/cuda-keyring.deb /tmp/cuda-keyring.deb
RUN v="${CUDA_VERSION/./-}" && \
    mapfile -t pkgs < <(grep -E '^(cuda-|libcublas|libnvjitlink|libnvrtc)' /opt/slq/share/slq/runtime-packages.txt) && \
    dpkg -i /tmp/cuda-keyring.deb && rm -f /tmp/cuda-keyring.deb && \
    apt-get update && apt-get install -y --no-install-recommends "cuda-cudart-${v}" "${pkgs[@]}" && \
    rm -rf /var/lib/apt/lists/*
ENV NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    LD_LIBRARY_PATH=/usr/local/cuda-${CUDA_VERSION}/targets/x86_64-linux/lib:/usr/local/cuda/lib64
USER 10001:10001
