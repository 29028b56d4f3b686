# Sourced by .ci/run and .ci/nightly: install what the real stacks need on a fresh Debian 12
# machine (apt), start a private Docker engine for this shell (stopped when the shell exits),
# and install tox.
export DEBIAN_FRONTEND=noninteractive
need_apt=()
# The Triton Python-backend stub links the system's libpython3.11.
[ -e /usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0 ] || need_apt+=(libpython3.11)
# TorchServe's frontend is Java (11 or newer).
command -v java >/dev/null || need_apt+=(openjdk-17-jre-headless)
# Dynamo's etcd discovery: the harness starts etcd itself, as a process of the stack (no service).
command -v etcd >/dev/null || need_apt+=(etcd-server)
# Container stacks and faults: Debian's Docker engine (started below, not as a service).
command -v dockerd >/dev/null || need_apt+=(docker.io)
# The report pages' browser tests: headless Chromium, driven by Selenium through Debian's driver.
command -v chromium >/dev/null || need_apt+=(chromium)
command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
# The results store's PostgreSQL tests start their own cluster (initdb + pg_ctl in a temporary
# folder on a free loopback port; as root through runuser as the `postgres` user the package
# creates): they need the server's binaries, not its service.
command -v initdb >/dev/null || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need_apt+=(postgresql)
# The exporter's tests scrape a real run with a real Prometheus and push to a real Pushgateway.
command -v prometheus >/dev/null || need_apt+=(prometheus)
command -v prometheus-pushgateway >/dev/null || need_apt+=(prometheus-pushgateway)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}"
fi

# A private Docker engine for the container tests, with the options that work in this sandbox
# (no iptables, no bridge: containers use the host's network; vfs storage), its own socket and
# data root; stopped and removed when this script ends. The tests find it through DOCKER_HOST.
docker_dir=$(mktemp -d /tmp/ci-dockerd.XXXXXX)
echo '{}' >"$docker_dir/daemon.json"
dockerd --config-file "$docker_dir/daemon.json" --host "unix://$docker_dir/docker.sock" \
  --data-root "$docker_dir/data" --exec-root "$docker_dir/exec" --pidfile "$docker_dir/dockerd.pid" \
  --iptables=false --ip-masq=false --bridge=none --storage-driver=vfs >"$docker_dir/dockerd.log" 2>&1 &
dockerd_pid=$!
stop_dockerd() {
  kill -TERM "$dockerd_pid" 2>/dev/null && wait "$dockerd_pid" 2>/dev/null || true
  # dockerd leaves its network namespace mounted under the exec root
  cut -d' ' -f2 /proc/self/mounts | grep "^$docker_dir/" | sort -r | xargs -r -n1 umount -l || true
  rm -rf "$docker_dir"
}
trap stop_dockerd EXIT
export DOCKER_HOST="unix://$docker_dir/docker.sock"
for _ in $(seq 1 60); do
  docker -H "$DOCKER_HOST" version >/dev/null 2>&1 && break
  sleep 0.5
done
docker -H "$DOCKER_HOST" version >/dev/null || { tail -20 "$docker_dir/dockerd.log"; exit 1; }

python3 -m pip install -q --disable-pip-version-check tox
