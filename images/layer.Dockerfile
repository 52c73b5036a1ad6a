# One eo-vre layer on top of its parent image; used for every image of the matrix.
# The factory stages the build context: layers/<name>/ (spec, lock, postBuild, start, build.sh of each layer this
# image adds), builder/<name>/ (the same without the Python/conda specs, locks and postBuild), compat/ (the
# compat-test suite) and extra/ (wheel sources, local conda channels: bind-mounted only).
ARG BASE_IMAGE

# Optional compile step of a layer (its build.sh); only what it writes to /out reaches the image.
FROM ${BASE_IMAGE} AS builder
# A throwaway stage (only what build.sh writes to /out leaves it): root here is root in no image.
# hadolint ignore=DL3002
USER 0
COPY builder/ /tmp/vre-layers/
RUN --mount=type=secret,id=vre-ca,mode=0444 \
    mkdir -p /out \
 && for script in /tmp/vre-layers/*/build.sh; do \
        if [ -f "$script" ]; then bash -euo pipefail "$script" /out; fi; \
    done

# The image's content without the compat suite: children build FROM this stage of their parent (the factory passes its
# image id), so editing a test rebuilds only each image's last, small layer below.
FROM ${BASE_IMAGE} AS content
ARG VRE_LAYERS
ARG VRE_VARIANT=""
ENV VRE_VARIANT=${VRE_VARIANT}
USER 0
# Steps by weight and rate of change, heaviest and slowest first, each seeing only its own inputs: the Debian packages
# (apt/: apt.lock), then the layer's heavy Python packages (heavy/: their pins from the lock, e.g. torch), then the
# build.sh output, then the rest. One Python package more rebuilds, and users pull again, only the last steps.
COPY --chown=1000:100 apt/ /opt/vre/layers/
RUN --mount=type=secret,id=vre-ca,mode=0444 vre-install apt ${VRE_LAYERS}
# NB_UID is numeric (1000); hadolint cannot expand it. The image config records the number, as runAsNonRoot needs.
# hadolint ignore=DL3066
USER ${NB_UID}
COPY --chown=1000:100 heavy/ /tmp/vre-heavy/
RUN --mount=type=secret,id=vre-ca,mode=0444 --mount=type=bind,source=extra,target=/tmp/vre-extra \
    vre-install heavy ${VRE_LAYERS}
USER 0
COPY --from=builder /out/ /
COPY --chown=1000:100 layers/ /opt/vre/layers/
RUN --mount=type=secret,id=vre-ca,mode=0444 --mount=type=bind,source=extra,target=/tmp/vre-extra \
    vre-install root ${VRE_LAYERS}
# hadolint ignore=DL3066
USER ${NB_UID}
RUN --mount=type=secret,id=vre-ca,mode=0444 --mount=type=bind,source=extra,target=/tmp/vre-extra \
    vre-install user ${VRE_LAYERS}

# The tested image: content + the compat suite (`vre-compat`, run by `vre test` and by anyone who pulls it).
# --force-reinstall: a parent given as a full image (CI's --parent-image) already has an older copy.
FROM content AS image
COPY --chown=1000:100 compat/ /tmp/vre-compat/
RUN "${NB_PYTHON_PREFIX}/bin/python" -m pip install --no-cache-dir --no-deps --no-build-isolation --no-index \
        --force-reinstall --quiet /tmp/vre-compat \
 && rm -rf /tmp/vre-compat "${HOME}/.cache" \
 && vre-manifest

# The published image: + its release files (manifest, CycloneDX SBOM), which the factory makes from the image stage
# once that is built (release/ is empty until then) and which are published beside it as well.
FROM image
COPY release/ /opt/vre/release/
