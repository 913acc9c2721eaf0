#!/usr/bin/env bash
# Image data that ships in Debian packages and that the tests and the quality benchmark read
# (held-out Fashion-MNIST images). Installs them when missing; needs root (or sudo).
set -euo pipefail
packages=()
[ -d /usr/share/datasets/fashion-mnist ] || packages+=(dataset-fashion-mnist)
[ ${#packages[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then SUDO=sudo; else
        echo "missing Debian packages: ${packages[*]}; install them as root: apt-get install ${packages[*]}" >&2
        exit 1
    fi
fi
echo "installing Debian data packages: ${packages[*]}"
${SUDO:-} apt-get update -qq
DEBIAN_FRONTEND=noninteractive ${SUDO:-} apt-get install -y -qq "${packages[@]}" >/dev/null
