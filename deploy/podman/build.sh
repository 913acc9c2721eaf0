#!/usr/bin/env bash
# Builds the three images with rootful podman (buildah underneath), reusing the layer cache:
# the common `deps` layer once, torch once. The pip configuration of this machine (its extra
# indexes and wheel folders on local disk, the constraints file) is mounted read-only into the
# build; the build uses the host's network (no bridge). Usage: build.sh [serving|worker|web ...]
set -euo pipefail
source "$(dirname "$0")/env.sh"
bash "$DEPLOY_DIR/podman/base-image.sh"
mounts=()
for path in /etc/pip.conf /etc/xdg/pip /root/.config/pip /opt/pypi /opt/pypi-more /opt/wheels \
            /etc/ssl/certs/ca-certificates.crt; do
    [ -e "$path" ] && mounts+=(--volume "$path:$path:ro")
done
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(serving web worker)
for target in "${targets[@]}"; do
    start=$(date +%s)
    # docker format: the OCI format drops HEALTHCHECK and SHELL
    podman build --format docker --network host --layers "${mounts[@]}" \
        --build-arg "BASE_IMAGE=$MODELVERSE_BASE_IMAGE" \
        -f "$DEPLOY_DIR/images/Dockerfile" --target "$target" \
        -t "localhost/modelverse-$target:$MODELVERSE_IMAGE_TAG" "$REPO_ROOT"
    echo "built localhost/modelverse-$target:$MODELVERSE_IMAGE_TAG in $(( $(date +%s) - start )) s"
done
