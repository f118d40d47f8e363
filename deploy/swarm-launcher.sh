#!/bin/sh
# The task of the mke-audit-tap Swarm service (deploy/stack.yml), one per manager node.
#
# A Swarm service cannot join the host's PID namespace nor be privileged (Docker 20.10 and
# swarmkit have no such option), and the auditor needs both: it attaches probes to host
# processes by pid. So this task does what MKE's own ucp-agent does for its components: through
# the node's Docker socket it starts the auditor as a plain container beside it, with the host's
# PID namespace, the capabilities it needs, the Swarm config copied into a volume, and json-file
# logging with rotation, then waits on it. Audit lines are that container's output:
#   docker logs mke-audit-tap --tail 10
# Stopping or updating the service stops and removes that container; if the auditor ends on its
# own, this task fails and Swarm starts it again.
set -eu

name=${MAT_CONTAINER_NAME:-mke-audit-tap}
image=${MAT_IMAGE:-mke-audit-tap:latest}
volume=${MAT_CONFIG_VOLUME:-mke-audit-tap-config}
log_max_size=${MAT_LOG_MAX_SIZE:-100m}
log_max_file=${MAT_LOG_MAX_FILE:-5}

say() { echo "swarm-launcher: $*" >&2; }

# The Swarm config, mounted at /etc/mke-audit-tap/config.toml here, goes to the auditor through
# a named volume (mounted at /config-out here): a Swarm config lives in this task's mounts only.
cat /etc/mke-audit-tap/config.toml > /config-out/config.toml

docker rm -f "$name" >/dev/null 2>&1 || true
docker run -d --name "$name" --pid host --network host \
  --cap-add SYS_ADMIN --cap-add SYS_PTRACE --cap-add DAC_READ_SEARCH \
  -v "$volume:/etc/mke-audit-tap:ro" -v /etc/passwd:/etc/passwd:ro -v /etc/group:/etc/group:ro \
  --log-driver json-file --log-opt "max-size=$log_max_size" --log-opt "max-file=$log_max_file" \
  --label com.mirantis.mke-audit-tap.started-by=swarm-launcher \
  "$image" --config /etc/mke-audit-tap/config.toml >/dev/null
say "started container $name from $image; audit lines: docker logs $name"

stop() {
  say "stopping container $name"
  docker stop -t 10 "$name" >/dev/null 2>&1 || true
  docker rm -f "$name" >/dev/null 2>&1 || true
  exit 0
}
trap stop TERM INT

docker wait "$name" >/dev/null &
wait $! || true
say "container $name ended on its own; its last messages:"
{ docker logs --tail 20 "$name" 2>&1 >/dev/null || true; } >&2
exit 1
