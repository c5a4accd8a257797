#!/usr/bin/env bash
# Real-server harness for fleetstream's tests and for developers.
#
#   scripts/servers.sh start  [kafka|cassandra|postgres|mosquitto ...]   (default: all four)
#   scripts/servers.sh stop   [...]
#   scripts/servers.sh status [...]
#   scripts/servers.sh env                                             (prints the connection settings)
#
# Kafka and Cassandra come from Maven Central as jars (cached under $FLEETSTREAM_CACHE);
# PostgreSQL and Mosquitto come from Debian packages (apt-get install when missing).
# Every server runs on loopback, on a port and a data dir this project owns, started in the
# background with its pid recorded; `start` is a no-op for a server that already answers.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# --- settings (environment overrides) ------------------------------------------------------
: "${FLEETSTREAM_CACHE:=${XDG_CACHE_HOME:-$HOME/.cache}/fleetstream}"
# Outside the checkout on purpose: PostgreSQL refuses to run as root and runs as `postgres`,
# which must be able to reach its data dir (a clone may live in a 0700 folder).
: "${FLEETSTREAM_RUN_DIR:=/tmp/fleetstream-servers}"
# Kafka 4.4.0: the newest 4.x on Maven Central; kafkajs 2.2.4 negotiates protocol versions
# that KIP-896 kept (proved by core/kafka/*.int.test.ts against this broker).
: "${KAFKA_VERSION:=4.4.0}"
: "${CASSANDRA_VERSION:=5.0.9}"
: "${FS_KAFKA_PORT:=19092}"
: "${FS_KAFKA_CONTROLLER_PORT:=19093}"
: "${FS_CASSANDRA_PORT:=19042}"
: "${FS_CASSANDRA_STORAGE_PORT:=17000}"
: "${FS_POSTGRES_PORT:=15432}"
: "${FS_MOSQUITTO_PORT:=11883}"
: "${FS_POSTGRES_USER:=fleetstream}"
: "${FS_POSTGRES_PASSWORD:=fleetstream-test}"
: "${FS_POSTGRES_DB:=fleetstream}"
: "${FS_MOSQUITTO_USER:=fleetstream}"
: "${FS_MOSQUITTO_PASSWORD:=fleetstream-test}"
: "${FS_SERVER_WAIT_SECONDS:=180}"

MVN_DEP_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies"
ALL=(kafka cassandra postgres mosquitto)

log() { printf '[servers] %s\n' "$*" >&2; }
die() { printf '[servers] ERROR: %s\n' "$*" >&2; exit 1; }

run_dir() { echo "$FLEETSTREAM_RUN_DIR/$1"; }
pid_file() { echo "$(run_dir "$1")/pid"; }
log_file() { echo "$(run_dir "$1")/server.log"; }

pid_alive() {
  local pf; pf="$(pid_file "$1")"
  [[ -f "$pf" ]] && kill -0 "$(cat "$pf")" 2>/dev/null
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

port_of() {
  case "$1" in
    kafka) echo "$FS_KAFKA_PORT" ;;
    cassandra) echo "$FS_CASSANDRA_PORT" ;;
    postgres) echo "$FS_POSTGRES_PORT" ;;
    mosquitto) echo "$FS_MOSQUITTO_PORT" ;;
    *) die "unknown server '$1' (expected one of: ${ALL[*]})" ;;
  esac
}

log_tail() {
  local lf; lf="$(log_file "$1")"
  if [[ -f "$lf" ]]; then
    printf '[servers] --- last 40 lines of %s ---\n' "$lf" >&2
    tail -n 40 "$lf" >&2
  fi
}

# Waits until `$2...` (a readiness probe) succeeds, or fails with the server's log tail.
wait_ready() {
  local name="$1"; shift
  local deadline=$((SECONDS + FS_SERVER_WAIT_SECONDS))
  until "$@" >/dev/null 2>&1; do
    if ! pid_alive "$name"; then
      log_tail "$name"; die "$name exited during start-up (log: $(log_file "$name"))"
    fi
    if ((SECONDS > deadline)); then
      log_tail "$name"; die "$name did not answer within ${FS_SERVER_WAIT_SECONDS}s (log: $(log_file "$name"))"
    fi
    sleep 1
  done
}

# Starts "$@" detached (own session, output to the log), recording its pid.
spawn() {
  local name="$1"; shift
  mkdir -p "$(run_dir "$name")"
  : >"$(log_file "$name")"
  setsid "$@" >>"$(log_file "$name")" 2>&1 </dev/null &
  echo $! >"$(pid_file "$name")"
}

APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null || die "apt-get not found: install $* by hand"
  if ((APT_UPDATED == 0)); then
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

# Copies a Maven artifact and its runtime dependencies into the cache, once.
fetch_jars() {
  local pom="$1" dest="$2"; shift 2
  if [[ -f "$dest/.complete" ]]; then return; fi
  command -v mvn >/dev/null || apt_install maven
  log "fetching $(basename "$pom" .pom.xml) jars from Maven Central into $dest"
  rm -rf "$dest"; mkdir -p "$dest"
  mvn -q -B -Dstyle.color=never -f "$pom" "$@" -DoutputDirectory="$dest" -DincludeScope=runtime "$MVN_DEP_PLUGIN" >&2 \
    || die "maven could not fetch $(basename "$pom")"
  touch "$dest/.complete"
}

java_bin() {
  command -v java >/dev/null || apt_install openjdk-17-jre-headless
  local major
  major="$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
  [[ "${major:-0}" -ge 17 ]] 2>/dev/null || die "Kafka 4 and Cassandra 5 need Java 17+; found ${major:-none}"
  echo java
}

# --- Kafka (KRaft, one broker+controller) ------------------------------------------------
kafka_lib() { echo "$FLEETSTREAM_CACHE/kafka-$KAFKA_VERSION/lib"; }

kafka_ready() {
  # The broker is ready once its log says so and the port answers.
  port_open "$FS_KAFKA_PORT" && grep -q 'Kafka Server started' "$(log_file kafka)"
}

