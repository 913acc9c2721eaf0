#!/usr/bin/env bash
# The deployment's smoke run on this machine (rootful podman, host network, no registry):
# builds the images, starts the compose stack (Redis, store creation, shard 0 x2 replicas,
# shard 1, gateway, admin, one CPU worker, web), registers two zoo models through the admin API
# and waits until they are searchable, searches through the gateway and the web page, kills
# shard 1's only container and checks the partial answer, kills one replica of shard 0 and checks
# the failover, and tears everything down (also on failure). Prints each step's time.
# Usage: deploy/smoke.sh [--keep]   (--keep: leave the stack up; tear down with
#        podman-compose -p modelverse-smoke -f deploy/compose/compose.yaml down -v)
set -euo pipefail
source "$(dirname "$0")/podman/env.sh"
# podman-compose: $PODMAN_COMPOSE, else on the PATH, else the checkout's virtualenv (make setup)
PODMAN_COMPOSE="${PODMAN_COMPOSE:-$(command -v podman-compose || echo "$REPO_ROOT/.venv/bin/podman-compose")}"
[ -x "$PODMAN_COMPOSE" ] || { echo "podman-compose not found (pip install podman-compose, or set PODMAN_COMPOSE)"; exit 1; }
COMPOSE=("$PODMAN_COMPOSE" -p modelverse-smoke -f "$DEPLOY_DIR/compose/compose.yaml")
KEEP=0; [ "${1:-}" = "--keep" ] && KEEP=1
T0=$(date +%s)
step() { echo "[smoke +$(( $(date +%s) - T0 ))s] $*"; }

export RUN_DIR="$MODELVERSE_BUILD_ROOT/smoke-run"
rm -rf "$RUN_DIR"; mkdir -p "$RUN_DIR"

step "build images"
bash "$DEPLOY_DIR/podman/build.sh" serving redis worker web > "$MODELVERSE_BUILD_ROOT/build.log" 2>&1 \
    || { tail -30 "$MODELVERSE_BUILD_ROOT/build.log"; exit 1; }
grep '^built ' "$MODELVERSE_BUILD_ROOT/build.log"
podman images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep modelverse-

