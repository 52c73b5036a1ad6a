# An extension (`vre extend`) on top of an eo-vre image, installed by the image's own installer (vre-install).
# The context: layer/ (the extension folder with its lock), extra/ (the base's apt pins, wheel sources, local conda
# channels: bind-mounted, never copied) and release/ (manifest, SBOM, release notes; empty until the image is tested).
ARG BASE_IMAGE

FROM ${BASE_IMAGE} AS image
ARG VRE_LAYER
USER 0
COPY --chown=1000:100 layer/ /opt/vre/layers/${VRE_LAYER}/
# apt.txt by apt itself (vre-install's apt phase takes an apt.lock, which `vre lock` makes for the matrix's layers
# only), with APT_CONFIG holding every base package at its installed version (extend/apt.py); then the start hook.
# DL3008: versions come from the pins; DL4006: no apt.txt is no package (sed's failure is the empty list); SC2086: one
# word per package.
# hadolint ignore=DL3008,DL4006,SC2086
RUN --mount=type=secret,id=vre-ca,mode=0444 --mount=type=bind,source=extra,target=/tmp/vre-extra \
    packages=$(sed -e 's/#.*//' "/opt/vre/layers/${VRE_LAYER}/apt.txt" 2>/dev/null | xargs) \
 && if [ -n "${packages}" ]; then \
        export APT_CONFIG=/tmp/vre-extra/apt.conf \
     && apt-get update -q \
     && apt-get install -y -q --no-install-recommends ${packages} \
     && apt-get clean && rm -rf /var/lib/apt/lists/*; \
    fi \
 && vre-install root "${VRE_LAYER}"
# NB_UID is numeric (1000); hadolint cannot expand it. The image config records the number, as runAsNonRoot needs.
# hadolint ignore=DL3066
USER ${NB_UID}
RUN --mount=type=secret,id=vre-ca,mode=0444 --mount=type=bind,source=extra,target=/tmp/vre-extra \
    vre-install user "${VRE_LAYER}" \
 && vre-manifest

FROM image
COPY release/ /opt/vre/release/
