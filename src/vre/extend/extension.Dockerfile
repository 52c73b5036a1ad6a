# An extension (`vre extend`) on top of an eo-vre image, installed by the image's own installer (vre-install).
# The context: layer/ (the extension folder with its lock), extra/ (the base's apt pins, wheel sources, local conda
# channels: bind-mounted, never copied) and release/ (manifest, SBOM, release notes; empty until the image is tested).
ARG BASE_IMAGE

FROM ${BASE_IMAGE} AS image
ARG VRE_LAYER
USER 0
COPY --chown=1000:100 layer/ /opt/vre/layers/${VRE_LAYER}/
# APT_CONFIG holds every base package at its installed version while apt.txt installs (extend/apt.py).
RUN --mount=type=secret,id=vre-ca,mode=0444 --mount=type=bind,source=extra,target=/tmp/vre-extra \
    APT_CONFIG=/tmp/vre-extra/apt.conf vre-install root "${VRE_LAYER}"
# NB_UID is numeric (1000); hadolint cannot expand it. The image config records the number, as runAsNonRoot needs.
# hadolint ignore=DL3066
USER ${NB_UID}
RUN --mount=type=secret,id=vre-ca,mode=0444 --mount=type=bind,source=extra,target=/tmp/vre-extra \
    vre-install user "${VRE_LAYER}" \
 && vre-manifest

FROM image
COPY release/ /opt/vre/release/