free_ports() { python3 -c 'import socket,sys
socks=[socket.socket() for _ in range(int(sys.argv[1]))]
[s.bind(("127.0.0.1",0)) for s in socks]; print(" ".join(str(s.getsockname()[1]) for s in socks))' "$1"; }
read -r REDIS_PORT SHARD_0_R0_PORT SHARD_0_R1_PORT SHARD_1_R0_PORT GATEWAY_PORT ADMIN_PORT WEB_PORT <<< "$(free_ports 7)"
export REDIS_PORT SHARD_0_R0_PORT SHARD_0_R1_PORT SHARD_1_R0_PORT GATEWAY_PORT ADMIN_PORT WEB_PORT
REDIS_PASSWORD="$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"; export REDIS_PASSWORD
step "ports: redis $REDIS_PORT, shards $SHARD_0_R0_PORT,$SHARD_0_R1_PORT/$SHARD_1_R0_PORT, gateway $GATEWAY_PORT, admin $ADMIN_PORT, web $WEB_PORT"

in_image() { podman run --rm --network host --user 10001:10001 -v "$RUN_DIR:/run/modelverse" \
    -v "$DEPLOY_DIR:/deploy:ro" "localhost/modelverse-serving:$MODELVERSE_IMAGE_TAG" "$@"; }
python3 -c 'import secrets; print(secrets.token_hex(32))' > "$RUN_DIR/job.secret"  # signs the fleet's jobs
chmod 600 "$RUN_DIR/job.secret"
chown -R 10001:10001 "$RUN_DIR"
in_image modelverse keys create --keys /run/modelverse/keys.json --role admin --label smoke --out /run/modelverse/admin.key
in_image modelverse keys create --keys /run/modelverse/keys.json --role read --label web --out /run/modelverse/read.key

teardown() {
    status=$?
    if [ "$KEEP" = 0 ]; then
        if [ $status -ne 0 ]; then
            for s in shard-0-r0 shard-1-r0 gateway admin worker web; do
                echo "--- logs of $s" >&2; podman logs --tail 15 "modelverse-smoke_${s}_1" >&2 2>/dev/null || true
            done
        fi
        step "tear down"
        "${COMPOSE[@]}" down -v > "$MODELVERSE_BUILD_ROOT/down.log" 2>&1 || true
    fi
    step "done: $([ $status -eq 0 ] && echo PASSED || echo "FAILED ($status)")"
}
trap teardown EXIT

wait_healthy() {  # container..., within $TIMEOUT seconds
    local deadline=$(( $(date +%s) + TIMEOUT )) c
    for c in "$@"; do
        until podman healthcheck run "modelverse-smoke_${c}_1" >/dev/null 2>&1; do
            [ "$(podman inspect -f '{{.State.Running}}' "modelverse-smoke_${c}_1" 2>/dev/null)" = true ] \
                || { echo "$c is not running"; podman logs --tail 20 "modelverse-smoke_${c}_1"; return 1; }
            [ "$(date +%s)" -lt "$deadline" ] || { echo "$c not healthy in ${TIMEOUT}s"; return 1; }
            sleep 2
        done
        step "$c healthy"
    done
}

step "start redis, create the store"
"${COMPOSE[@]}" up -d redis > "$MODELVERSE_BUILD_ROOT/up.log" 2>&1
"${COMPOSE[@]}" run --rm store-init >> "$MODELVERSE_BUILD_ROOT/up.log" 2>&1 \
    || { tail -20 "$MODELVERSE_BUILD_ROOT/up.log"; exit 1; }
step "start shards, gateway, admin, worker, web"
"${COMPOSE[@]}" up -d --no-deps shard-0-r0 shard-0-r1 shard-1-r0 gateway admin worker web \
    >> "$MODELVERSE_BUILD_ROOT/up.log" 2>&1 || { tail -20 "$MODELVERSE_BUILD_ROOT/up.log"; exit 1; }
TIMEOUT=300 wait_healthy redis shard-0-r0 shard-0-r1 shard-1-r0 gateway admin worker web

client() { in_image python /deploy/smoke_client.py "$@"; }
step "register two zoo models through the admin API (one per shard)"
client register --admin "127.0.0.1:$ADMIN_PORT" --key-file /run/modelverse/admin.key \
    --model fashion-dcgan-sneaker --model fashion-dcgan-dress --timeout 900
step "search through the gateway"
client search --gateway "127.0.0.1:$GATEWAY_PORT" --key-file /run/modelverse/read.key \
    --text "a photo of a sneaker" --expect-first fashion-dcgan-sneaker
client search --gateway "127.0.0.1:$GATEWAY_PORT" --key-file /run/modelverse/read.key \
    --text "a photo of a dress" --expect-first fashion-dcgan-dress
step "search through the web page"
page="$(python3 -c 'import sys,urllib.parse,urllib.request
url=f"http://127.0.0.1:{sys.argv[1]}/search?"+urllib.parse.urlencode({"q":"a photo of a sneaker"})
print(urllib.request.urlopen(url, timeout=60).read().decode())' "$WEB_PORT")"
grep -q fashion-dcgan-sneaker <<< "$page" || { echo "FAIL: the web page shows no fashion-dcgan-sneaker"; exit 1; }
step "web page lists fashion-dcgan-sneaker"

step "kill shard 1 (its only replica): partial answers"
podman kill modelverse-smoke_shard-1-r0_1 >/dev/null
client search --gateway "127.0.0.1:$GATEWAY_PORT" --key-file /run/modelverse/read.key \
    --text "a photo of a sneaker" --expect-first fashion-dcgan-sneaker --expect-partial --expect-missing 1 \
    --expect-absent fashion-dcgan-dress
step "kill one replica of shard 0: the other answers"
podman kill modelverse-smoke_shard-0-r0_1 >/dev/null
client search --gateway "127.0.0.1:$GATEWAY_PORT" --key-file /run/modelverse/read.key \
    --text "a photo of a sneaker" --expect-first fashion-dcgan-sneaker --expect-partial --expect-missing 1
