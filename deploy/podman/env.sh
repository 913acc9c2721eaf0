# Sourced by the podman scripts: rootful podman with the project's own containers.conf (runc,
# cgroupfs, raised ulimits), and every image, layer and build cache kept outside the checkout.
DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO_ROOT="$(cd "$DEPLOY_DIR/.." && pwd)"
export CONTAINERS_CONF="$DEPLOY_DIR/podman/containers.conf"
# Where the base rootfs and logs go; podman's own storage stays in its default place (/var/lib/containers).
export MODELVERSE_BUILD_ROOT="${MODELVERSE_BUILD_ROOT:-/var/tmp/modelverse-deploy}"
# The pinned base: Debian 12 (bookworm, updated 2026-12-02) from the mirror apt uses here, made by base-image.sh.
export MODELVERSE_BASE_IMAGE="${MODELVERSE_BASE_IMAGE:-localhost/modelverse/debian:bookworm-12-20261202}"
export MODELVERSE_IMAGE_TAG="${MODELVERSE_IMAGE_TAG:-0.1.0}"
