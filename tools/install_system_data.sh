#!/usr/bin/env bash
# Debian packages the project needs beside Python's: image data the tests and the quality benchmark
# read (held-out Fashion-MNIST images), and the headless browser the web page's tests drive
# (chromium + chromium-driver: Selenium uses these executables, nothing is downloaded at run time).
# Installs what is missing; needs root (or sudo).
set -euo pipefail
packages=()
[ -d /usr/share/datasets/fashion-mnist ] || packages+=(dataset-fashion-mnist)
command -v chromium >/dev/null || packages+=(chromium)
command -v chromedriver >/dev/null || packages+=(chromium-driver)
[ ${#packages[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then SUDO=sudo; else
        echo "missing Debian packages: ${packages[*]}; install them as root: apt-get install ${packages[*]}" >&2
        exit 1
    fi
fi
echo "installing Debian packages: ${packages[*]}"
${SUDO:-} apt-get update -qq
DEBIAN_FRONTEND=noninteractive ${SUDO:-} apt-get install -y -qq "${packages[@]}" >/dev/null