start_kafka() {
  fetch_jars "$HERE/servers/kafka.pom.xml" "$(kafka_lib)" -Dkafka.version="$KAFKA_VERSION"
  local dir; dir="$(run_dir kafka)"
  mkdir -p "$dir/data"
  cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$FS_KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$FS_KAFKA_PORT,CONTROLLER://127.0.0.1:$FS_KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$FS_KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.partitions=6
auto.create.topics.enable=false
# One broker: the internal topics must have replication factor 1 and min ISR 1, or
# __consumer_offsets / __transaction_state are never created and groups never form.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=6
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=24
EOF
  cat >"$dir/log4j2.properties" <<'EOF'
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
EOF
  local java; java="$(java_bin)"
  if [[ ! -f "$dir/data/meta.properties" ]]; then
    local cid
    cid="$("$java" -cp "$(kafka_lib)/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)"
    "$java" -cp "$(kafka_lib)/*" -Dlog4j2.configurationFile="$dir/log4j2.properties" \
      kafka.tools.StorageTool format -t "$cid" -c "$dir/server.properties" >"$dir/format.log" 2>&1 \
      || { cat "$dir/format.log" >&2; die "kafka storage format failed"; }
  fi
  spawn kafka "$java" -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$dir/log4j2.properties" \
    -cp "$(kafka_lib)/*" kafka.Kafka "$dir/server.properties"
  wait_ready kafka kafka_ready
}

# --- Cassandra 5.0 -------------------------------------------------------------------------
cassandra_lib() { echo "$FLEETSTREAM_CACHE/cassandra-$CASSANDRA_VERSION/lib"; }

cassandra_ready() {
  port_open "$FS_CASSANDRA_PORT" && grep -q 'Startup complete' "$(log_file cassandra)"
}

start_cassandra() {
  fetch_jars "$HERE/servers/cassandra.pom.xml" "$(cassandra_lib)" -Dcassandra.version="$CASSANDRA_VERSION"
  local dir; dir="$(run_dir cassandra)"
  mkdir -p "$dir/data" "$dir/commitlog" "$dir/saved_caches" "$dir/hints" "$dir/cdc"
  sed -e "s#__DIR__#$dir#g" -e "s#__STORAGE_PORT__#$FS_CASSANDRA_STORAGE_PORT#g" -e "s#__PORT__#$FS_CASSANDRA_PORT#g" \
    "$HERE/servers/cassandra.yaml" >"$dir/cassandra.yaml"
  cp "$HERE/servers/cassandra-logback.xml" "$dir/logback.xml"
  local java; java="$(java_bin)"
  local opts=()
  # The --add-exports/--add-opens flags of Cassandra's own conf/jvm17-server.options.
  mapfile -t opts < <(grep -vE '^\s*(#|$)' "$HERE/servers/cassandra-jvm17.options")
  spawn cassandra "$java" -Xms512m -Xmx1g -Xss512k -XX:+UseG1GC -Djava.awt.headless=true \
    "${opts[@]}" \
    -Dcassandra.config="file://$dir/cassandra.yaml" \
    -Dcassandra.storagedir="$dir" \
    -Dcassandra.logdir="$dir" \
    -Dlogback.configurationFile="$dir/logback.xml" \
    -Dcassandra-foreground=yes \
    -Dcassandra.skip_wait_for_gossip_to_settle=0 \
    -Dcassandra.initial_token=0 \
    -Dcassandra.jmx.local.port=0 \
    -cp "$(cassandra_lib)/*" org.apache.cassandra.service.CassandraDaemon
  wait_ready cassandra cassandra_ready
}

# --- PostgreSQL (Debian package) -------------------------------------------------------------
pg_bin() {
  local d
  d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  if [[ -z "$d" || ! -x "$d/postgres" ]]; then
    apt_install postgresql
    d="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
  fi
  echo "$d"
}

as_pg() {
  if [[ "$(id -u)" == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

postgres_ready() {
  PGPASSWORD="$FS_POSTGRES_PASSWORD" psql -h 127.0.0.1 -p "$FS_POSTGRES_PORT" -U "$FS_POSTGRES_USER" \
    -d "$FS_POSTGRES_DB" -tAc 'select 1' | grep -q 1
}

start_postgres() {
  local bin; bin="$(pg_bin)"
  command -v psql >/dev/null || apt_install postgresql-client
  local dir; dir="$(run_dir postgres)"
  mkdir -p "$dir"
  chmod 755 "$FLEETSTREAM_RUN_DIR"
  [[ "$(id -u)" == 0 ]] && chown postgres:postgres "$dir"
  if [[ ! -f "$dir/data/PG_VERSION" ]]; then
    local pwfile="$dir/.pw"
    printf '%s\n' "$FS_POSTGRES_PASSWORD" >"$pwfile"
    [[ "$(id -u)" == 0 ]] && chown postgres:postgres "$pwfile"
    chmod 600 "$pwfile"
    as_pg "$bin/initdb" -D "$dir/data" -U "$FS_POSTGRES_USER" --pwfile="$pwfile" -A scram-sha-256 \
      -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    rm -f "$pwfile"
  fi
  : >"$(log_file postgres)"
  [[ "$(id -u)" == 0 ]] && chown postgres:postgres "$(log_file postgres)"
  setsid bash -c "$(declare -f as_pg); as_pg '$bin/postgres' -D '$dir/data' -p '$FS_POSTGRES_PORT' \
    -c listen_addresses=127.0.0.1 -c unix_socket_directories='$dir' -c max_connections=200 \
    -c fsync=on -c shared_buffers=256MB" >>"$(log_file postgres)" 2>&1 </dev/null &
  echo $! >"$(pid_file postgres)"
  wait_ready postgres bash -c "PGPASSWORD='$FS_POSTGRES_PASSWORD' psql -h 127.0.0.1 -p '$FS_POSTGRES_PORT' \
    -U '$FS_POSTGRES_USER' -d postgres -tAc 'select 1' | grep -q 1"
  if ! postgres_ready 2>/dev/null; then
    PGPASSWORD="$FS_POSTGRES_PASSWORD" psql -h 127.0.0.1 -p "$FS_POSTGRES_PORT" -U "$FS_POSTGRES_USER" \
      -d postgres -qc "CREATE DATABASE \"$FS_POSTGRES_DB\"" >&2
  fi
}

# --- Mosquitto (Debian package), authentication on -----------------------------------------
mosquitto_ready() {
  mosquitto_pub -h 127.0.0.1 -p "$FS_MOSQUITTO_PORT" -u "$FS_MOSQUITTO_USER" -P "$FS_MOSQUITTO_PASSWORD" \
    -t 'fleetstream/health' -m ok -q 1
}

start_mosquitto() {
  local missing=()
  command -v mosquitto >/dev/null || [[ -x /usr/sbin/mosquitto ]] || missing+=(mosquitto)
  command -v mosquitto_pub >/dev/null || missing+=(mosquitto-clients)
  ((${#missing[@]} == 0)) || apt_install "${missing[@]}"
  local bin; bin="$(command -v mosquitto || echo /usr/sbin/mosquitto)"
  local dir; dir="$(run_dir mosquitto)"
  mkdir -p "$dir"
  rm -f "$dir/passwd"
  mosquitto_passwd -b -c "$dir/passwd" "$FS_MOSQUITTO_USER" "$FS_MOSQUITTO_PASSWORD" >/dev/null 2>&1
  cat >"$dir/mosquitto.conf" <<EOF
# Written by scripts/servers.sh: loopback only, passwords required, no anonymous clients.
per_listener_settings false
allow_anonymous false
password_file $dir/passwd
listener $FS_MOSQUITTO_PORT 127.0.0.1
persistence false
log_dest stdout
log_type error
log_type warning
log_type notice
# Explicit limits: the defaults drop QoS 1 messages under a benchmark's load.
max_queued_messages 0
max_inflight_messages 1000
EOF
  # Run as the invoking user so it can read the files above (it would switch to `mosquitto` as root).
  [[ "$(id -u)" == 0 ]] && echo "user root" >>"$dir/mosquitto.conf"
  chmod 600 "$dir/passwd"
  spawn mosquitto "$bin" -c "$dir/mosquitto.conf"
  wait_ready mosquitto mosquitto_ready
}

# --- verbs -----------------------------------------------------------------------------------
is_running() { pid_alive "$1" && port_open "$(port_of "$1")"; }

start_one() {
  local name="$1" t0=$SECONDS
  port_of "$name" >/dev/null
  if is_running "$name"; then
    log "$name already running (pid $(cat "$(pid_file "$name")"), port $(port_of "$name"))"
    return
  fi
  if port_open "$(port_of "$name")"; then
    die "port $(port_of "$name") is taken by a process this script did not start; set FS_${name^^}_PORT"
  fi
  log "starting $name on 127.0.0.1:$(port_of "$name")"
  "start_$name"
  log "$name ready in $((SECONDS - t0))s (pid $(cat "$(pid_file "$name")"), log $(log_file "$name"))"
}

stop_one() {
  local name="$1" pf; pf="$(pid_file "$name")"
  if ! pid_alive "$name"; then
    rm -f "$pf"; log "$name not running"; return
  fi
  local pid; pid="$(cat "$pf")"
  # PostgreSQL's SIGTERM waits for clients to leave; SIGINT is its "fast" shutdown.
  local sig=TERM; [[ "$name" == postgres ]] && sig=INT
  # Each server was started in its own session: signal the whole group.
  kill -"$sig" -- "-$pid" 2>/dev/null || kill -"$sig" "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pf"
  log "$name stopped"
}

status_one() {
  local name="$1"
  if is_running "$name"; then
    echo "$name: running (pid $(cat "$(pid_file "$name")"), 127.0.0.1:$(port_of "$name"), log $(log_file "$name"))"
  else
    echo "$name: stopped"
    return 1
  fi
}

print_env() {
  cat <<EOF
FS_KAFKA_BROKERS=127.0.0.1:$FS_KAFKA_PORT
FS_KAFKA_LIB=$(kafka_lib)
FS_CASSANDRA_CONTACT_POINTS=127.0.0.1:$FS_CASSANDRA_PORT
FS_CASSANDRA_LIB=$(cassandra_lib)
FS_POSTGRES_URL=postgres://$FS_POSTGRES_USER:$FS_POSTGRES_PASSWORD@127.0.0.1:$FS_POSTGRES_PORT/$FS_POSTGRES_DB
FS_MOSQUITTO_URL=mqtt://127.0.0.1:$FS_MOSQUITTO_PORT
FS_MOSQUITTO_USER=$FS_MOSQUITTO_USER
FS_MOSQUITTO_PASSWORD=$FS_MOSQUITTO_PASSWORD
EOF
}

verb="${1:-status}"; shift || true
names=("$@"); ((${#names[@]})) || names=("${ALL[@]}")
mkdir -p "$FLEETSTREAM_RUN_DIR" "$FLEETSTREAM_CACHE"
case "$verb" in
  start) for n in "${names[@]}"; do start_one "$n"; done ;;
  stop) for n in "${names[@]}"; do stop_one "$n"; done ;;
  restart) for n in "${names[@]}"; do stop_one "$n"; start_one "$n"; done ;;
  # Stop and forget the data (topics, keyspaces, databases); downloads stay cached. CI starts here.
  reset) for n in "${names[@]}"; do stop_one "$n"; rm -rf "$(run_dir "$n")"; log "$n data removed"; done ;;
  status) rc=0; for n in "${names[@]}"; do status_one "$n" || rc=1; done; exit $rc ;;
  env) print_env ;;
  # Debian's Chromium, for the dashboard's browser test (playwright-core drives it).
  browser) command -v chromium >/dev/null || apt_install chromium; command -v chromium ;;
  *) die "usage: $0 start|stop|restart|reset|status|env|browser [kafka|cassandra|postgres|mosquitto ...]" ;;
esac
